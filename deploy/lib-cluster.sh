# deploy/lib-cluster.sh - sourced by demo.sh and bench-dispatch.sh: start a private
# redis-server, a coordinator and workers on free loopback ports in a temp dir, and stop
# everything on exit. Not for production (see deploy/systemd/ for that).

EM_BIN=${EM_BIN:-build/earmark}
CL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/earmark-cluster-XXXXXX")
CL_PIDS=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # port timeout_s
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: nothing listening on 127.0.0.1:$1 after $2 s" >&2
  return 1
}

cluster_stop() {
  local p
  for p in "${CL_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${CL_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  CL_PIDS=()
  [ -n "${CL_KEEP:-}" ] || rm -rf "$CL_DIR"
}

redis_start() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$CL_DIR" --save "" \
    --appendonly no --daemonize no >"$CL_DIR/redis.log" 2>&1 &
  CL_PIDS+=($!)
  wait_port "$REDIS_PORT" 20
  export EARMARK_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
}

# CURVE keys as an operator makes them: one pair for the coordinator, one for the workers,
# and the allow list (a directory of worker public keys). EM_PLAIN=1: no CURVE (loopback
# only; for A/B measurements of what CURVE costs).
keys_make() {
  [ -f "$CL_DIR/keys/coord.key" ] && return 0
  mkdir -p -m 0755 "$CL_DIR/keys/allowed"
  "$EM_BIN" keygen -o "$CL_DIR/keys/coord" >/dev/null
  "$EM_BIN" keygen -o "$CL_DIR/keys/worker" >/dev/null
  cp "$CL_DIR/keys/worker.pub" "$CL_DIR/keys/allowed/"
}

coordinator_start() {
  keys_make
  COORD_PORT=$(free_port)
  METRICS_PORT=$(free_port)
  COORD_EP="tcp://127.0.0.1:$COORD_PORT"
  local curve=(--curve-secret "$CL_DIR/keys/coord.key" --allow-keys "$CL_DIR/keys/allowed")
  [ -z "${EM_PLAIN:-}" ] || curve=()
  "$EM_BIN" coordinator --bind "$COORD_EP" "${curve[@]}" \
    --metrics "127.0.0.1:$METRICS_PORT" >"$CL_DIR/coordinator.log" 2>&1 &
  COORD_PID=$!
  CL_PIDS+=($COORD_PID)
  wait_port "$METRICS_PORT" 20
}

worker_start() { # id [model]: one worker (its log: $CL_DIR/worker-<id>.log)
  local curve=(--curve-key "$CL_DIR/keys/worker.key" --coordinator-key "$CL_DIR/keys/coord.pub")
  [ -z "${EM_PLAIN:-}" ] || curve=()
  # local sources are read only under the cluster's dir (or EARMARK_SOURCE_ROOTS)
  EARMARK_SOURCE_ROOTS="${EARMARK_SOURCE_ROOTS:-$CL_DIR}" \
    "$EM_BIN" worker --connect "$COORD_EP" --id "$1" ${2:+--model "$2"} "${curve[@]}" \
    >"$CL_DIR/worker-$1.log" 2>&1 &
  CL_PIDS+=($!)
}

workers_start() { # count: workers w1..wN running $EM_MODEL (none when unset)
  local i
  for ((i = 1; i <= $1; i++)); do worker_start "w$i" "${EM_MODEL:-}"; done
}
