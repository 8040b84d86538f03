#!/usr/bin/env bash
# The committed Swift bindings must match a fresh generation (Kotlin's and Python's are
# generated at build time, not committed).
exec "$(dirname "$0")/../gen-bindings" --check
