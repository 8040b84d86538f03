#!/usr/bin/env bash
# Build the C benchmark path program against the shared library in <libdir>.
# Usage (from anywhere): bench/c/build.sh <libdir> <out-binary>
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 <libdir> <out-binary>" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
libdir=$(cd "$1" && pwd)
out=$2
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
# The program loads the library by its SONAME (build.rs), which sits beside it.
ln -sf libmoq_ffi.so "$libdir/libmoq_ffi.so.1"
# The rpath pins the binary to <libdir>, so a debug and a release build can sit side by side.
gcc -O2 -Wall -Wextra -Werror -I "$root/include" "$root/bench/c/bench.c" \
  -L"$libdir" -lmoq_ffi -Wl,-rpath,"$libdir" -lpthread -o "$out"
