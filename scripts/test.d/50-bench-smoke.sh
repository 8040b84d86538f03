#!/usr/bin/env bash
# Benchmarks, smoke mode: every path program and workload once with tiny counts on the debug
# build, so the benchmark suite keeps compiling and running. (The full run: scripts/bench.)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/bench --smoke
