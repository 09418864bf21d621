#!/usr/bin/env bash
# Mutation testing (StrykerJS) of the security-critical modules, one group after another:
#   crypto-core    src/crypto, src/core/{quorum,shares,rekey,policy,token-store,seal-config}.ts
#   barrier-token  src/barrier, src/pkcs11, src/storage/file.ts
# `npm run mutate` runs both; `npm run mutate -- barrier-token` one; extra arguments go to Stryker
# (`npm run mutate -- crypto-core --mutate src/crypto/shamir.ts`). Reports: reports/mutation/.
# Exits non-zero when a group's score is under 85 %.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
groups=(crypto-core barrier-token)
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then groups=("$1"); shift; fi
for group in "${groups[@]}"; do
  echo "mutate: $group" >&2
  KEYWARD_MUTATE_GROUP="$group" npx stryker run "$@"
done
