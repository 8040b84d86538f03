#!/usr/bin/env bash
# Fuzzing, short run (15 s per target); the long run is `scripts/fuzz 600`.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/fuzz 15
