#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what it needs, type-checks, then runs
# the unit tests and the native tests against SoftHSM2 through the real PKCS#11 module.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
if [ $# -gt 0 ]; then
  npx vitest run "$@"
  exit
fi
# The load test compares p99 with operations against p99 without: it runs alone, after the rest,
# so that other test files' CPU use cannot land in one of its phases and not the other.
npx vitest run --exclude native-test/load-ops.test.ts
npx vitest run native-test/load-ops.test.ts
