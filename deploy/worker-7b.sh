#!/usr/bin/env bash
# deploy/worker-7b.sh - the worker's memory and speed at 7B shapes (issue 4): converts the
# random 7B-shaped checkpoint (deploy/load-7b.sh makes it; never committed, not in CI) to a
# GGUF file, starts a private redis-server, a coordinator and ONE real worker with
# --model FILE.gguf, submits one 30 s clip with several prompts, and samples the worker's
# memory every 0.2 s until the record is written. Prints the convert time, the worker's load
# time, its peak resident memory (VmHWM) with the file-backed / anonymous split, and the
# record's timings.
#
#   deploy/worker-7b.sh [--dir DIR] [--gguf FILE] [--type q8_0|q4_0] [--seconds S]
#                       [--prompts LIST] [--prompt TEXT]... [--new N] [--build DIR]
#
#   --dir      7B-shaped checkpoint (default /work/big7b; made by load-7b.sh if missing)
#   --gguf     converted file (default DIR.TYPE.gguf; converted when missing)
#   --type     conversion type (default q8_0)
#   --seconds  clip length cut from tests/golden/clips/long.flac (default 30)
#   --prompts  built-in prompts (default caption,transcript,events; "" for none)
#   --prompt   a free-text prompt besides them (repeatable)
#   --new      max new tokens per prompt (default 16)
#   --build    build directory of the binary (default build-big)
#
# RSS: the GGUF file is mapped read-only and shared (MAP_SHARED), so the weight pages the
# worker touches count in its RSS as file-backed pages (RssFile), shared with every other
# worker mapping the file and reclaimable; the private part is RssAnon (activations, KV
# caches, tokenizer, decoded audio).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=/work/big7b
GGUF=
TYPE=q8_0
SECONDS_CLIP=30
PROMPTS=caption,transcript,events
FREE=()
NEW=16
BUILD=build-big
while [ $# -gt 0 ]; do
  case $1 in
    --dir) DIR=$2; shift 2 ;;
    --gguf) GGUF=$2; shift 2 ;;
    --type) TYPE=$2; shift 2 ;;
    --seconds) SECONDS_CLIP=$2; shift 2 ;;
    --prompts) PROMPTS=$2; shift 2 ;;
    --prompt) FREE+=(--prompt "$2"); shift 2 ;;
    --new) NEW=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "worker-7b: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $TYPE in q8_0|q4_0) ;; *) echo "worker-7b: --type must be q8_0 or q4_0" >&2; exit 2 ;; esac
case $NEW in ''|*[!0-9]*) echo "worker-7b: --new must be a number" >&2; exit 2 ;; esac
case $SECONDS_CLIP in ''|*[!0-9]*) echo "worker-7b: --seconds must be a whole number" >&2; exit 2 ;; esac
GGUF=${GGUF:-$DIR.$TYPE.gguf}
case $(realpath -m "$GGUF")/ in "$ROOT"/*) echo "worker-7b: keep $GGUF outside the git tree" >&2; exit 2 ;; esac

# --- 1. checkpoint, binary, GGUF ------------------------------------------------------------
"$ROOT/deploy/load-7b.sh" --dir "$DIR" --build "$BUILD" --generate-only
EM_BIN=$ROOT/$BUILD/earmark
[ -x "$EM_BIN" ] || (cd "$ROOT" && nice -n 10 make -j2 BUILD="$BUILD" "$BUILD/earmark")
if [ ! -s "$GGUF" ]; then
  echo "worker-7b: converting $DIR to $GGUF ($TYPE)"
  t0=$(date +%s.%N)
  nice -n 10 "$EM_BIN" convert "$DIR" -o "$GGUF.part" --type "$TYPE"
  mv "$GGUF.part" "$GGUF"
  echo "worker-7b: converted in $(echo "$(date +%s.%N) - $t0" | bc) s"
fi
echo "worker-7b: $GGUF: $(stat -c %s "$GGUF") bytes"

# --- 2. a private cluster with one worker ---------------------------------------------------
cd "$ROOT"
export EM_BIN
. deploy/lib-cluster.sh
SAMPLER=
cleanup() { [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null; cluster_stop; }
trap cleanup EXIT
ffmpeg -nostdin -loglevel error -i tests/golden/clips/long.flac -t "$SECONDS_CLIP" \
  "$CL_DIR/clip.flac"
echo "file://$CL_DIR/clip.flac" > "$CL_DIR/manifest.txt"
redis_start
coordinator_start
EM_MODEL=$GGUF
t_load0=$(date +%s.%N)
workers_start 1
WPID=${CL_PIDS[-1]}
# the worker connects only after its model is loaded: its log says so
for _ in $(seq 600); do
  grep -q "connected\|ready\|started" "$CL_DIR/worker-w1.log" 2>/dev/null && break
  kill -0 "$WPID" 2>/dev/null || { cat "$CL_DIR/worker-w1.log" >&2; exit 1; }
  sleep 0.1
done
echo "worker-7b: worker up in $(echo "$(date +%s.%N) - $t_load0" | bc) s (model mapped, log line seen)"

# samples "rss anon file hwm" (KiB) into $CL_DIR/mem while the worker lives
(
  while [ -r "/proc/$WPID/status" ]; do
    awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } /^VmHWM:/ { h = $2 }
         END { print r, a, f, h }' "/proc/$WPID/status" 2>/dev/null >> "$CL_DIR/mem" || true
    sleep 0.2
  done
) &
SAMPLER=$!

OUT=$CL_DIR/out
mkdir -p "$OUT"
t0=$(date +%s.%N)
"$EM_BIN" submit --manifest "$CL_DIR/manifest.txt" --out "file://$OUT" \
  ${PROMPTS:+--prompts "$PROMPTS"} ${FREE[@]+"${FREE[@]}"} --max-new-tokens "$NEW" --wait \
  > "$CL_DIR/batch"
wall=$(echo "$(date +%s.%N) - $t0" | bc)
sleep 0.5
awk '{ if ($1 > r) r = $1; if ($2 > a) a = $2; if ($3 > f) f = $3; if ($4 > h) h = $4 }
     END { printf "worker-7b: worker peak RSS %.2f GiB (VmHWM %.2f GiB); peaks: file-backed %.2f GiB, anonymous %.2f GiB\n",
           r / 1048576, h / 1048576, f / 1048576, a / 1048576 }' "$CL_DIR/mem"
echo "worker-7b: clip of $SECONDS_CLIP s, prompts ${PROMPTS:-none} + $(( ${#FREE[@]} / 2 )) free-text, max $NEW new tokens each: $wall s from submit to record"
python3 - "$OUT" <<'EOF'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(p.read_text())
    print("worker-7b: record", r.get("status"), "tokens", json.dumps(r.get("tokens")))
    print("worker-7b: timings", json.dumps(r.get("timings")))
    if r.get("error"):
        print("worker-7b: error", json.dumps(r["error"]))
EOF
echo "worker-7b: load average $(cut -d' ' -f1-3 /proc/loadavg)"
