#!/usr/bin/env bash
# deploy/make-corpus.sh [--bad] [--whole-speech] DIR [N] - makes N (default 12) small real audio clips in DIR
# and writes DIR/manifest.txt, one file:// URI per line (absolute path, in clip order).
# Used by the integration tests, the demo and the benchmark.
#
# Clip i is named NNN-KIND-RATE-CHch.EXT and cycles through
#   container: wav (pcm_s16le), flac, mp3 (lame), ogg (vorbis; opus every other cycle), m4a (aac)
#   kind:      speech (espeak-ng, four sentences), tone (sine), chord (three sines), noise (pink)
#   rate:      8000 16000 22050 44100 48000 Hz (opus is always 48000 inside the file)
#   channels:  1, 2;   duration: 0.5 .. 4.0 s in 0.5 s steps (speech: at most the sentence)
# Names and contents are deterministic (sox -R, a seeded generator for random bytes).
#
# --bad appends inputs that must end as error records or as edge cases:
#   empty.wav      0 bytes                               -> EM_E_AUDIO "empty file"
#   random.wav     8 KiB of seeded pseudo-random bytes   -> EM_E_AUDIO (no container/stream)
#   text.mp3       a text file named .mp3                -> EM_E_AUDIO
#   truncated.mp3  the first 30% of a 3 s mp3            -> EM_E_AUDIO "truncated" (its Xing header declares 3 s)
#   tiny.wav       10 ms of tone at 16 kHz               -> decodes (160 samples); too short for a model
# --whole-speech: speech clips hold their whole sentence (their duration is the sentence's),
#   and DIR/manifest.jsonl lists every clip with the sentence spoken in meta.ref.transcript
#   (speech clips only), the reference `earmark eval` scores transcripts against.
# Needs sox (with libsox-fmt-all), espeak-ng, ffmpeg and python3. Quiet unless something fails.
# URIs are not percent-encoded: give a DIR made of plain path characters (as mktemp makes).
set -euo pipefail

bad=0
whole=0
while [ $# -gt 0 ]; do
  case $1 in
    --bad) bad=1; shift ;;
    --whole-speech) whole=1; shift ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 [--bad] [--whole-speech] DIR [N]" >&2
  exit 2
fi
dir=$1
n=${2:-12}
case $n in '' | *[!0-9]*) echo "make-corpus: N must be a number, got '$n'" >&2; exit 2 ;; esac

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
src=$(mktemp -d "$dir/.src.XXXXXX")
trap 'rm -rf "$src"' EXIT

sentences=(
  "The quick brown fox jumps over the lazy dog."
  "Please call Stella and ask her to bring these things."
  "Seven ships sailed out of the harbour at dawn."
  "It is twelve degrees and raining in the city."
)
rates=(8000 16000 22050 44100 48000)
exts=(wav flac mp3 ogg m4a)
kinds=(speech tone chord noise)

speech_ready=0
make_speech() { # espeak-ng is the slow part: render each sentence once
  for k in "${!sentences[@]}"; do
    espeak-ng -s 170 -w "$src/speech-$k.wav" "${sentences[$k]}"
  done
  speech_ready=1
}

gen() { # gen I OUT RATE CH DUR KIND: the clip's signal as a wav at its rate and channels
  local i=$1 out=$2 rate=$3 ch=$4 dur=$5 kind=$6
  local f1=$((220 + 110 * (i % 7)))
  case $kind in
    speech)
      [ $speech_ready -eq 1 ] || make_speech
      if [ $whole -eq 1 ]; then
        sox -q -R "$src/speech-$((i / 4 % 4)).wav" -r "$rate" -c "$ch" "$out"
      else
        sox -q -R "$src/speech-$((i / 4 % 4)).wav" -r "$rate" -c "$ch" "$out" trim 0 "$dur"
      fi ;;
    tone)
      sox -q -R -n -r "$rate" -c "$ch" "$out" synth "$dur" sine "$f1" gain -6 ;;
    chord)
      sox -q -R -n -r "$rate" -c "$ch" "$out" synth "$dur" sine "$f1" sine "$((f1 * 5 / 4))" \
        sine "$((f1 * 3 / 2))" remix - gain -n -8 fade 0.05 "$dur" 0.05 ;;
    noise)
      sox -q -R -n -r "$rate" -c "$ch" "$out" synth "$dur" pinknoise gain -18 ;;
  esac
}

