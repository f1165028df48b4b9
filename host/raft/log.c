/*
 * log.c — the in-memory Raft log: a ring buffer of entries addressed by
 * index in O(1). Entries hold references on their payload buffers; nothing
 * here copies payload bytes.
 */
#include <stdlib.h>

#include "raft/internal.h"

void raft_log_init(struct raft_log *l) {
  memset(l, 0, sizeof *l);
}

void raft_log_free(struct raft_log *l) {
  raft_log_truncate(l, l->base + 1);
  free(l->ring);
  memset(l, 0, sizeof *l);
}

uint64_t raft_log_last_term(const struct raft_log *l) {
  return raft_log_term(l, raft_log_last(l));
}

/* Double the ring, unrolling it so that the first entry lands in slot 0. */
static int grow(struct raft_log *l) {
  size_t cap = l->cap ? l->cap * 2 : 64;
  struct raft_entry *ring = malloc(cap * sizeof *ring);
  if (!ring) return RAFT_ENOMEM;
  for (size_t i = 0; i < l->n; i++)
    ring[i] = l->ring[(l->head + i) & (l->cap - 1)];
  free(l->ring);
  l->ring = ring;
  l->cap = cap;
  l->head = 0;
  return 0;
}

int raft_log_append(struct raft_log *l, const struct raft_entry *e) {
  if (l->n == l->cap && grow(l) != 0) return RAFT_ENOMEM;
  assert(e->term >= raft_log_last_term(l));
  struct raft_entry *slot = &l->ring[(l->head + l->n) & (l->cap - 1)];
  *slot = *e;
  raft_buf_ref(slot->buf);
  l->n++;
  return 0;
}

void raft_log_truncate(struct raft_log *l, uint64_t index) {
  assert(index > l->base);
  while (raft_log_last(l) >= index) {
    struct raft_entry *e = raft_log_get(l, raft_log_last(l));
    raft_buf_unref(e->buf);
    e->buf = NULL;
    l->n--;
  }
}

void raft_log_compact(struct raft_log *l, uint64_t index) {
  assert(index >= l->base && index <= raft_log_last(l));
  uint64_t term = raft_log_term(l, index);
  while (l->base < index) {
    struct raft_entry *e = &l->ring[l->head];
    raft_buf_unref(e->buf);
    e->buf = NULL;
    l->head = (l->head + 1) & (l->cap - 1);
    l->n--;
    l->base++;
  }
  l->base_term = term;
}

void raft_log_reset(struct raft_log *l, uint64_t base, uint64_t base_term) {
  raft_log_truncate(l, l->base + 1);
  l->head = 0;
  l->base = base;
  l->base_term = base_term;
}
