#!/usr/bin/env bash
# tests/deploy/check.sh CHECK BIN - validates the deploy artefacts with each ecosystem's own
# tool; the it_deploy suite (tests/integration/test_it_deploy.c) runs one CHECK per test.
#   install     make install into a temp DESTDIR: every file, man pages (groff -ww), units
#               pointing at the installed binary, runtime-deps.txt matching the binary,
#               then make uninstall leaves nothing of ours
#   systemd     the installed units (PREFIX in a temp dir, so ExecStart names a real binary
#               and Documentation= a real man page): systemd-analyze verify with no
#               warning, and systemd-analyze security --offline below EXPOSURE_MAX
# Exit 0 when the check passes; otherwise the reason on stderr and exit 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
check=${1:?usage: check.sh CHECK BIN}
BIN=$(readlink -f "${2:?usage: check.sh CHECK BIN}")
TMP=$(mktemp -d /tmp/em-deploy.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

fail() { echo "check $check: $*" >&2; exit 1; }

check_install() {
  local d=$TMP/root f
  make --no-print-directory -o "$BIN" install BIN="$BIN" DESTDIR="$d" PREFIX=/opt/em > "$TMP/log" 2>&1 ||
    { cat "$TMP/log" >&2; fail "make install failed"; }
  for f in bin/earmark share/man/man1/earmark.1 share/man/man1/earmark-worker.1 \
           share/man/man1/earmark-coordinator.1 share/earmark/annotation.schema.json \
           share/earmark/runtime-deps.txt lib/systemd/system/earmark-coordinator.service \
           lib/systemd/system/earmark-worker@.service share/earmark/installed-files; do
    [ -s "$d/opt/em/$f" ] || fail "missing /opt/em/$f"
  done
  [ -s "$d/etc/earmark/earmark.env.example" ] || fail "missing /etc/earmark/earmark.env.example"
  cmp -s "$d/opt/em/bin/earmark" "$BIN" || fail "installed binary differs from $BIN"
  [ -x "$d/opt/em/bin/earmark" ] || fail "installed binary is not executable"
  "$d/opt/em/bin/earmark" version | grep -q '^earmark ' || fail "installed binary does not run"
  # one page per command of `earmark --help`, each holding that command's --help text
  for f in coordinator worker submit status annotate convert bench; do
    [ -s "$d/opt/em/share/man/man1/earmark-$f.1" ] || fail "no man page for $f"
  done
  for f in "$d"/opt/em/share/man/man1/*.1; do
    groff -man -ww -z "$f" 2> "$TMP/groff" || fail "groff failed on $f"
    [ ! -s "$TMP/groff" ] || { cat "$TMP/groff" >&2; fail "groff warns on $(basename "$f")"; }
  done
  grep -q -- '--capacity' "$d/opt/em/share/man/man1/earmark-worker.1" ||
    fail "earmark-worker.1 lacks the worker's --help text"
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' \
    "$d/opt/em/share/earmark/annotation.schema.json" || fail "installed schema is not JSON"
  grep -q 'ExecStart=/opt/em/bin/earmark ' "$d/opt/em/lib/systemd/system/earmark-worker@.service" ||
    fail "worker unit does not start the installed binary"
  ! grep -rq /usr/local/bin "$d/opt/em/lib/systemd/system" || fail "a unit still names /usr/local/bin"
  # the runtime list: exactly the owners of the linked libraries, plus the unlinked ones
  # (a SAN=1 binary also links the sanitizer runtimes, which production never does)
  deploy/runtime-deps.sh "$BIN" | grep -Ev "^lib(asan|ubsan|lsan)[0-9]" > "$TMP/needed" ||
    fail "runtime-deps.sh failed"
  grep -v '#' deploy/runtime-deps.txt | sed '/^ *$/d' | sort > "$TMP/listed"
  diff -u "$TMP/listed" "$TMP/needed" >&2 ||
    fail "deploy/runtime-deps.txt does not match the libraries build/earmark links (above)"
  # uninstall removes every recorded file and our folders, and leaves a foreign file alone
  touch "$d/opt/em/bin/other"
  make --no-print-directory uninstall DESTDIR="$d" PREFIX=/opt/em > "$TMP/log" 2>&1 ||
    { cat "$TMP/log" >&2; fail "make uninstall failed"; }
  [ -e "$d/opt/em/bin/other" ] || fail "uninstall removed a file it did not install"
  rm "$d/opt/em/bin/other"
  f=$(find "$d" -type f | head -5)
  [ -z "$f" ] || fail "left after uninstall: $f"
  [ ! -e "$d/opt/em/share/earmark" ] || fail "uninstall left share/earmark"
}

EXPOSURE_MAX=30 # systemd-analyze's exposure x 10: 3.0 of 10 ("OK"); the units score 1.4 and 2.0

check_systemd() {
  local p=$TMP/em u out
  make --no-print-directory -o "$BIN" install BIN="$BIN" PREFIX="$p" SYSCONFDIR="$TMP/etc" \
    > "$TMP/log" 2>&1 || { cat "$TMP/log" >&2; fail "make install failed"; }
  cd "$p/lib/systemd/system"
  cp earmark-worker@.service earmark-worker@9201.service # verify wants an instance
  for u in earmark-coordinator.service earmark-worker@9201.service; do
    grep -q "^ExecStart=$p/bin/earmark " "$u" || fail "$u: ExecStart is not the installed binary"
    out=$(MANPATH="$p/share/man" systemd-analyze verify "$u" 2>&1) ||
      { echo "$out" >&2; fail "systemd-analyze verify $u failed"; }
    [ -z "$out" ] || { echo "$out" >&2; fail "systemd-analyze verify $u warns"; }
    systemd-analyze security --offline=yes --threshold="$EXPOSURE_MAX" "$u" > "$TMP/sec" 2>&1 ||
      { tail -40 "$TMP/sec" >&2; fail "$u: exposure above $EXPOSURE_MAX/100"; }
  done
  for u in earmark-coordinator.service earmark-worker@9201.service; do
    for k in Restart= LimitNOFILE= StandardOutput=journal DynamicUser=yes TimeoutStopSec= \
             LoadCredential= ProtectSystem=strict; do
      grep -q "^$k" "$u" || fail "$u lacks $k"
    done
  done
  for k in --model --threads --capacity --curve-key --coordinator-key --metrics; do
    grep -q -- "^ExecStart=.* $k " earmark-worker@9201.service || fail "worker unit lacks $k"
  done
  for k in --curve-secret --allow-keys --metrics --redis --bind; do
    grep -q -- "^ExecStart=.* $k " earmark-coordinator.service || fail "coordinator unit lacks $k"
  done
  cd - > /dev/null
}

case "$check" in
  install) check_install ;;
  systemd) check_systemd ;;
  *) fail "unknown check" ;;
esac
echo "check $check: ok"
