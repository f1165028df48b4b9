#!/bin/sh
# Server CPU per write: the CPU time (user + system) the three servers of a
# kv cluster on 127.0.0.1 (data on disk) spend per put, 64 client tasks x
# 200 puts a round, 5 rounds; prints each round and the median. CPU time is
# less sensitive than writes/s to other load on the machine.
# With a second binary (an older build, copied aside before a change), a
# cluster of each runs side by side and the rounds alternate, so both see
# the same machine; the load generator is always BUILD's.
# Usage: bench/kv_cpu.sh [BUILD] [BASELINE_BINARY]; asserts nothing.
set -u
BUILD=${1:-build}
BIN=$BUILD/copycat-lua
BASE=${2:-}
DIR=$(mktemp -d)
PORT=$((20000 + ($$ + 4099) % 20000))
pids=""
new_pids="" base_pids=""
cleanup() { for p in $pids; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM

addrs() { echo "127.0.0.1:$1,127.0.0.1:$(($1 + 1)),127.0.0.1:$(($1 + 2))"; }
start() { # start KIND BINARY BASE_PORT N
  kind=$1 bin=$2 base=$3 n=$4
  "$bin" examples/kv/server.lua --name "n$n" --address "127.0.0.1:$((base + n - 1))" \
    --data "$DIR/$kind$n" --bootstrap "$(addrs "$base")" --election-timeout 300 \
    --heartbeat-interval 30 >"$DIR/out-$kind$n" 2>&1 &
  pids="$pids $!"
  eval "${kind}_pids=\"\$${kind}_pids $!\""
}
ticks() { # CPU clock ticks (user + system) of the given processes
  sum=0
  for pid in "$@"; do sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
  echo "$sum"
}
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
round() { # round KIND ADDRS: appends the servers' CPU us per write
  kind=$1 addrs=$2
  eval "set -- \$${kind}_pids"
  t0=$(ticks "$@")
  timeout 120 "$BIN" bench/kv_load.lua "$addrs" 64 200 >/dev/null
  awk -v t=$(($(ticks "$@") - t0)) -v hz="$hz" 'BEGIN { printf "%.0f\n", t / hz / (64 * 200) * 1e6 }' \
    >>"$DIR/$kind"
}
NEW=$(addrs "$PORT")
OLD=$(addrs $((PORT + 3)))
for n in 1 2 3; do
  start new "$BIN" "$PORT" "$n"
  [ -n "$BASE" ] && start base "$BASE" $((PORT + 3)) "$n"
done
sleep 1.5
# A first round each, not counted: leaders elected, connections made.
timeout 120 "$BIN" bench/kv_load.lua "$NEW" 64 50 >/dev/null
[ -n "$BASE" ] && timeout 120 "$BIN" bench/kv_load.lua "$OLD" 64 50 >/dev/null
for run in 1 2 3 4 5; do
  round new "$NEW"
  [ -n "$BASE" ] && round base "$OLD"
done
median() { sort -n "$1" | sed -n 3p; }
echo "kv cluster, servers' CPU per write (all 3, us): 3 nodes, disk, loopback, 64 tasks x 200 puts, 5 rounds"
echo "  $BIN: $(tr '\n' ' ' <"$DIR/new")(median $(median "$DIR/new"))"
if [ -n "$BASE" ]; then
  echo "  $BASE: $(tr '\n' ' ' <"$DIR/base")(median $(median "$DIR/base"))"
  awk -v n="$(median "$DIR/new")" -v b="$(median "$DIR/base")" \
    'BEGIN { if (b > 0) printf "  this build / baseline (medians): %.2f\n", n / b }'
fi
