#!/bin/sh
# layers.sh: checks that each C folder includes only the layers below it
# (docs/architecture.md): every #include "X" of a file must name a header
# in its own folder or in a folder its layer may use. Prints each breach;
# exit status 1 if there is one. Run by `make lint`.
set -u
status=0
# check FOLDER ROOTS...: quoted includes in FOLDER resolve within ROOTS
check() {
  folder=$1
  shift
  for f in $(find "$folder" -name '*.c' -o -name '*.h' | sort); do
    dir=$(dirname "$f")
    for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
      found=""
      [ -f "$dir/$inc" ] && found=1
      for root in "$@"; do [ -f "$root/$inc" ] && found=1; done
      if [ -z "$found" ]; then
        echo "layers: $f includes \"$inc\", outside what $folder/ may use ($*)" >&2
        status=1
      fi
    done
  done
}
check host host
check machine machine
check bindings bindings host machine
check app app bindings host machine
exit $status
