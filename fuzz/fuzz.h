/*
 * fuzz.h — what every fuzz target in fuzz/ provides.
 *
 * A target is one C file with:
 *   - LLVMFuzzerTestOneInput(data, size): decodes the bytes with one of the
 *     decoders that sees network or disk input, and checks what a decoder
 *     promises (an error code or a value that re-encodes consistently).
 *     It returns 0; a broken promise aborts (FUZZ_CHECK), so libFuzzer and
 *     the standalone driver both report it as a crash;
 *   - fuzz_seeds(add, ud): valid encodings made with the real encoders,
 *     from which fuzz/driver.c mutates (and `make fuzz` writes a libFuzzer
 *     corpus);
 *   - fuzz_target_name: the name used in reports and file names.
 *
 * Built either with clang -fsanitize=fuzzer (libFuzzer's main) or with
 * fuzz/driver.c (plain cc, deterministic mutations).
 */
#ifndef COPYCAT_FUZZ_H
#define COPYCAT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*fuzz_add_fn)(void *ud, const void *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_seeds(fuzz_add_fn add, void *ud);
extern const char fuzz_target_name[];
/* Optional: mutated inputs the standalone driver runs by default. */
extern const unsigned long long fuzz_default_iterations;

#define FUZZ_CHECK(expr)                                                    \
  do {                                                                      \
    if (!(expr)) {                                                          \
      fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, \
              #expr);                                                       \
      abort();                                                              \
    }                                                                       \
  } while (0)

/* Reads every byte of p[0..n) so that a sanitizer checks the bounds of a
 * buffer a decoder handed back. */
static inline void fuzz_touch(const void *p, size_t n) {
  const volatile unsigned char *c = p;
  unsigned char x = 0;
  for (size_t i = 0; i < n; i++)
    x ^= c[i];
  (void)x;
}

#endif
