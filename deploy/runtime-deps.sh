#!/usr/bin/env bash
# deploy/runtime-deps.sh BIN - the Debian packages BIN needs at run time, one a line, sorted:
# the packages that own the libraries in BIN's DT_NEEDED entries (apt brings what those need
# in turn). deploy/runtime-deps.txt is this script's output on Debian 12 for build/earmark
# plus the packages earmark uses without linking them (header below); the deploy tests
# check that the committed list still matches the binary, and the container images install
# the list this script prints in their build stage, so an image cannot miss a library.
set -euo pipefail
bin=${1:?usage: runtime-deps.sh BIN}
[ -f "$bin" ] || { echo "runtime-deps.sh: $bin not found" >&2; exit 1; }
ldd "$bin" > /dev/null || { echo "runtime-deps.sh: ldd $bin failed" >&2; exit 1; }
declare -A path
while read -r name _ p _; do
  [ -n "${p:-}" ] && [ "${p:0:1}" = / ] && path[$name]=$p
done < <(ldd "$bin")
objdump -p "$bin" | awk '$1 == "NEEDED" {print $2}' | while read -r so; do
  p=${path[$so]:-}
  [ -n "$p" ] || { echo "runtime-deps.sh: $so is not resolved by ldd" >&2; exit 1; }
  real=$(readlink -f "$p")
  # merged /usr: dpkg may know the file under /lib instead of /usr/lib
  pkg=$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || dpkg -S "$p" 2>/dev/null) ||
    { echo "runtime-deps.sh: no Debian package owns $real ($so)" >&2; exit 1; }
  echo "${pkg%%:*}"
done | sed 's/:.*//' | sort -u
