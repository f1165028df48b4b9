#!/bin/sh
# Run every suite against the build in $1 (default: build) and print one
# closing line "tests: N passed, N failed" summed from the runners' own counts:
#   - each C unit-test binary (spec/**/*_test.c) ends with "N passed, N failed";
#   - the simulator's CI run ends with "N passed, N failed" (seeds);
#   - the fault suite (tests/faults/suite.sh) ends with "N passed, N failed";
#   - busted ends with "N successes / N failures / N errors / N pending";
#   - Python's unittest (the HTTP API's specs in spec/http and the Python
#     client's in clients/python) ends with "Ran N tests" and "OK" or
#     "FAILED (failures=N, errors=N)".
# With ASAN=1 the busted process preloads the sanitizer runtime so that it can
# load the instrumented copycat/core.so. Exit status: 0 only if all passed.
set -u
BUILD=${1:-build}
export COPYCAT_BUILD="$BUILD"
passed=0
failed=0
status=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# add_counts FILE: take the last "N passed, N failed" line of FILE.
add_counts() {
  line=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then
    echo "!! $2 printed no summary line; counting it as one failure" >&2
    failed=$((failed + 1)); status=1; return
  fi
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  passed=$((passed + p)); failed=$((failed + f))
}

for t in $(find "$BUILD/test" -type f -perm -u+x 2>/dev/null | sort); do
  echo "== $t"
  if ! "$t" >"$log/out" 2>&1; then status=1; fi
  grep -E '^(FAIL|    )' "$log/out" || true
  tail -n 1 "$log/out"
  add_counts "$log/out" "$t"
done

if [ -x "$BUILD/sim" ]; then
  seeds=${SIM_SEEDS:-1000}; steps=${SIM_STEPS:-5000}
  [ -n "${ASAN:-}" ] && seeds=${SIM_SEEDS:-100}
  echo "== $BUILD/sim --seeds $seeds --steps $steps"
  if ! "$BUILD/sim" --seeds "$seeds" --steps "$steps" >"$log/out" 2>&1; then status=1; fi
  tail -n 20 "$log/out"
  add_counts "$log/out" "sim"
fi

# The fault suite's short runs (tests/faults/suite.sh; root, network
# namespaces): not under the sanitizers, whose servers are too slow for it.
if [ -z "${ASAN:-}" ] && [ -x tests/faults/suite.sh ]; then
  echo "== tests/faults/suite.sh"
  if ! tests/faults/suite.sh "$BUILD" >"$log/out" 2>&1; then status=1; fi
  cat "$log/out"
  add_counts "$log/out" "faults"
fi

echo "== busted"
PRELOAD=""
if [ -n "${ASAN:-}" ]; then
  PRELOAD=$(${CC:-cc} -print-file-name=libasan.so)
  export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
fi
LD_PRELOAD="$PRELOAD" lua5.4 /usr/bin/busted --cpath="$BUILD/?.so" -o utfTerminal spec >"$log/busted" 2>&1 || status=1
cat "$log/busted"
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$log/busted" | grep -E '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors?' | tail -n 1)
if [ -z "$summary" ]; then
  echo "!! busted printed no summary; counting it as one failure" >&2
  failed=$((failed + 1)); status=1
else
  s=$(echo "$summary" | sed -E 's/^([0-9]+) success.*/\1/')
  fl=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures? .*/\1/')
  er=$(echo "$summary" | sed -E 's/.* ([0-9]+) errors? .*/\1/')
  passed=$((passed + s)); failed=$((failed + fl + er))
fi

# py_suite DIR: run DIR's test_*.py with unittest and add its counts.
py_suite() {
  echo "== python3 -m unittest discover -s $1"
  if ! python3 -m unittest discover -s "$1" -p 'test_*.py' >"$log/py" 2>&1; then status=1; fi
  cat "$log/py"
  ran=$(grep -E '^Ran [0-9]+ tests?' "$log/py" | tail -n 1 | sed -E 's/^Ran ([0-9]+).*/\1/')
  if [ -z "$ran" ]; then
    echo "!! unittest in $1 printed no summary; counting it as one failure" >&2
    failed=$((failed + 1)); status=1; return
  fi
  bad=0
  for k in failures errors; do
    n=$(grep -E "^FAILED \(" "$log/py" | sed -nE "s/.*$k=([0-9]+).*/\1/p" | tail -n 1)
    bad=$((bad + ${n:-0}))
  done
  skipped=$(grep -E "^(OK|FAILED) \(" "$log/py" | sed -nE "s/.*skipped=([0-9]+).*/\1/p" | tail -n 1)
  passed=$((passed + ran - bad - ${skipped:-0})); failed=$((failed + bad))
}
if command -v python3 >/dev/null; then
  for d in spec/http clients/python; do
    [ -d "$d" ] && py_suite "$d"
  done
else
  echo "!! python3 is missing (make deps): the HTTP specs did not run" >&2
  failed=$((failed + 1)); status=1
fi

[ "$failed" -gt 0 ] && status=1
echo "tests: $passed passed, $failed failed"
exit $status
