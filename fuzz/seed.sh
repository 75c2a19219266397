#!/usr/bin/env bash
# Writes seed inputs from interop/fixtures/*.json into fuzz/corpus/<target>/seed-*.
# Only seed-* files are kept in git; libFuzzer adds its own files beside them.
# Idempotent: old seed-* files of these targets are replaced.
set -euo pipefail
cd "$(dirname "$0")"
exec python3 - <<'PY'
import glob, json, os

FIX = "../interop/fixtures"
OUT = "corpus"

def load(name):
    with open(os.path.join(FIX, name + ".json")) as f:
        return json.load(f)

def reset(target):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for p in glob.glob(os.path.join(d, "seed-*")):
        os.remove(p)
    return d

def write(d, name, data):
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

# frame_roundtrip: every distinct frame of a handful of small fixtures, plus
# two full-size frames (65535 and 65534 bytes) for the size edges.
SMALL = [
    "init_handshake.c2s", "init_handshake.s2c", "ping.c2s", "ping.s2c",
    "cancel_lib_encoded.c2s", "cancel_lib_encoded.s2c",
    "checksum_none.c2s", "checksum_crc32.c2s", "checksum_crc32c.s2c",
    "checksum_farmhash32.c2s", "error_busy.s2c", "error_timeout.s2c",
    "error_declined_draining.s2c", "error_app_raw.s2c",
    "transport_headers_full.c2s", "thrift_echo.c2s", "json_echo.s2c",
    "tracing_sampled.c2s", "raw_echo_empty_args.c2s", "raw_echo_binary.s2c",
]
BIG = [("raw_req_frame_exactly_65535.c2s", 1), ("raw_arg2_leaves_1_byte.c2s", 1)]
d = reset("frame_roundtrip")
seen = set()
picks = [(n, None) for n in SMALL] + [(n, i) for n, i in BIG]
for name, only in picks:
    for fr in load(name)["frames"]:
        if only is not None and fr["index"] != only:
            continue
        data = bytes.fromhex(fr["hex"])
        if data in seen:
            continue
        seen.add(data)
        kind = fr["type_name"].replace(" ", "_")
        write(d, f"{name}-{fr['index']}-{kind}", data)
print(f"frame_roundtrip: {len(seen)} seeds")

# codec_chunks: input = k:1 split-sizes:k max:2 stream. Whole small streams,
# fed in one piece, in small cuts, and with a max frame size that some frame
# of the stream is over (so the error path is seeded too).
STREAMS = [
    "ping.c2s", "checksum_crc32.c2s", "cancel_lib_encoded.c2s",
    "error_busy.s2c", "error_declined_draining.s2c", "raw_echo_binary.s2c",
]
d = reset("codec_chunks")
n = 0
for name in STREAMS:
    stream = bytes.fromhex(load(name)["stream_hex"])
    variants = {
        "whole": bytes([0]) + b"\x00\x00",
        "cuts": bytes([4, 1, 15, 16, 100]) + b"\x00\x00",
        "max128": bytes([2, 3, 40]) + (128).to_bytes(2, "big"),
    }
    for v, prefix in variants.items():
        write(d, f"{name}-{v}", prefix + stream)
        n += 1
# A size under 16 fed as 2 bytes then the rest: the error must not depend on
# the cut (regression seed).
write(d, "size-error-cut-after-2", bytes([1, 2]) + b"\x00\x00" + bytes([0, 5, 3, 0]) + bytes(12))
n += 1
print(f"codec_chunks: {n} seeds")

# relay_frame: input = id:4 ttl:4 frame. Every distinct call req and call
# continue node sent in the small fixtures, and one of each other kind.
d = reset("relay_frame")
seen = set()
for name in SMALL:
    for fr in load(name)["frames"]:
        data = bytes.fromhex(fr["hex"])
        if data in seen:
            continue
        seen.add(data)
        kind = fr["type_name"].replace(" ", "_")
        write(d, f"{name}-{fr['index']}-{kind}", (0x01020304).to_bytes(4, "big") + (250).to_bytes(4, "big") + data)
print(f"relay_frame: {len(seen)} seeds")
PY
