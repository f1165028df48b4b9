#!/bin/sh
# make test's share of the fault suite (docs/faults.md): one short seeded
# run of every nemesis, then the self-test (a server with a deliberate bug
# must be caught). Ends with "N passed, N failed" for tools/run-tests.sh.
# About 90 s on two cores; `make chaos` runs at length.
#   tests/faults/suite.sh BUILD_DIR
set -u
BUILD=${1:-build}
DURATION=${FAULTS_DURATION:-8}
passed=0
failed=0
why=$(lua5.4 -e 'package.path = "tests/faults/?.lua;" .. package.path
  local w = require("net").unavailable(); if w then print(w) end')
if [ -n "$why" ]; then
  echo "faults: skipped, this machine cannot run them: $why"
  echo "0 passed, 0 failed"
  exit 0
fi
# run NAME EXPECT ARGS...: EXPECT is valid or invalid.
run() {
  name=$1; expect=$2; shift 2
  out=$(COPYCAT_BIN="$BUILD/copycat-lua" lua5.4 tests/faults/run.lua --duration "$DURATION" \
    --out "$BUILD/faults/test-$name" "$@" 2>&1)
  rc=$?
  summary=$(echo "$out" | grep '^nemesis=' | tail -n 1)
  if { [ "$expect" = valid ] && [ $rc -eq 0 ]; } || { [ "$expect" = invalid ] && [ $rc -eq 1 ]; }; then
    passed=$((passed + 1))
    echo "ok   $name: $summary"
  else
    failed=$((failed + 1))
    echo "FAIL $name (expected $expect, exit $rc): kept in $BUILD/faults/test-$name"
    echo "$out" | sed 's/^/    /' | head -n 30
  fi
}
run partition valid --nemesis partition --seed 11
run kill valid --nemesis kill --seed 12
run pause valid --nemesis pause --seed 13
run membership valid --nemesis membership --seed 14
# The self-test: the lease served without a clock (Copycat's old lease) on
# a leader cut off from the others must show as stale reads. Each fault
# cuts off the leader (partition-isolate cut off a follower in about half
# of its faults, and some runs had no stale read to catch).
run bug-lease-no-clock invalid --nemesis partition-isolate-leader --seed 4 --duration 12 --bin "$BUILD/copycat-lua-bugs" \
  --bugs lease-no-clock --keep
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
