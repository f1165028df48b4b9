#!/bin/sh
# The cost of divergence checks on writes: two 3-node kv clusters on
# 127.0.0.1 (data on disk), both with the default snapshot threshold, one
# with state hashes every HASH_INTERVAL entries (default 100000, the
# servers' default; the hash runs in a forked child, the snapshot's when
# one is due), one without (--hash-interval 0). The load (bench/kv_load.lua,
# 64 tasks x HASH_PUTS puts (default 1600: a run crosses one interval),
# each to a key of its own, so the state grows with every run) alternates
# between them, 5 runs each; prints the median writes/s of each, their
# ratio, and what the hashing cluster spent per hash (in the child, and on
# its event loop). Asserts nothing.
# Usage: [HASH_INTERVAL=N] [HASH_PUTS=N] bench/kv_hashing.sh [BUILD]
set -u
BUILD=${1:-build}
INTERVAL=${HASH_INTERVAL:-100000}
PUTS=${HASH_PUTS:-1600}
BIN=$BUILD/copycat-lua
DIR=$(mktemp -d)
BASE=$((20000 + ($$ + 3571) % 19000))
pids=""
cleanup() { for p in $pids; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM

addrs() { # addrs FIRST_PORT
  echo "127.0.0.1:$1,127.0.0.1:$(($1 + 1)),127.0.0.1:$(($1 + 2))"
}
cluster() { # cluster NAME FIRST_PORT INTERVAL FIRST_METRICS_PORT
  for n in 1 2 3; do
    "$BIN" examples/kv/server.lua --name "n$n" --address "127.0.0.1:$(($2 + n - 1))" \
      --data "$DIR/$1/n$n" --bootstrap "$(addrs "$2")" --election-timeout 300 \
      --heartbeat-interval 30 --hash-interval "$3" \
      --metrics-address "127.0.0.1:$(($4 + n - 1))" >"$DIR/$1.out$n" 2>&1 &
    pids="$pids $!"
  done
}
cluster on "$BASE" "$INTERVAL" $((BASE + 10))
cluster off $((BASE + 3)) 0 $((BASE + 13))
sleep 1

for run in 1 2 3 4 5; do
  for mode in on off; do
    port=$BASE
    [ "$mode" = off ] && port=$((BASE + 3))
    timeout 300 "$BIN" bench/kv_load.lua "$(addrs "$port")" 64 "$PUTS" distinct |
      sed -n 's/^writes\/s \([0-9]*\).*/\1/p' >>"$DIR/res_$mode"
  done
done
median() { sort -n "$1" | sed -n 3p; }
on=$(median "$DIR/res_on")
off=$(median "$DIR/res_off")
echo "kv writes with state hashes: 3 nodes, disk, 64 tasks x $PUTS puts to distinct keys, 5 runs each, alternating"
echo "  hashing on (every $INTERVAL entries):  $(tr '\n' ' ' <"$DIR/res_on")-> median $on writes/s"
echo "  hashing off (--hash-interval 0):   $(tr '\n' ' ' <"$DIR/res_off")-> median $off writes/s"
awk -v a="$on" -v b="$off" 'BEGIN { if (b > 0) printf "  ratio on/off: %.3f\n", a / b }'
# What one hash cost on the hashing cluster (its three members together).
for n in 1 2 3; do
  bash -c "exec 3<>/dev/tcp/127.0.0.1/$((BASE + 10 + n - 1)) && printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n' >&3 && timeout 2 cat <&3" 2>/dev/null
done | awk '/^copycat_state_hashes_total/ { h += $2 } /^copycat_state_hash_seconds_total/ { s += $2 }
  /^copycat_state_hash_loop_seconds_total/ { l += $2 } /^copycat_state_hash_skipped_total/ { k += $2 }
  END { if (h > 0) printf "  hashes: %d (skipped %d), %.1f ms each in the child, %.2f ms each on the event loop (fork)\n", h, k, s / h * 1000, l / h * 1000 }'
