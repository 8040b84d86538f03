#!/usr/bin/env bash
# Swift: the Swift package builds on Linux (Debian's swiftlang in a trixie chroot, prepared or
# reused by scripts/swift-toolchain), MoqSample publishes and receives 5/5 through the relay,
# and every XCTest passes against it, none skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
chroot_dir="${MOQ_SWIFT_CHROOT:-/var/cache/moq-ffi/swift-trixie}"
started=$(date +%s)
scripts/swift-toolchain "$chroot_dir"
echo "swift toolchain ready in $(( $(date +%s) - started )) s"
scripts/build-workspace

# The package, the library and the relay's CA inside the chroot (its paths are its own).
# The package's .build stays between runs (SwiftPM rebuilds what changed).
work="$chroot_dir/moq-ffi"
mkdir -p "$work/pkg" "$work/lib"
rm -rf "$work/pkg/Package.swift" "$work/pkg/Sources" "$work/pkg/Tests"
cp -a swift-sample/Package.swift swift-sample/Sources swift-sample/Tests "$work/pkg/"
cp "$target/debug/libmoq_ffi.so" "$work/lib/"
ln -sf libmoq_ffi.so "$work/lib/libmoq_ffi.so.1"   # the SONAME build.rs gives it

# The relay reads its commands (`restart`, for the reconnect test) from a FIFO the tests
# can reach inside the chroot; this script holds the FIFO open so the relay never sees EOF.
rm -f "$work/relay-control"
mkfifo "$work/relay-control"
coproc RELAY { exec "$target/debug/moq-test-relay" < "$work/relay-control"; }
exec 7>"$work/relay-control"
trap 'exec 7>&-; kill "$RELAY_PID" 2>/dev/null || true' EXIT
declare -A relay
while read -r line <&"${RELAY[0]}"; do
  [ "$line" = READY ] && break
  relay[${line%%=*}]=${line#*=}
done
cp "${relay[MOQ_RELAY_CA_FILE]}" "$work/ca.pem"

# The hostile peer too (for the cut-group test); it lives while fd 8 holds its stdin open.
rm -f "$work/hostile-control" "$work/hostile.env"
mkfifo "$work/hostile-control"
"$target/debug/moq-test-relay" --hostile < "$work/hostile-control" > "$work/hostile.env" 2>/dev/null &
hostile_pid=$!
exec 8>"$work/hostile-control"
trap 'exec 7>&- 8>&-; kill "$RELAY_PID" "$hostile_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^READY$' "$work/hostile.env" && break; sleep 0.1; done
grep -q '^READY$' "$work/hostile.env" || { echo "the hostile peer did not start" >&2; exit 1; }
hostile_value() { sed -n "s/^$1=//p" "$work/hostile.env"; }
cp "$(hostile_value MOQ_RELAY_CA_FILE)" "$work/hostile-ca.pem"

link="-Xlinker -L/moq-ffi/lib -Xlinker -rpath -Xlinker /moq-ffi/lib"
in_chroot() {
  chroot "$chroot_dir" env HOME=/root \
    MOQ_RELAY_MOQT_URL="${relay[MOQ_RELAY_MOQT_URL]}" \
    MOQ_RELAY_HTTPS_URL="${relay[MOQ_RELAY_HTTPS_URL]}" \
    MOQ_RELAY_CA_FILE=/moq-ffi/ca.pem \
    MOQ_RELAY_CONTROL=/moq-ffi/relay-control \
    MOQ_RELAY_AUTH_PATH="${relay[MOQ_RELAY_AUTH_PATH]}" \
    MOQ_RELAY_TOKEN="${relay[MOQ_RELAY_TOKEN]}" \
    MOQ_HOSTILE_MOQT_URL="$(hostile_value MOQ_RELAY_MOQT_URL)" \
    MOQ_HOSTILE_CA_FILE=/moq-ffi/hostile-ca.pem \
    bash -c "cd /moq-ffi/pkg && $1"
}
in_chroot "swift build --build-tests $link"
in_chroot "swift run $link MoqSample \"\$MOQ_RELAY_MOQT_URL\" \"\$MOQ_RELAY_CA_FILE\"" \
  | tee "$target/swift-sample.log"
[ "$(grep -c '^received group' "$target/swift-sample.log")" -eq 5 ]
in_chroot "swift test $link" 2>&1 | tee "$target/swift-test.log"
# Every XCTest ran and passed, and none was skipped.
grep -E "Executed [0-9]+ tests?, with 0 failures" "$target/swift-test.log" | tail -1
if grep -qiE "skipped" "$target/swift-test.log"; then
  echo "an XCTest was skipped" >&2
  exit 1
fi
echo "swift step done in $(( $(date +%s) - started )) s"
