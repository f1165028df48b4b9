#!/bin/sh
# copycat-lua against etcd: a 3-node kv cluster of each on 127.0.0.1, data
# on the same disk ($TMPDIR or /tmp), heartbeat 30 ms and election timeout
# 300 ms on both, the same load on both: 1, 16, 64 and 256 concurrent
# client tasks putting a 100-byte value to keys k<task>-<i % 100>, sent to
# the leader, for BENCH_SECONDS each (bench/kv_load.lua for copycat-lua,
# bench/etcd_load.py over etcd's gRPC API for etcd). ROUNDS rounds, each on
# fresh clusters (both start empty; only one system runs at a time, so
# neither's idle heartbeats or garbage collector load the other's run), the
# order flipped every round. After the puts, BENCH_READ_TASKS tasks read
# the same keys back for BENCH_SECONDS (linearizable reads: copycat-lua's
# "get" query at consistency linearizable, etcd's Range without
# serializable), with the leader's log fdatasyncs during the reads (a read
# that wrote the log would show one per read). Prints every run, then one
# table of medians per concurrency and the ratios copycat/etcd; asserts
# nothing.
#
# Usage: bench/etcd_compare.sh [BUILD]
# Environment: ROUNDS (default 3); BENCH_SECONDS (default 10); BENCH_TASKS
# (default "1 16 64 256"); BENCH_READ_TASKS (default "64"; "" skips the
# reads); ETCD_CLIENT_PROCS (default 1): python processes
# that share the etcd load (a run notes any client process above 85% of a
# core: the client then limits the figures).
# Needs etcd-server, etcd-client, python3-grpcio and python3-grpc-tools
# (`make bench-etcd` installs them); skips with one line without them.
set -u
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
BIN=$BUILD/copycat-lua
cd "$(dirname "$0")/.." || exit 1
PY=/usr/bin/python3
ROUNDS=${ROUNDS:-3}
PROCS=${ETCD_CLIENT_PROCS:-1}
SECS=${BENCH_SECONDS:-10}
TASK_LIST=${BENCH_TASKS:-1 16 64 256}
READ_LIST=${BENCH_READ_TASKS-64}

skip() {
  echo "etcd_compare: skipped: $1 (apt-get install -y etcd-server etcd-client python3-grpcio python3-grpc-tools, or make bench-etcd)"
  exit 0
}
ETCD=$(command -v etcd) || skip "etcd is not installed"
ETCDCTL=$(command -v etcdctl) || skip "etcdctl is not installed"
[ -x "$PY" ] || skip "$PY is not installed"
"$PY" -c "import grpc, grpc_tools.protoc" 2>/dev/null || skip "python3-grpcio or python3-grpc-tools is not installed"
[ -x "$BIN" ] || { echo "etcd_compare: $BIN not found: run make first" >&2; exit 1; }

