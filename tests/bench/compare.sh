#!/usr/bin/env bash
# Before/after for a change on a hot path: two Switchboard binaries on the same machine, in
# alternating rounds (A B A B ...), so drift of a shared machine hits both alike.
#
#   tests/bench/compare.sh BEFORE_BIN AFTER_BIN [--rounds N] [--quick] [--out DIR]
#
# BEFORE_PLUGINS_DIR: the example hubs built for BEFORE, when the hub WIT changed in between
# (a host loads only hubs built against its own WIT).
#
# Per binary and round: idle memory (server RSS per open connection, 5000 idle connections on a
# fresh server), echo (100 clients x 1 in flight, 10 s) and the fan-out search (1000
# subscribers, 100 B, highest rate with p99 < 100 ms and nothing lost). Prints the median of
# each figure and the ratio AFTER/BEFORE. Same pinning and bounds as run.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

# The servers run from a copy of the binary, away from the repository, where the node does not
# find the example hubs by itself: name their folder (built by ./dev) for it.
export SWITCHBOARD_BUNDLED_PLUGINS_DIR="${SWITCHBOARD_BUNDLED_PLUGINS_DIR:-$ROOT/plugins/target/wasm32-wasip2/release}"
[ -f "$SWITCHBOARD_BUNDLED_PLUGINS_DIR/chat.wasm" ] || (cd plugins && cargo build --release --target wasm32-wasip2)

ROUNDS=2; QUICK=0; OUT=""; BINS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift ;;
    --quick) QUICK=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) BINS+=("$1") ;;
  esac
  shift
done
[ "${#BINS[@]}" = 2 ] || { echo "usage: compare.sh BEFORE_BIN AFTER_BIN [--rounds N] [--quick]" >&2; exit 2; }

if [ "$QUICK" = 1 ]; then
  SUBS=100; STEP_SECS=2; STEPS=5; MIN_RATE=800; MAX_RATE=20000; RPC_CLIENTS=20; RPC_SECS=3; IDLE=1000
else
  SUBS=1000; STEP_SECS=5; STEPS=7; MIN_RATE=500; MAX_RATE=8000; RPC_CLIENTS=100; RPC_SECS=10; IDLE=5000
fi

OUT="${OUT:-$ROOT/tests/bench/out/compare-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
log() { printf '[compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"

log "building tests/loadgen (release, own target dir)"
(cd tests/loadgen && CARGO_TARGET_DIR="$ROOT/tests/loadgen/target" cargo build --release --quiet)
LOADGEN="$ROOT/tests/loadgen/target/release/loadgen"

# Snapshots, so a rebuild during the run changes nothing.
cp "${BINS[0]}" "$OUT/before"; cp "${BINS[1]}" "$OUT/after"
log "$PINNING; before $(sha256sum "$OUT/before" | cut -c1-12), after $(sha256sum "$OUT/after" | cut -c1-12)"

for round in $(seq "$ROUNDS"); do
  for side in before after; do
    plugins="$SWITCHBOARD_BUNDLED_PLUGINS_DIR"
    [ "$side" = before ] && plugins="${BEFORE_PLUGINS_DIR:-$plugins}"
    SWITCHBOARD_BUNDLED_PLUGINS_DIR="$plugins" start "$side-idle-$round" "$OUT/$side" serve --listen 127.0.0.1:0
    sleep 1
    lg "$side/idle" 150 idle --proto json --url "http://$ADDR/hubs/demo/chat" \
      --connections "$IDLE" --hold 3 --server-pid "$PID" --connect-deadline 100
    stop "$PID"
    SWITCHBOARD_BUNDLED_PLUGINS_DIR="$plugins" start "$side-$round" "$OUT/$side" serve --listen 127.0.0.1:0
    URL="http://$ADDR/hubs/demo/chat"
    lg "$side/rpc" $((RPC_SECS + 60)) rpc --proto json --url "$URL" \
      --clients "$RPC_CLIENTS" --seconds "$RPC_SECS"
    lg "$side/fanout" $(((STEP_SECS + 8) * STEPS + 60)) drive --proto json --url "$URL" \
      --subscribers "$SUBS" --seconds "$STEP_SECS" --drain 1 --payload 100 \
      --min-rate "$MIN_RATE" --max-rate "$MAX_RATE" --steps "$STEPS" --p99-ms 100
    stop "$PID"
  done
done

node "$ROOT/tests/bench/compare.mjs" "$RESULTS" | tee "$OUT/table.md"
log "done: $OUT"
