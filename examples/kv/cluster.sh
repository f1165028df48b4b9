#!/bin/sh
# Start a local 3-node key-value cluster on 127.0.0.1:5001-5003 (or from
# $BASE_PORT on), data under ${DATA:-data}/. Ctrl-C stops all three cleanly.
# Run from the repository root after `make` (or use `make run`, which builds
# first: make run BASE_PORT=6001 DATA=data6001), or installed, as
# sh /usr/share/copycat-lua/examples/kv/cluster.sh from any directory. Every connection uses TLS:
# the certificates are made in $DATA/certs on the first run (copycat-lua
# ctl certs, docs/tls.md) and kept after. Each server also serves the
# HTTP/JSON API (docs/http.md) over TLS on loopback, on BASE_PORT+3..+5.
set -u
# The examples and scripts are found beside this file: examples/kv/ in the
# repository, PREFIX/share/copycat-lua/examples/kv/ when installed.
KV=$(dirname "$0")
case $KV in
  examples/kv | */examples/kv) TOP=${KV%examples/kv} ;;
  *) TOP=$KV/../../ ;;
esac
if [ -z "${BIN:-}" ]; then
  if [ -x build/copycat-lua ]; then BIN=build/copycat-lua; else BIN=copycat-lua; fi
fi
DATA=${DATA:-data}
BASE=${BASE_PORT:-5001}
case $BASE in
  ''|*[!0-9]*) echo "cluster.sh: BASE_PORT must be a port number, got '$BASE'" >&2; exit 2 ;;
esac
if [ "$BASE" -lt 1 ] || [ "$BASE" -gt 65530 ]; then
  echo "cluster.sh: BASE_PORT must be from 1 to 65530, got $BASE" >&2; exit 2
fi
A1=127.0.0.1:$BASE A2=127.0.0.1:$((BASE + 1)) A3=127.0.0.1:$((BASE + 2))
MEMBERS=$A1,$A2,$A3
# A restarted server keeps the members (and their addresses) stored in its
# data directory, so a cluster's data cannot move to other ports.
if [ -f "$DATA/base_port" ] && [ "$(cat "$DATA/base_port")" != "$BASE" ]; then
  echo "cluster.sh: $DATA/ holds a cluster on ports from $(cat "$DATA/base_port"), not $BASE;" \
    "give another DATA=DIR, or remove $DATA/ to start afresh" >&2
  exit 1
fi
mkdir -p "$DATA" && echo "$BASE" >"$DATA/base_port"
CERTS=$DATA/certs
if [ ! -f "$CERTS/ca.crt" ]; then
  "$BIN" ctl certs "$CERTS" n1 n2 n3 >/dev/null || exit 1
  echo "made a CA and certificates in $CERTS/"
fi
TLS="--tls-ca $CERTS/ca.crt"
pids=""
stop() {
  trap - INT TERM
  echo "stopping the cluster..."
  for p in $pids; do kill -TERM "$p" 2>/dev/null; done
  wait
  exit 0
}
trap stop INT TERM
i=1
for a in $A1 $A2 $A3; do
  "$BIN" "${TOP}examples/kv/server.lua" --name "n$i" --address "$a" --data "$DATA/n$i" \
    --bootstrap "$MEMBERS" $TLS --tls-cert "$CERTS/n$i.crt" --tls-key "$CERTS/n$i.key" \
    --http-address "127.0.0.1:$((BASE + 2 + i))" &
  pids="$pids $!"
  i=$((i + 1))
done
cat <<MSG
3-node cluster starting: n1=$A1 n2=$A2 n3=$A3 (data in $DATA/)
Talk to it from another terminal:
  $BIN ${TOP}examples/kv/client.lua --cluster $MEMBERS $TLS put greeting hello
  $BIN ${TOP}examples/kv/client.lua --cluster $MEMBERS $TLS get greeting
Or over HTTP/JSON (docs/http.md), from any member:
  curl --cacert $CERTS/ca.crt --resolve n1:$((BASE + 3)):127.0.0.1 -d '{"key":"greeting","value":"hello"}' https://n1:$((BASE + 3))/v1/commands/put
  curl --cacert $CERTS/ca.crt --resolve n2:$((BASE + 4)):127.0.0.1 -d '{"key":"greeting"}' https://n2:$((BASE + 4))/v1/queries/get
  (a member's certificate names the member: --resolve lets curl check it)
Operate it (see "Operating a cluster" in README.md):
  $BIN ctl --socket $DATA/n1 status
  $BIN ctl --socket $DATA/n1 run ${TOP}scripts/transfer-leadership.lua n2
  $BIN ctl --socket $DATA/n1 reload-certs   (after replacing $CERTS/n1.*)
Ctrl-C stops all three servers.
MSG
wait
