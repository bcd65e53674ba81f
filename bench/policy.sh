#!/usr/bin/env bash
# What a policy evaluation adds to `admit`: the median of N re-admissions (each one plans
# the whole admission and evaluates every policy in force; nothing new is recorded) with
# no policy and with docs/policies/team.rego and reproduced-and-signed.rego in force.
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
"$BIN" build --output dist/ca -- sh -c 'printf built > dist/ca' > /dev/null
pin=$(git rev-parse --short HEAD)
"$BIN" admit dist/ca --source-pin "$pin" > /dev/null
median() {
  for _ in $(seq "$N"); do
    s=$(date +%s%N); "$BIN" admit dist/ca --source-pin "$pin" > /dev/null 2>&1 || true; e=$(date +%s%N)
    echo $(( (e - s) / 1000 ))
  done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}
without=$(median)
cd - > /dev/null; "$BIN" policy add docs/policies/team.rego > /dev/null
"$BIN" policy add docs/policies/reproduced-and-signed.rego > /dev/null; cd "$T/src"
with=$(median)
echo "admit (re-admission), median of $N: no policy ${without} ms, two policies ${with} ms," \
  "added $(awk -v a="$with" -v b="$without" 'BEGIN {printf "%.2f", a - b}') ms"
