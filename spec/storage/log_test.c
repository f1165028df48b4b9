/*
 * log_test.c — the in-memory log: payload copies across block boundaries,
 * entries larger than a block, truncation and compaction reusing blocks,
 * all-or-nothing appends, memory prepared ahead being the memory used.
 */
#include "harness.h"
#include "storage/log.h"
#include "util.h"

static uint32_t len_of(uint64_t index) {
  if (index % 1000 == 0) return LOG_BLOCK_SIZE + 100; /* > one block */
  return (uint32_t)((index * 7919) % 3000);
}

static void append_n(struct log *l, uint64_t first, size_t n, uint64_t term) {
  for (size_t i = 0; i < n; i++) {
    uint64_t idx = first + i;
    uint32_t len = len_of(idx);
    uint8_t *p = malloc(len + 1);
    payload_fill(p, len, idx, term);
    struct store_entry e = {idx, term, (uint8_t)(idx % 3), len, p};
    CHECK_INT(log_append(l, &e, 1), ==, 0);
    memset(p, 0xEE, len + 1); /* the log must have its own copy */
    free(p);
  }
}

static void check(const struct log *l, uint64_t a, uint64_t b, uint64_t term) {
  for (uint64_t i = a; i <= b; i++) {
    const struct store_entry *e = log_get(l, i);
    CHECK(e != NULL);
    CHECK(entry_ok_len(e, i, term, len_of(i)));
  }
}

TEST(copies_survive_block_boundaries_and_big_entries) {
  struct log l;
  log_init(&l, 1);
  append_n(&l, 1, 2500, 1);
  CHECK_INT(log_first(&l), ==, 1);
  CHECK_INT(log_last(&l), ==, 2500);
  check(&l, 1, 2500, 1);
  CHECK(log_get(&l, 0) == NULL);
  CHECK(log_get(&l, 2501) == NULL);
  log_free(&l);
}

TEST(truncate_and_compact_reuse_memory_safely) {
  struct log l;
  log_init(&l, 1);
  for (int round = 0; round < 20; round++) {
    uint64_t first = log_first(&l), last = log_last(&l);
    append_n(&l, last + 1, 700, 1);
    log_truncate(&l, log_last(&l) - 50); /* drop a tail */
    append_n(&l, log_last(&l) + 1, 51, 1);
    log_compact(&l, first + 600); /* drop a prefix */
    check(&l, log_first(&l), log_last(&l), 1);
  }
  /* Compacting past the end leaves an empty log starting after it. */
  uint64_t last = log_last(&l);
  log_compact(&l, last + 10);
  CHECK_INT(l.n, ==, 0);
  CHECK_INT(log_first(&l), ==, last + 11);
  append_n(&l, last + 11, 5, 2);
  check(&l, last + 11, last + 15, 2);
  log_truncate(&l, 0); /* below the start: everything */
  CHECK_INT(l.n, ==, 0);
  log_free(&l);
}

TEST(prepared_memory_is_the_memory_used) {
  struct log l;
  struct log_want w;
  struct log_prep p;
  log_init(&l, 1);
  /* An empty log has no payload room: it wants a block. */
  CHECK_INT(log_wants(&l, &w), ==, 1);
  CHECK_INT(w.block, ==, 1);
  CHECK_INT(w.cap, ==, 0);
  log_prep_make(&w, &p);
  CHECK(p.block != NULL);
  log_prep_give(&l, &p);
  CHECK(p.block == NULL);
  CHECK_INT(l.npool, ==, 1);
  CHECK_INT(log_wants(&l, &w), ==, 0); /* a block of room is ready */
  append_n(&l, 1, 10, 1);
  CHECK_INT(l.npool, ==, 0); /* the appends took the prepared block */
  /* Half-full arrays want doubled ones; growing then uses them. */
  while (l.n < l.cap / 2)
    append_n(&l, log_last(&l) + 1, 1, 1);
  CHECK_INT(log_wants(&l, &w), ==, 1);
  CHECK_INT(w.cap, ==, 2 * l.cap);
  w.block = 0;
  log_prep_make(&w, &p);
  CHECK_INT(p.cap, ==, w.cap);
  struct store_entry *prepared = p.e;
  log_prep_give(&l, &p);
  CHECK_INT(p.cap, ==, 0);
  size_t cap = l.cap;
  while (l.cap == cap)
    append_n(&l, log_last(&l) + 1, 1, 1);
  CHECK(l.e == prepared);
  check(&l, 1, log_last(&l), 1);
  /* Arrays no larger than the log's own are not taken. */
  w.block = 0;
  w.cap = l.cap;
  log_prep_make(&w, &p);
  log_prep_give(&l, &p);
  CHECK_INT(l.spare_arrays.cap, ==, 0);
  log_free(&l);
}

int main(void) {
  RUN(copies_survive_block_boundaries_and_big_entries);
  RUN(truncate_and_compact_reuse_memory_safely);
  RUN(prepared_memory_is_the_memory_used);
  return harness_done();
}
