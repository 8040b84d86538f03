#!/usr/bin/env bash
# Python: build the manylinux wheel a user would install (maturin --zig, release, glibc 2.17
# baseline; auditwheel checks the tag), install that wheel (not the source tree) into a fresh
# virtualenv, and run python-tests/ against it and the test relay.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
scripts/build-workspace

# The build tools, from PyPI (ziglang provides the zig linker maturin uses to target glibc 2.17).
tools="$target/wheel-tools"
[ -x "$tools/bin/maturin" ] || {
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --upgrade pip
  "$tools/bin/pip" install -q "maturin>=1.8,<2" ziglang auditwheel
}
started=$(date +%s)
rm -rf "$target/wheels-test"
# The dist profile: release without debug information (Cargo.toml).
PATH="$tools/bin:$PATH" maturin build --profile dist --zig --compatibility manylinux_2_17 \
  -o "$target/wheels-test" > "$target/wheel-build.log" 2>&1 \
  || { cat "$target/wheel-build.log"; echo "the wheel did not build" >&2; exit 1; }
wheel=$(ls "$target"/wheels-test/moqkit-*-py3-none-manylinux*_x86_64.whl)
echo "built $(basename "$wheel") ($(stat -c %s "$wheel") bytes) in $(( $(date +%s) - started )) s"
"$tools/bin/auditwheel" show "$wheel" | tr '\n' ' ' | grep -q 'consistent with the following platform tag: "manylinux_2_17_x86_64"' \
  || { "$tools/bin/auditwheel" show "$wheel"; echo "the wheel is not manylinux_2_17" >&2; exit 1; }

venv="$target/python-test-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q pytest "$wheel"
cd "$root/python-tests"   # import the installed package, not the source tree
MOQ_TEST_RELAY_BIN="$target/debug/moq-test-relay" "$venv/bin/python" -m pytest -q -p no:cacheprovider .
# Again through moq-relay-ietf on the published moq-transport (the relay users meet; the
# relay binary starts scripts/build-upstream-relay's moq-upstream-relay).
echo "--- python-tests through the unpatched relay (MOQ_TEST_RELAY=upstream)"
MOQ_TEST_RELAY=upstream MOQ_TEST_RELAY_BIN="$target/debug/moq-test-relay" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider .
# Tokens through moq-relay-ietf 0.7.31 (draft 16) with its token checking on (the rest of
# the suite expects draft 18; test_drafts.py covers that relay's data path).
echo "--- python-tests/test_auth.py through the draft-16 relay (MOQ_TEST_RELAY=draft16)"
MOQ_TEST_RELAY=draft16 MOQ_TEST_RELAY_BIN="$target/debug/moq-test-relay" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider test_auth.py
