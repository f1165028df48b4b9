/*
 * log.c — the in-memory log.
 *
 * Payload copies live in blocks of LOG_BLOCK_SIZE bytes filled front to
 * back; a block counts its live entries and is recycled (kept in a small
 * pool) when the last one goes. Appending a batch thus costs no malloc per
 * entry, and a log that is compacted as fast as it grows reuses the same
 * memory instead of touching fresh pages.
 */
#include "storage/log.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct log_block {
  struct log_block *next; /* in the pool */
  size_t refs;            /* live entries whose payload is here */
  size_t used, size;
  uint8_t data[];
};

void log_init(struct log *l, uint64_t base) {
  memset(l, 0, sizeof *l);
  l->base = base;
}

/* A block with no live entry: reuse it (current), keep it (pool), or free
 * it. */
static void block_idle(struct log *l, struct log_block *b) {
  if (b == l->cur) {
    b->used = 0;
  } else if (b->size == LOG_BLOCK_SIZE && l->npool < LOG_POOL_MAX) {
    b->next = l->pool;
    l->pool = b;
    l->npool++;
  } else {
    free(b);
  }
}

static void entry_free(struct log *l, size_t slot) {
  struct log_block *b = l->blk[slot];
  assert(b->refs > 0);
  l->e[slot].data = NULL;
  if (--b->refs == 0) block_idle(l, b);
}

void log_free(struct log *l) {
  for (size_t i = 0; i < l->n; i++)
    entry_free(l, l->start + i);
  struct log_block *cur = l->cur;
  l->cur = NULL;
  if (cur && cur->refs == 0) free(cur);
  while (l->pool) {
    struct log_block *b = l->pool;
    l->pool = b->next;
    free(b);
  }
  free(l->e);
  free(l->blk);
  memset(l, 0, sizeof *l);
}

/* Room for `len` payload bytes; sets *bp to their block. */
static uint8_t *payload_alloc(struct log *l, size_t len,
                              struct log_block **bp) {
  size_t need = (len + 7) & ~(size_t)7;
  struct log_block *b = l->cur;
  if (!b || b->size - b->used < need) {
    struct log_block *nb;
    if (need <= LOG_BLOCK_SIZE && l->pool) {
      nb = l->pool;
      l->pool = nb->next;
      l->npool--;
    } else {
      size_t size = need > LOG_BLOCK_SIZE ? need : LOG_BLOCK_SIZE;
      nb = malloc(sizeof *nb + size);
      if (!nb) return NULL;
      nb->size = size;
    }
    nb->refs = 0;
    nb->used = 0;
    l->cur = nb;
    if (b && b->refs == 0) block_idle(l, b);
    b = nb;
  }
  uint8_t *p = b->data + b->used;
  b->used += need;
  b->refs++;
  *bp = b;
  return p;
}

/* Make room for `more` entries after the last one. */
static int reserve(struct log *l, size_t more) {
  if (l->start + l->n + more <= l->cap) return 0;
  if (l->start > 0 && l->n + more <= l->cap && l->start >= l->cap / 2) {
    memmove(l->e, l->e + l->start, l->n * sizeof *l->e);
    memmove(l->blk, l->blk + l->start, l->n * sizeof *l->blk);
    l->start = 0;
    return 0;
  }
  size_t cap = l->cap ? l->cap : 64;
  while (cap < 2 * (l->n + more))
    cap *= 2;
  struct store_entry *e = malloc(cap * sizeof *e);
  struct log_block **blk = malloc(cap * sizeof *blk);
  if (!e || !blk) {
    free(e);
    free(blk);
    return -1;
  }
  if (l->n) {
    memcpy(e, l->e + l->start, l->n * sizeof *e);
    memcpy(blk, l->blk + l->start, l->n * sizeof *blk);
  }
  free(l->e);
  free(l->blk);
  l->e = e;
  l->blk = blk;
  l->cap = cap;
  l->start = 0;
  return 0;
}

int log_append(struct log *l, const struct store_entry *src, size_t n) {
  if (reserve(l, n) != 0) return STORE_ENOMEM;
  size_t at = l->start + l->n;
  for (size_t i = 0; i < n; i++) {
    assert(src[i].index == l->base + l->n + i);
    uint8_t *copy = payload_alloc(l, src[i].len, &l->blk[at + i]);
    if (!copy) {
      for (size_t k = 0; k < i; k++)
        entry_free(l, at + k);
      return STORE_ENOMEM;
    }
    if (src[i].len) memcpy(copy, src[i].data, src[i].len);
    l->e[at + i] = src[i];
    l->e[at + i].data = copy;
  }
  l->n += n;
  return 0;
}

void log_truncate(struct log *l, uint64_t from) {
  if (from < l->base) from = l->base;
  while (l->n > 0 && log_last(l) >= from) {
    entry_free(l, l->start + l->n - 1);
    l->n--;
  }
}

void log_compact(struct log *l, uint64_t up_to) {
  while (l->n > 0 && l->base <= up_to) {
    entry_free(l, l->start);
    l->start++;
    l->n--;
    l->base++;
  }
  if (l->n == 0) {
    l->start = 0;
    if (l->base <= up_to) l->base = up_to + 1;
  }
}

const struct store_entry *log_get(const struct log *l, uint64_t index) {
  if (index < l->base || index - l->base >= l->n) return NULL;
  return &l->e[l->start + (index - l->base)];
}
