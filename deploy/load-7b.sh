#!/usr/bin/env bash
# deploy/load-7b.sh - the 7B load check (issue 3): a random checkpoint with the exact
# published Qwen2-Audio-7B tensor names and shapes (bf16, 5 shards, ~16.8 GB; made by
# tests/golden/make_7b_shaped.py, never committed, not part of CI) is memory-mapped by
# `earmark annotate` and produces tokens. Prints load time, wall time, peak resident memory
# (with its file-backed / anonymous split), tokens produced and seconds per decoded token,
# once with the checkpoint's pages dropped from the page cache ("cold") and once warm.
#
#   deploy/load-7b.sh [--dir DIR] [--clip FILE] [--new N] [--build DIR] [--remove]
#
#   --dir    checkpoint directory (default /work/big7b; generated when DIR/.complete is
#            missing: needs ~17 GB free and ~6 min on 2 cores; keep it outside the git tree)
#   --clip   audio to annotate (default tests/golden/clips/speech.flac: espeak-ng, 3.09 s)
#   --new    max new tokens of the full runs (default 4; must be >= 2)
#   --build  build directory of the binary (default build-big; built with make -j2 if absent)
#   --remove delete DIR at the end
#   --generate-only  make DIR if missing, then exit (deploy/worker-7b.sh uses it)
#
# Runs per cache state: (1) load only: annotate on an empty .wav, which fails only after
# the model is loaded (exit 1 with an error line), so its wall time is the load time;
# (2) the full run with --max-new-tokens N. Warm, also (3) with --max-new-tokens 1. The
# record's own timings are printed: timings.encode_s (mel + encoder + projector), prefill_s
# (the prefix shared by several prompts; 0 for one prompt since model.c runs it in its own
# cache), generate_s (the rest of the prefill, which yields the first token, and the decode
# loop), model_s, total_s; timings.decode_s there is the audio decode. Seconds per decoded
# token = (generate_s(N) - generate_s(1)) / (N - 1), both runs having produced their full
# count (by wall time instead when the record has no timings; that is noisier: it includes
# the encode/prefill differences between runs on a shared CPU).
# "cold" drops only this checkpoint's pages (fsync + posix_fadvise DONTNEED per shard), not
# the whole page cache. Heavy steps run under nice -n 10 (the dev machine is shared).
#
# RSS note: the shards are mmap'd read-only, so every weight page the process touches
# counts toward its resident set (RssFile) while being shared page cache, not private
# memory: it is reclaimable and shared by every process mapping the same files. The
# private part is RssAnon (activations, KV cache, tokenizer). Both peaks are sampled from
# /proc/PID/status every 0.2 s; "Maximum resident set size" is from /usr/bin/time -v.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=/work/big7b
CLIP=$ROOT/tests/golden/clips/speech.flac
NEW=4
BUILD=build-big
REMOVE=0
GEN_ONLY=0
while [ $# -gt 0 ]; do
  case $1 in
    --dir) DIR=$2; shift 2 ;;
    --clip) CLIP=$2; shift 2 ;;
    --new) NEW=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --remove) REMOVE=1; shift ;;
    --generate-only) GEN_ONLY=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "load-7b: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $NEW in ''|*[!0-9]*) echo "load-7b: --new must be a number >= 2" >&2; exit 2 ;; esac
