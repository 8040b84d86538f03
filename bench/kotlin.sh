#!/usr/bin/env bash
# Run the Kotlin benchmark path program (kotlin/.../sample/Bench.kt) with one JVM start.
# Usage (from anywhere): bench/kotlin.sh <libdir> <workload> <count> <size>
# <libdir> holds libmoq_ffi.so (e.g. target/debug or target/release). Compiles kotlin/ when
# Bench is missing or a source is newer, and caches the runtime classpath, so only the first
# call pays for Maven. Maven's output goes to stderr: stdout carries only the RESULT line.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 <libdir> <workload> <count> <size>" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
libdir=$(cd "$1" && pwd)
shift
pom="$root/kotlin/pom.xml"
target="$root/kotlin/target"
classes="$target/classes"
classpath_file="$target/bench-classpath.txt"
main_class="$classes/dev/moqkit/sample/BenchKt.class"

mkdir -p "$target"
(
  # Serialise the build step between concurrent invocations.
  flock 9
  if [ ! -f "$main_class" ] || [ -n "$(find "$root/kotlin/src/main" "$libdir/libmoq_ffi.so" "$pom" \
      -newer "$main_class" -type f -print -quit)" ]; then
    mvn -B -q -ntp -Dstyle.color=never -Dkotlin.compiler.daemon=false -f "$pom" -Dmoq.lib.dir="$libdir" compile </dev/null >&2
  fi
  if [ ! -s "$classpath_file" ] || [ "$pom" -nt "$classpath_file" ]; then
    mvn -B -q -ntp -Dstyle.color=never -f "$pom" dependency:build-classpath -DincludeScope=runtime \
      -Dmdep.outputFile="$classpath_file" </dev/null >&2
  fi
) 9>"$target/.bench-build.lock"

# The bindings load exactly <libdir>'s library (UniFFI's override), not the copy the build put
# into the classes directory (a jar user's path), which may be another profile's.
exec java -Duniffi.component.moq_ffi.libraryOverride="$libdir/libmoq_ffi.so" \
  -cp "$classes:$(cat "$classpath_file")" \
  dev.moqkit.sample.BenchKt "$@"
