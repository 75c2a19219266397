#!/usr/bin/env bash
# `tchan bench` against 3 `tchan serve` (one thread each), with and without
# --shard-keys, alternating in one run: calls/s, p50 and the client's CPU per
# call, then the medians and the sharded/plain ratio of calls/s.
#
#   bash benches/shard_keys.sh
#   RUNS=5 KEYS=1000 INFLIGHT=64 DURATION=5 bash benches/shard_keys.sh
#
# Without shard keys the pool picks by power of two choices; with them each
# call goes to its key's owner on the ring of the 3 servers. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-5}"
KEYS="${KEYS:-1000}"
INFLIGHT="${INFLIGHT:-64}"
DURATION="${DURATION:-5}"
cargo build --release --quiet --bin tchan
TCHAN=target/release/tchan

pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
out=$(mktemp -d)
peers=()
for i in 1 2 3; do
  "$TCHAN" serve --threads 1 --service svc >"$out/srv$i" 2>/dev/null &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 100); do [[ -s "$out/srv$i" ]] && break; sleep 0.05; done
  peers+=(--peer "$(head -1 "$out/srv$i" | sed 's/^listening on //')")
done
for r in $(seq "$RUNS"); do
  for keys in 0 "$KEYS"; do
    "$TCHAN" bench "${peers[@]}" --concurrency "$INFLIGHT" --duration "$DURATION" \
      --warmup 1 --shard-keys "$keys" --json svc echo >"$out/run.$r.$keys"
  done
done
python3 - "$out" "$RUNS" "$KEYS" <<'PY'
import json, statistics, sys
out, runs, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {"0": [], keys: []}
print("| run | shard keys | calls/s | p50 µs | client CPU µs/call | errors |")
print("|---|---:|---:|---:|---:|---:|")
for r in range(1, runs + 1):
    for k in ("0", keys):
        d = json.load(open(f"{out}/run.{r}.{k}"))
        rows[k].append(d)
        print(f"| {r} | {k} | {d['calls_per_sec']:.0f} | {d['p50_us']} | {d['cpu_us_per_call']:.2f} | {d['errors']} |")
med = {k: statistics.median(d["calls_per_sec"] for d in v) for k, v in rows.items()}
cpu = {k: statistics.median(d["cpu_us_per_call"] for d in v) for k, v in rows.items()}
print()
print(f"median calls/s: {med['0']:.0f} without shard keys, {med[keys]:.0f} with {keys}: "
      f"{100 * med[keys] / med['0']:.1f}% (target: at least 90%)")
print(f"median client CPU per call: {cpu['0']:.2f} µs without, {cpu[keys]:.2f} µs with")
PY
rm -rf "$out"
