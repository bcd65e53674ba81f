#!/usr/bin/env bash
# Push and pull of the benchmark tree (bench/corpus.py, 16,767 files) against a real
# S3-compatible server (s3s-fs on 127.0.0.1, as the tests use): wall time, the PUTs the
# push made (keys the server holds afterwards) and the pull into an empty ledger.
#   bench/remote.sh           full corpus
#   bench/remote.sh --quick   a tiny corpus, to keep the script working
# Not part of .ci/run: timings on a shared machine are for reading, not asserting.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=16767; MB=548
[[ "${1:-}" == "--quick" ]] && { FILES=300; MB=8; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v s3s-fs >/dev/null || { echo "bench/remote.sh: s3s-fs is not installed (bash .ci/run installs it)" >&2; exit 1; }
cargo build --release --quiet --bin cto-ledger
BIN=$PWD/target/release/cto-ledger
WORK=$(mktemp -d /tmp/cto-ledger-remote-bench-XXXXXX)
PORT=$((20000 + RANDOM % 20000))
mkdir -p "$WORK/s3/bench"
s3s-fs --host 127.0.0.1 --port "$PORT" --access-key k --secret-key secret-key-0123456789 "$WORK/s3" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do sleep 0.05; done
export AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=secret-key-0123456789
python3 bench/corpus.py tree "$WORK/tree" --files "$FILES" --total-mb "$MB" >/dev/null
secs() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); awk -v ns=$((e - s)) 'BEGIN { printf "%.3f", ns / 1e9 }'; }
for h in A B; do
    "$BIN" --ledger "$WORK/$h" remote add origin s3://bench/t --endpoint "http://127.0.0.1:$PORT" >/dev/null
done
"$BIN" --ledger "$WORK/A" ingest "$WORK/tree" >/dev/null
sync
push=$(secs "$BIN" --ledger "$WORK/A" push)
keys=$(find "$WORK/s3/bench/t" -type f | wc -l)
objkeys=$( (find "$WORK/s3/bench/t/objects" "$WORK/s3/bench/t/packs" -type f 2>/dev/null || true) | wc -l)
pull=$(secs "$BIN" --ledger "$WORK/B" pull)
files=$(find "$WORK/B/objects" -type f | wc -l)
printf '%-52s %8s\n' "push of the tree (new remote)" "$push s"
printf '%-52s %8s\n' "keys on the server after it (objects and packs)" "$keys ($objkeys)"
printf '%-52s %8s\n' "pull into an empty ledger (every object re-hashed)" "$pull s"
printf '%-52s %8s\n' "files in the pulling ledger's store" "$files"
"$BIN" --ledger "$WORK/B" audit >/dev/null && echo "audit of the pulled ledger: passed"
echo "corpus: $FILES files, $MB MiB; $(nproc) cores"
