#!/usr/bin/env bash
# Installs the reference node peer for the live interop tests: npm `tchannel`
# pinned at 4.0.1 (see interop/README.md). Used by developers and by .ci/run.
#
#   bash interop/node/install.sh [--clean]
#
# --clean removes node_modules and package-lock.json first (an install from
# scratch, as on a fresh checkout).
set -euo pipefail
cd "$(dirname "$0")"

# node-gyp builds the native dependencies farmhash and sse4_crc32 from
# source: it needs make, a C++ compiler and python3.
missing=()
for tool in node npm make g++ python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "interop/node/install.sh: missing: ${missing[*]}" >&2
  echo "  node and npm run the reference peer; make, g++ and python3 are what node-gyp" >&2
  echo "  needs to build tchannel's native dependencies (farmhash, sse4_crc32)." >&2
  echo "  On Debian: apt-get install -y nodejs npm make g++ python3" >&2
  exit 1
fi

# node-gyp cannot download node's headers here: point it at the installed ones.
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
if [[ ! -f "$npm_config_nodedir/include/node/node.h" ]]; then
  echo "interop/node/install.sh: no node headers at $npm_config_nodedir/include/node" >&2
  echo "  (set npm_config_nodedir to the prefix node was installed under)" >&2
  exit 1
fi

if [[ "${1:-}" == "--clean" ]]; then
  rm -rf node_modules package-lock.json
fi

echo "node $(node --version), npm $(npm --version), headers from $npm_config_nodedir"
start=$(date +%s)
npm install --no-audit --no-fund
echo "npm install took $(( $(date +%s) - start )) s"

# The native modules must have been built (their install scripts ran).
for f in node_modules/farmhash/build/Release/farmhash.node \
         node_modules/sse4_crc32/build/Release/crc32c.node; do
  if [[ ! -f "$f" ]]; then
    echo "interop/node/install.sh: $f was not built (did npm skip install scripts?)" >&2
    exit 1
  fi
done
node -e "require('tchannel'); if (require('tchannel/package.json').version !== '4.0.1') { throw new Error('tchannel is not 4.0.1'); }"
echo "tchannel 4.0.1 ready in interop/node/node_modules"
