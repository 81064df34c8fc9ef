#!/usr/bin/env bash
# deploy/install.sh - what `make install` and `make uninstall` do.
#   deploy/install.sh install   BIN   installs BIN and its files under $DESTDIR
#   deploy/install.sh uninstall       removes exactly what install recorded
# Locations (the Makefile passes them; defaults in brackets):
#   PREFIX [/usr/local]  SYSCONFDIR [/etc]  SYSTEMDUNITDIR [$PREFIX/lib/systemd/system]
#   DESTDIR [empty]: staging root for packagers; paths written into files omit it.
# Installs: $PREFIX/bin/earmark; $PREFIX/share/man/man1/earmark.1 and earmark-COMMAND.1
# (generated from each `--help`, so they cannot drift from the binary);
# $PREFIX/share/earmark/{annotation.schema.json, prometheus/, grafana/, runtime-deps.txt};
# the systemd units with ExecStart pointing at the installed binary; and
# $SYSCONFDIR/earmark/earmark.env.example (an existing earmark.env is never touched).
# The list of installed files goes to $PREFIX/share/earmark/installed-files, which
# uninstall reads, so uninstall removes those files and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
SYSTEMDUNITDIR=${SYSTEMDUNITDIR:-$PREFIX/lib/systemd/system}
DESTDIR=${DESTDIR:-}
SHARE=$PREFIX/share/earmark
LIST=$SHARE/installed-files

die() { echo "install.sh: $*" >&2; exit 1; }

for v in PREFIX SYSCONFDIR SYSTEMDUNITDIR; do
  case "${!v}" in /*) ;; *) die "$v must be an absolute path (got '${!v}')" ;; esac
done

installed=()
# put MODE SRC DST: copies SRC to $DESTDIR/DST and records DST.
put() {
  install -D -m "$1" "$2" "$DESTDIR$3"
  installed+=("$3")
}

# roff man page from a --help text: preformatted, with roff's control characters escaped.
manpage() { # NAME SECTION-TITLE < help text
  printf '.TH %s 1 "" "earmark" "earmark manual"\n' "$(echo "$1" | tr a-z A-Z)"
  printf '.SH NAME\n%s \\- %s\n.SH SYNOPSIS\n.nf\n' "$1" "$2"
  sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
  printf '.fi\n.SH SEE ALSO\nearmark(1)\n'
}

do_install() {
  local bin=$1 cmd desc
  [ -x "$bin" ] || die "binary '$bin' is missing (run make first)"
  TMPD=$(mktemp -d); tmp=$TMPD
  trap 'rm -rf "$TMPD"' EXIT
  put 0755 "$bin" "$PREFIX/bin/earmark"

  "$bin" --help > "$tmp/help"
  manpage earmark "distributed batch audio annotation" < "$tmp/help" > "$tmp/earmark.1"
  put 0644 "$tmp/earmark.1" "$PREFIX/share/man/man1/earmark.1"
  # the command table of `earmark --help`: "  NAME  description"
  sed -n 's/^  \([a-z][a-z-]*\)  *\(.*\)$/\1\t\2/p' "$tmp/help" | while IFS=$'\t' read -r cmd desc; do
    [ "$cmd" = version ] && continue
    "$bin" "$cmd" --help > "$tmp/$cmd.help" 2>&1 || die "earmark $cmd --help failed"
    manpage "earmark-$cmd" "$desc" < "$tmp/$cmd.help" > "$tmp/earmark-$cmd.1"
    echo "$cmd" >> "$tmp/cmds"
  done
  [ -s "$tmp/cmds" ] || die "no commands found in 'earmark --help'"
  while read -r cmd; do
    put 0644 "$tmp/earmark-$cmd.1" "$PREFIX/share/man/man1/earmark-$cmd.1"
  done < "$tmp/cmds"

  put 0644 schema/annotation.schema.json "$SHARE/annotation.schema.json"
  put 0644 deploy/runtime-deps.txt "$SHARE/runtime-deps.txt"
  for f in deploy/prometheus/*.yml deploy/grafana/*.json; do
    [ -e "$f" ] && put 0644 "$f" "$SHARE/${f#deploy/}"
  done
  for u in deploy/systemd/*.service; do
    sed "s#/usr/local/bin/earmark#$PREFIX/bin/earmark#g" "$u" > "$tmp/unit"
    put 0644 "$tmp/unit" "$SYSTEMDUNITDIR/$(basename "$u")"
  done
  put 0644 deploy/earmark.env.example "$SYSCONFDIR/earmark/earmark.env.example"

  printf '%s\n' "${installed[@]}" "$LIST" > "$tmp/list"
  install -D -m 0644 "$tmp/list" "$DESTDIR$LIST"
  echo "install.sh: installed ${#installed[@]} files under ${DESTDIR:-/} (list: $LIST)"
}

do_uninstall() {
  local f n=0
  [ -f "$DESTDIR$LIST" ] || die "$DESTDIR$LIST not found: nothing installed with this PREFIX"
  while read -r f; do
    case "$f" in /*) ;; *) die "$LIST: bad entry '$f'" ;; esac
    case "$f" in *..*) die "$LIST: bad entry '$f'" ;; esac
    if [ -e "$DESTDIR$f" ] || [ -L "$DESTDIR$f" ]; then rm -f "$DESTDIR$f"; n=$((n + 1)); fi
  done < "$DESTDIR$LIST"
  # earmark's own folders, once empty; shared ones (bin, man1, the unit dir) stay
  for d in "$SHARE/prometheus" "$SHARE/grafana" "$SHARE" "$SYSCONFDIR/earmark"; do
    [ -d "$DESTDIR$d" ] && rmdir --ignore-fail-on-non-empty "$DESTDIR$d"
  done
  echo "install.sh: removed $n files"
}

case "${1:-}" in
  install) [ $# -eq 2 ] || die "usage: install.sh install BIN"; do_install "$2" ;;
  uninstall) do_uninstall ;;
  *) die "usage: install.sh install BIN | uninstall" ;;
esac
