#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what it needs, type-checks, then runs
# the unit tests and the native tests against SoftHSM2 through the real PKCS#11 module.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
npx vitest run "$@"
