#!/usr/bin/env bash
# deploy/demo.sh - the main job end to end, with two model families in one cluster: a
# private redis-server, a coordinator and three workers on loopback, over a small corpus of
# real clips (espeak-ng speech and sox tones in wav, flac, mp3, ogg and m4a), output to
# local directories.
#   - two workers run Whisper tiny.en (OpenAI's MIT weights, deploy/fetch-whisper.sh) and
#     transcribe every clip (`submit --model whisper --prompts transcript`); the summary prints
#     each transcript beside the sentence that was spoken and the corpus word error rate
#     (`earmark eval` against the references in the corpus manifest, its normaliser);
#   - one worker runs a random-weight Qwen2-Audio checkpoint (the real architecture and
#     tokenizer, deploy/make-demo-model.py) for caption and events: a wiring check of that
#     code path, whose words mean nothing, so the summary shows its token counts only.
#     EM_MODEL=DIR runs a real Qwen2-Audio checkpoint there instead (its text is shown).
# Models stay in ./demo-models, the corpus in ./demo-corpus, records in OUT_DIR/whisper and
# OUT_DIR/qwen2-audio (each run replaces them); the cluster's temp dir goes.
# Usage: deploy/demo.sh [path/to/earmark] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
EM_BIN=${1:-build/earmark}
OUT=$(realpath -m "${2:-demo-out}")
MODELS=$(realpath -m "$(dirname "$OUT")/demo-models")
CORPUS=$(realpath -m "$(dirname "$OUT")/demo-corpus")
. deploy/lib-cluster.sh
trap cluster_stop EXIT

echo "== earmark demo: $("$EM_BIN" version)"
echo "-- making a corpus of real clips in $CORPUS"
rm -rf "$CORPUS"
deploy/make-corpus.sh --whole-speech "$CORPUS" 16 >/dev/null
echo "-- models in $MODELS"
mkdir -p "$MODELS"
WHISPER="$MODELS/whisper-tiny.en"
CACHED=${EM_WHISPER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/earmark/whisper-tiny.en}
if [ ! -f "$WHISPER/model.bin" ] && [ -f "$CACHED/model.bin" ]; then
  cp -al "$CACHED" "$WHISPER" 2>/dev/null || cp -a "$CACHED" "$WHISPER"
fi
deploy/fetch-whisper.sh "$WHISPER" >/dev/null # checks the pinned sums; fetches when absent
echo "   whisper-tiny.en      real weights (OpenAI, MIT), for transcript"
QWEN=${EM_MODEL:-}
if [ -z "$QWEN" ]; then
  QWEN="$MODELS/qwen2-audio-random"
  [ -f "$QWEN/config.json" ] || python3 deploy/make-demo-model.py "$QWEN" >/dev/null
  echo "   qwen2-audio-random   random weights, real architecture and tokenizer: a wiring check"
else
  echo "   $QWEN   for caption and events"
fi

echo "-- starting redis-server, coordinator, 2 Whisper workers and 1 Qwen2-Audio worker (logs in $CL_DIR)"
redis_start
coordinator_start
export EARMARK_SOURCE_ROOTS="$CORPUS"
worker_start whisper1 "$WHISPER"
worker_start whisper2 "$WHISPER"
worker_start qwen1 "$QWEN"
rm -rf "$OUT" && mkdir -p "$OUT/whisper" "$OUT/qwen2-audio"
NCLIPS=$(grep -c . "$CORPUS/manifest.jsonl")
echo "-- submitting $NCLIPS clips twice: transcript to whisper; caption, events to qwen2-audio"
set +e
BW=$(EARMARK_LOG=warn "$EM_BIN" submit --manifest "$CORPUS/manifest.jsonl" --out "file://$OUT/whisper" \
  --model whisper --prompts transcript)
BQ=$(EARMARK_LOG=warn "$EM_BIN" submit --manifest "$CORPUS/manifest.jsonl" --out "file://$OUT/qwen2-audio" \
  --model qwen2-audio --prompts caption,events --max-new-tokens 16)
rc=0
for b in $BW $BQ; do # every item of both batches settled, or 10 minutes
  for _ in $(seq 3000); do
    "$EM_BIN" status "$b" --json | grep -q '"state":"complete"' && break
    sleep 0.2
  done
  "$EM_BIN" status "$b" --json | grep -q '"state":"complete"' || rc=1
