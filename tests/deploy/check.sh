#!/usr/bin/env bash
# tests/deploy/check.sh CHECK BIN - validates the deploy artefacts with each ecosystem's own
# tool; the it_deploy suite (tests/integration/test_it_deploy.c) runs one CHECK per test.
#   install     make install into a temp DESTDIR: every file, man pages (groff -ww), units
#               pointing at the installed binary, runtime-deps.txt matching the binary,
#               then make uninstall leaves nothing of ours
#   systemd     the installed units (PREFIX in a temp dir, so ExecStart names a real binary
#               and Documentation= a real man page): systemd-analyze verify with no
#               warning, and systemd-analyze security --offline below EXPOSURE_MAX
#   docker      Dockerfile and Dockerfile.cuda structure (dockerfile_check.py), the build
#               stage's own script run here into a staging root, and compose.yaml through
#               `docker-compose config` (PyPI docker-compose, installed by install-deps.sh)
#   k8s         every overlay rendered by `kubectl kustomize`, each render and each base
#               file through `kubernetes-validate --strict`; the KEDA kinds, which it has no
#               schema for, through tests/deploy/keda.schema.json, and cross-references,
#               probes and drain times through tests/deploy/k8s_check.py
#   prometheus  promtool check config (hosts' and compose's prometheus.yml), check rules
#               and test rules (alerts-test.yml) on alerts.yml; the Grafana dashboard is
#               JSON with a query in every panel (its metric names and queries are checked
#               against a live fleet by the it_metrics suite)
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
  for k in --curve-secret --allow-keys --metrics --bind; do
    grep -q -- "^ExecStart=.* $k " earmark-coordinator.service || fail "coordinator unit lacks $k"
  done
  # the Redis URL may hold a password: it comes from the environment, never argv (ps)
  grep -q -- "^ExecStart=.*--redis" earmark-coordinator.service &&
    fail "coordinator unit puts the Redis URL on the command line"
  grep -q "^Environment=EARMARK_REDIS_URL=" earmark-coordinator.service ||
    fail "coordinator unit lacks a default EARMARK_REDIS_URL"
  cd - > /dev/null
}

COMPOSE=${EM_DOCKER_COMPOSE:-/opt/earmark-compose/bin/docker-compose}

