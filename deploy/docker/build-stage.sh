#!/usr/bin/env bash
# deploy/docker/build-stage.sh OUT - the build stage of both images, and what the it_deploy
# suite runs (check.sh docker) so the images' build cannot drift from a tested one:
# builds build/earmark (build-cuda/earmark with EARMARK_CUDA=1), installs it into the staging root OUT (PREFIX=/usr, SYSCONFDIR=/etc)
# and writes OUT.deps, the distribution's packages the binary needs at run time
# (deploy/runtime-deps.sh), which the final stage installs. Run from anywhere in the tree,
# after deploy/install-deps.sh.
set -euo pipefail
out=${1:?usage: build-stage.sh OUT}
cd "$(dirname "$0")/../.."
# EARMARK_CUDA=1 (the CUDA image): the same binary with the cuda backend (make CUDA=1, nvcc
# and cuBLAS from the devel image), built in build-cuda/.
bin=build/earmark
mk=()
if [ "${EARMARK_CUDA:-0}" = 1 ]; then
  mk=(CUDA=1)
  bin=build-cuda/earmark
fi
make -j"$(nproc)" "${mk[@]}" "$bin"
make "${mk[@]}" -o "$bin" install DESTDIR="$out" PREFIX=/usr SYSCONFDIR=/etc
deploy/runtime-deps.sh "$bin" > "$out.deps"
