#!/usr/bin/env bash
# What a policy evaluation adds to `admit` and to `run stage2`: the median of N
# re-admissions of a reproduced build covered by a signed checkpoint (each one plans the
# whole admission and evaluates every policy in force; every policy allows, so nothing new
# is recorded) with no policy and with docs/policies/reproduced-and-signed.rego and a
# policy naming the file in force; and the median of N `run stage2 --check` (every
# gate of a run, the policy_allowed gate over the same input a run's sees, nothing
# started) with no policy and with docs/policies/fake-lane-only.rego in force at `run`.
# Usage: bench/policy.sh [N]   (BIN=path/to/cto-ledger, default target/release/cto-ledger)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30}
BIN=${BIN:-$PWD/target/release/cto-ledger}
[ -x "$BIN" ] || { echo "build it first: cargo build --release (or set BIN)" >&2; exit 2; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export CTO_LEDGER_DIR=$T/ledger
git init -q "$T/src"; cd "$T/src"
git config user.email bench@example.com; git config user.name bench
printf 'dist/\n' > .gitignore; echo 'x' > main.c; git add .; git commit -qm init
mkdir -p dist
"$BIN" build --output dist/ca -- sh -c 'mkdir -p dist && printf built > dist/ca' > /dev/null
pin=$(git rev-parse --short HEAD)
"$BIN" build --check dist/ca > /dev/null
"$BIN" admit dist/ca --source-pin "$pin" > /dev/null
"$BIN" key generate > /dev/null 2>&1; "$BIN" checkpoint --sign > /dev/null
printf 'package bench.named\nimport rego.v1\ndefault allow := false\nallow if input.candidate.name == "ca"\n' > "$T/named.rego"
median() {
  for _ in $(seq "$N"); do
    s=$(date +%s%N); "$@" > /dev/null 2>&1 || true; e=$(date +%s%N)
    echo $(( (e - s) / 1000 ))
  done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}
"$BIN" run stage2 > /dev/null   # the shipped fake admitted, its exec/ file made
run_without=$(median "$BIN" run stage2 --check)
without=$(median "$BIN" admit dist/ca --source-pin "$pin")
cd - > /dev/null; "$BIN" policy add "$T/named.rego" > /dev/null
"$BIN" policy add docs/policies/reproduced-and-signed.rego > /dev/null; cd "$T/src"
"$BIN" admit dist/ca --source-pin "$pin" > /dev/null || { echo "the policies refused the bench's admission" >&2; exit 1; }
with=$(median "$BIN" admit dist/ca --source-pin "$pin")
cd - > /dev/null; "$BIN" policy add docs/policies/fake-lane-only.rego --on run > /dev/null; cd "$T/src"
run_with=$(median "$BIN" run stage2 --check)
added() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a - b}'; }
echo "admit (re-admission), median of $N: no policy ${without} ms, two policies ${with} ms," \
  "added $(added "$with" "$without") ms"
echo "run stage2 --check, median of $N: no policy ${run_without} ms, one policy at run ${run_with} ms," \
  "added $(added "$run_with" "$run_without") ms"