# etcd reads its flags from ETCD_* variables too: none may leak in.
for v in $(env | sed -n 's/^\(ETCD[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export ETCDCTL_API=3

DIR=$(mktemp -d "${TMPDIR:-/tmp}/etcd_compare.XXXXXX")
pids=""
cleanup() {
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Twelve free ports in a row (3 servers + 3 metrics for copycat-lua, 3
# client + 3 peer for etcd), from 20000-39999: never etcd's default
# 2379/2380.
port_busy() { # PORT: some TCP socket on this machine uses it
  grep -qi ":$(printf '%04X' "$1") " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
BASE=""
try=0
while [ $try -lt 100 ]; do
  b=$((20000 + ($$ * 12 + try * 97) % 19980))
  k=0
  while [ $k -lt 12 ] && ! port_busy $((b + k)); do k=$((k + 1)); done
  if [ $k -eq 12 ]; then BASE=$b; break; fi
  try=$((try + 1))
done
[ -n "$BASE" ] || { echo "etcd_compare: no 12 free ports found" >&2; exit 1; }
CC_ADDRS="127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))"
EC1=$((BASE + 3)) EP1=$((BASE + 6)) CM1=$((BASE + 9))
EC_ENDPOINTS="http://127.0.0.1:$EC1,http://127.0.0.1:$((EC1 + 1)),http://127.0.0.1:$((EC1 + 2))"
EC_CLUSTER="n1=http://127.0.0.1:$EP1,n2=http://127.0.0.1:$((EP1 + 1)),n3=http://127.0.0.1:$((EP1 + 2))"

# The etcd client's stubs, generated from our own bench/etcd_kv.proto.
mkdir -p "$DIR/stubs"
cp bench/etcd_kv.proto "$DIR/stubs/"
if ! (cd "$DIR/stubs" && "$PY" -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. etcd_kv.proto); then
  echo "etcd_compare: grpc_tools.protoc failed" >&2
  exit 1
fi
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
export BENCH_CLK_TCK="$CLK_TCK"

stop_all() { # SIGTERM the servers of this round, SIGKILL after 5 s
  for p in $round_pids; do kill -TERM "$p" 2>/dev/null; done
  for p in $round_pids; do
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  round_pids=""
}

# Each run prints its lines and appends "writes/s p50 p99 server-us client-us"
# (the last two: CPU time per write) to $DIR/<system>.res.
run_copycat() { # ROUND
  d=$DIR/cc$1
  round_pids=""
  sync # the previous run's writes are not flushed during this one
  for n in 1 2 3; do
    mkdir -p "$d"
    "$BIN" examples/kv/server.lua --name "n$n" --address "127.0.0.1:$((BASE + n - 1))" \
      --data "$d/n$n" --bootstrap "$CC_ADDRS" --election-timeout 300 --heartbeat-interval 30 \
      --metrics-address "127.0.0.1:$((CM1 + n - 1))" \
      >"$d/out$n" 2>&1 &
    eval "ccpid$n=$!"
    round_pids="$round_pids $!"
    pids="$pids $!"
  done
  # The leader of the highest term any server has reported, within 10 s.
  leader="" i=0
  while [ -z "$leader" ] && [ $i -lt 100 ]; do
    sleep 0.1
    leader=$(cat "$d"/out1 "$d"/out2 "$d"/out3 2>/dev/null |
      sed -n 's/.*leader=n\([0-9]\) term=\([0-9]*\).*/\2 \1/p' | sort -n | tail -n 1 | cut -d' ' -f2)
    i=$((i + 1))
  done
  [ -n "$leader" ] || { echo "  copycat-lua: no leader after 10 s" >&2; stop_all; return 1; }
  watch=""
  for n in 1 2 3; do
    eval "p=\$ccpid$n"
    if [ "$n" = "$leader" ]; then l="n$n(leader)"; else l="n$n"; fi
    watch="$watch${watch:+,}$l:$p"
  done
  url=http://127.0.0.1:$((CM1 + leader - 1))/metrics
  for TASKS in $TASK_LIST; do
    f0=$(fsyncs "$url" copycat_storage_fsync_seconds)
    BENCH_CPU_PIDS="$watch" timeout $((SECS + 120)) "$BIN" bench/kv_load.lua "$CC_ADDRS" "$TASKS" "${SECS}s" \
      >"$d/load" 2>&1
    f1=$(fsyncs "$url" copycat_storage_fsync_seconds)
    report "copycat-lua $TASKS" "$d/load" "$DIR/copycat.$TASKS.res" "$f0" "$f1"
  done
  for TASKS in $READ_LIST; do
    f0=$(fsyncs "$url" copycat_storage_fsync_seconds)
    BENCH_OP=get BENCH_CPU_PIDS="$watch" timeout $((SECS + 120)) "$BIN" bench/kv_load.lua "$CC_ADDRS" "$TASKS" \
      "${SECS}s" >"$d/load" 2>&1
    f1=$(fsyncs "$url" copycat_storage_fsync_seconds)
    report "copycat-lua r$TASKS" "$d/load" "$DIR/copycat.r$TASKS.res" "$f0" "$f1"
  done
  stop_all
  rm -rf "$d"
}

run_etcd() { # ROUND
  d=$DIR/etcd$1
  round_pids=""
  sync
  for n in 1 2 3; do
    mkdir -p "$d"
    "$ETCD" --name "n$n" --data-dir "$d/n$n" \
      --listen-peer-urls "http://127.0.0.1:$((EP1 + n - 1))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((EP1 + n - 1))" \
      --listen-client-urls "http://127.0.0.1:$((EC1 + n - 1))" \
      --advertise-client-urls "http://127.0.0.1:$((EC1 + n - 1))" \
      --initial-cluster "$EC_CLUSTER" --initial-cluster-state new \
      --initial-cluster-token "etcd-compare-$$-$1" \
      --heartbeat-interval 30 --election-timeout 300 \
      --logger zap --log-outputs stderr --log-level warn >"$d/out$n" 2>&1 &
    eval "ecpid$n=$!"
    round_pids="$round_pids $!"
    pids="$pids $!"
  done
  i=0
  until timeout 5 "$ETCDCTL" --endpoints "$EC_ENDPOINTS" --command-timeout 2s endpoint health >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -ge 40 ]; then echo "  etcd: not healthy after 20 s" >&2; stop_all; return 1; fi
    sleep 0.5
  done
  # The member that says it is the leader (status line: endpoint, id, version,
  # db size, is leader, ...).
  leader="" i=0
  while [ -z "$leader" ] && [ $i -lt 20 ]; do
    leader=$(timeout 5 "$ETCDCTL" --endpoints "$EC_ENDPOINTS" endpoint status -w simple 2>/dev/null |
      awk -F', ' '$5 == "true" { print $1 }' | sed 's/.*://')
    [ -n "$leader" ] || sleep 0.5
    i=$((i + 1))
  done
  [ -n "$leader" ] || { echo "  etcd: no leader after 10 s" >&2; stop_all; return 1; }
  watch=""
  for n in 1 2 3; do
    eval "p=\$ecpid$n"
    if [ $((EC1 + n - 1)) = "$leader" ]; then l="n$n(leader)"; else l="n$n"; fi
    watch="$watch${watch:+,}$l:$p"
  done
  url=http://127.0.0.1:$leader/metrics
  for TASKS in $TASK_LIST; do
    f0=$(fsyncs "$url" etcd_disk_wal_fsync_duration_seconds)
    BENCH_CPU_PIDS="$watch" timeout $((SECS + 120)) "$PY" bench/etcd_load.py "$DIR/stubs" "127.0.0.1:$leader" \
      "$TASKS" "${SECS}s" "$PROCS" >"$d/load" 2>&1
    f1=$(fsyncs "$url" etcd_disk_wal_fsync_duration_seconds)
    report "etcd $TASKS" "$d/load" "$DIR/etcd.$TASKS.res" "$f0" "$f1"
  done
  for TASKS in $READ_LIST; do
    f0=$(fsyncs "$url" etcd_disk_wal_fsync_duration_seconds)
    BENCH_OP=get BENCH_CPU_PIDS="$watch" timeout $((SECS + 120)) "$PY" bench/etcd_load.py "$DIR/stubs" \
      "127.0.0.1:$leader" "$TASKS" "${SECS}s" "$PROCS" >"$d/load" 2>&1
    f1=$(fsyncs "$url" etcd_disk_wal_fsync_duration_seconds)
    report "etcd r$TASKS" "$d/load" "$DIR/etcd.r$TASKS.res" "$f0" "$f1"
  done
  stop_all
  rm -rf "$d"
}

# "COUNT SUM" of the Prometheus histogram NAME at URL (the leader's log
# fdatasyncs: how many, seconds in all); "- -" when it cannot be read.
fsyncs() { # URL NAME
  "$PY" - "$1" "$2" <<'EOF' 2>/dev/null || echo "- -"
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
v = {}
for line in text.splitlines():
    parts = line.split()
    if len(parts) == 2 and parts[0] in (sys.argv[2] + "_count", sys.argv[2] + "_sum"):
        v[parts[0][len(sys.argv[2]) + 1:]] = float(parts[1])
print("%d %.6f" % (v["count"], v["sum"]))
EOF
}

report() { # NAME LOADOUT RESULTS FSYNCS_BEFORE FSYNCS_AFTER
  if grep -qE '^(writes|reads)/s' "$2"; then
    what=write
    grep -q '^reads/s' "$2" && what=read
    grep -E '^(writes/s|reads/s|cpu )' "$2" | sed "s/^/  $(printf '%-16s' "$1")/"
    busy=$(sed -n 's/^cpu  client [0-9]*% ([0-9]* process[es]*: \([0-9% ]*\)).*/\1/p' "$2" |
      tr ' ' '\n' | tr -d % | awk '$1 >= 85' | head -n 1)
    [ -z "$busy" ] || echo "  $(printf '%-16s' "$1")note: a client process used $busy% of a core: the client may limit these figures"
    # CPU time per write (or read): the client's, and the three servers'.
    wps=$(sed -n 's/^[a-z]*\/s \([0-9.]*\) .*/\1/p' "$2")
    per=$(grep '^cpu ' "$2" | awk -v w="$wps" 'w > 0 {
      c = $3; sub(/%/, "", c); s = $0; sub(/^[^)]*\)/, "", s); k = split(s, f, " "); t = 0
      for (i = 1; i <= k; i++) if (f[i] ~ /%$/) { sub(/%/, "", f[i]); t += f[i] }
      printf "%.0f %.0f\n", t / 100 / w * 1e6, c / 100 / w * 1e6 }')
    [ -n "$per" ] || per="- -"
    echo "  $(printf '%-16s' "$1")cpu per $what: servers $(echo "$per" | cut -d' ' -f1) us (all three), client $(echo "$per" | cut -d' ' -f2) us"
    ok=$(sed -n 's/.*  ok \([0-9]*\).*/\1/p' "$2")
    echo "$4 $5 $ok" | awk -v n="$(printf '%-16s' "$1")" -v what="$what" '$1 != "-" && $3 != "-" {
      c = $3 - $1
      if (c > 0) printf "  %sleader log fdatasyncs %d: %.1f %ss each, mean %.2f ms\n", n, c, $5 / c, what, ($4 - $2) / c * 1000
      else printf "  %sleader log fdatasyncs 0 during %d %ss\n", n, $5, what }'
    echo "$(sed -n 's/^[a-z]*\/s \([0-9.]*\)  p50 \([0-9.]*\) ms  p99 \([0-9.]*\) ms.*/\1 \2 \3/p' "$2") $per" >>"$3"
  else
    echo "  $1: the load client failed:" >&2
    sed 's/^/    /' "$2" >&2
  fi
}

