#!/usr/bin/env bash
# tchan against node tchannel 4.0.1, side by side, in one run on this machine.
#
#   bash benches/compare.sh            # needs `bash interop/node/install.sh` first
#   DURATION=5 bash benches/compare.sh
#
# Pairs (server <- client): node <- node, tchan <- tchan, tchan <- node,
# node <- tchan. Payloads 64 B and 256 KiB, 1 and 64 calls in flight, one
# connection, echo. Each case runs in three placements: server and client
# sharing one core (taskset -c 0 for both), on separate cores (server on 0,
# client on 1), and unpinned (the scheduler decides). PLACEMENTS limits them.
# tchan runs one thread per side (--threads 1) so the placement is what it says.
# Prints a Markdown table with calls/s, p50 latency, client CPU per call, and
# the ratio of calls/s against node <- node in the same case. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-3}"
WARMUP="${WARMUP:-1}"
cargo build --release --quiet --bin tchan
TCHAN=target/release/tchan
NODE_DIR=interop/node
if [[ ! -d "$NODE_DIR/node_modules/tchannel" ]]; then
  echo "run: bash interop/node/install.sh" >&2
  exit 1
fi

pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_server() { # impl cpu -> sets ADDR and SPID
  local impl=$1 cpu=$2 out
  out=$(mktemp)
  if [[ $impl == node ]]; then
    taskset -c "$cpu" node "$NODE_DIR/bench-server.js" >"$out" 2>/dev/null &
  else
    taskset -c "$cpu" "$TCHAN" serve --service bench --threads 1 >"$out" 2>/dev/null &
  fi
  SPID=$!
  pids+=("$SPID")
  for _ in $(seq 100); do
    if grep -q '^listening on ' "$out"; then break; fi
    sleep 0.05
  done
  ADDR=$(sed -n 's/^listening on //p' "$out" | head -1)
  rm -f "$out"
}

run_client() { # impl cpu size concurrency -> JSON line
  local impl=$1 cpu=$2 size=$3 c=$4
  if [[ $impl == node ]]; then
    taskset -c "$cpu" node "$NODE_DIR/bench-client.js" "$ADDR" --concurrency "$c" \
      --duration "$DURATION" --warmup "$WARMUP" --size "$size"
  else
    taskset -c "$cpu" "$TCHAN" bench "$ADDR" bench echo --concurrency "$c" --duration "$DURATION" \
      --warmup "$WARMUP" --size "$size" --threads 1 --connections 1 --json
  fi
}

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "duration ${DURATION}s after ${WARMUP}s warm-up per case; one connection; echo"
echo
echo "| placement | payload | in flight | server <- client | calls/s | p50 µs | client CPU µs/call | vs node <- node |"
echo "|---|---|---|---|---:|---:|---:|---:|"
for placement in ${PLACEMENTS:-shared separate unpinned}; do
  case $placement in
    shared) scpu=0; ccpu=0 ;;
    separate) scpu=0; ccpu=1 ;;
    *) scpu=0-$(( $(nproc) - 1 )); ccpu=$scpu ;;
  esac
  for size in 64 262144; do
    for c in 1 64; do
      base=""
      for pair in node:node tchan:tchan tchan:node node:tchan; do
        server=${pair%%:*}; client=${pair##*:}
        start_server "$server" "$scpu"
        json=$(run_client "$client" "$ccpu" "$size" "$c" || echo '{"calls":0,"calls_per_sec":0,"p50_us":0,"cpu_us_per_call":0}')
        kill "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
        cps=$(field "$json" calls_per_sec)
        p50=$(field "$json" p50_us)
        cpu=$(field "$json" cpu_us_per_call)
        if [[ -z $base ]]; then base=$cps; fi
        ratio=$(python3 -c "b=float('$base'); print(f'{float($cps)/b:.1f}x' if b>0 else '-')")
        label="$size B"; [[ $size == 262144 ]] && label="256 KiB"
        printf '| %s | %s | %s | %s <- %s | %.0f | %s | %.1f | %s |\n' \
          "$placement" "$label" "$c" "$server" "$client" "$cps" "$p50" "$cpu" "$ratio"
      done
    done
  done
done
