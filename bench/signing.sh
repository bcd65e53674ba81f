#!/usr/bin/env bash
# The signing log at scale: ledgers of 10,000, 100,000 and 1,000,000 events (SIZES=...
# to change), each made by examples/fill-ledger, then the median wall time of 7 runs each
# of signing a checkpoint over the whole journal, proving one event's inclusion, proving
# consistency, verifying a proof offline, and writing the log as C2SP tlog-tiles; beside
# them, process start. The tree is read from its tiles (ledger/tiles.rs): each figure
# should stay within 2x from 10k to 1M events. Not part of .ci/run: timings on a shared
# machine are for reading, not asserting.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"10000 100000 1000000"}
cargo build --release --quiet --bin cto-ledger --example fill-ledger
BIN=target/release/cto-ledger
WORK=$(mktemp -d /tmp/cto-ledger-sbench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export CTO_LEDGER_KEY="$WORK/key/signing-key"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_ms() {
    for _ in 1 2 3 4 5 6 7; do
        s=$(date +%s%N); "$@" > /dev/null; e=$(date +%s%N)
        echo $(( (e - s) / 1000000 ))
    done | median
}
printf '%-10s %14s %10s %16s %14s %12s %14s\n' events "checkpoint ms" "prove ms" "consistency ms" "verify ms" "proof hashes" "fill s"
for n in $SIZES; do
    L="$WORK/ledger-$n"
    builds=$(( n / 100 )); runs=$(( n - 3 * builds - 1 ))
    s=$(date +%s); target/release/examples/fill-ledger "$L" "$builds" "$runs" > /dev/null; e=$(date +%s)
    mkdir -p "$L/objects"
    "$BIN" --ledger "$L" key generate > /dev/null
    "$BIN" --ledger "$L" key export > "$WORK/pub.pem"
    events=$("$BIN" --ledger "$L" checkpoint --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["seq"])')
    "$BIN" --ledger "$L" checkpoint --sign > /dev/null
    "$BIN" --ledger "$L" prove $((events / 2)) > "$WORK/proof.json"
    cp=$(time_ms "$BIN" --ledger "$L" checkpoint --sign)
    pr=$(time_ms "$BIN" --ledger "$L" prove $((events / 2)))
    co=$(time_ms "$BIN" --ledger "$L" prove --consistency $((events / 3)))
    ve=$(time_ms "$BIN" verify-proof "$WORK/proof.json" --key "$WORK/pub.pem")
    hashes=$(python3 -c "import json; print(len(json.load(open('$WORK/proof.json'))['hashes']))")
    printf '%-10s %14s %10s %16s %14s %12s %14s\n' "$events" "$cp" "$pr" "$co" "$ve" "$hashes" "$((e - s))"
    rm -rf "$L"
done
printf '%-58s %8s\n' "cto-ledger --version (process start, ms)" "$(time_ms "$BIN" --version)"
echo "before the tiles (the tree recomputed from every journal row), at 101,001 events:"
echo "  checkpoint --sign 193 ms, prove 147 ms, prove --consistency 194 ms"
