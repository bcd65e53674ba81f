#!/usr/bin/env bash
# Query latency on a large ledger: 100,000 runs over 1,000 builds (override with
# BUILDS=... RUNS=...). Prints the median wall time of trace and impact over 7 runs each.
# Not part of .ci/run: timings on a shared machine are for reading, not asserting.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILDS=${BUILDS:-1000}
RUNS=${RUNS:-100000}
cargo build --release --quiet --bin cto-ledger --example fill-ledger
BIN=target/release/cto-ledger
WORK=$(mktemp -d /tmp/cto-ledger-qbench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s.%N)
target/release/examples/fill-ledger "$WORK/ledger" "$BUILDS" "$RUNS"
echo "fill: $(python3 -c "import sys; print(round($(date +%s.%N) - $start, 1))") s"
mkdir -p "$WORK/ledger/objects"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_ms() {
    for _ in 1 2 3 4 5 6 7; do
        s=$(date +%s%N); "$BIN" --ledger "$WORK/ledger" "$@" > /dev/null; e=$(date +%s%N)
        echo $(( (e - s) / 1000000 ))
    done | median
}
commit=$("$BIN" --ledger "$WORK/ledger" sql "SELECT commit_id FROM builds LIMIT 1 OFFSET 500" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0][0])')
printf '%-48s %8s\n' "query" "median ms"
printf '%-48s %8s\n' "trace run:<one of $RUNS>" "$(time_ms trace run:20260531T000000Z-r1-string-slugify-54321)"
printf '%-48s %8s\n' "impact commit:<one of $BUILDS> (build, admission, runs)" "$(time_ms impact "commit:$commit")"
printf '%-48s %8s\n' "impact adm_<one> --json" "$(time_ms impact adm_00000000000001f4 --json)"
printf '%-48s %8s\n' "show run:<one>" "$(time_ms show run:20260531T000000Z-r1-string-slugify-54321)"
printf '%-48s %8s\n' "runs --provider ca500 (100 rows)" "$(time_ms runs --provider ca500)"
printf '%-48s %8s\n' "cto-ledger --version (process start)" "$(time_ms --version)"
