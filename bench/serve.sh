#!/usr/bin/env bash
# `cto-ledger serve` on a large ledger: 100,000 runs over 1,000 builds (fill-ledger,
# override with BUILDS=... RUNS=...) plus one real scripted-model run (fake lane), so its
# page, transcript and lineage are real. Prints the median time of REPS requests to each
# page (curl, one connection each, as a browser's first load) and serve's peak RSS.
# Targets (issue #29): every page < 50 ms, memory < 100 MB.
# Not part of .ci/run: timings on a shared machine are for reading, not asserting.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILDS=${BUILDS:-1000}
RUNS=${RUNS:-100000}
REPS=${REPS:-15}
cargo build --release --quiet --bins --example fill-ledger
BIN=$PWD/target/release/cto-ledger
WORK=$(mktemp -d /tmp/cto-ledger-sbench-XXXXXX)
SERVE=
trap '[[ -n $SERVE ]] && kill $SERVE 2>/dev/null; rm -rf "$WORK"' EXIT
L="$WORK/ledger"
target/release/examples/fill-ledger "$L" "$BUILDS" "$RUNS" >/dev/null
mkdir -p "$L/objects"
export HOME="$WORK/home" CTO_LEDGER_KEY="$WORK/key"
mkdir -p "$HOME"
model=scripted/r1-string-slugify
"$BIN" --ledger "$L" admit --model "$model" >/dev/null
run=$("$BIN" --ledger "$L" run stage2 --fake-behavior agent --model "$model" --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["verdict"]=="pass", r; print(r["run_id"])')
"$BIN" --ledger "$L" key generate >/dev/null
"$BIN" --ledger "$L" checkpoint --sign >/dev/null
echo "ledger: $RUNS synthetic runs over $BUILDS builds, and RUN = $run (real); $(du -sh "$L" | cut -f1)"

"$BIN" --ledger "$L" serve --bind 127.0.0.1:0 > "$WORK/serve.out" &
SERVE=$!
for _ in $(seq 100); do [[ -s "$WORK/serve.out" ]] && break; sleep 0.1; done
url=$(awk '{print $NF; exit}' "$WORK/serve.out")
base=${url%%/\?token=*}
token=${url##*token=}
cookie="cto_ledger_${base##*:}=$token"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
page_ms() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -b "$cookie" "$base$1")
    [[ $code == 200 ]] || { echo "GET $1 answered $code" >&2; exit 1; }
    for _ in $(seq "$REPS"); do
        curl -s -o /dev/null -w '%{time_total}\n' -b "$cookie" "$base$1"
    done | awk '{printf "%.1f\n", $1 * 1000}' | median
}
mid=$(( RUNS / 2 ))
before=$("$BIN" --ledger "$L" sql "SELECT seq FROM runs WHERE id = '20260531T000000Z-r1-string-slugify-$mid'" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0][0])')
printf '%-52s %10s\n' "page" "median ms"
for p in \
    "/runs" \
    "/runs?verdict=fail" \
    "/runs?provider=adm_00000000000001f4" \
    "/runs?before=$before" \
    "/runs?verdict=fail&before=$before" \
    "/run/$run" \
    "/run/$run/transcript" \
    "/node/run:$run" \
    "/admissions" \
    "/builds" \
    "/journal" \
    "/journal?before=$before" \
    "/checkpoints"; do
    printf '%-52s %10s\n' "${p//$run/RUN}" "$(page_ms "$p")"
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$SERVE/status")
echo "serve peak RSS (VmHWM): $(( hwm / 1024 )) MB"
