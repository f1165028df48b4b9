/*
 * harness.h — the C unit-test harness.
 *
 * A test file defines `static void name(void)` functions and a main() that
 * lists them:
 *
 *     TEST(prevote_does_not_bump_term) { ... CHECK(x == 1); ... }
 *     int main(void) { RUN(prevote_does_not_bump_term); return harness_done();
 * }
 *
 * CHECK failures stop the current test (longjmp) and are reported with the
 * file, line and expression. The last line printed is always
 * "N passed, N failed", which tools/run-tests.sh adds to the total.
 * Set HARNESS_FILTER=substring to run only matching tests.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct harness {
  int passed, failed;
  jmp_buf jump;
  const char *current;
};
static struct harness harness_state;

#define TEST(name) static void name(void)

#define CHECK(expr)                                                       \
  do {                                                                    \
    if (!(expr)) {                                                        \
      printf("    %s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
      longjmp(harness_state.jump, 1);                                     \
    }                                                                     \
  } while (0)

#define CHECK_INT(a, op, b)                                                  \
  do {                                                                       \
    long long harness_a_ = (long long)(a), harness_b_ = (long long)(b);      \
    if (!(harness_a_ op harness_b_)) {                                       \
      printf("    %s:%d: check failed: %s %s %s (%lld vs %lld)\n", __FILE__, \
             __LINE__, #a, #op, #b, harness_a_, harness_b_);                 \
      longjmp(harness_state.jump, 1);                                        \
    }                                                                        \
  } while (0)

#define RUN(name) harness_run(#name, name)

static inline void harness_run(const char *name, void (*fn)(void)) {
  const char *filter = getenv("HARNESS_FILTER");
  if (filter && !strstr(name, filter)) return;
  harness_state.current = name;
  if (setjmp(harness_state.jump) == 0) {
    fn();
    harness_state.passed++;
    printf("ok   %s\n", name);
  } else {
    harness_state.failed++;
    printf("FAIL %s\n", name);
  }
  fflush(stdout);
}

static inline int harness_done(void) {
  printf("%d passed, %d failed\n", harness_state.passed, harness_state.failed);
  return harness_state.failed ? 1 : 0;
}

#endif
