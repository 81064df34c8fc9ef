#!/usr/bin/env bash
# deploy/docker/build-stage.sh OUT - the build stage of both images, and what the it_deploy
# suite runs (check.sh docker) so the images' build cannot drift from a tested one:
# builds build/earmark, installs it into the staging root OUT (PREFIX=/usr, SYSCONFDIR=/etc)
# and writes OUT.deps, the distribution's packages the binary needs at run time
# (deploy/runtime-deps.sh), which the final stage installs. Run from anywhere in the tree,
# after deploy/install-deps.sh.
set -euo pipefail
out=${1:?usage: build-stage.sh OUT}
cd "$(dirname "$0")/../.."
make -j"$(nproc)" build/earmark
make -o build/earmark install DESTDIR="$out" PREFIX=/usr SYSCONFDIR=/etc
deploy/runtime-deps.sh build/earmark > "$out.deps"
