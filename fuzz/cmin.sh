#!/usr/bin/env bash
# Minimises the committed corpora: `cargo fuzz cmin` on corpus/<target> for
# every target (or the ones named), then puts the seed-* files back under
# their names (cmin renames what it keeps by content hash, so a kept seed's
# hash-named copy is dropped) and caps the directory at MAX_BYTES (1 MiB) by
# dropping its largest non-seed files. Run one at a time: one core each.
set -euo pipefail
cd "$(dirname "$0")"
MAX_BYTES=${MAX_BYTES:-1048576}
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
total() { find "$1" -maxdepth 1 -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
for t in "${targets[@]}"; do
  dir=corpus/$t
  mkdir -p "$dir"
  seeds=$(mktemp -d)
  find "$dir" -maxdepth 1 -type f -name 'seed-*' -exec cp -t "$seeds" {} +
  before=$(find "$dir" -maxdepth 1 -type f | wc -l)
  CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo fuzz cmin --sanitizer none "$t" >"$seeds.log" 2>&1 ||
    { tail -20 "$seeds.log"; exit 1; }
  for s in "$seeds"/seed-*; do
    [ -e "$s" ] || continue
    rm -f "$dir/$(sha1sum <"$s" | cut -d' ' -f1)"
    mv "$s" "$dir/"
  done
  while [ "$(total "$dir")" -gt "$MAX_BYTES" ]; do
    big=$(find "$dir" -maxdepth 1 -type f ! -name 'seed-*' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
    [ -n "$big" ] || { echo "$t: the seeds alone are over $MAX_BYTES bytes" >&2; exit 1; }
    rm -f "$big"
  done
  echo "$t: $before -> $(find "$dir" -maxdepth 1 -type f | wc -l) files, $(total "$dir") bytes"
  rm -rf "$seeds" "$seeds.log"
done
