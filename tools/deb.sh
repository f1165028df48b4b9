#!/bin/sh
# deb.sh: build $BUILD/copycat-lua_VERSION_ARCH.deb from the tree with
# dpkg-deb (`make deb`). The files are those `make install PREFIX=/usr`
# installs (the Makefile's INSTALL_FILES), with the C module in Debian's
# multiarch Lua directory; the binaries are stripped, the man page
# gzipped, and Depends is computed by dpkg-shlibdeps from the libraries
# the binaries link.
set -eu
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture; do
  if ! command -v "$tool" >/dev/null; then
    echo "deb: $tool is missing (Debian package dpkg-dev)" >&2
    exit 1
  fi
done
version=$(sed -n 's/^#define COPYCAT_VERSION "\(.*\)"$/\1/p' bindings/version.h)
[ -n "$version" ] || { echo "deb: no COPYCAT_VERSION in bindings/version.h" >&2; exit 1; }
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
work=$BUILD/deb
root=$work/root
rm -rf "$work"
mkdir -p "$root"

"$MAKE" --no-print-directory -s install BUILD="$BUILD" DESTDIR="$root" PREFIX=/usr \
  LUA_CDIR="/usr/lib/$multiarch/lua/5.4"
bin=$root/usr/bin/copycat-lua
so=$root/usr/lib/$multiarch/lua/5.4/copycat/core.so
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$bin" "$so"
gzip -9n "$root/usr/share/man/man1/copycat-lua.1"

# dpkg-shlibdeps wants a source package's layout around the binaries.
mkdir -p "$work/debian"
printf 'Source: copycat-lua\n\nPackage: copycat-lua\nArchitecture: any\n' >"$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O -e "root/usr/bin/copycat-lua" \
  -e "root/usr/lib/$multiarch/lua/5.4/copycat/core.so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

# Debian's usual variables name who built the package.
maintainer="${DEBFULLNAME:-copycat-lua maintainers} <${DEBEMAIL:-root@localhost}>"
size=$(du -sk "$root" | cut -f1)
mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<EOF
Package: copycat-lua
Version: $version-1
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $depends
Suggests: lua5.4
Section: net
Priority: optional
Description: replicated state machines written in Lua
 copycat-lua runs replicated state machines written in Lua 5.4: a small C
 host owns the TCP transport, the durable Raft log and the Raft protocol,
 and Lua scripts own the state machine, the clients and the way servers
 bootstrap, join and leave a cluster. Clients work in sessions with
 exactly-once commands and queries with consistency levels.
 .
 The package holds the program, the copycat Lua library for lua5.4, an
 example key-value store with its server and client, operator scripts, an
 example systemd unit and the documentation.
EOF
(cd "$root" && find usr -type f -exec md5sum {} + | sort -k 2) >"$root/DEBIAN/md5sums"
out=$BUILD/copycat-lua_${version}-1_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "deb: $out (Depends: $depends)"
