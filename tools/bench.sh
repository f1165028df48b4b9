#!/bin/sh
# Run every benchmark against the build in $1: each bench/*.c binary, then
# each bench/*.lua script under the copycat-lua binary. Benchmarks print
# their own figures (medians, and ratios against a baseline measured in the
# same run); nothing here asserts a timing.
set -eu
BUILD=${1:-build}
export COPYCAT_BUILD="$BUILD"
for b in $(find "$BUILD/bench" -type f -perm -u+x 2>/dev/null | sort); do
  echo "== $b"
  "$b"
done
for s in bench/*.lua; do
  [ -f "$s" ] || continue
  echo "== $s"
  "$BUILD/copycat-lua" "$s"
done
