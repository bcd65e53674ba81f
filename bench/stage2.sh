#!/usr/bin/env bash
# Stage 2 at scale, side by side in one run:
#   1. harness overhead: a fake-lane `run stage2` against running the same fake provider
#      and the fixture's tests by hand on a prepared workspace (medians of REPS);
#   2. disk growth per run: run folder, store and ledger.db;
#   3. suite throughput: `run stage2 --repeat N` with --jobs 1 and --jobs 2;
#   4. the sandbox's cost: the same run with and without --no-sandbox, interleaved.
# Not part of .ci/run: timings on a shared machine are for reading, not asserting.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-9}
SUITE=${SUITE:-8}
cargo build --release --quiet --bins
BIN=$PWD/target/release/cto-ledger
FAKE=$PWD/target/release/cto-fake-ca
FX=$PWD/fixtures/r1-string-slugify
WORK=$(mktemp -d /tmp/cto-ledger-s2bench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# A warm ledger: the shipped fake admitted, its executable made.
"$BIN" --ledger "$WORK/L" run stage2 > /dev/null

by_hand() {  # $1: a fresh folder; prints ms for the provider and the tests
    local d=$1; mkdir -p "$d/ws/.case/tasks/active" "$d/data" "$d/home"
    cp "$FX"/repo/* "$d/ws/"; cp "$FX"/task/* "$d/ws/.case/tasks/active/"
    (cd "$d/ws" && git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm fixture)
    printf '{"models":{"default":{"provider":"fake","model":"fake-model"}}}' > "$d/data/config.json"
    printf '{"repos":[{"name":"r1-string-slugify","path":"%s","commands":{"test":"python3 -m unittest -v"}}]}' "$d/ws" > "$d/data/projects.json"
    local s e
    s=$(date +%s%N)
    env -i PATH="$PATH" HOME="$d/home" CASE_DATA_DIR="$d/data" CTO_FAKE_CA_BEHAVIOR=solve \
        CTO_FAKE_CA_SOLUTION="$FX/fake-solution" "$FAKE" run --task "$d/ws/.case/tasks/active/r1-string-slugify.task.json" --mode unattended > /dev/null
    (cd "$d/ws" && PYTHONDONTWRITEBYTECODE=1 python3 -m unittest -v > /dev/null 2>&1)
    e=$(date +%s%N)
    ms "$s" "$e"
}
harness() {  # extra arguments go to run stage2
    local s e
    s=$(date +%s%N); "$BIN" --ledger "$WORK/L" run stage2 "$@" > /dev/null; e=$(date +%s%N)
    ms "$s" "$e"
}
hand=(); full=()
for i in $(seq "$REPS"); do
    hand+=("$(by_hand "$WORK/hand$i")")
    full+=("$(harness)")
done
h=$(printf '%s\n' "${hand[@]}" | median); f=$(printf '%s\n' "${full[@]}" | median)
printf '%-62s %8s\n' "work (medians of $REPS)" "ms"
printf '%-62s %8s\n' "fake provider + fixture tests by hand" "$h"
printf '%-62s %8s\n' "cto-ledger run stage2 (fake lane, warm ledger)" "$f"
printf '%-62s %8s\n' "harness overhead" "$((f - h))"

runs_before=$(du -sb "$WORK/L/runs" | cut -f1); objs_before=$(du -sb "$WORK/L/objects" | cut -f1)
db_before=$(stat -c %s "$WORK/L/ledger.db"); n_before=$(ls "$WORK/L/runs" | wc -l)
"$BIN" --ledger "$WORK/L" run stage2 --repeat 5 > /dev/null
n=$(( $(ls "$WORK/L/runs" | wc -l) - n_before ))
printf '%-62s %8s\n' "run folder per run (KB)" "$(( ($(du -sb "$WORK/L/runs" | cut -f1) - runs_before) / n / 1024 ))"
printf '%-62s %8s\n' "store growth per run (KB)" "$(( ($(du -sb "$WORK/L/objects" | cut -f1) - objs_before) / n / 1024 ))"
printf '%-62s %8s\n' "ledger.db growth per run (KB; WAL not counted)" "$(( ($(stat -c %s "$WORK/L/ledger.db") - db_before) / n / 1024 ))"
printf '%-62s %8s\n' "provider executable, once per ledger (KB)" "$(( $(du -sb "$WORK/L/exec" | cut -f1) / 1024 ))"

s1=$(date +%s%N); "$BIN" --ledger "$WORK/L" run stage2 --repeat "$SUITE" --jobs 1 > /dev/null; e1=$(date +%s%N)
s2=$(date +%s%N); "$BIN" --ledger "$WORK/L" run stage2 --repeat "$SUITE" --jobs 2 > /dev/null; e2=$(date +%s%N)
j1=$(ms "$s1" "$e1"); j2=$(ms "$s2" "$e2")
printf '%-62s %8s\n' "suite of $SUITE runs, --jobs 1" "$j1"
printf '%-62s %8s\n' "suite of $SUITE runs, --jobs 2" "$j2"
printf '%-62s %8s\n' "--jobs 2 / --jobs 1" "$(python3 -c "print(round($j2 / $j1, 2))")x"

boxed=(); open=()
for i in $(seq "$REPS"); do
    boxed+=("$(harness)")
    open+=("$(harness --no-sandbox)")
done
b=$(printf '%s\n' "${boxed[@]}" | median); o=$(printf '%s\n' "${open[@]}" | median)
printf '%-62s %8s\n' "run stage2, sandboxed (median of $REPS)" "$b"
printf '%-62s %8s\n' "run stage2 --no-sandbox (median of $REPS)" "$o"
printf '%-62s %8s\n' "sandbox cost per run (ms)" "$((b - o))"
