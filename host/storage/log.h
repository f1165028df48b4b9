/*
 * log.h — the in-memory copy of the stored log entries (loop thread only):
 * entries [base, base+n) in a growable array, each owning a copy of its
 * payload (kept in recycled blocks, see log.c). Prefix removal is O(1)
 * amortized (a moving start), suffix removal frees the tail.
 */
#ifndef COPYCAT_STORAGE_LOG_H
#define COPYCAT_STORAGE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

#define LOG_BLOCK_SIZE (1u << 20)
#define LOG_POOL_MAX 16

struct log_block;

struct log {
  struct store_entry *e;  /* slots [start, start+n) are in use */
  struct log_block **blk; /* blk[i]: the block holding e[i]'s payload */
  size_t start, n, cap;
  uint64_t base;          /* index of e[start]; the next index when n == 0 */
  struct log_block *cur;  /* block payloads are added to */
  struct log_block *pool; /* idle blocks kept for reuse */
  size_t npool;
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

#endif
