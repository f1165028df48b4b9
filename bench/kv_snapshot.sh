#!/bin/sh
# Snapshots of a growing state under load: a 3-node kv cluster on
# 127.0.0.1 (data on disk, election timeout 300 ms, heartbeat 30 ms, a
# snapshot every 20,000 entries) takes 32 client tasks x 6,000 puts, each
# to a key of its own, so that the state grows to 192,000 keys (about 25 MB
# of snapshot). Prints the load's line (writes/s, p50, p99, worst write),
# the snapshots each server took and the elections that happened during
# the load: a snapshot that stalled a leader's event loop past the election
# timeout would show as elections and a worst write of seconds.
# Prints figures; asserts nothing. Usage: bench/kv_snapshot.sh [BUILD]
set -u
BUILD=${1:-build}
BIN=$BUILD/copycat-lua
DIR=$(mktemp -d)
PORT=$((20000 + ($$ + 7919) % 20000))
ADDRS="127.0.0.1:$PORT,127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2))"
pids=""
cleanup() { for p in $pids; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM

for n in 1 2 3; do
  "$BIN" examples/kv/server.lua --name "n$n" --address "127.0.0.1:$((PORT + n - 1))" \
    --data "$DIR/n$n" --bootstrap "$ADDRS" --election-timeout 300 --heartbeat-interval 30 \
    --snapshot-threshold 20000 >"$DIR/out$n" 2>&1 &
  pids="$pids $!"
done
sleep 1
echo "kv snapshots under load: 3 nodes, 32 tasks x 6000 puts to distinct keys"
timeout 300 "$BIN" bench/kv_load.lua "$ADDRS" 32 6000 distinct | sed 's/^/  /'
terms=$(grep -ho "event=leader_changed [^ ]* [^ ]* term=[0-9]*" "$DIR"/out* | sed 's/.*term=//' | sort -un | wc -l)
echo "  snapshots taken: $(grep -h "event=snapshot_taken" "$DIR"/out* | wc -l) (by a child process: $(grep -h "event=snapshot_taken.*by=child" "$DIR"/out* | wc -l))"
echo "  terms with a leader: $terms (1 means no election during the run)"
grep -h "event=snapshot_taken" "$DIR"/out* | sed -n 's/.*bytes=\([0-9]*\) duration_ms=\([0-9.]*\).*/\1 \2/p' |
  sort -n | tail -n 1 | awk '{ printf "  largest snapshot: %.1f MB in %.0f ms\n", $1 / 1e6, $2 }'
