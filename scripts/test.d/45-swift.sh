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
cp -a swift/Package.swift swift/Sources swift/Tests "$work/pkg/"
cp tests/vectors/packed-objects.txt "$work/packed-objects.txt"
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

# Peers beside it, each alive while this script holds its stdin (a FIFO) open: the hostile
# peer (the cut-group test) and moq-relay-ietf 0.7.31 (draft 16, scripts/build-draft16-relay;
# the draft-16 test).
peer_pids=()
trap 'exec 7>&-; kill "$RELAY_PID" "${peer_pids[@]}" 2>/dev/null || true' EXIT
start_peer() { # NAME FLAG
  local name=$1 flag=$2 fd
  rm -f "$work/$name-control" "$work/$name.env"
  mkfifo "$work/$name-control"
  "$target/debug/moq-test-relay" "$flag" < "$work/$name-control" > "$work/$name.env" 2>/dev/null &
  peer_pids+=($!)
  exec {fd}>"$work/$name-control"
  for _ in $(seq 300); do grep -q '^READY$' "$work/$name.env" && break; sleep 0.1; done
  grep -q '^READY$' "$work/$name.env" || { echo "the $name peer did not start" >&2; exit 1; }
  cp "$(peer_value "$name" MOQ_RELAY_CA_FILE)" "$work/$name-ca.pem"
}
peer_value() { sed -n "s/^$2=//p" "$work/$1.env"; } # NAME KEY
start_peer hostile --hostile
start_peer draft16 --draft16

link="-Xlinker -L/moq-ffi/lib -Xlinker -rpath -Xlinker /moq-ffi/lib"
in_chroot() {
  chroot "$chroot_dir" env HOME=/root \
    MOQ_RELAY_MOQT_URL="${relay[MOQ_RELAY_MOQT_URL]}" \
    MOQ_RELAY_HTTPS_URL="${relay[MOQ_RELAY_HTTPS_URL]}" \
    MOQ_RELAY_CA_FILE=/moq-ffi/ca.pem \
    MOQ_RELAY_CONTROL=/moq-ffi/relay-control \
    MOQ_RELAY_AUTH_PATH="${relay[MOQ_RELAY_AUTH_PATH]}" \
    MOQ_RELAY_TOKEN="${relay[MOQ_RELAY_TOKEN]}" \
    MOQ_HOSTILE_MOQT_URL="$(peer_value hostile MOQ_RELAY_MOQT_URL)" \
    MOQ_HOSTILE_CA_FILE=/moq-ffi/hostile-ca.pem \
    MOQ_DRAFT16_MOQT_URL="$(peer_value draft16 MOQ_RELAY_MOQT_URL)" \
    MOQ_DRAFT16_CA_FILE=/moq-ffi/draft16-ca.pem \
    MOQ_EXPECTED_VERSION="$(scripts/version)" \
    MOQ_PACKED_VECTORS=/moq-ffi/packed-objects.txt \
    bash -c "cd /moq-ffi/pkg && $1"
}
in_chroot "swift build --build-tests $link"
in_chroot "swift run $link MoqSample \"\$MOQ_RELAY_MOQT_URL\" \"\$MOQ_RELAY_CA_FILE\"" \
  | tee "$target/swift-run.log"
[ "$(grep -c '^received group' "$target/swift-run.log")" -eq 5 ]
in_chroot "swift test $link" 2>&1 | tee "$target/swift-test.log"
# Every XCTest ran and passed, and none was skipped.
grep -E "Executed [0-9]+ tests?, with 0 failures" "$target/swift-test.log" | tail -1
if grep -qiE "skipped" "$target/swift-test.log"; then
  echo "an XCTest was skipped" >&2
  exit 1
fi
echo "swift step done in $(( $(date +%s) - started )) s"