[ "$NEW" -ge 2 ] || { echo "load-7b: --new must be >= 2" >&2; exit 2; }
[ -f "$CLIP" ] || { echo "load-7b: no clip $CLIP" >&2; exit 2; }
case $(realpath -m "$DIR")/ in "$ROOT"/*) echo "load-7b: keep $DIR outside the git tree" >&2; exit 2 ;; esac

TMP=$(mktemp -d)
SAMPLER=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  rm -rf "$TMP"
  if [ "$REMOVE" = 1 ]; then rm -rf "$DIR"; fi
}
trap cleanup EXIT

# --- 1. the checkpoint -------------------------------------------------------------------
if [ ! -f "$DIR/.complete" ]; then
  mkdir -p "$DIR"
  need=$((18 * 1024 * 1024)) # KiB
  have=$(df -Pk "$DIR" | awk 'NR == 2 { print $4 }')
  if [ "$have" -lt "$need" ]; then
    echo "load-7b: $DIR: $((have / 1048576)) GiB free, need 18" >&2
    exit 1
  fi
  rm -f "$DIR"/model-*.safetensors "$DIR"/model.safetensors.index.json
  echo "load-7b: generating $DIR"
  gen_t0=$(date +%s.%N)
  nice -n 10 python3 "$ROOT/tests/golden/make_7b_shaped.py" "$DIR"
  VOC=${EM_QWEN2_VOCAB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/earmark/qwen2-vocab}
  "$ROOT/deploy/fetch-qwen2-vocab.sh" "$VOC"
  cp "$VOC/vocab.json" "$VOC/merges.txt" "$VOC/tokenizer_config.json" "$DIR/"
  sync -f "$DIR"
  echo "load-7b: generated in $(echo "$(date +%s.%N) - $gen_t0" | bc) s"
  touch "$DIR/.complete"
fi
echo "load-7b: checkpoint $DIR: $(ls "$DIR"/model-*.safetensors | wc -l) shards," \
  "$(du -cb "$DIR"/model-*.safetensors | tail -1 | cut -f1) bytes"
[ "$GEN_ONLY" = 1 ] && exit 0

# --- 2. the binary ------------------------------------------------------------------------
BIN=$ROOT/$BUILD/earmark
if [ ! -x "$BIN" ]; then
  (cd "$ROOT" && nice -n 10 make -j2 BUILD="$BUILD" "$BUILD/earmark")
fi

# --- 3. runs ------------------------------------------------------------------------------
: > "$TMP/empty.wav"

drop_cache() {
  python3 - "$DIR"/model-*.safetensors <<'EOF'
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
EOF
}

# cached_mib: how much of the shards is in the page cache now (mincore via fincore).
cached_mib() {
  if command -v fincore > /dev/null; then
    fincore -b -n -o RES "$DIR"/model-*.safetensors | awk '{ s += $1 } END { printf "%d", s / 1048576 }'
  else
    echo "?"
  fi
}

# run NAME NEWTOK FILE: one annotate under nice + /usr/bin/time -v, RSS sampled; appends a
# line "NAME wall maxrss_kib peak_anon_kib peak_file_kib exit new_tokens" to $TMP/summary.
run() {
  local name=$1 newtok=$2 file=$3
  local pre
  pre=$(cached_mib)
  nice -n 10 /usr/bin/time -v -o "$TMP/$name.time" \
    "$BIN" annotate --model "$DIR" --task caption --max-new-tokens "$newtok" "$file" \
    > "$TMP/$name.json" 2> "$TMP/$name.err" &
  local tpid=$! epid="" anon=0 filek=0 a f
  while kill -0 "$tpid" 2>/dev/null; do
    [ -z "$epid" ] && epid=$(pgrep -P "$tpid" || true)
    if [ -n "$epid" ] && [ -r "/proc/$epid/status" ]; then
      a=$(awk '/^RssAnon:/ { print $2 }' "/proc/$epid/status" 2>/dev/null || true)
      f=$(awk '/^RssFile:/ { print $2 }' "/proc/$epid/status" 2>/dev/null || true)
      [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
      [ -n "$f" ] && [ "$f" -gt "$filek" ] && filek=$f
    fi
    sleep 0.2
  done
  local rc=0
  wait "$tpid" || rc=$?
  local wall rss cpu
  cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } /Percent of CPU/ { p = $2 }
          /Major \(requiring I\/O\) page faults/ { mj = $2 } /File system inputs/ { fi = $2 }
          END { printf "user %.1f s, sys %.1f s, CPU %s, major faults %d, read from disk %.2f GiB",
                u, s, p, mj, fi * 512 / 1073741824 }' "$TMP/$name.time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0;
           for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$TMP/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TMP/$name.time")
  local got
  got=$(python3 - "$TMP/$name.json" <<'EOF'
import json, sys
n, tm = 0, {"encode_s": -1.0, "prefill_s": -1.0, "generate_s": -1.0}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    o = json.loads(line)
    if o.get("error"):
        continue
    t = o.get("tokens")
    if isinstance(t, dict) and "generated" in t:
        n += int(t["generated"])
    else:
        for s in o.get("segments", []):
            v = s.get("new_tokens", 0)
            n += sum(v.values()) if isinstance(v, dict) else int(v)
    for k in tm:
        v = (o.get("timings") or {}).get(k)
        if isinstance(v, (int, float)):
            tm[k] = max(tm[k], 0.0) + v
print(n, tm["encode_s"], tm["prefill_s"], tm["generate_s"])
EOF
)
  echo "$name $wall $rss $anon $filek $rc $got $pre" >> "$TMP/summary"
  got=${got%% *}
  printf '%-10s wall %7.2f s  exit %d  new tokens %s  max RSS %6.2f GiB (file-backed %.2f, anon %.2f)  cached before %s MiB\n' \
    "$name" "$wall" "$rc" "$got" "$(echo "$rss / 1048576" | bc -l)" \
    "$(echo "$filek / 1048576" | bc -l)" "$(echo "$anon / 1048576" | bc -l)" "$pre"
  echo "           $cpu; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  [ -s "$TMP/$name.err" ] && echo "           stderr: $(tail -n 3 "$TMP/$name.err" | head -c 600)"
  python3 - "$TMP/$name.json" <<'EOF'
import json, sys
keys = ("encode_s", "prefill_s", "generate_s", "decode_s", "model_s", "total_s", "tokens_per_s")
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    o = json.loads(line)
    if o.get("error"):
        print("           error: %s" % json.dumps(o["error"]))
    else:
        print("           answers: %s; tokens: %s" % (json.dumps(o.get("answers")),
                                                     json.dumps(o.get("tokens"))))
    t = o.get("timings") or {}
    got = ["%s=%.3f" % (k, t[k]) for k in keys if isinstance(t.get(k), (int, float))]
    if got:
        print("           timings: " + " ".join(got))
EOF
  return 0
}

echo "load-7b: $(date -u +%FT%TZ) on $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM;" \
  "clip $CLIP ($(soxi -D "$CLIP" 2>/dev/null || echo '?') s)"
drop_cache
echo "load-7b: cold (checkpoint pages dropped; cached: $(cached_mib) MiB)"
run cold-load 1 "$TMP/empty.wav"
run cold-full "$NEW" "$CLIP"
echo "load-7b: warm"
run warm-load 1 "$TMP/empty.wav"
run warm-full "$NEW" "$CLIP"
run warm-one 1 "$CLIP"

python3 - "$TMP/summary" "$NEW" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows[f[0]] = dict(wall=float(f[1]), rss=int(f[2]), anon=int(f[3]), file=int(f[4]),
                      rc=int(f[5]), got=int(f[6]), enc=float(f[7]), pre=float(f[8]),
                      gen=float(f[9]))
new = int(sys.argv[2])
ok = True
for n in ("cold-load", "warm-load"):
    if rows[n]["rc"] != 1:
        print("load-7b: %s: expected exit 1 (model loaded, empty file refused), got %d" % (n, rows[n]["rc"]))
        ok = False
for n in ("cold-full", "warm-full", "warm-one"):
    if rows[n]["rc"] != 0 or rows[n]["got"] < 1:
        print("load-7b: %s: no tokens (exit %d)" % (n, rows[n]["rc"]))
        ok = False
print("load-7b: summary")
for st in ("cold", "warm"):
    ld, fu = rows[st + "-load"], rows[st + "-full"]
    print("  %s: load %.2f s; full run %.2f s wall, %d new tokens, max RSS %.2f GiB "
          "(file-backed %.2f GiB, anon %.2f GiB)"
          % (st, ld["wall"], fu["wall"], fu["got"], fu["rss"] / 2**20, fu["file"] / 2**20,
             fu["anon"] / 2**20))
    if fu["gen"] >= 0:
        print("        encode_s %.2f, prefill_s %.2f (shared prefix), generate_s %.2f "
              "(rest of the prefill + %d tokens)" % (fu["enc"], fu["pre"], fu["gen"], fu["got"]))
w, o = rows["warm-full"], rows["warm-one"]
if w["got"] == new and o["got"] == 1:
    if w["gen"] >= 0 and o["gen"] >= 0:
        print("  warm: %.2f s per decoded token ((generate_s(%d) - generate_s(1)) / %d)"
              % ((w["gen"] - o["gen"]) / (new - 1), new, new - 1))
    else:
        print("  warm: %.2f s per decoded token by wall time ((wall(%d) - wall(1)) / %d; noisy: "
              "includes the runs' difference in encode/prefill time on a shared CPU)"
              % ((w["wall"] - o["wall"]) / (new - 1), new, new - 1))
else:
    print("  per-token time not derived: a run stopped early (%d and %d tokens)" % (w["got"], o["got"]))
sys.exit(0 if ok else 1)
EOF
