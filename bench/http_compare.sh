#!/bin/sh
# The HTTP gateways side by side: copycat-lua's (docs/http.md) and etcd's
# JSON gateway (grpc-gateway, /v3/kv/put and /v3/kv/range), under the same
# load generator, wrk, with the same Lua script (bench/http_load.lua).
# One fresh 3-node cluster of each on 127.0.0.1 (data on the same disk,
# heartbeat 30 ms, election timeout 300 ms), one after the other; on each:
# puts of 256-byte values over 1, 16, 64 and 256 connections, then
# linearizable reads over 64 (copycat-lua: consistency=linearizable;
# etcd: a range without serializable, which is linearizable), all sent to
# the leader's gateway, DURATION seconds each. Prints a table of
# requests/s, p50 and p99 (wrk's latency), and the ratios copycat/etcd;
# asserts nothing. Usage: bench/http_compare.sh [BUILD]; DURATION (default 5).
set -u
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
BIN=$BUILD/copycat-lua
cd "$(dirname "$0")/.." || exit 1
DURATION=${DURATION:-5}
skip() { echo "http_compare: skipped: $1 (apt-get install -y wrk etcd-server etcd-client)"; exit 0; }
WRK=$(command -v wrk) || skip "wrk is not installed"
ETCD=$(command -v etcd) || skip "etcd is not installed"
ETCDCTL=$(command -v etcdctl) || skip "etcdctl is not installed"
[ -x "$BIN" ] || { echo "http_compare: $BIN not found: run make first" >&2; exit 1; }
for v in $(env | sed -n 's/^\(ETCD[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export ETCDCTL_API=3

DIR=$(mktemp -d "${TMPDIR:-/tmp}/http_compare.XXXXXX")
pids=""
cleanup() {
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { grep -qi ":$(printf '%04X' "$1") " /proc/net/tcp /proc/net/tcp6 2>/dev/null; }
BASE="" try=0
while [ $try -lt 100 ]; do
  b=$((40000 + ($$ * 12 + try * 97) % 19980))
  k=0
  while [ $k -lt 12 ] && ! port_busy $((b + k)); do k=$((k + 1)); done
  if [ $k -eq 12 ]; then BASE=$b; break; fi
  try=$((try + 1))
done
[ -n "$BASE" ] || { echo "http_compare: no 12 free ports found" >&2; exit 1; }
CC_ADDRS="127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))"
CH1=$((BASE + 3)) EC1=$((BASE + 6)) EP1=$((BASE + 9))
EC_ENDPOINTS="http://127.0.0.1:$EC1,http://127.0.0.1:$((EC1 + 1)),http://127.0.0.1:$((EC1 + 2))"
EC_CLUSTER="n1=http://127.0.0.1:$EP1,n2=http://127.0.0.1:$((EP1 + 1)),n3=http://127.0.0.1:$((EP1 + 2))"

stop_all() {
  for p in $round_pids; do kill -TERM "$p" 2>/dev/null; done
  for p in $round_pids; do
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  round_pids=""
}

# load SYSTEM URL MODE CONNS: one wrk run; appends "SYSTEM MODE CONNS ops p50 p99 errors".
load() {
  t=2
  [ "$4" -lt 2 ] && t=1
  out=$("$WRK" -t "$t" -c "$4" -d "${DURATION}s" --timeout 10s -s bench/http_load.lua "$2" -- "$3" 2>&1)
  line=$(echo "$out" | sed -n 's/^result //p')
  if [ -z "$line" ]; then
    echo "  $1 $3 c=$4: wrk failed:" >&2
    echo "$out" | sed 's/^/    /' >&2
    return
  fi
  set -- "$1" "$3" "$4" $line
  # ops/s N p50_ms N p99_ms N requests N errors N
  echo "$1 $2 $3 $5 $7 $9 ${13}" >>"$DIR/results"
  printf '  %-12s %-9s c=%-4s %8s req/s  p50 %7s ms  p99 %7s ms  errors %s\n' "$1" "$2" "$3" "$5" "$7" "$9" "${13}"
}

run_copycat() {
  d=$DIR/cc
  round_pids=""
  mkdir -p "$d"
  sync
  for n in 1 2 3; do
    "$BIN" examples/kv/server.lua --name "n$n" --address "127.0.0.1:$((BASE + n - 1))" \
      --data "$d/n$n" --bootstrap "$CC_ADDRS" --election-timeout 300 --heartbeat-interval 30 \
      --http-address "127.0.0.1:$((CH1 + n - 1))" >"$d/out$n" 2>&1 &
    round_pids="$round_pids $!"
    pids="$pids $!"
  done
  leader="" i=0
  while [ -z "$leader" ] && [ $i -lt 100 ]; do
    sleep 0.1
    for n in 1 2 3; do
      if curl -s "http://127.0.0.1:$((CH1 + n - 1))/v1/status" 2>/dev/null | grep -q '"role":"leader"'; then
        leader=$n
      fi
    done
    i=$((i + 1))
  done
  [ -n "$leader" ] || { echo "  copycat-lua: no leader after 10 s" >&2; stop_all; return 1; }
  url=http://127.0.0.1:$((CH1 + leader - 1))
  for c in 1 16 64 256; do load copycat-lua "$url/v1/commands/put" cc-put $c; done
  load copycat-lua "$url/v1/queries/get?consistency=linearizable" cc-get 64
  stop_all
}

run_etcd() {
  d=$DIR/etcd
  round_pids=""
  mkdir -p "$d"
  sync
  for n in 1 2 3; do
    "$ETCD" --name "n$n" --data-dir "$d/n$n" \
      --listen-peer-urls "http://127.0.0.1:$((EP1 + n - 1))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((EP1 + n - 1))" \
      --listen-client-urls "http://127.0.0.1:$((EC1 + n - 1))" \
      --advertise-client-urls "http://127.0.0.1:$((EC1 + n - 1))" \
      --initial-cluster "$EC_CLUSTER" --initial-cluster-state new \
      --initial-cluster-token "http-compare-$$" \
      --heartbeat-interval 30 --election-timeout 300 \
      --logger zap --log-outputs stderr --log-level warn >"$d/out$n" 2>&1 &
    round_pids="$round_pids $!"
    pids="$pids $!"
  done
  i=0
  until timeout 5 "$ETCDCTL" --endpoints "$EC_ENDPOINTS" --command-timeout 2s endpoint health >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -ge 40 ]; then echo "  etcd: not healthy after 20 s" >&2; stop_all; return 1; fi
    sleep 0.5
  done
  leader="" i=0
  while [ -z "$leader" ] && [ $i -lt 20 ]; do
    leader=$(timeout 5 "$ETCDCTL" --endpoints "$EC_ENDPOINTS" endpoint status -w simple 2>/dev/null |
      awk -F', ' '$5 == "true" { print $1 }' | sed 's/.*://')
    [ -n "$leader" ] || sleep 0.5
    i=$((i + 1))
  done
  [ -n "$leader" ] || { echo "  etcd: no leader after 10 s" >&2; stop_all; return 1; }
  url=http://127.0.0.1:$leader
  for c in 1 16 64 256; do load etcd "$url/v3/kv/put" etcd-put $c; done
  load etcd "$url/v3/kv/range" etcd-get 64
  stop_all
}

echo "HTTP gateways: copycat-lua vs etcd $("$ETCD" --version | sed -n 's/^etcd Version: //p') (JSON gateway), wrk $DURATION s per point"
echo "  3 nodes each on loopback, data in ${TMPDIR:-/tmp}, heartbeat 30 ms, election timeout 300 ms, requests to the leader"
echo "  puts: 256-byte values; reads: linearizable; $(nproc 2>/dev/null || echo ?) cores shared by servers and wrk"
: >"$DIR/results"
run_copycat
run_etcd
echo "summary (req/s, p50 ms, p99 ms; ratio copycat-lua/etcd)"
for m in "put 1" "put 16" "put 64" "put 256" "get 64"; do
  set -- $m
  c=$(awk -v m="cc-$1" -v n="$2" '$2 == m && $3 == n { print $4, $5, $6 }' "$DIR/results")
  e=$(awk -v m="etcd-$1" -v n="$2" '$2 == m && $3 == n { print $4, $5, $6 }' "$DIR/results")
  echo "$1 $2 $c | $e" | awk '{
    name = ($1 == "put" ? "puts" : "lin. reads") " c=" $2
    if (NF < 9) { printf "  %-16s incomplete\n", name; next }
    printf "  %-16s copycat-lua %7.0f/s %6.2f %7.2f   etcd %7.0f/s %6.2f %7.2f   ratio %.2fx, p50 %.2f, p99 %.2f\n",
      name, $3, $4, $5, $7, $8, $9, ($7 > 0 ? $3 / $7 : 0), ($8 > 0 ? $4 / $8 : 0), ($9 > 0 ? $5 / $9 : 0) }'
done
echo "  (req/s ratio above 1 favours copycat-lua; latency ratios below 1 do)"
