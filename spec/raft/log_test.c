/* The in-memory log: a ring buffer addressed by index, checked against a
 * plain array model under random appends, truncations and compactions. */
#include "harness.h"
#include "raft/internal.h"

static uint64_t rng = 88172645463325252ULL;
static unsigned next(unsigned n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng % n);
}

TEST(log_ring_buffer_matches_a_plain_array) {
  struct raft_log l;
  raft_log_init(&l);
  static uint64_t model[20000]; /* term of each index */
  uint64_t base = 0, last = 0, term = 1;
  struct raft_buf *b = raft_buf_from("p", 1);
  for (int step = 0; step < 20000; step++) {
    unsigned op = next(10);
    if (op < 6 && last < 19000) { /* append a few */
      if (next(4) == 0) term++;
      for (unsigned k = next(40); k > 0; k--) {
        struct raft_entry e = {.term = term, .type = RAFT_COMMAND, .buf = b};
        CHECK_INT(raft_log_append(&l, &e), ==, 0);
        model[++last] = term;
      }
    } else if (op < 8 && last > base) { /* truncate a suffix */
      uint64_t from = base + 1 + next((unsigned)(last - base));
      raft_log_truncate(&l, from);
      last = from - 1;
    } else if (last > base) { /* compact a prefix */
      uint64_t upto = base + next((unsigned)(last - base + 1));
      raft_log_compact(&l, upto);
      base = upto;
    }
    CHECK_INT(l.base, ==, base);
    CHECK_INT(raft_log_last(&l), ==, last);
    if (last > base) {
      uint64_t i = base + 1 + next((unsigned)(last - base));
      CHECK_INT(raft_log_get(&l, i)->term, ==, model[i]);
      CHECK_INT(raft_log_term(&l, last), ==, model[last]);
    }
    CHECK_INT(raft_log_term(&l, last + 1), ==, 0);
  }
  /* Every entry holds a reference on the shared payload. */
  CHECK_INT(b->refs, ==, 1 + (int)(last - base));
  raft_log_free(&l);
  CHECK_INT(b->refs, ==, 1);
  raft_buf_unref(b);
}

TEST(log_reset_restarts_after_a_snapshot) {
  struct raft_log l;
  raft_log_init(&l);
  struct raft_entry e = {.term = 3, .type = RAFT_NOOP};
  for (int k = 0; k < 100; k++)
    raft_log_append(&l, &e);
  raft_log_reset(&l, 500, 7);
  CHECK_INT(raft_log_last(&l), ==, 500);
  CHECK_INT(raft_log_term(&l, 500), ==, 7);
  CHECK_INT(raft_log_term(&l, 499), ==, 0);
  e.term = 8;
  raft_log_append(&l, &e);
  CHECK_INT(raft_log_get(&l, 501)->term, ==, 8);
  raft_log_free(&l);
}

int main(void) {
  RUN(log_ring_buffer_matches_a_plain_array);
  RUN(log_reset_restarts_after_a_snapshot);
  return harness_done();
}
