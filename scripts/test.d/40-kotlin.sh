#!/usr/bin/env bash
# Kotlin/JVM: compile the generated bindings + idiomatic layer with Maven (fetching its own
# dependencies) and run the JUnit suite against the test relay, then run the sample app.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}/debug"
cargo build -q -p moq-ffi --lib
cargo build -q -p moq-test-relay --bin moq-test-relay
mvn -B -ntp -f kotlin-sample/pom.xml -Dmoq.lib.dir="$target" test | grep -vE "^\[INFO\] (Download|---|$)"

# The sample, as the README runs it, against a relay started here.
coproc RELAY { exec "$target/moq-test-relay"; }
trap 'kill $RELAY_PID 2>/dev/null || true' EXIT
while IFS= read -r line <&"${RELAY[0]}"; do
  case "$line" in READY) break ;; MOQ_RELAY_*=*) export "${line?}" ;; esac
done
output=$(mvn -B -q -f kotlin-sample/pom.xml -Dmoq.lib.dir="$target" exec:java \
  -Dexec.args="$MOQ_RELAY_MOQT_URL $MOQ_RELAY_CA_FILE")
echo "$output"
grep -q "hello #5 from Kotlin" <<<"$output"
