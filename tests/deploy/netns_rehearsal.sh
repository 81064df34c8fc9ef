#!/usr/bin/env bash
# tests/deploy/netns_rehearsal.sh BIN - a multi-host rehearsal on one machine (root only).
#
#   namespace C: redis-server, moto_server (S3), `earmark coordinator`, a bridge br0
#                198.18.0.1/24 (198.18.0.0/15 is the benchmarking range: never routed)
#   namespace W1, W2: one `earmark worker` each, 198.18.0.2 and .3, joined to br0 by a
#                veth pair; they reach the coordinator and S3 only at 198.18.0.1
# Audio sources and outputs are s3:// objects on the S3 server in C. Then:
#   1. a batch completes: one ok record per item, manifest.jsonl complete;
#   2. a second batch with slow tasks; once W1 holds a task, W1's link is cut (`ip link
#      set down` on its veth) mid-batch; the batch still completes with every item ok,
#      the coordinator counts W1 lost, and W1's task is redone on W2 (attempt >= 2).
# Only addresses this script assigns inside the namespaces it made are ever targets. The
# namespaces and every process in them are removed on any exit. Exit 0 when it all holds;
# otherwise the reason (and log tails) on stderr and exit 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(readlink -f "${1:?usage: netns_rehearsal.sh BIN}")
WAIT_S=180 # bound on a batch (a loaded 2-core machine); nothing asserts on time

