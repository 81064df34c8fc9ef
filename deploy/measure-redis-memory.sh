#!/usr/bin/env bash
# deploy/measure-redis-memory.sh BIN [N] - Redis memory per item, for sizing (docs/deployment.md):
# a private redis-server on a free loopback port, N items (default 5000) with distinct
# file:// URIs (symlinks to a few real clips from deploy/make-corpus.sh, so the URIs are as
# long as a typical path: ~60 bytes), then
#   queued:   INFO memory used_memory after `earmark submit`, minus before, per item;
#   finished: the same after a coordinator and 2 workers (facts only) settled every item,
#             before anything expires (the batch's keys stay until the operator removes them).
# Prints both in bytes per item. Everything it starts is stopped on exit.
set -euo pipefail
BIN=$(readlink -f "${1:?usage: measure-redis-memory.sh BIN [N]}")
N=${2:-5000}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/em-redis-mem.XXXXXX)
pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; sleep 0.5; rm -rf "$TMP"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(port) CP=$(port) MP=$(port)
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" > "$TMP/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$RP" ping > /dev/null 2>&1 && break; sleep 0.1; done
mem() { redis-cli -p "$RP" info memory | awk -F: '$1 == "used_memory" {print $2}' | tr -d '\r'; }

deploy/make-corpus.sh "$TMP/c" 8 > /dev/null
mapfile -t clips < <(sed 's#^file://##' "$TMP/c/manifest.txt")
mkdir -p "$TMP/items"
for i in $(seq 1 "$N"); do
  f=${clips[$((i % ${#clips[@]}))]}
  ln -s "$f" "$TMP/items/clip-$(printf %07d "$i").${f##*.}"
  echo "file://$TMP/items/clip-$(printf %07d "$i").${f##*.}"
done > "$TMP/manifest.txt"
uri_len=$(awk '{ s += length($0) } END { printf "%.0f", s / NR }' "$TMP/manifest.txt")

m0=$(mem)
"$BIN" submit --redis "redis://127.0.0.1:$RP" --manifest "$TMP/manifest.txt" --out "file://$TMP/out" > "$TMP/batch"
m1=$(mem)
"$BIN" coordinator --redis "redis://127.0.0.1:$RP" --bind "tcp://127.0.0.1:$CP" \
  --metrics "127.0.0.1:$MP" > "$TMP/coord.log" 2>&1 &
pids+=($!)
for w in 1 2; do
  EARMARK_SOURCE_ROOTS="$TMP" \
    "$BIN" worker --connect "tcp://127.0.0.1:$CP" --id "w$w" --threads 2 > "$TMP/w$w.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 3600); do [ -f "$TMP/out/manifest.jsonl" ] && break; sleep 0.5; done
[ -f "$TMP/out/manifest.jsonl" ] || { echo "measure: batch did not finish" >&2; exit 1; }
sleep 2 # the last in-flight bookkeeping
m2=$(mem)
echo "items=$N uri_bytes_avg=$uri_len used_memory: empty=$m0 queued=$m1 finished=$m2"
awk -v n="$N" -v a="$m0" -v b="$m1" -v c="$m2" 'BEGIN {
  printf "bytes per queued item: %.0f\nbytes per finished item: %.0f\n", (b - a) / n, (c - a) / n }'
redis-cli -p "$RP" info keyspace | tail -n +2
