#!/usr/bin/env bash
# The committed Kotlin, Swift and Python bindings must match a fresh generation.
exec "$(dirname "$0")/../gen-bindings" --check
