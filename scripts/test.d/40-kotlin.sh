#!/usr/bin/env bash
# Kotlin/JVM: `mvn verify` packages dev.moqkit:moqkit as a user gets it (the jar carrying the
# native library, plus sources and javadoc jars; Maven fetches its own dependencies) and runs
# the JUnit suite against that jar and the test relay; then the sample app runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}/debug"
scripts/build-workspace
mvn -B -ntp -f kotlin/pom.xml -Dmoq.lib.dir="$target" clean verify | grep -vE "^\[INFO\] (Download|---|$)"

# The sample, as docs/kotlin.md runs it, against a relay started here.
coproc RELAY { exec "$target/moq-test-relay"; }
trap 'kill $RELAY_PID 2>/dev/null || true' EXIT
while IFS= read -r line <&"${RELAY[0]}"; do
  case "$line" in READY) break ;; MOQ_RELAY_*=*) export "${line?}" ;; esac
done
# What a user downloads: the jar with the native library, and the sources and javadoc jars.
python3 - kotlin/target <<'PY'
import os, sys, zipfile
jars = sys.argv[1]
expect = {"moqkit-0.1.0.jar": "linux-x86-64/libmoqkit.so",
          "moqkit-0.1.0-sources.jar": "dev/moqkit/moq_ffi.kt",
          "moqkit-0.1.0-javadoc.jar": "index.html"}
for jar, entry in expect.items():
    names = zipfile.ZipFile(os.path.join(jars, jar)).namelist()
    assert entry in names, f"{jar} has no {entry}"
    print(f"packaged {jar}: {os.path.getsize(os.path.join(jars, jar)):,} bytes, {len(names)} entries")
PY
output=$(mvn -B -q -f kotlin/pom.xml -Dmoq.lib.dir="$target" exec:java \
  -Dexec.args="$MOQ_RELAY_MOQT_URL $MOQ_RELAY_CA_FILE")
echo "$output"
grep -q "hello #5 from Kotlin" <<<"$output"