fail() { echo "netns rehearsal: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (ip netns add): run as root, as CI does"
command -v ip > /dev/null || fail "ip (iproute2) missing"

P=em13r$$
NC=$P-c NW1=$P-w1 NW2=$P-w2
C_IP=198.18.0.1 W1_IP=198.18.0.2 W2_IP=198.18.0.3
TMP=$(mktemp -d /tmp/em-netns.XXXXXX)
cleanup() {
  local ns pid
  for ns in $NW1 $NW2 $NC; do
    for pid in $(ip netns pids "$ns" 2> /dev/null); do kill -9 "$pid" 2> /dev/null || true; done
  done
  for ns in $NW1 $NW2 $NC; do ip netns del "$ns" 2> /dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
logs() {
  local f
  for f in "$TMP"/*.log; do echo "--- $(basename "$f")" >&2; tail -n 15 "$f" >&2; done
}
die() { logs; fail "$*"; }

# ---- network: three namespaces, a bridge in C, one veth pair per worker ----
ip netns add $NC || fail "ip netns add failed (no CAP_SYS_ADMIN?)"
ip netns add $NW1
ip netns add $NW2
nsc() { ip netns exec $NC "$@"; }
nsc ip link set lo up
nsc ip link add br0 type bridge
nsc ip addr add $C_IP/24 dev br0
nsc ip link set br0 up
i=0
for ns in $NW1 $NW2; do
  i=$((i + 1))
  ip -n $NC link add "v$i" type veth peer name eth0 netns "$ns"
  ip -n $NC link set "v$i" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "198.18.0.$((i + 1))/24" dev eth0
  ip -n "$ns" link set eth0 up
done

# ---- services in C ----
S3=http://$C_IP:9000
export AWS_ACCESS_KEY_ID=rehearsal AWS_SECRET_ACCESS_KEY=rehearsal-secret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=$S3 EARMARK_LOG=info
nsc redis-server --bind $C_IP --port 6379 --protected-mode no --save "" --appendonly no > "$TMP/redis.log" 2>&1 &
nsc moto_server -H $C_IP -p 9000 > "$TMP/s3.log" 2>&1 &
s3() { nsc python3 - "$@" << 'PY'
import boto3, json, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
cmd = sys.argv[1]
if cmd == "ready":
    s3.list_buckets()
elif cmd == "mkbucket":
    s3.create_bucket(Bucket=sys.argv[2])
elif cmd == "upload":  # bucket prefix manifest_in manifest_out
    b, pre, src, dst = sys.argv[2:6]
    with open(src) as f, open(dst, "w") as out:
        for line in f:
            path = line.strip()[len("file://"):]
            key = f"{pre}/{os.path.basename(path)}"
            s3.upload_file(path, b, key)
            out.write(f"s3://{b}/{key}\n")
elif cmd == "exists":
    try:
        s3.head_object(Bucket=sys.argv[2], Key=sys.argv[3])
    except Exception:
        sys.exit(1)
elif cmd == "get":
    sys.stdout.write(s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])["Body"].read().decode())
elif cmd == "records":  # bucket prefix: one line per record: source attempt worker status
    b, pre = sys.argv[2:4]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix=pre + "/"):
        for o in page.get("Contents", []):
            if o["Key"].endswith("manifest.jsonl"):
                continue
            r = json.loads(s3.get_object(Bucket=b, Key=o["Key"])["Body"].read())
            print(r.get("source"), r.get("attempt"), r.get("worker"), r.get("status"))
PY
}
for _ in $(seq 1 120); do s3 ready 2> /dev/null && break; sleep 0.5; done
s3 ready || die "S3 server in C does not answer"
nsc redis-cli -h $C_IP ping > /dev/null || { sleep 2; nsc redis-cli -h $C_IP ping > /dev/null; } ||
  die "Redis in C does not answer"
s3 mkbucket rehearsal
for ns in $NW1 $NW2; do # each worker host reaches C's services at C's address
  ip netns exec "$ns" timeout 10 bash -c "exec 3<>/dev/tcp/$C_IP/9000" ||
    die "$ns cannot reach $C_IP:9000"
done

deploy/make-corpus.sh "$TMP/corpus" 6 > /dev/null || die "make-corpus failed"
s3 upload rehearsal in "$TMP/corpus/manifest.txt" "$TMP/manifest.txt"
N=$(wc -l < "$TMP/manifest.txt")

# CURVE across the hosts, as deployed (docs/deployment.md "Keys"), with a binary that has
# `earmark keygen`; one without it has no CURVE to set up (and binds anywhere without it)
COORD_KEYS=() WORKER_KEYS=()
if "$BIN" keygen --help > /dev/null 2>&1; then
  mkdir -p "$TMP/keys/workers"
  "$BIN" keygen -o "$TMP/keys/coordinator" > /dev/null && "$BIN" keygen -o "$TMP/keys/worker" > /dev/null ||
    die "earmark keygen failed"
  cp "$TMP/keys/worker.pub" "$TMP/keys/workers/"
  COORD_KEYS=(--curve-secret "$TMP/keys/coordinator.key" --allow-keys "$TMP/keys/workers")
  WORKER_KEYS=(--curve-key "$TMP/keys/worker.key" --coordinator-key "$TMP/keys/coordinator.pub")
  echo "netns rehearsal: CURVE keys from earmark keygen"
fi
REDIS=redis://$C_IP:6379
nsc "$BIN" coordinator --redis $REDIS --bind tcp://$C_IP:5555 --metrics $C_IP:9105 --id c \
  --heartbeat-ms 200 --lease-ms 1500 "${COORD_KEYS[@]}" > "$TMP/coordinator.log" 2>&1 &
for _ in $(seq 1 100); do nsc curl -sf -o /dev/null http://$C_IP:9105/readyz && break; sleep 0.2; done
nsc curl -sf -o /dev/null http://$C_IP:9105/readyz || die "coordinator not ready"
start_worker() { # NS NAME DELAY_MS (in a subshell: the script kills it by namespace)
  (EARMARK_FAULT_DELAY_MS=$3 ip netns exec "$1" "$BIN" worker --connect tcp://$C_IP:5555 \
    --id "$2" --threads 1 --capacity 1 --drain-ms 2000 "${WORKER_KEYS[@]}" > "$TMP/$2.log" 2>&1 &)
}
metric() { nsc curl -s -m 5 http://$C_IP:9105/metrics | awk -v n="$1" '$1 == n {print $2}'; }

wait_batch() { # OUT_PREFIX: manifest.jsonl appears
  local t
  for t in $(seq 1 $((WAIT_S * 2))); do
    s3 exists rehearsal "$1/manifest.jsonl" && return 0
    sleep 0.5
  done
  nsc "$BIN" status --redis $REDIS "$(cat "$TMP/batch")" >&2 || true
  die "batch to $1 did not complete within $WAIT_S s"
}
check_batch() { # OUT_PREFIX: N ok records, N manifest lines, all ok
  local lines ok
  s3 get rehearsal "$1/manifest.jsonl" > "$TMP/m.jsonl"
  lines=$(wc -l < "$TMP/m.jsonl")
  [ "$lines" -eq "$N" ] || die "$1/manifest.jsonl has $lines lines, want $N"
  ok=$(grep -c '"status": *"ok"' "$TMP/m.jsonl" || true)
  [ "$ok" -eq "$N" ] || { cat "$TMP/m.jsonl" >&2; die "$1: $ok of $N items ok"; }
  s3 records rehearsal "$1" > "$TMP/records"
  [ "$(awk '$4 == "ok"' "$TMP/records" | wc -l)" -eq "$N" ] ||
    { cat "$TMP/records" >&2; die "$1: not one ok record per item"; }
}
submit() { # OUT_PREFIX
  nsc "$BIN" submit --redis $REDIS --manifest "$TMP/manifest.txt" --out "s3://rehearsal/$1" \
    --max-attempts 4 > "$TMP/batch" 2>> "$TMP/submit.log" || die "submit failed"
}

# ---- 1: a batch across the three hosts ----
start_worker $NW1 w1 0
start_worker $NW2 w2 0
submit out1
wait_batch out1
check_batch out1
awk '{print $3}' "$TMP/records" | sort -u > "$TMP/who"
echo "netns rehearsal: batch 1: $N items ok, records by $(tr '\n' ' ' < "$TMP/who")"

# ---- 2: W1's link cut while it holds a task ----
for ns in $NW1 $NW2; do
  for pid in $(ip netns pids "$ns"); do kill "$pid" 2> /dev/null || true; done
done
sleep 1
start_worker $NW1 w1 1500
start_worker $NW2 w2 1500
for _ in $(seq 1 100); do [ "$(metric earmark_workers)" = 2 ] && break; sleep 0.2; done
[ "$(metric earmark_workers)" = 2 ] || die "the slow workers did not connect"
submit out2
held=0
for _ in $(seq 1 $((WAIT_S * 5))); do # W1 logs msg="task" when it takes one
  held=$(grep -c 'msg="task"' "$TMP/w1.log" || true)
  [ "$held" -ge 1 ] && break
  sleep 0.2
done
[ "$held" -ge 1 ] || die "W1 never took a task of batch 2"
ip -n $NC link set v1 down
echo "netns rehearsal: batch 2: W1's link cut while it holds a task"
wait_batch out2
check_batch out2
lost=$(metric earmark_workers_lost_total)
[ "${lost:-0}" -ge 1 ] || die "coordinator did not count W1 lost (earmark_workers_lost_total=$lost)"
redone=$(awk '$2 >= 2 && $3 == "w2"' "$TMP/records" | wc -l)
[ "$redone" -ge 1 ] || { cat "$TMP/records" >&2; die "no item was redone on w2 after the cut"; }
echo "netns rehearsal: batch 2: $N items ok, $redone redone on w2 after the cut, workers lost $lost"
# under SAN=1 a process that trips a sanitizer may die and be covered by a retry: look
if grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP"/*.log > "$TMP/san" 2> /dev/null; then
  grep -h -A5 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' $(cat "$TMP/san") >&2
  fail "sanitizer reports in $(tr '\n' ' ' < "$TMP/san")"
fi