done
set -e
echo "-- batch $BW (whisper)"
"$EM_BIN" status "$BW"
echo "-- batch $BQ (qwen2-audio)"
"$EM_BIN" status "$BQ"
EV="$CL_DIR/whisper-eval.json"
"$EM_BIN" eval "file://$OUT/whisper" --json --items >"$EV" 2>"$CL_DIR/eval.log" || echo '{}' >"$EV"
echo "-- summary"
python3 - "$OUT" "$CORPUS/manifest.jsonl" "$EV" "${EM_MODEL:-}" <<'PY'
import json, pathlib, sys
out, manifest, evfile, real_qwen = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
spoken = {}
for line in open(manifest):
    m = json.loads(line)
    spoken[m["uri"]] = ((m.get("meta") or {}).get("ref") or {}).get("transcript")
ev = json.load(open(evfile))
scored = {i.get("source"): i for i in ev.get("per_item") or []}

def records(d):
    return {r["source"]: r for r in (json.loads(p.read_text()) for p in (out / d).glob("*.json"))}

wh, qw = records("whisper"), records("qwen2-audio")

def container(a, name):  # ffmpeg names a format by all its aliases ("mov,mp4,m4a,3gp,3g2,mj2")
    names = (a.get("container") or "-").split(",")
    ext = name.rsplit(".", 1)[-1]
    return (ext if ext in names else names[0])[:8]

def cell(s, w):
    s = " ".join(str(s).split())
    return s if len(s) <= w else s[: w - 1] + "~"

def text(r, k):
    v = r.get(k) if r else None
    return v.get("text") if isinstance(v, dict) else v

PAD = " " * 60
print(f"{'clip':<26} {'format':<8} {'dur':>5}  {'whisper':<7} {'qwen2':<7}  "
      "transcript (whisper tiny.en)")
for uri in sorted(spoken):
    name = uri.rsplit("/", 1)[-1]
    w, q = wh.get(uri), qw.get(uri)
    a = (w or q or {}).get("audio") or {}
    dur = a.get("duration_s")
    print(f"{cell(name, 26):<26} {container(a, name):<8} {dur if dur is not None else 0:5.2f}  "
          f"{cell(w['status'] if w else 'none', 7):<7} {cell(q['status'] if q else 'none', 7):<7}  ",
          end="")
    heard = cell(text(w, "transcript") or "", 70) or "(nothing)"
    if spoken[uri]:
        s = scored.get(uri) or {}
        wrong = (f"   ({s['word_errors']} of {s['ref_words']} words wrong)"
                 if "word_errors" in s else "")
        print(f"heard:  {heard}{wrong}")
        print(f"{PAD}spoken: {spoken[uri]}")
    else:
        print(f"heard:  {heard}   (no speech in this clip)")
    if q and q.get("status") == "ok":
        t = q.get("tokens") or {}
        if real_qwen:
            print(f"{PAD}caption: {cell(text(q, 'caption') or '', 70)}")
        else:
            print(f"{PAD}qwen2-audio wiring check: {t.get('generated', '?')} tokens generated "
                  f"for caption + events ({t.get('audio', '?')} audio tokens in)")
    for r, who in ((w, "whisper"), (q, "qwen2-audio")):
        if r and r.get("status") != "ok":
            e = r.get("error") or {}
            print(f"{PAD}{who} error: {e.get('class')}: {cell(e.get('message', ''), 60)}")
wer = (ev.get("metrics") or {}).get("wer")
nref = (ev.get("with_refs") or {}).get("transcript", 0)
print("word error rate of whisper tiny.en on the corpus's spoken sentences (earmark eval, "
      f"{nref} clips): " + (f"{100.0 * wer:.1f}%" if isinstance(wer, (int, float)) else "-"))
PY
echo "-- records: $OUT/whisper/<item-id>.json and $OUT/qwen2-audio/<item-id>.json (manifest.jsonl in each)"
echo "-- try one clip yourself:"
echo "   $EM_BIN annotate --model $WHISPER --task transcript $CORPUS/000-speech-8000-1ch.wav"
if [ -z "${EM_MODEL:-}" ]; then
  echo "-- the Qwen2-Audio worker ran random weights (a wiring check of that code path); for real" \
    "captions run EM_MODEL=/path/to/Qwen2-Audio-7B-Instruct make demo (see README)."
fi
exit $rc
