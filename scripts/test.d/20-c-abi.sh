#!/usr/bin/env bash
# C ABI: header drift is checked by `cargo test` (tests/c_header.rs); this runs the C suite.
exec "$(dirname "$0")/../../tests/c/run.sh"
