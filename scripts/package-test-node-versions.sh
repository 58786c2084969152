#!/usr/bin/env bash
# The package test (test/package/packed-install.test.ts: npm pack, npm install of the tarball into an empty project,
# then `npx caliper serve`, the REST and gRPC clients from ESM and CommonJS, and quantize, all with plain node) on
# other Node versions, taken from the npm registry's `node` package: `npx -p node@N` puts that Node first on PATH, so
# npm, npx, vitest and the `caliper` the test starts all run on it. Not part of `npm test`: each version takes
# minutes (a pack and a full install) and needs the `node` package (from the registry, then npx's cache).
# Usage: scripts/package-test-node-versions.sh [VERSION ...]   (default: 22 24)
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -eq 0 ] && versions=(22 24)
status=0
for version in "${versions[@]}"; do
  echo "== Node ${version}"
  if ! ONNXRUNTIME_NODE_INSTALL=skip npx --yes -p "node@${version}" -- \
    sh -c 'node --version && npx vitest run test/package/packed-install.test.ts'; then
    echo "== Node ${version}: FAILED"
    status=1
  fi
done
exit $status
