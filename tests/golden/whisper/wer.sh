#!/usr/bin/env bash
# tests/golden/whisper/wer.sh [--greedy] [MODEL...] - word error rate of Whisper (MODEL:
# tiny.en, base; default both) on two sets of espeak-ng speech, measured with earmark's own
# tools (run by hand; the README's figures come from it; nothing here is asserted):
#   golden  the 8 English speech clips of tests/golden/whisper/clips (voices, accents, speeds,
#           noise, music, an 18 s clip), references from data/index.json;
#   demo    the demo corpus (deploy/make-corpus.sh --whole-speech DIR 16, as `make demo`
#           makes it: wav/flac/mp3/ogg/m4a at 8-48 kHz), references from its manifest.jsonl.
# Each clip through `earmark annotate --model DIR --task transcript` (beam 5, or --greedy),
# the records scored by `earmark eval --refs` (WER = sum of word errors / sum of reference
# words after results/textnorm.c, Whisper's English normalisation: case, punctuation and
# symbols, contractions, spelled numbers, British -> American spellings).
# Needs build/earmark (or $EM_BIN), sox, espeak-ng, ffmpeg, python3.
set -euo pipefail
cd "$(dirname "$0")/../../.."
EM_BIN=${EM_BIN:-build/earmark}
greedy=()
if [ "${1:-}" = "--greedy" ]; then
  greedy=(--greedy)
  shift
fi
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(tiny.en base)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# references: one line per clip, {"uri": the path annotate is given, "ref": {"transcript": ...}}
python3 - "$tmp/golden.refs" tests/golden/whisper <<'PY'
import json, os, sys
here = sys.argv[2]
idx = json.load(open(os.path.join(here, "data", "index.json")))
with open(sys.argv[1], "w") as f:
    for name, rec in idx["clips"].items():
        if rec["text"]:
            f.write(json.dumps({"uri": os.path.join(here, "clips", name + ".ogg"),
                                "ref": {"transcript": rec["text"]}}) + "\n")
PY
deploy/make-corpus.sh --whole-speech "$tmp/corpus" 16 >/dev/null
python3 - "$tmp/corpus/manifest.jsonl" "$tmp/demo.refs" <<'PY'
import json, sys
with open(sys.argv[2], "w") as f:
    for line in open(sys.argv[1]):
        m = json.loads(line)
        ref = (m.get("meta") or {}).get("ref")
        if ref:
            f.write(json.dumps({"uri": m["uri"][len("file://"):], "ref": ref}) + "\n")
PY

printf '%-8s %-7s %5s %9s  %s\n' model set clips "WER" "normalised hypothesis | reference, per clip"
for model in "${models[@]}"; do
  dir=$tmp/model-$model
  if [ "$model" = tiny.en ] && [ -n "${EM_WHISPER_DIR:-}" ]; then dir=$EM_WHISPER_DIR; fi
  if [ "$model" = base ] && [ -n "${EM_WHISPER_BASE_DIR:-}" ]; then dir=$EM_WHISPER_BASE_DIR; fi
  if [ "$dir" = "$tmp/model-$model" ]; then # the cache the fetch script fills
    dir=${XDG_CACHE_HOME:-$HOME/.cache}/earmark/whisper-$model
  fi
  deploy/fetch-whisper.sh --model "$model" "$dir" >/dev/null
  for set in golden demo; do
    out=$tmp/out-$model-$set
    mkdir -p "$out"
    mapfile -t files < <(python3 -c 'import json,sys; [print(json.loads(l)["uri"]) for l in open(sys.argv[1])]' "$tmp/$set.refs")
    "$EM_BIN" annotate --model "$dir" --task transcript "${greedy[@]}" "${files[@]}" >"$out/records.jsonl" 2>"$out/annotate.log" || true
    python3 - "$out" <<'PY'
import json, sys
for i, line in enumerate(open(sys.argv[1] + "/records.jsonl")):
    with open("%s/%03d.json" % (sys.argv[1], i), "w") as f:
        f.write(line)
PY
    rm "$out/records.jsonl"
    "$EM_BIN" eval "file://$out" --refs "$tmp/$set.refs" --items --json >"$tmp/eval.json"
    python3 - "$tmp/eval.json" "$model" "$set" <<'PY'
import json, sys
ev = json.load(open(sys.argv[1]))
wer = (ev.get("metrics") or {}).get("wer")
items = [i for i in ev.get("per_item", []) if "word_errors" in i]
print("%-8s %-7s %5d %8.1f%%" % (sys.argv[2], sys.argv[3], len(items), 100.0 * wer if wer is not None else float("nan")))
for it in items:
    print("%34s %s/%s  %s | %s" % ("", it.get("word_errors"), it.get("ref_words"),
                                   it.get("transcript_norm", ""), it.get("ref_transcript_norm", "")))
PY
  done
done
