#!/usr/bin/env bash
# deploy/bench-dispatch.sh - items/s through Redis and ZeroMQ with 1, 2 and 4 workers doing
# fetch + decode + signal facts + store on short clips, and the coordinator's own CPU time
# per item. Measured, never asserted. Usage: deploy/bench-dispatch.sh [earmark] [ITEMS]
set -euo pipefail
cd "$(dirname "$0")/.."
EM_BIN=${1:-build/earmark}
ITEMS=${2:-300}
. deploy/lib-cluster.sh
corpus=$(mktemp -d "${TMPDIR:-/tmp}/earmark-bench-XXXXXX")
trap 'cluster_stop; rm -rf "$corpus"' EXIT

deploy/make-corpus.sh "$corpus" 20 >/dev/null
export EARMARK_SOURCE_ROOTS="$corpus" # the workers' --source-root
mapfile -t clips < <(sed 's#^file://##' "$corpus/manifest.txt")
mkdir -p "$corpus/links"
: >"$corpus/bench.txt"
for ((i = 0; i < ITEMS; i++)); do
  src=${clips[$((i % ${#clips[@]}))]}
  ln -s "$src" "$corpus/links/$i.${src##*.}"
  echo "file://$corpus/links/$i.${src##*.}" >>"$corpus/bench.txt"
done

cpu_s() { # utime+stime of a pid in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

printf "earmark bench dispatch: %d items (%d distinct short clips), cores=%s, load average %s\n" \
  "$ITEMS" "${#clips[@]}" "$(nproc)" "$(cut -d" " -f1-3 /proc/loadavg)"
printf "%-8s %10s %10s %22s\n" workers seconds items/s "coordinator CPU/item"
for w in 1 2 4; do
  redis_start
  coordinator_start
  workers_start "$w"
  c0=$(cpu_s "$COORD_PID")
  t0=$(date +%s.%N)
  "$EM_BIN" submit --manifest "$corpus/bench.txt" --out "file://$CL_DIR/out$w" --wait \
    >/dev/null 2>"$CL_DIR/submit$w.log"
  t1=$(date +%s.%N)
  c1=$(cpu_s "$COORD_PID")
  n=$(find "$CL_DIR/out$w" -name '*.json' ! -name manifest.jsonl | wc -l)
  [ "$n" -eq "$ITEMS" ] || { echo "error: $n records for $ITEMS items" >&2; exit 1; }
  awk -v w="$w" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v n="$ITEMS" \
    'BEGIN { s = t1 - t0; printf "%-8d %10.2f %10.1f %19.3f ms\n", w, s, n / s, 1000 * (c1 - c0) / n }'
  cluster_stop
  CL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/earmark-cluster-XXXXXX")
done
