/*
 * log.h — the in-memory copy of the stored log entries (loop thread only):
 * entries [base, base+n) in a growable array, each owning a copy of its
 * payload (kept in recycled blocks, see log.c). Prefix removal is O(1)
 * amortized (a moving start), suffix removal frees the tail.
 *
 * Memory the log will need next (a payload block, a larger entry array) can
 * be prepared ahead on another thread: log_wants() says what, log_prep_make()
 * (any thread, touches no log) maps it with every page already faulted in,
 * log_prep_give() hands it to the log. Without preparation the log maps the
 * memory itself when it needs it, and the loop thread pays the page faults.
 */
#ifndef COPYCAT_STORAGE_LOG_H
#define COPYCAT_STORAGE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

/* Bytes of one payload block mapping (a huge page where the system gives
 * them), and how many idle blocks are kept for reuse. */
#define LOG_BLOCK_SIZE (2u << 20)
#define LOG_POOL_MAX 8

struct log_block;

/* What a log would like prepared (see log_wants). */
struct log_want {
  int block;  /* 1: a payload block */
  size_t cap; /* entry arrays of this capacity, or 0 */
};

/* Memory prepared for a log. */
struct log_prep {
  struct log_block *block; /* a payload block, or NULL */
  size_t cap;              /* capacity of e and blk, or 0 (none) */
  struct store_entry *e;
  struct log_block **blk;
};

struct log {
  struct store_entry *e;  /* slots [start, start+n) are in use */
  struct log_block **blk; /* blk[i]: the block holding e[i]'s payload */
  size_t start, n, cap;
  uint64_t base;          /* index of e[start]; the next index when n == 0 */
  struct log_block *cur;  /* block payloads are added to */
  struct log_block *pool; /* idle blocks kept for reuse */
  size_t npool;
  struct log_prep spare_arrays; /* prepared larger arrays (cap 0: none) */
};

void log_init(struct log *l, uint64_t base);
void log_free(struct log *l);
static inline uint64_t log_first(const struct log *l) {
  return l->base;
}
static inline uint64_t log_last(const struct log *l) {
  return l->base + l->n - 1;
}
/* Copy n entries (payloads too) onto the end; they must continue the log.
 * All or nothing: 0 or STORE_ENOMEM. */
int log_append(struct log *l, const struct store_entry *src, size_t n);
/* Drop entries with index >= from. */
void log_truncate(struct log *l, uint64_t from);
/* Drop entries with index <= up_to; the log then starts at up_to + 1 at
 * the earliest (empty, with base = up_to + 1, when up_to >= last). */
void log_compact(struct log *l, uint64_t up_to);
/* The entry with this index, or NULL. */
const struct store_entry *log_get(const struct log *l, uint64_t index);

/* What to prepare so that the next appends touch no fresh memory: a block
 * when less than one block of payload room is left, larger arrays when the
 * entry array is half full. 1 when something is wanted, else 0. */
int log_wants(const struct log *l, struct log_want *want);
/* Any thread: map and fault in what `want` asks for into *out (what could
 * not be had stays NULL/0). */
void log_prep_make(const struct log_want *want, struct log_prep *out);
/* Hand prepared memory to the log (which frees what it cannot use). */
void log_prep_give(struct log *l, struct log_prep *p);
/* Free prepared memory that was not given to a log. */
void log_prep_free(struct log_prep *p);

#endif
