#!/usr/bin/env bash
# deploy/demo.sh - the main job end to end on the embedded default: a private redis-server,
# a coordinator and two workers on loopback running the embedded default model (a small
# random-weight checkpoint of the real Qwen2-Audio architecture and the real Qwen2
# tokenizer, written by deploy/make-demo-model.py: the real code path, meaningless words),
# a small corpus of real clips (espeak-ng speech and sox tones in wav, flac, mp3, ogg and
# m4a), submitted with local-directory output. EM_MODEL=DIR uses another checkpoint
# (e.g. the published Qwen2-Audio-7B-Instruct) instead.
# Usage: deploy/demo.sh [path/to/earmark] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
EM_BIN=${1:-build/earmark}
OUT=$(realpath -m "${2:-demo-out}")
. deploy/lib-cluster.sh
trap cluster_stop EXIT

echo "== earmark demo: $("$EM_BIN" version)"
echo "-- making a corpus of real clips in $CL_DIR/corpus"
deploy/make-corpus.sh "$CL_DIR/corpus" 16 >/dev/null
if [ -z "${EM_MODEL:-}" ]; then
  echo "-- writing the embedded default model (random weights, real architecture and tokenizer)"
  python3 deploy/make-demo-model.py "$CL_DIR/demo-model" >/dev/null
  EM_MODEL="$CL_DIR/demo-model"
fi
export EM_MODEL
echo "-- starting redis-server, coordinator and 2 workers with model $EM_MODEL (logs in $CL_DIR)"
redis_start
coordinator_start
workers_start 2
rm -rf "$OUT" && mkdir -p "$OUT"
echo "-- submitting $(grep -c . "$CL_DIR/corpus/manifest.txt") clips"
set +e
BATCH=$("$EM_BIN" submit --manifest "$CL_DIR/corpus/manifest.txt" --out "file://$OUT" \
  --prompts caption,transcript,events --wait)
rc=$?
set -e
echo "-- batch $BATCH"
"$EM_BIN" status "$BATCH"
echo "-- summary"
python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
recs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
ok = [r for r in recs if r.get("status") == "ok"]
print(f"{len(recs)} records, {len(ok)} ok, {len(recs) - len(ok)} failed")
for r in recs[:6]:
    a = r.get("audio") or {}
    print(f"  {r['source'].rsplit('/', 1)[-1]:<22} {r['status']:<6} "
          f"{a.get('container', '-'):<10} {a.get('duration_s', 0):5.2f} s "
          f"rms {a.get('rms_dbfs', 0):6.1f} dBFS silence {a.get('silence_ratio', 0):.2f}")
    if r.get("caption") is not None:
        print(f"      caption: {r['caption'][:70]!r}")
        print(f"      events:  {r.get('events', [])[:5]}")
if len(recs) > 6:
    print(f"  ... and {len(recs) - 6} more")
PY
echo "-- records: $OUT/<item-id>.json, manifest: $OUT/manifest.jsonl"
case "$EM_MODEL" in
  "$CL_DIR"/demo-model) echo "-- the embedded model has random weights: its words are meaningless by design." \
    "For real annotations run EM_MODEL=/path/to/Qwen2-Audio-7B-Instruct make demo (see README)." ;;
esac
exit $rc
