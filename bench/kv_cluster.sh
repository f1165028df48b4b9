#!/bin/sh
# kv cluster benchmark: a 3-node cluster on 127.0.0.1 with data on disk.
#  1. the machine's floor for one write, measured now (bench/floor.c):
#     fdatasync of 4 KiB and a loopback round trip;
#  2. puts of 100 bytes to the leader from 1, 16, 64 and 256 client tasks
#     (bench/kv_load.lua), BENCH_SECONDS each, BENCH_ROUNDS rounds
#     (each round runs every concurrency once, so a change in the
#     machine's load hits them alike): one table of medians with writes/s,
#     p50, p99, the CPU time of the three servers per write (from
#     /proc/PID/stat), the client's, p50 against the floor, and the
#     ticks of the servers' event loops more than 50 ms late (stalls,
#     from copycat_loop_lag_seconds);
#  3. a pipelining client (BENCH_PIPELINE: connections x submits in flight
#     on each), the native protocol's throughput;
#  4. time from SIGKILL of the leader to the next committed write (5 runs).
# Prints medians; asserts nothing. Usage: bench/kv_cluster.sh [BUILD]
# Environment: BENCH_SECONDS (10), BENCH_ROUNDS (3), BENCH_TASKS
# ("1 16 64 256"), BENCH_PIPELINE ("16x64"; "" skips it), BENCH_FAILOVER
# (5 runs; 0 skips it), BENCH_SERVER_FLAGS (more flags for every server,
# e.g. "--snapshot-threshold 10000000 --hash-interval 0" to see what the
# snapshot and hash forks cost).
set -u
BUILD=${1:-build}
BIN=$BUILD/copycat-lua
SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
TASKS=${BENCH_TASKS:-1 16 64 256}
PIPE=${BENCH_PIPELINE-16x64}
FAILOVERS=${BENCH_FAILOVER:-5}
DIR=$(mktemp -d)
PORT=$((20000 + $$ % 20000))
ADDRS="127.0.0.1:$PORT,127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2))"
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
pids=""
cleanup() { for p in $pids; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM

start() { # start N: server n$N
  n=$1
  "$BIN" examples/kv/server.lua --name "n$n" --address "127.0.0.1:$((PORT + n - 1))" \
    --data "$DIR/n$n" --bootstrap "$ADDRS" --election-timeout 300 --heartbeat-interval 30 \
    --metrics-address "127.0.0.1:$((PORT + 2 + n))" ${BENCH_SERVER_FLAGS:-} >"$DIR/out$n" 2>&1 &
  eval "pid$n=$!"
  pids="$pids $!"
}
ticks() { # CPU clock ticks (user + system, all threads) of the three servers
  echo "$pid1 $pid2 $pid3" | tr ' ' '\n' | while read -r p; do
    awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0
  done | awk '{ s += $1 } END { print s + 0 }'
}
# "COUNT SECONDS STALLS" of the three servers so far, from one scrape of
# each: their log fdatasyncs (how many, seconds in all) and the ticks of
# their loops more than 50 ms late.
counters() {
  for n in 1 2 3; do
    curl -s -m 5 "http://127.0.0.1:$((PORT + 2 + n))/metrics" 2>/dev/null
  done | awk '$1 == "copycat_storage_fsync_seconds_count" { c += $2 }
    $1 == "copycat_storage_fsync_seconds_sum" { s += $2 }
    $1 == "copycat_loop_lag_seconds_count" { l += $2 }
    $1 == "copycat_loop_lag_seconds_bucket{le=\"0.05\"}" { b += $2 }
    END { printf "%d %.6f %d\n", c, s, l - b }'
}
# One run: appends "writes/s p50 p99 server_us client_us failed
# writes_per_fsync fsync_ms stalls" to $DIR/res.KEY.
run() { # run KEY TASKS [PIPELINE]
  key=$1 n=$2
  f0=$(counters)
  t0=$(ticks)
  BENCH_PIPELINE=${3:-0} BENCH_CPU_PIDS="self:$$" timeout $((SECS + 60)) \
    "$BIN" bench/kv_load.lua "$ADDRS" "$n" "${SECS}s" >"$DIR/load" 2>"$DIR/load.err"
  t1=$(ticks)
  f1=$(counters)
  if ! grep -q '^writes/s' "$DIR/load"; then
    echo "  $key: the load client failed: $(head -c 300 "$DIR/load.err")" >&2
    return
  fi
  awk -v t="$((t1 - t0))" -v hz="$HZ" -v f="$f0 $f1" '
    /^writes\/s/ { w = $2; p50 = $4; p99 = $7; ok = $10; fail = $12 }
    /^cpu / { c = $3; sub(/%/, "", c) }
    END { split(f, x, " "); n = x[4] - x[1]; s = x[5] - x[2]; st = x[6] - x[3]
      if (ok > 0) printf "%s %s %s %.1f %.1f %s %.1f %.2f %d\n", w, p50, p99, t / hz / ok * 1e6,
        c / 100 / w * 1e6, fail, (n > 0 ? 3 * ok / n : 0), (n > 0 ? s / n * 1000 : 0), st }' \
    "$DIR/load" >>"$DIR/res.$key"
}
median() { # FILE COLUMN
  cut -d' ' -f"$2" "$1" | sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "kv cluster: 3 nodes, data on disk in ${TMPDIR:-/tmp}, loopback; puts of 100 bytes to the leader"
echo "  machine: $(nproc 2>/dev/null || echo ?) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
floor=$("$BUILD/bench/floor" "${TMPDIR:-/tmp}")
F=$(echo "$floor" | awk '{ print $3 }') L=$(echo "$floor" | awk '{ print $5 }')
W=$(echo "$floor" | awk '{ print $7 }')
echo "  floor: fdatasync of 4 KiB p50 ${F:-?} us, loopback round trip p50 ${L:-?} us;" \
  "one write from one client needs >= ${W:-?} us (fdatasync + 2 round trips)"

for n in 1 2 3; do start $n; done
sleep 1
# Warm-up, not counted: leader elected, connections made.
BENCH_PIPELINE=0 timeout 60 "$BIN" bench/kv_load.lua "$ADDRS" 16 100 >/dev/null 2>&1

r=1
while [ "$r" -le "$ROUNDS" ]; do
  for n in $TASKS; do run "t$n" "$n"; done
  if [ -n "$PIPE" ]; then run pipe "${PIPE%x*}" "${PIPE#*x}"; fi
  r=$((r + 1))
done

echo "  $SECS s per run, medians of $ROUNDS rounds; us: CPU time per completed write (servers: all three);"
echo "  writes/sync: writes per log fdatasync of a server; sync ms: mean fdatasync (all three servers)"
echo "  stalls: ticks of the servers' event loops more than 50 ms late during the run (copycat_loop_lag_seconds)"
printf "  %-8s %9s %8s %8s %11s %10s %10s %7s %12s %9s %7s\n" tasks writes/s "p50 ms" "p99 ms" \
  "servers us" "client us" "p50/floor" failed "writes/sync" "sync ms" stalls
row() { # LABEL KEY
  f=$DIR/res.$2
  [ -s "$f" ] || { printf "  %-8s (no complete run)\n" "$1"; return; }
  p50=$(median "$f" 2)
  printf "  %-8s %9s %8s %8s %11s %10s %10s %7s %12s %9s %7s\n" "$1" "$(median "$f" 1)" "$p50" \
    "$(median "$f" 3)" "$(median "$f" 4)" "$(median "$f" 5)" \
    "$(awk -v p="$p50" -v w="${W:-0}" 'BEGIN { if (w > 0) printf "%.2f", p * 1000 / w; else print "-" }')" \
    "$(median "$f" 6)" "$(median "$f" 7)" "$(median "$f" 8)" "$(median "$f" 9)"
}
for n in $TASKS; do row "$n" "t$n"; done
[ -z "$PIPE" ] || row "${PIPE%x*}x${PIPE#*x}" pipe
[ -z "$PIPE" ] || echo "  (${PIPE%x*}x${PIPE#*x}: ${PIPE%x*} connections, each with its own session and ${PIPE#*x} submits in flight)"
echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

[ "$FAILOVERS" -gt 0 ] 2>/dev/null || exit 0
results=""
i=1
while [ $i -le "$FAILOVERS" ]; do
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
  i=$((i + 1))
done
echo "  leader kill -> next committed write, ms ($FAILOVERS runs):$results"
echo "$results" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { if (NR) print "  median ms: " v[int((NR + 1) / 2)] }'
