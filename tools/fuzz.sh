#!/bin/sh
# Fuzz every decoder named on the command line (fuzz/<name>.c) under
# AddressSanitizer + UBSan, FUZZ_SECONDS (default 60) each.
#
# With clang and its libFuzzer runtime: builds build-fuzz/libfuzzer/<name>,
# writes the target's seeds (valid encodings from the real encoders) into
# build-fuzz/corpus/<name> and runs libFuzzer there; the corpus grows across
# runs. Without them: the standalone driver (fuzz/driver.c) built with cc
# in build-fuzz/driver, FUZZ_ITERATIONS (default 2000000) mutated inputs
# each (FUZZ_SEED picks the sequence).
# Crashing inputs are left in build-fuzz/crashes/. Exit status 1 if any
# target crashed.
set -u
SECONDS_EACH=${FUZZ_SECONDS:-60}
ITERATIONS=${FUZZ_ITERATIONS:-2000000}
FCC=${FUZZ_CC:-clang}
B=build-fuzz
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
MAKE=${MAKE:-make}
status=0

libfuzzer=0
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\n'\
'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) {\n'\
'  (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if command -v "$FCC" >/dev/null 2>&1 &&
  "$FCC" -fsanitize=fuzzer,address "$probe/p.c" -o "$probe/p" 2>/dev/null; then
  libfuzzer=1
fi

mkdir -p "$B/crashes"
# build GOALS...: make the goals quietly, showing the log only on failure.
build() {
  if ! "$@" >"$B/build.log" 2>&1; then
    tail -n 30 "$B/build.log"
    echo "fuzz: build failed (log: $B/build.log)" >&2
    exit 1
  fi
}
if [ "$libfuzzer" = 1 ]; then
  echo "fuzz: libFuzzer ($FCC), $SECONDS_EACH s per target"
  goals=""
  for t in "$@"; do goals="$goals $B/libfuzzer/$t $B/test/fuzz/$t"; done
  # Warnings are gcc's job (make, make lint); clang finds a few more.
  # shellcheck disable=SC2086
  build $MAKE --no-print-directory BUILD=$B CC="$FCC" CFLAGS="-Wno-error" \
    OPT="-O1 -g -fno-omit-frame-pointer" SAN="$SAN -fsanitize=fuzzer-no-link" $goals
  for t in "$@"; do
    corpus="$B/corpus/$t"
    mkdir -p "$corpus"
    ASAN_OPTIONS="detect_leaks=0" "$B/test/fuzz/$t" -w "$corpus" >/dev/null || exit 1
    echo "== $t"
    if ! "$B/libfuzzer/$t" -max_total_time="$SECONDS_EACH" -max_len=4096 \
      -print_final_stats=1 -artifact_prefix="$B/crashes/$t-" "$corpus" \
      >"$B/$t.log" 2>&1; then
      status=1
      echo "!! $t crashed: see $B/$t.log and $B/crashes/"
      grep -E 'ERROR|SUMMARY|fuzz check' "$B/$t.log" | head -n 5
    fi
    grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$B/$t.log" | tail -n 2
  done
else
  echo "fuzz: no libFuzzer; standalone driver, $ITERATIONS inputs per target"
  # A build of its own: the libFuzzer build's objects are clang's.
  D=$B/driver
  goals=""
  for t in "$@"; do goals="$goals $D/test/fuzz/$t"; done
  # shellcheck disable=SC2086
  build $MAKE --no-print-directory BUILD=$D OPT="-O1 -g -fno-omit-frame-pointer" \
    SAN="$SAN" $goals
  for t in "$@"; do
    echo "== $t"
    (cd "$B/crashes" && "../driver/test/fuzz/$t" -n "$ITERATIONS" -s "${FUZZ_SEED:-1}") ||
      status=1
  done
fi
exit $status
