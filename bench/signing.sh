#!/usr/bin/env bash
# The signing log at scale: a ledger of ~100,000 events (RUNS=..., BUILDS=... to change),
# then the median wall time of 7 runs each of signing a checkpoint over the whole
# journal, proving one event's inclusion, proving consistency, and verifying a proof
# offline; beside them, `openssl dgst -sha256` over the same number of 32-byte leaves
# (the hashing floor) and process start. Not part of .ci/run: timings on a shared
# machine are for reading, not asserting.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILDS=${BUILDS:-1000}
RUNS=${RUNS:-98000}
cargo build --release --quiet --bin cto-ledger --example fill-ledger
BIN=target/release/cto-ledger
WORK=$(mktemp -d /tmp/cto-ledger-sbench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export CTO_LEDGER_KEY="$WORK/key/signing-key"
target/release/examples/fill-ledger "$WORK/ledger" "$BUILDS" "$RUNS"
mkdir -p "$WORK/ledger/objects"
L=(--ledger "$WORK/ledger")
"$BIN" "${L[@]}" key generate > /dev/null
"$BIN" "${L[@]}" key export > "$WORK/pub.pem"
events=$("$BIN" "${L[@]}" checkpoint --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["seq"])')
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_ms() {
    for _ in 1 2 3 4 5 6 7; do
        s=$(date +%s%N); "$@" > /dev/null; e=$(date +%s%N)
        echo $(( (e - s) / 1000000 ))
    done | median
}
"$BIN" "${L[@]}" checkpoint --sign > "$WORK/cp.note"
"$BIN" "${L[@]}" prove $((events / 2)) > "$WORK/proof.json"
head -c $((events * 32)) /dev/urandom > "$WORK/leaves"
printf 'events in the journal: %d\n' "$events"
printf '%-58s %8s\n' "operation" "median ms"
printf '%-58s %8s\n' "checkpoint --sign (tree of every event, Ed25519 note)" "$(time_ms "$BIN" "${L[@]}" checkpoint --sign)"
printf '%-58s %8s\n' "prove SEQ (inclusion, $events-leaf tree)" "$(time_ms "$BIN" "${L[@]}" prove $((events / 2)))"
printf '%-58s %8s\n' "prove --consistency $((events / 3))" "$(time_ms "$BIN" "${L[@]}" prove --consistency $((events / 3)))"
printf '%-58s %8s\n' "verify-proof (offline, public key only)" "$(time_ms "$BIN" verify-proof "$WORK/proof.json" --key "$WORK/pub.pem")"

printf '%-58s %8s\n' "openssl dgst -sha256 over $events x 32 bytes (floor)" "$(time_ms openssl dgst -sha256 "$WORK/leaves")"
printf '%-58s %8s\n' "cto-ledger --version (process start)" "$(time_ms "$BIN" --version)"
printf 'proof size: %d bytes (%d hashes)\n' "$(wc -c < "$WORK/proof.json")" "$(python3 -c "import json; print(len(json.load(open('$WORK/proof.json'))['hashes']))")"
