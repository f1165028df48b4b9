#!/bin/sh
# TLS against plain TCP: two 3-node kv clusters on 127.0.0.1 (data on
# disk), one plain and one with TLS for peers and clients, running side by
# side; 64 client tasks x 200 puts against each in turn, 5 rounds
# alternating (so a change in the machine's load hits both alike). Prints
# the median writes/s of each and the ratio TLS/plain, and the servers'
# CPU time per write (less sensitive to other load on the machine than
# writes/s); asserts nothing.
# Usage: bench/kv_tls.sh [BUILD]
set -u
BUILD=${1:-build}
BIN=$BUILD/copycat-lua
DIR=$(mktemp -d)
PORT=$((20000 + ($$ + 7919) % 20000))
pids=""
plain_pids="" tls_pids=""
cleanup() { for p in $pids; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM

"$BIN" ctl certs "$DIR/certs" n1 n2 n3 >/dev/null || exit 1
addrs() { echo "127.0.0.1:$1,127.0.0.1:$(($1 + 1)),127.0.0.1:$(($1 + 2))"; }
PLAIN=$(addrs "$PORT")
TLS=$(addrs $((PORT + 3)))
start() { # start KIND BASE N [flags...]
  kind=$1 base=$2 n=$3
  shift 3
  "$BIN" examples/kv/server.lua --name "n$n" --address "127.0.0.1:$((base + n - 1))" \
    --data "$DIR/$kind$n" --bootstrap "$(addrs "$base")" --election-timeout 300 \
    --heartbeat-interval 30 "$@" >"$DIR/out-$kind$n" 2>&1 &
  pids="$pids $!"
  eval "${kind}_pids=\"\$${kind}_pids $!\""
}
ticks() { # CPU clock ticks (user + system) of the given processes
  sum=0
  for pid in "$@"; do sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
  echo "$sum"
}
load() { # load KIND ADDRS [CA]: one round, appends writes/s and CPU ticks
  kind=$1 addrs=$2 ca=${3:-}
  eval "set -- \$${kind}_pids"
  t0=$(ticks "$@")
  BENCH_TLS_CA="$ca" timeout 120 "$BIN" bench/kv_load.lua "$addrs" 64 200 |
    sed -n 's/^writes\/s \([0-9]*\).*/\1/p' >>"$DIR/$kind"
  echo $(($(ticks "$@") - t0)) >>"$DIR/$kind.ticks"
}
for n in 1 2 3; do
  start plain "$PORT" "$n"
  start tls $((PORT + 3)) "$n" --tls-ca "$DIR/certs/ca.crt" --tls-cert "$DIR/certs/n$n.crt" \
    --tls-key "$DIR/certs/n$n.key"
done
sleep 1.5
# A first round each, not counted: leaders elected, connections made.
timeout 120 "$BIN" bench/kv_load.lua "$PLAIN" 64 50 >/dev/null
BENCH_TLS_CA="$DIR/certs/ca.crt" timeout 120 "$BIN" bench/kv_load.lua "$TLS" 64 50 >/dev/null

for run in 1 2 3 4 5; do
  load plain "$PLAIN"
  load tls "$TLS" "$DIR/certs/ca.crt"
done
median() { sort -n "$1" | sed -n 3p; }
p=$(median "$DIR/plain")
t=$(median "$DIR/tls")
echo "kv cluster, TLS against plain TCP: 3 nodes each, disk, loopback, 64 tasks x 200 puts, 5 rounds alternating"
echo "  plain writes/s: $(tr '\n' ' ' <"$DIR/plain")(median ${p:-?})"
echo "  TLS   writes/s: $(tr '\n' ' ' <"$DIR/tls")(median ${t:-?})"
if [ -n "$p" ] && [ -n "$t" ] && [ "$p" -gt 0 ]; then
  awk -v t="$t" -v p="$p" 'BEGIN { printf "  TLS/plain writes/s (medians): %.2f\n", t / p }'
fi
# 5 rounds x 64 tasks x 200 puts per cluster; ticks are 1/100 s.
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
pc=$(awk '{ s += $1 } END { print s }' "$DIR/plain.ticks")
tc=$(awk '{ s += $1 } END { print s }' "$DIR/tls.ticks")
awk -v p="$pc" -v t="$tc" -v hz="$hz" 'BEGIN {
  n = 5 * 64 * 200
  printf "  servers CPU per write, all 3: plain %.0f us, TLS %.0f us (TLS/plain %.2f)\n",
    p / hz / n * 1e6, t / hz / n * 1e6, (p > 0 ? t / p : 0) }'

