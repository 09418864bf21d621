#!/usr/bin/env bash
# Builds the NSS FIPS loader (loader.c: a PKCS#11 module whose C_GetFunctionList is softokn's
# FC_GetFunctionList) with the system C compiler for the softokn at $1, when the library is
# missing, older than its source, or built for another softokn. Needs a C compiler and the PKCS#11
# header of Debian's libp11-kit-dev. Prints the library's path.
set -euo pipefail
softokn="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/loader.c"
lib="$here/build/libkeyward-nss-fips-loader.so"
stamp="$here/build/softokn-path"
if [ ! -f "$lib" ] || [ "$src" -nt "$lib" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$softokn" ]; then
  mkdir -p "$here/build"
  # Built under temporary names and renamed, so test processes building at once never load half a file.
  tmp="$(mktemp "$here/build/.libkeyward-nss-fips-loader.XXXXXX")"
  tmpstamp="$(mktemp "$here/build/.softokn-path.XXXXXX")"
  trap 'rm -f "$tmp" "$tmpstamp"' EXIT
  "${CC:-cc}" -shared -fPIC -O2 -Wall -Wextra -Werror -I/usr/include/p11-kit-1 -DSOFTOKN_PATH="\"$softokn\"" -o "$tmp" "$src" -ldl
  echo "$softokn" > "$tmpstamp"
  mv -f "$tmp" "$lib"
  mv -f "$tmpstamp" "$stamp"
fi
echo "$lib"
