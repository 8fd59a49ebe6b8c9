#!/usr/bin/env bash
# Re-record the crash output that tests/e2e/test_triage.py reads. The tests read these
# recordings so that they need no compiler; run this on a machine with gcc (with
# AddressSanitizer), cargo and a JDK to make them anew:  bash tests/data/triage/record.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Each run appends a log line, then the program's stdout and stderr, as a service log would.
run() {
  local log="$1"; shift
  local out
  out="$("$@" 2>&1 || true)"
  printf '%s INFO request started\n%s\n' "$(date +%H:%M:%S)" "$out" >> "$log"
}

rm -f "$here"/native.log "$here"/rust.log "$here"/java.log

cp "$here/bugs.c" "$work/"
(cd "$work" && gcc -g -O0 -fsanitize=address bugs.c -o asan && gcc -g -O0 bugs.c -o plain)
for args in "uaf 0" "uaf 1" "overflow 0" "overflow 1" "overflow 2"; do
  # shellcheck disable=SC2086
  (cd "$work" && ASAN_OPTIONS=detect_leaks=0 run "$here/native.log" ./asan $args)
done
for _ in 1 2; do  # a shell reports the signal: "bash: line 1: N Segmentation fault"
  (cd "$work" && run "$here/native.log" bash -c './plain segv 0; exit $?')
done

(cd "$work" && cargo new -q --vcs none crasher)
cp "$here/crasher.rs" "$work/crasher/src/main.rs"
(cd "$work/crasher" && cargo build -q --offline)
for args in "index 7" "index 9" "none a" "none b" "none c"; do
  # shellcheck disable=SC2086
  (cd "$work" && RUST_BACKTRACE=0 run "$here/rust.log" ./crasher/target/debug/crasher $args)
done
# Two panics on one source line: `expect` (PORT unset) and `unwrap` on a ParseIntError; one of
# each with a backtrace, which must not make it a root cause of its own.
for port in "" "" "80x" "9o"; do
  (cd "$work" && unset PORT && if [ -n "$port" ]; then export PORT="$port"; fi &&
     RUST_BACKTRACE=0 run "$here/rust.log" ./crasher/target/debug/crasher port)
done
(cd "$work" && unset PORT && RUST_BACKTRACE=1 run "$here/rust.log" ./crasher/target/debug/crasher port)
(cd "$work" && PORT=7x RUST_BACKTRACE=1 run "$here/rust.log" ./crasher/target/debug/crasher port)

cp "$here/Crash.java" "$work/"
(cd "$work" && javac Crash.java)
for args in "save 101" "save 202" "div abc 0" "div xy 0" "div q zero" "async one" "async two"; do
  # shellcheck disable=SC2086
  (cd "$work" && run "$here/java.log" java -cp . Crash $args)
done
# The recordings name the temporary build folder; make them stable.
sed -i "s#$work#/tmp/triage-build#g" "$here"/native.log "$here"/rust.log "$here"/java.log
