#!/usr/bin/env bash
# Shared by tests/bench/run.sh and tests/bench/compare.sh (sourced, not run): the processes a
# benchmark starts and stops, CPU pinning, and the bounded load-generator call. Expects OUT and
# RESULTS to be set by the caller.

# --- processes we start, stopped on exit ------------------------------------------------------
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$OUT/switchboard"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- CPU pinning ------------------------------------------------------------------------------
NPROC="$(nproc)"
if [ "$NPROC" -ge 2 ] && command -v taskset >/dev/null; then
  HALF=$((NPROC / 2))
  SERVER_CPUS="0-$((HALF - 1))"
  LOADGEN_CPUS="$HALF-$((NPROC - 1))"
  ON_SERVER=(taskset -c "$SERVER_CPUS")
  ON_LOADGEN=(taskset -c "$LOADGEN_CPUS")
  PINNING="servers on CPUs $SERVER_CPUS, load generator on CPUs $LOADGEN_CPUS"
else
  ON_SERVER=(); ON_LOADGEN=()
  PINNING="not pinned (fewer than 2 cores or no taskset)"
fi
# Both sides may hold tens of thousands of sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT="$(ulimit -n)"

# --- servers ----------------------------------------------------------------------------------
# start NAME CMD... : starts a server pinned to the server CPUs, waits (bounded) for its
# `listening addr=IP:PORT` line; sets ADDR and PID.
start() {
  local name="$1"; shift
  local logf="$OUT/$name.log"
  "${ON_SERVER[@]}" "$@" 2>"$logf" >/dev/null &
  PID=$!
  PIDS+=("$PID")
  ADDR=""
  for _ in $(seq 200); do
    ADDR="$(grep -o 'listening addr=[0-9.:]*' "$logf" 2>/dev/null | head -1 | cut -d= -f2 || true)"
    [ -n "$ADDR" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$ADDR" ]; then
    echo "$name did not start; its log:" >&2; cat "$logf" >&2; exit 1
  fi
  log "$name pid $PID on $ADDR"
}
# stop PID: stops a process started here and forgets it, so that the exit trap never signals
# a recycled pid.
stop() {
  local keep=() p
  for p in "${PIDS[@]:-}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]:-}")
  kill "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
free_port() { node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# lg LABEL TIMEOUT_SECS loadgen-args... : runs the load generator (bounded), tags its JSON line.
lg() {
  local label="$1" secs="$2"; shift 2
  local line
  if line="$(timeout "$secs" "${ON_LOADGEN[@]}" "$LOADGEN" "$@" 2>>"$OUT/loadgen.err")"; then
    printf '{"label":"%s","result":%s}\n' "$label" "$line" >> "$RESULTS"
    log "$label: $(printf '%s' "$line" | cut -c1-220)"
  else
    printf '{"label":"%s","error":"loadgen failed or timed out (see loadgen.err)"}\n' "$label" >> "$RESULTS"
    log "$label: FAILED (see $OUT/loadgen.err)"
  fi
}

