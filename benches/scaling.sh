#!/usr/bin/env bash
# Cross-process figures with the CLI's default flags, in one run:
#
#   bash benches/scaling.sh        # needs `bash interop/node/install.sh` for the node rows
#   DURATION=5 bash benches/scaling.sh
#
# 1. tchan serve + tchan bench with default flags (unpinned, 64 B, 64 in
#    flight, one connection) next to a node tchannel 4.0.1 server and client
#    at concurrency 64, same run: the ratio of calls/s.
# 2. Scaling over the machine's cores: `tchan serve --threads N` with
#    `tchan bench --connections K --threads K` for K = 1 and 2 (64 in flight
#    in all), unpinned, and both pinned: server on core 0 and client on core 1.
# Prints Markdown tables. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-5}"
cargo build --release --quiet --bin tchan
TCHAN=target/release/tchan
NODE_DIR=interop/node

pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start() { # cpu-list command... -> sets ADDR and SPID
  local cpus=$1 out
  shift
  out=$(mktemp)
  if [[ $cpus == any ]]; then "$@" >"$out" 2>/dev/null & else taskset -c "$cpus" "$@" >"$out" 2>/dev/null & fi
  SPID=$!
  pids+=("$SPID")
  for _ in $(seq 100); do
    grep -q '^listening on ' "$out" && break
    sleep 0.05
  done
  ADDR=$(sed -n 's/^listening on //p' "$out" | head -1)
  rm -f "$out"
}

stop() { kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

row() { # label json
  printf '| %s | %.0f | %s | %s | %s | %s |\n' "$1" "$(field "$2" calls_per_sec)" "$(field "$2" p50_us)" \
    "$(field "$2" p99_us)" "$(field "$2" cpu_us_per_call)" "$(field "$2" errors)"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "duration ${DURATION}s per case; 64 B echo, 64 in flight"
echo
echo "| case | calls/s | p50 µs | p99 µs | client CPU µs/call | errors |"
echo "|---|---:|---:|---:|---:|---:|"
start any "$TCHAN" serve
tchan_json=$("$TCHAN" bench "$ADDR" tchan echo --concurrency 64 --size 64 --duration "$DURATION" --json)
stop
row "tchan serve <- tchan bench (default flags, unpinned)" "$tchan_json"
if [[ -d $NODE_DIR/node_modules/tchannel ]]; then
  start any node "$NODE_DIR/bench-server.js"
  node_json=$(node "$NODE_DIR/bench-client.js" "$ADDR" --concurrency 64 --duration "$DURATION" --warmup 1 --size 64)
  stop
  row "node server <- node client (unpinned)" "$node_json"
  python3 -c "import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print(f'\ntchan / node calls/s: {a[\"calls_per_sec\"]/max(b[\"calls_per_sec\"],1):.1f}x')" "$tchan_json" "$node_json"
fi
echo
echo "| placement | server threads | bench connections x threads | calls/s | p50 µs | p99 µs | client CPU µs/call | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for placement in unpinned split; do
  for k in 1 2; do
    if [[ $placement == split ]]; then scpu=0 ccpu=1; else scpu=any ccpu=any; fi
    start "$scpu" "$TCHAN" serve --threads "$k"
    if [[ $ccpu == any ]]; then
      json=$("$TCHAN" bench "$ADDR" tchan echo --concurrency 64 --size 64 --duration "$DURATION" \
        --connections "$k" --threads "$k" --json)
    else
      json=$(taskset -c "$ccpu" "$TCHAN" bench "$ADDR" tchan echo --concurrency 64 --size 64 \
        --duration "$DURATION" --connections "$k" --threads "$k" --json)
    fi
    stop
    printf '| %s | %s | %s x %s | %.0f | %s | %s | %s | %s |\n' "$placement" "$k" "$k" "$k" \
      "$(field "$json" calls_per_sec)" "$(field "$json" p50_us)" "$(field "$json" p99_us)" \
      "$(field "$json" cpu_us_per_call)" "$(field "$json" errors)"
  done
done
