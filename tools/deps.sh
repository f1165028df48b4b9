#!/bin/sh
# Install the Debian packages copycat-lua needs, if any are missing.
# Idempotent and silent when everything is present. Needs root (or sudo).
#   tools/deps.sh          what the build, the tests and `make bench` need
#   tools/deps.sh --etcd   what bench/etcd_compare.sh needs (etcd, gRPC for
#                          Python); the packages' etcd service is not started
set -eu

PKGS="gcc make pkg-config liblua5.4-dev lua5.4 libuv1-dev libmsgpack-dev libssl-dev openssl libxxhash-dev libh2o-dev libjansson-dev lua-cjson lua-busted lua-check python3 iproute2 nftables"
ETCD=0
case "${1:-}" in
  --etcd) ETCD=1; PKGS="etcd-server etcd-client python3-grpcio python3-grpc-tools wrk curl" ;;
  "") ;;
  *) echo "usage: tools/deps.sh [--etcd]" >&2; exit 2 ;;
esac

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing packages:$missing — and no apt-get here; install them with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "deps: missing packages:$missing — run 'make deps' as root" >&2
    exit 1
  fi
fi

# etcd-server's maintainer scripts start a system etcd on 2379/2380. While
# installing it, a policy-rc.d (when the machine has none) tells invoke-rc.d
# not to start services; on systemd, the unit is then stopped and disabled.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
# The trap's last status must not become the script's: under dash an EXIT
# trap whose last command fails turns a successful install into exit 1.
cleanup() {
  if [ "$OWN_POLICY" -eq 1 ]; then $SUDO rm -f "$POLICY"; fi
  return 0
}
trap cleanup EXIT INT TERM
if [ "$ETCD" -eq 1 ] && [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# written by copycat-lua tools/deps.sh --etcd during apt-get install\nexit 101\n' |
    $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  OWN_POLICY=1
fi

echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq >/dev/null; then
  echo "deps: 'apt-get update' failed; check the machine's package sources and network, then run 'make deps' again" >&2
  exit 1
fi
# shellcheck disable=SC2086
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
  echo "deps: 'apt-get install$missing' failed (see apt-get's message above); fix it and run 'make deps' again" >&2
  exit 1
fi
if [ "$ETCD" -eq 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now etcd.service >/dev/null 2>&1 || true
fi
echo "deps: done"
