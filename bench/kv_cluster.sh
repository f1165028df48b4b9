#!/bin/sh
# kv cluster benchmark: a 3-node cluster on 127.0.0.1 with data on disk.
#  1. throughput and latency of puts from 64 concurrent client tasks;
#  2. time from SIGKILL of the leader to the next committed write (5 runs).
# Prints medians; asserts nothing. Usage: bench/kv_cluster.sh [BUILD]
set -u
BUILD=${1:-build}
BIN=$BUILD/copycat-lua
DIR=$(mktemp -d)
PORT=$((20000 + $$ % 20000))
ADDRS="127.0.0.1:$PORT,127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2))"
pids=""
cleanup() { for p in $pids; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM

start() { # start N: server n$N
  n=$1
  "$BIN" examples/kv/server.lua --name "n$n" --address "127.0.0.1:$((PORT + n - 1))" \
    --data "$DIR/n$n" --bootstrap "$ADDRS" --election-timeout 300 --heartbeat-interval 30 \
    >"$DIR/out$n" 2>&1 &
  eval "pid$n=$!"
  pids="$pids $!"
}
for n in 1 2 3; do start $n; done
sleep 1

echo "kv cluster: 3 nodes, disk, loopback"
for run in 1 2 3; do
  timeout 120 "$BIN" bench/kv_load.lua "$ADDRS" 64 200
done | sort -t' ' -k2 -n | sed -n 2p | sed 's/^/  64 tasks x 200 puts (median of 3): /'

results=""
for run in 1 2 3 4 5; do
  rm -f "$DIR/killed"
  timeout 60 "$BIN" bench/kv_failover.lua "$ADDRS" "$DIR/killed" >"$DIR/fo" 2>/dev/null &
  fo=$!
  sleep 0.5
  leader=$(grep -ho "leader=n[0-9]" "$DIR"/out* | tail -n 1 | cut -d= -f2 | tr -d n)
  eval "lp=\$pid$leader"
  kill -KILL "$lp" 2>/dev/null
  touch "$DIR/killed"
  wait "$fo"
  results="$results $(sed -n 's/failover_ms //p' "$DIR/fo")"
  start "$leader"
  sleep 1
done
echo "  leader kill -> next committed write, ms (5 runs):$results"
echo "$results" | tr ' ' '\n' | grep . | sort -n | sed -n 3p | sed 's/^/  median ms: /'