check_docker() {
  local out=$TMP/stage cfg=$TMP/compose.json
  python3 tests/deploy/dockerfile_check.py deploy/docker/Dockerfile deploy/docker/Dockerfile.cuda ||
    fail "Dockerfile structure"
  # the build stage exactly as the images run it (install-deps.sh has run: make test did)
  deploy/docker/build-stage.sh "$out" > "$TMP/log" 2>&1 || { tail -20 "$TMP/log" >&2; fail "build-stage.sh failed"; }
  "$out/usr/bin/earmark" version | grep -q '^earmark ' || fail "staged binary does not run"
  [ -s "$out/usr/share/earmark/annotation.schema.json" ] || fail "staged tree lacks the schema"
  grep -v '#' deploy/runtime-deps.txt | sed '/^ *$/d' | sort > "$TMP/listed"
  diff -u "$TMP/listed" "$out.deps" >&2 || fail "the image's dependency list differs from deploy/runtime-deps.txt"
  # compose: valid for docker-compose, resolved with defaults and with a fleet size
  [ -x "$COMPOSE" ] || fail "$COMPOSE missing (deploy/install-deps.sh installs it)"
  (cd deploy/docker && "$COMPOSE" -f compose.yaml config -q) 2> "$TMP/err" ||
    { cat "$TMP/err" >&2; fail "docker-compose config rejects compose.yaml"; }
  (cd deploy/docker && EARMARK_WORKERS=7 EARMARK_MODELS=/srv/m "$COMPOSE" -f compose.yaml config) > "$cfg" 2> "$TMP/err" ||
    { cat "$TMP/err" >&2; fail "docker-compose config failed"; }
  python3 - "$cfg" <<'PY' || fail "compose.yaml content"
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
bad = []
for name in ("redis", "s3", "coordinator", "worker", "prometheus", "keys", "bucket"):
    if name not in s: bad.append(f"no service {name}")
r = " ".join(s["redis"]["command"])
if "--appendonly yes" not in r: bad.append("redis without AOF")
if not any(v.startswith("redis-data:/data") for v in map(str, s["redis"].get("volumes", []))): bad.append("redis data not on a volume")
w = s["worker"]
if w.get("deploy", {}).get("replicas") != 7: bad.append(f"EARMARK_WORKERS=7 gave replicas {w.get('deploy')}")
if "/srv/m:/models:ro" not in w.get("volumes", []): bad.append(f"weights not mounted read-only: {w.get('volumes')}")
for flag in ("--curve-key", "--coordinator-key", "--metrics", "--model"):
    if flag not in w["command"]: bad.append(f"worker lacks {flag}")
for flag in ("--curve-secret", "--allow-keys", "--metrics"):
    if flag not in s["coordinator"]["command"]: bad.append(f"coordinator lacks {flag}")
for name in ("coordinator", "worker"):
    env = s[name]["environment"]
    if env.get("AWS_ENDPOINT_URL") != "http://s3:8333": bad.append(f"{name} not pointed at the S3 service")
for b in bad: print("compose.yaml:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

check_k8s() {
  local o f n=0
  command -v kubectl > /dev/null || fail "kubectl missing (deploy/install-deps.sh installs it)"
  for o in deploy/k8s/overlays/*/; do
    o=$(basename "$o")
    kubectl kustomize "deploy/k8s/overlays/$o" > "$TMP/$o.yaml" 2> "$TMP/err" ||
      { cat "$TMP/err" >&2; fail "kubectl kustomize overlays/$o failed"; }
    n=$((n + 1))
  done
  [ "$n" -ge 3 ] || fail "expected the cpu, gpu and external-redis overlays, found $n"
  for f in "$TMP"/*.yaml deploy/k8s/base/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] && continue
    kubernetes-validate --strict --quiet "$f" > "$TMP/kv" 2>&1 ||
      { cat "$TMP/kv" >&2; fail "kubernetes-validate rejects $f"; }
    # the one warning allowed: no built-in schema for KEDA's kinds (checked below instead)
    if grep -v "Couldn't find schema for kind \(ScaledObject\|TriggerAuthentication\) with api version keda.sh/v1alpha1" "$TMP/kv" | grep -q .; then
      cat "$TMP/kv" >&2; fail "kubernetes-validate warns on $f"
    fi
  done
  for f in "$TMP"/*.yaml; do
    python3 tests/deploy/k8s_check.py "$f" || fail "$(basename "$f" .yaml) overlay"
  done
  grep -q 'nvidia.com/gpu: 1' "$TMP/gpu.yaml" || fail "gpu overlay has no one-GPU worker"
  ! grep -q 'kind: StatefulSet' "$TMP/external-redis.yaml" || fail "external-redis overlay still runs Redis"
}

check_prometheus() {
  local d=$TMP/prom
  mkdir -p "$d/earmark-workers"
  cp deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yml "$d/"
  echo '[{"targets": ["w1:9201"]}]' > "$d/earmark-workers/w1.json"
  promtool check config "$d/prometheus.yml" > "$TMP/out" 2>&1 || { cat "$TMP/out" >&2; fail "promtool check config"; }
  ! grep -q WARNING "$TMP/out" || { cat "$TMP/out" >&2; fail "promtool check config warns"; }
  sed "s#/etc/prometheus/alerts.yml#$d/alerts.yml#" deploy/docker/prometheus.yml > "$d/compose.yml"
  promtool check config "$d/compose.yml" > "$TMP/out" 2>&1 || { cat "$TMP/out" >&2; fail "promtool check config (compose)"; }
  promtool check rules deploy/prometheus/alerts.yml > "$TMP/out" 2>&1 || { cat "$TMP/out" >&2; fail "promtool check rules"; }
  (cd deploy/prometheus && promtool test rules alerts-test.yml) > "$TMP/out" 2>&1 ||
    { cat "$TMP/out" >&2; fail "promtool test rules"; }
  for a in EarmarkBatchStalled EarmarkNoWorkers EarmarkHighErrorRate EarmarkDeadLetters; do
    grep -q "alert: $a\$" deploy/prometheus/alerts.yml || fail "alerts.yml lacks $a"
    grep -q "alertname: $a\$" deploy/prometheus/alerts-test.yml || fail "alerts-test.yml does not test $a"
  done
  python3 - deploy/grafana/earmark.json <<'PY' || fail "Grafana dashboard"
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
if not d.get("panels"): bad.append("no panels")
titles = " ".join(p.get("title", "") for p in d["panels"]).lower()
for want in ("throughput", "real-time factor", "queue depth", "errors"):
    if want not in titles: bad.append(f"no panel about {want}")
for p in d["panels"]:
    if not p.get("targets") or not all(t.get("expr") for t in p["targets"]):
        bad.append(f"panel {p.get('title')!r} has a target without a query")
    if p.get("datasource", {}).get("uid") != "${datasource}": bad.append(f"panel {p.get('title')!r}: datasource")
if not any(v.get("name") == "datasource" for v in d.get("templating", {}).get("list", [])):
    bad.append("no datasource variable")
for b in bad: print("earmark.json:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

case "$check" in
  install) check_install ;;
  systemd) check_systemd ;;
  docker) check_docker ;;
  k8s) check_k8s ;;
  prometheus) check_prometheus ;;
  *) fail "unknown check" ;;
esac
echo "check $check: ok"
