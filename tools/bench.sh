#!/bin/sh
# Run every benchmark against the build in $1: each bench/*.c binary, each
# bench/*.sh script, then each bench/*.lua script under copycat-lua. Benchmarks print
# their own figures (medians, and ratios against a baseline measured in the
# same run); nothing here asserts a timing.
set -eu
BUILD=${1:-build}
export COPYCAT_BUILD="$BUILD"
for b in $(find "$BUILD/bench" -type f -perm -u+x 2>/dev/null | sort); do
  echo "== $b"
  "$b"
done
for s in bench/*.sh; do
  echo "== $s"
  case "$s" in # its own target (make bench-etcd) runs 3 rounds
    bench/etcd_compare.sh) ROUNDS=${ROUNDS:-1} "$s" "$BUILD" ;;
    *) "$s" "$BUILD" ;;
  esac
done
for s in bench/*.lua; do
  [ -f "$s" ] || continue
  case "$s" in bench/kv_*.lua) continue ;; esac # driven by kv_cluster.sh
  echo "== $s"
  "$BUILD/copycat-lua" "$s"
done
