#!/usr/bin/env bash
# Installs what keyward needs on a fresh Debian machine with Node 20+: SoftHSM2 (and OpenSC's
# pkcs11-tool), NSS softokn and its certutil (the second PKCS#11 module of the tests), jq (the tutorials' JSON tool, used by the CLI tests), openssl (test
# certificates), PostgreSQL (the tests' throwaway server), Chromium (the console's browser tests) and python3-hvac (a Vault client)
# from Debian's packages when missing, then the npm packages from the lockfile; builds the console.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
{ [ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null; } || missing+=(softhsm2 opensc)
command -v jq >/dev/null || missing+=(jq)
command -v openssl >/dev/null || missing+=(openssl)
# PostgreSQL server binaries: the tests start throwaway clusters (the restart tests always their own).
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
# The HSM emulator (native-test/hsm-emulator) is C: a compiler and the PKCS#11 header of p11-kit.
command -v cc >/dev/null || missing+=(gcc libc6-dev)
[ -f /usr/include/p11-kit-1/p11-kit/pkcs11.h ] || missing+=(libp11-kit-dev)
# NSS softokn, the second PKCS#11 module the tests run keyward on, and certutil to make its database.
{ [ -e /usr/lib/x86_64-linux-gnu/libsoftokn3.so ] && command -v certutil >/dev/null; } || missing+=(libnss3 libnss3-tools)
# Chromium, the real browser the console's tests drive headless with playwright-core (native-test/ui-console.test.ts).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Debian's python3-hvac (0.11), the Vault client the transit compatibility test drives (native-test/transit-clients.test.ts).
{ [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import hvac' 2>/dev/null; } || missing+=(python3-hvac)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} from Debian's packages" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Reinstall when the lockfile changed since the last install.
stamp=node_modules/.keyward-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# The HSM emulator the native tests and benchmarks load in place of SoftHSM2 (docs/HSM.md); rebuilt when its source changed.
bash native-test/hsm-emulator/build.sh >/dev/null

# Compile src/ to dist/ when any source is newer than the last build: scripts/keyward then starts
# in about two thirds of the time tsx needs (it falls back to tsx while dist/ is stale).
if [ ! -f dist/.built ] || [ -n "$(find src package.json tsconfig.json tsconfig.build.json -newer dist/.built -print -quit)" ]; then
  echo "setup: compiling src/ to dist/" >&2
  rm -rf dist
  npx tsc -p tsconfig.build.json
  touch dist/.built
fi

# Bundle the operator console (ui/, served at /ui/) into dist-ui/ when its sources or the
# packages changed: type-checked, then built by esbuild (ui/build.mjs; docs/UI.md).
if [ ! -f dist-ui/.built ] || [ -n "$(find ui package-lock.json -newer dist-ui/.built -print -quit)" ]; then
  echo "setup: building the console (ui/ to dist-ui/)" >&2
  npx tsc -p ui/tsconfig.json --noEmit
  node ui/build.mjs
fi
