#!/usr/bin/env bash
# What a policy evaluation adds to `admit` and to `run stage2`, paired: two ledgers made
# the same way, one with policies in force, timed alternately N times (so drift on a
# shared machine falls on both), then the medians and the median of the paired
# differences.
#   admit: re-admission of a reproduced build covered by a signed checkpoint (the whole
#     admission planned, every policy evaluated and allowing, nothing new recorded), with
#     docs/policies/reproduced-and-signed.rego and a policy naming the file in force.
#   run:   `run stage2 --check` (every gate of a run, the policy_allowed gate over the
#     input a run's sees, nothing started), with docs/policies/fake-lane-only.rego at run.
# Usage: bench/policy.sh [N]   (BIN=path/to/cto-ledger, default target/release/cto-ledger)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30}
BIN=${BIN:-$PWD/target/release/cto-ledger}
[ -x "$BIN" ] || { echo "build it first: cargo build --release (or set BIN)" >&2; exit 2; }
DOCS=$PWD/docs/policies
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
git init -q "$T/src"; cd "$T/src"
git config user.email bench@example.com; git config user.name bench
printf 'dist/\n' > .gitignore; echo 'x' > main.c; git add .; git commit -qm init
pin=$(git rev-parse --short HEAD)
printf 'package bench.named\nimport rego.v1\ndefault allow := false\nallow if input.candidate.name == "ca"\n' > "$T/named.rego"
for l in plain policed; do
  export CTO_LEDGER_DIR=$T/$l
  "$BIN" build --output dist/ca -- sh -c 'mkdir -p dist && printf built > dist/ca' > /dev/null
  "$BIN" build --check dist/ca > /dev/null
  "$BIN" admit dist/ca --source-pin "$pin" > /dev/null
  "$BIN" key generate > /dev/null 2>&1; "$BIN" checkpoint --sign > /dev/null
  "$BIN" run stage2 > /dev/null   # the shipped fake admitted, its exec/ file made
done
export CTO_LEDGER_DIR=$T/policed
"$BIN" policy add "$T/named.rego" > /dev/null
"$BIN" policy add "$DOCS/reproduced-and-signed.rego" > /dev/null
"$BIN" policy add "$DOCS/fake-lane-only.rego" --on run > /dev/null
"$BIN" admit dist/ca --source-pin "$pin" > /dev/null || { echo "the policies refused the bench's admission" >&2; exit 1; }
"$BIN" run stage2 --check > /dev/null || { echo "the policies block the bench's run" >&2; exit 1; }
us() { local s e; s=$(date +%s%N); CTO_LEDGER_DIR=$1 "${@:2}" > /dev/null 2>&1 || true; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
paired() {
  for _ in $(seq "$N"); do
    a=$(us "$T/plain" "$@"); b=$(us "$T/policed" "$@"); echo "$a $b $((b - a))"
  done > "$T/pairs"
  med() { sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'; }
  echo "$(cut -d' ' -f1 "$T/pairs" | med) $(cut -d' ' -f2 "$T/pairs" | med) $(cut -d' ' -f3 "$T/pairs" | med)"
}
read -r a b d <<< "$(paired "$BIN" admit dist/ca --source-pin "$pin")"
echo "admit (re-admission), $N pairs: no policy ${a} ms, two policies ${b} ms, median added ${d} ms"
read -r a b d <<< "$(paired "$BIN" run stage2 --check)"
echo "run stage2 --check, $N pairs: no policy ${a} ms, one policy at run ${b} ms, median added ${d} ms"