: >"$dir/manifest.txt.tmp"
for ((i = 0; i < n; i++)); do
  ext=${exts[$((i % 5))]}
  kind=${kinds[$((i % 4))]}
  rate=${rates[$(((i + i / 5) % 5))]}
  ch=$((1 + (i / 3) % 2))
  dur=$(awk -v k=$(((i * 7) % 8)) 'BEGIN { printf "%.1f", 0.5 + 0.5 * k }')
  codec=$ext
  if [ "$ext" = ogg ] && [ $((i / 5 % 2)) -eq 1 ]; then codec=opus; fi
  label=$rate
  [ "$codec" = opus ] && label=48000
  name=$(printf '%03d-%s-%s-%dch.%s' "$i" "$kind" "$label" "$ch" "$ext")
  out="$dir/$name"
  gen "$i" "$src/t.wav" "$rate" "$ch" "$dur" "$kind"
  case $codec in
    wav) sox -q "$src/t.wav" -e signed-integer -b 16 "$out" ;;
    flac) sox -q "$src/t.wav" -b 16 "$out" ;;
    mp3) sox -q "$src/t.wav" -t mp3 "$out" ;;
    ogg) sox -q "$src/t.wav" -t vorbis "$out" ;;
    opus) ffmpeg -nostdin -v error -y -i "$src/t.wav" -ar 48000 -c:a libopus -b:a 48k -f ogg "$out" ;;
    m4a) ffmpeg -nostdin -v error -y -i "$src/t.wav" -c:a aac -b:a 64k -f ipod "$out" ;;
  esac
  echo "file://$out" >>"$dir/manifest.txt.tmp"
  if [ $whole -eq 1 ]; then
    ref=""
    [ "$kind" = speech ] && ref=${sentences[$((i / 4 % 4))]}
    python3 -c 'import json, sys
m = {"uri": sys.argv[1]}
if sys.argv[2]: m["meta"] = {"ref": {"transcript": sys.argv[2]}}
print(json.dumps(m))' "file://$out" "$ref" >>"$dir/manifest.jsonl.tmp"
  fi
done
[ $whole -eq 0 ] || mv "$dir/manifest.jsonl.tmp" "$dir/manifest.jsonl"

if [ $bad -eq 1 ]; then
  : >"$dir/empty.wav"
  python3 -c 'import random,sys; r=random.Random(7); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(8192)))' >"$dir/random.wav"
  printf 'This is not audio.\nJust a text file with an mp3 name.\n' >"$dir/text.mp3"
  # LAME via ffmpeg writes a Xing/Info header with the frame count, so the cut is detectable.
  ffmpeg -nostdin -v error -y -f lavfi -i "sine=f=440:d=3:r=44100" -ac 2 -c:a libmp3lame -b:a 128k "$src/full.mp3"
  size=$(stat -c %s "$src/full.mp3")
  head -c $((size * 30 / 100)) "$src/full.mp3" >"$dir/truncated.mp3"
  sox -q -R -n -r 16000 -c 1 -e signed-integer -b 16 "$dir/tiny.wav" synth 0.01 sine 440 gain -6
  for b in empty.wav random.wav text.mp3 truncated.mp3 tiny.wav; do
    echo "file://$dir/$b" >>"$dir/manifest.txt.tmp"
  done
fi
mv "$dir/manifest.txt.tmp" "$dir/manifest.txt"
