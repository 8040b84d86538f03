#!/usr/bin/env bash
# Python: build and install the package from a fresh virtualenv (`pip install .`, maturin
# with UniFFI bindings, debug profile), then run python-tests/ against the test relay.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build -q -p moq-test-relay --bin moq-test-relay
venv="$target/python-test-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q pytest
MATURIN_PEP517_ARGS="--profile dev" "$venv/bin/pip" install -q .
cd "$root/python-tests"   # import the installed package, not the source tree
MOQ_TEST_RELAY_BIN="$target/debug/moq-test-relay" "$venv/bin/python" -m pytest -q -p no:cacheprovider .
