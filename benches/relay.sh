#!/usr/bin/env bash
# The relay's cost, side by side in one run: direct calls (client -> server),
# through `tchan relay` (client -> tchan relay -> server) and through node
# tchannel 4.0.1's RelayHandler (client -> node relay -> server).
#
#   bash benches/relay.sh              # node relay rows need interop/node/install.sh
#   DURATION=5 bash benches/relay.sh
#   SIZES=64 INFLIGHT=64 bash benches/relay.sh   # one case
#
# Placement on 2 cores (taskset): the client (`tchan bench --threads 1`) on
# core 0; the server (`tchan serve --threads 1`) on core 1; the relay on core 1
# too, sharing the server's core (the only placement on 2 cores where the
# client is not slowed by the relay, and where the relay's CPU shows as the
# share it takes from the server). Every process is single-threaded.
#
# CPU per call of a process is its utime+stime over the run (from /proc)
# divided by the calls the client completed. Prints a Markdown table:
# calls/s, p50, the server's CPU per call, the relay's CPU per call and the
# relay's CPU against the server's in the direct run of the same case.
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-3}"
cargo build --release --quiet --bin tchan
TCHAN=target/release/tchan
NODE_DIR=interop/node
TICK=$(getconf CLK_TCK)

pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_addr() { # file -> address
  for _ in $(seq 200); do
    if grep -q '^listening on ' "$1"; then break; fi
    sleep 0.05
  done
  sed -n 's/^listening on //p' "$1" | head -1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start() { # cpu cmd... -> sets ADDR, PID
  local cpu=$1 out
  shift
  out=$(mktemp)
  taskset -c "$cpu" "$@" >"$out" 2>/dev/null &
  PID=$!
  pids+=("$PID")
  ADDR=$(wait_addr "$out")
  rm -f "$out"
}

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "client on core 0; server and relay on core 1; ${DURATION}s per case, no warm-up; one connection per hop; echo"
echo
echo "| payload | in flight | path | calls/s | p50 µs | server CPU µs/call | relay CPU µs/call | relay CPU / direct server CPU | calls/s vs direct |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
for size in ${SIZES:-64 262144}; do
  for c in ${INFLIGHT:-1 64}; do
    direct_cps=""; direct_cpu=""
    for path in direct tchan-relay node-relay; do
      if [[ $path == node-relay && ! -d $NODE_DIR/node_modules/tchannel ]]; then continue; fi
      start 1 "$TCHAN" serve --service bench --threads 1
      SPID=$PID; SADDR=$ADDR; target=$SADDR; RPID=""
      case $path in
        tchan-relay)
          routes=$(mktemp)
          echo "{\"bench\": [\"$SADDR\"]}" >"$routes"
          start 1 "$TCHAN" relay --routes "$routes"
          RPID=$PID; target=$ADDR ;;
        node-relay)
          start 1 node "$NODE_DIR/bench-relay.js" bench "$SADDR"
          RPID=$PID; target=$ADDR ;;
      esac
      s0=$(cpu_ticks "$SPID"); r0=0; [[ -n $RPID ]] && r0=$(cpu_ticks "$RPID")
      json=$(taskset -c 0 "$TCHAN" bench "$target" bench echo --concurrency "$c" --duration "$DURATION" \
        --warmup 0 --size "$size" --threads 1 --connections 1 --json || echo '{"calls":0,"calls_per_sec":0,"p50_us":0}')
      s1=$(cpu_ticks "$SPID"); r1=0; [[ -n $RPID ]] && r1=$(cpu_ticks "$RPID")
      for p in $SPID $RPID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
      calls=$(field "$json" calls); cps=$(field "$json" calls_per_sec); p50=$(field "$json" p50_us)
      read -r scpu rcpu < <(python3 -c "
c=max(int('$calls'),1); t=1e6/int('$TICK')
print(f'{($s1-$s0)*t/c:.1f}', f'{($r1-$r0)*t/c:.1f}' if '$RPID' else '-')")
      if [[ $path == direct ]]; then direct_cps=$cps; direct_cpu=$scpu; fi
      ratio=$(python3 -c "
r='$rcpu'; d=float('$direct_cpu')
print(f'{float(r)/d:.2f}x' if r!='-' and d>0 else '-')")
      vs=$(python3 -c "d=float('$direct_cps'); print(f'{float($cps)/d*100:.0f}%' if d>0 else '-')")
      label="$size B"; [[ $size == 262144 ]] && label="256 KiB"
      printf '| %s | %s | %s | %.0f | %s | %s | %s | %s | %s |\n' \
        "$label" "$c" "$path" "$cps" "$p50" "$scpu" "$rcpu" "$ratio" "$vs"
    done
  done
done
