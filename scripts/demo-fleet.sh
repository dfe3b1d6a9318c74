#!/usr/bin/env bash
# The fleet demo: three balancers running xdplb and BIRD behind a router's
# ECMP route, three http.server backends with the decapsulator. The lab is
# the fleet test's (test/helpers/fleet.ts), driven by scripts/demo-fleet.ts,
# bundled here as the benchmark is.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/demo
# The lab's helpers find the checkout and their own files from their directory.
npx esbuild scripts/demo-fleet.ts --bundle --platform=node --format=esm --main-fields=module,main --external:koffi \
  --define:import.meta.dirname="\"$PWD/test/helpers\"" --log-level=warning --outfile=build/demo/fleet.mjs
exec node build/demo/fleet.mjs
