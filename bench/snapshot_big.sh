#!/bin/sh
# A large state (default 1 GiB) snapshotted, sent to a new member and
# installed: `make snapshot-big` (not part of make test: it needs a few GiB
# of memory and disk and a minute or two).
#
#   bench/snapshot_big.sh [BUILD] [MIB]
#
# 1. n1 bootstraps alone; a client fills its state with MIB strings of
#    1 MiB; ctl snapshot has it snapshotted (a forked child writes the file).
# 2. n2 starts empty and joins: the leader sends the snapshot in chunks
#    read from its file, n2 streams them to disk and restores from the
#    file.
# 3. Both servers' RSS (VmRSS) is sampled every 100 ms (n2's anonymous
#    part too, and the private pages of n1's snapshot child), and their peak
#    (VmHWM) read at the end (the leader's counts only if it rose during
#    the transfer); the script prints
#    the state size, each server's RSS before and its peak during the
#    transfer and install, and the growth, and fails if n2 does not hold
#    the state afterwards.
set -eu
BUILD=${1:-build}
MIB=${2:-1024}
BIN=$(cd "$(dirname "$BUILD/copycat-lua")" && pwd)/copycat-lua
HERE=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(mktemp -d /tmp/copycat-snapbig.XXXXXX)
PIDS=""
cleanup() {
  for p in $PIDS; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

ports=$("$BIN" -e 'local a = assert(copycat.net.listen("127.0.0.1:0", function() end))
local b = assert(copycat.net.listen("127.0.0.1:0", function() end))
print(a:address():match(":(%d+)$") .. " " .. b:address():match(":(%d+)$")) a:close() b:close()')
P1=${ports% *}
P2=${ports#* }
A1=127.0.0.1:$P1
A2=127.0.0.1:$P2

cat >"$DIR/machine.lua" <<'EOF'
local sm = state_machine() -- luacheck: read globals state_machine
local store = {}
-- fill {from, n}: n values of 1 MiB under keys from .. from+n-1
function sm.commands.fill(c)
  for i = c.args.from, c.args.from + c.args.n - 1 do
    store[i] = string.rep(string.char(65 + i % 26), 1 << 20)
  end
end
function sm.queries.count()
  local n, bytes = 0, 0
  for _, v in pairs(store) do n, bytes = n + 1, bytes + #v end
  return { n = n, bytes = bytes }
end
function sm.snapshot() return store end
function sm.restore(s) store = s end
return sm
EOF

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Anonymous memory only (heap, stacks): VmRSS less the pages of mapped
# files, which the kernel can drop (a snapshot file mapped for a restore).
anon() { awk '/^RssAnon/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# What a forked child has made its own: pages written since the fork
# (copied on write, or new), not those still shared with its parent.
private() { awk '/^Private_Dirty/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

start() { # name address data mode list
  "$BIN" "$HERE/examples/kv/server.lua" --name "$1" --address "$2" --data "$3" $4 \
    --state-machine "$DIR/machine.lua" --sm-memory $(((MIB * 2 + 512) << 20)) \
    --snapshot-threshold 100000000 --hash-interval 0 \
    --election-timeout 3000 --heartbeat-interval 100 >"$DIR/$1.out" 2>"$DIR/$1.err" &
  echo $!
}

P1PID=$(start n1 "$A1" "$DIR/n1" "--bootstrap $A1")
PIDS="$P1PID"
cat >"$DIR/fill.lua" <<'EOF'
local c = copycat.client{ cluster = { arg[1] }, timeout = 60000 }
local total, step = tonumber(arg[2]), 16
for from = 1, total, step do
  local _, err = c:submit("fill", { from = from, n = math.min(step, total - from + 1) })
  assert(err == nil, err)
end
-- Past the entries the leader keeps behind a snapshot (1024), so that
-- the snapshot's compaction drops every fill entry: a new member can then
-- catch up only by the snapshot, never by the log.
for _ = 1, 1100 do assert(c:submit("fill", { from = 1, n = 0 }) == nil) end
c:close()
EOF
"$BIN" "$DIR/fill.lua" "$A1" "$MIB"

# The snapshot of it all, written by a child process (ctl snapshot waits
# for the file).
T=$(date +%s.%N)
"$BIN" ctl --socket "$DIR/n1" --timeout 600 snapshot >"$DIR/snap.out" 2>&1 &
SNAPCTL=$!
PIDS="$PIDS $SNAPCTL"
CHILD_PEAK=0
while kill -0 "$SNAPCTL" 2>/dev/null; do
  for c in $(cat "/proc/$P1PID/task/$P1PID/children" 2>/dev/null); do
    r=$(private "$c"); [ "$r" -gt "$CHILD_PEAK" ] && CHILD_PEAK=$r
  done
  sleep 0.05
done
wait "$SNAPCTL" || { echo "ctl snapshot failed:" >&2; cat "$DIR/snap.out" >&2; exit 1; }
echo "snapshot taken in $(echo "$T $(date +%s.%N)" | awk '{printf "%.1f s", $2 - $1}')"
sleep 1
R1_BEFORE=$(rss "$P1PID")
H1_BEFORE=$(hwm "$P1PID")
SNAP=$(ls -l "$DIR"/n1/snapshot-* | awk '{print $5}')

P2PID=$(start n2 "$A2" "$DIR/n2" "--empty")
PIDS="$PIDS $P2PID"
sleep 1
R2_BEFORE=$(rss "$P2PID")
T0=$(date +%s.%N)
"$BIN" ctl --socket "$DIR/n1" --timeout 600 add n2 "$A2" >"$DIR/add.out" 2>&1 &
ADD=$!
PIDS="$PIDS $ADD"
P1_PEAK=$R1_BEFORE
P2_PEAK=$R2_BEFORE
A2_PEAK=$(anon "$P2PID")
while kill -0 "$ADD" 2>/dev/null; do
  r=$(rss "$P1PID"); [ "$r" -gt "$P1_PEAK" ] && P1_PEAK=$r
  r=$(rss "$P2PID"); [ "$r" -gt "$P2_PEAK" ] && P2_PEAK=$r
  r=$(anon "$P2PID"); [ "$r" -gt "$A2_PEAK" ] && A2_PEAK=$r
  sleep 0.1
done
wait "$ADD" || { echo "ctl add failed:" >&2; cat "$DIR/add.out" >&2; tail "$DIR/n2.err" >&2; exit 1; }
T1=$(date +%s.%N)
R2_AFTER=$(rss "$P2PID")
A2_AFTER=$(anon "$P2PID")
H1_AFTER=$(hwm "$P1PID")
H2_AFTER=$(hwm "$P2PID")
[ "$H2_AFTER" -gt "$P2_PEAK" ] && P2_PEAK=$H2_AFTER
[ "$H1_AFTER" -gt "$H1_BEFORE" ] && [ $((H1_AFTER)) -gt "$P1_PEAK" ] && P1_PEAK=$H1_AFTER
cat >"$DIR/count.lua" <<'EOF'
local c = copycat.client{ cluster = { arg[1] }, timeout = 60000 }
local r = assert(c:query("count", {}, { consistency = "sequential" }))
print(r.n .. " " .. r.bytes) c:close()
EOF
COUNT=$("$BIN" "$DIR/count.lua" "$A2")
INSTALLED=$(grep -hE 'snapshot_installed' "$DIR/n2.err" "$DIR/n2.out" | tail -1)
if [ -z "$INSTALLED" ]; then
  echo "n2 installed no snapshot (it caught up through the log): nothing measured" >&2
  exit 1
fi
echo "n2: $INSTALLED"

kib() { echo "$1" | awk '{printf "%.1f MiB", $1 / 1024}'; }
echo "state: $MIB MiB of values; snapshot file $(echo "$SNAP" | awk '{printf "%.1f MiB", $1 / 1048576}')"
echo "sent and installed in $(echo "$T0 $T1" | awk '{printf "%.1f s", $2 - $1}')"
echo "n1 (leader, sends): RSS before $(kib "$R1_BEFORE"), peak $(kib "$P1_PEAK"), growth $(kib $((P1_PEAK - R1_BEFORE)))"
echo "n2 (new member, receives and installs): RSS before $(kib "$R2_BEFORE"), peak $(kib "$P2_PEAK"), after $(kib "$R2_AFTER")"
echo "n2: peak above its final RSS (what installing cost beyond the state itself): $(kib $((P2_PEAK - R2_AFTER)))"
echo "n2 anonymous memory (RSS less mapped files, sampled every 100 ms): peak $(kib "$A2_PEAK"), after $(kib "$A2_AFTER")"
echo "n1's snapshot child: pages of its own at peak (written since the fork, sampled every 50 ms): $(kib "$CHILD_PEAK")"
echo "n2 holds: $COUNT (values, bytes)"
[ "$COUNT" = "$MIB $((MIB * 1048576))" ] || { echo "n2 does not hold the state" >&2; exit 1; }
