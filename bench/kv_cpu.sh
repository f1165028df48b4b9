#!/bin/sh
# Server CPU per write: the CPU time (user + system) the three servers of a
# kv cluster on 127.0.0.1 (data on disk) spend per put, 64 client tasks x
# 200 puts a round, 5 rounds; prints each round and the median. CPU time is
# less sensitive than writes/s to other load on the machine.
# With a second binary (an older build, copied aside before a change), a
# cluster of each runs side by side and the rounds alternate, so both see
# the same machine; the load generator is always BUILD's.
# Usage: bench/kv_cpu.sh [BUILD] [BASELINE_BINARY]; asserts nothing, but
# stops (status 1, with its output) if a server of either cluster exits.
set -u
BUILD=${1:-build}
BIN=$BUILD/copycat-lua
BASE=${2:-}
DIR=$(mktemp -d)
# Port layout: each cluster has a block of SLOT ports, its three servers'
# addresses first, then room for their HTTP and metrics addresses (three
# each, as examples/kv/cluster.sh lays them out), so the two clusters never
# share a port whatever a server listens on. Blocks start below the
# kernel's ephemeral range (32768 on Linux), where the load generator's
# own connections take their ports, and a block with a port in use is
# skipped.
SLOT=10
in_use() { # in_use FIRST COUNT: is one of these ports listened on?
  command -v ss >/dev/null || return 1
  ss -Htln 2>/dev/null | awk -v lo="$1" -v hi=$(($1 + $2 - 1)) \
    '{ n = split($4, a, ":"); p = a[n] + 0; if (p >= lo && p <= hi) found = 1 } END { exit !found }'
}
PORT=$((20000 + ($$ % 600) * 2 * SLOT))
tries=0
while in_use "$PORT" $((2 * SLOT)) && [ $tries -lt 50 ]; do
  PORT=$((PORT + 2 * SLOT)); [ $PORT -ge 32000 ] && PORT=20000
  tries=$((tries + 1))
done
BASE_PORT=$((PORT + SLOT))
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
alive() { # alive KIND: every server of the cluster still runs, or say why not
  kind=$1
  eval "set -- \$${kind}_pids"
  n=0
  for pid in "$@"; do
    n=$((n + 1))
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kv_cpu: server $kind n$n exited:" >&2
      cat "$DIR/out-$kind$n" >&2
      return 1
    fi
  done
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
OLD=$(addrs "$BASE_PORT")
for n in 1 2 3; do
  start new "$BIN" "$PORT" "$n"
  [ -n "$BASE" ] && start base "$BASE" "$BASE_PORT" "$n"
done
sleep 1.5
alive new || exit 1
if [ -n "$BASE" ]; then alive base || exit 1; fi
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
