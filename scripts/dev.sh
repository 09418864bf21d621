#!/usr/bin/env bash
# Brings keyward up on its embedded defaults: a SoftHSM2 token it provisions itself, file
# storage in a temp dir, initialized with one share and unsealed, on http://127.0.0.1:8200.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/scripts/keyward" server -dev "$@"
