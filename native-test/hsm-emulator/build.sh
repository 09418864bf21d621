#!/usr/bin/env bash
# Builds the HSM emulator (a PKCS#11 module, see docs/HSM.md) with the system C compiler when the
# library is missing or older than its source. Needs a C compiler and the PKCS#11 header of
# Debian's libp11-kit-dev. Prints the library's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/emulator.c"
lib="$here/build/libkeyward-hsm-emulator.so"
if [ ! -f "$lib" ] || [ "$src" -nt "$lib" ]; then
  mkdir -p "$here/build"
  # Built under a temporary name and renamed, so test processes building at once never load half a file.
  tmp="$(mktemp "$here/build/.libkeyward-hsm-emulator.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  "${CC:-cc}" -shared -fPIC -O2 -Wall -Wextra -Werror -I/usr/include/p11-kit-1 -o "$tmp" "$src" -ldl -lpthread
  mv -f "$tmp" "$lib"
fi
echo "$lib"
