#!/usr/bin/env bash
# Run the Swift benchmark path program (swift/Sources/MoqBench) in the Swift chroot that
# scripts/swift-toolchain prepares (Linux: Debian's swiftlang in a trixie chroot; needs root).
# Usage (from anywhere): bench/swift.sh <libdir> <workload> <count> <size>
# <libdir> holds libmoq_ffi.so: target/release gives a `swift build -c release` program,
# anything else a debug one. Builds when the program is missing or a source or the library is
# newer; the build's output goes to stderr: stdout carries only the RESULT line.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 <libdir> <workload> <count> <size>" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
libdir=$(cd "$1" && pwd)
shift
chroot_dir="${MOQ_SWIFT_CHROOT:-/var/cache/moq-ffi/swift-trixie}"
config=debug
[ "$(basename "$libdir")" = release ] && config=release
inside="/moq-ffi/bench-$config"      # the package, library and CA as the chroot sees them
work="$chroot_dir$inside"
program="$work/pkg/.build/$config/MoqBench"
mkdir -p "$work/lib"
(
  # Serialise the build step between concurrent invocations.
  flock 9
  if [ ! -x "$program" ] || [ "$libdir/libmoq_ffi.so" -nt "$program" ] ||
     [ -n "$(find "$root/swift/Sources" "$root/swift/Package.swift" -newer "$program" -type f -print -quit)" ]; then
    mkdir -p "$work/pkg"
    rm -rf "$work/pkg/Package.swift" "$work/pkg/Sources" "$work/pkg/Tests"
    cp -a "$root/swift/Package.swift" "$root/swift/Sources" "$root/swift/Tests" "$work/pkg/"
    cp "$libdir/libmoq_ffi.so" "$work/lib/"
    ln -sf libmoq_ffi.so "$work/lib/libmoq_ffi.so.1"   # the SONAME build.rs gives it
    chroot "$chroot_dir" env HOME=/root bash -c "cd $inside/pkg && swift build -c $config --product MoqBench \
      -Xlinker -L$inside/lib -Xlinker -rpath -Xlinker $inside/lib" </dev/null >&2
    touch "$program"
  fi
) 9>"$work/.build.lock"

# The relay's CA, where the chroot can read it.
ca="ca-$$.pem"
cp "${MOQ_RELAY_CA_FILE:?MOQ_RELAY_CA_FILE must be set}" "$work/$ca"
trap 'rm -f "$work/$ca"' EXIT
chroot "$chroot_dir" env MOQ_RELAY_MOQT_URL="${MOQ_RELAY_MOQT_URL:?}" MOQ_RELAY_CA_FILE="$inside/$ca" \
  "$inside/pkg/.build/$config/MoqBench" "$@"