echo "copycat-lua vs etcd $("$ETCD" --version | sed -n 's/^etcd Version: //p'): 3 nodes each, loopback, data in ${TMPDIR:-/tmp}"
echo "  both: heartbeat 30 ms, election timeout 300 ms; etcd with its default durability (WAL fdatasync)"
echo "  load: $TASK_LIST tasks, ${SECS} s each, puts of 100 bytes to the leader${READ_LIST:+, then $READ_LIST tasks reading those keys (linearizable)}; etcd client: $PROCS python gRPC process(es)"
echo "  machine: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  cpu: % of one core during the load ($(nproc 2>/dev/null || echo ?) cores here)"
r=1
while [ $r -le "$ROUNDS" ]; do
  echo "round $r"
  if [ $((r % 2)) -eq 1 ]; then
    run_copycat $r
    run_etcd $r
  else
    run_etcd $r
    run_copycat $r
  fi
  r=$((r + 1))
done

median() { # FILE COLUMN
  cut -d' ' -f"$2" "$1" | grep -v '^-' | sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "medians per concurrency (copycat-lua / etcd, and the ratio copycat/etcd);"
echo "  writes/s: above 1 favours copycat-lua; latency and cpu: below 1 does; cpu: servers' CPU per write"
[ -z "$READ_LIST" ] || echo "  rN: N tasks reading (linearizable), the figures per read"
printf "  %-6s %-28s %-28s %-28s %-28s\n" tasks "writes/s" "p50 ms" "p99 ms" "server cpu us/write"
any=0
for TASKS in $TASK_LIST $(for t in $READ_LIST; do echo "r$t"; done); do
  c=$DIR/copycat.$TASKS.res e=$DIR/etcd.$TASKS.res
  if [ ! -s "$c" ] || [ ! -s "$e" ]; then
    printf "  %-6s (no complete result)\n" "$TASKS"
    continue
  fi
  any=1
  line=$(printf "  %-6s" "$TASKS")
  for col in 1 2 3 4; do
    cv=$(median "$c" $col) ev=$(median "$e" $col)
    line="$line $(awk -v c="$cv" -v e="$ev" 'BEGIN {
      printf "%-28s", sprintf("%s / %s (%s)", c, e, (e > 0 ? sprintf("%.2f", c / e) : "-")) }')"
  done
  echo "$line"
done
echo "  machine: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$any" = 1 ] || { echo "etcd_compare: no complete result" >&2; exit 1; }
