/*
 * log.c — the in-memory log.
 *
 * Payload copies live in blocks of LOG_BLOCK_SIZE bytes filled front to
 * back; a block counts its live entries and is recycled (kept in a small
 * pool) when the last one goes. Appending a batch thus costs no malloc per
 * entry, and a log that is compacted as fast as it grows reuses the same
 * memory instead of touching fresh pages.
 *
 * Blocks and entry arrays are anonymous mappings: the first touch of each
 * fresh page is a page fault, which costs microseconds (tens under some
 * hypervisors) — more than copying the page. Blocks are aligned and marked
 * for transparent huge pages (one fault per block where the system has
 * them), and log_prep_make() faults memory in ahead on another thread.
 */
#include "storage/log.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

struct log_block {
  struct log_block *next; /* in the pool */
  size_t refs;            /* live entries whose payload is here */
  size_t used, size;      /* bytes of data used, and available */
  size_t map_len;         /* bytes mapped, this header included */
  uint8_t data[];
};

#define PAGE 4096u
#define BLOCK_DATA (LOG_BLOCK_SIZE - sizeof(struct log_block))

static size_t page_round(size_t n) {
  return (n + PAGE - 1) & ~(size_t)(PAGE - 1);
}

/* Fault in every page of [p, p+len) for writing. */
static void populate(void *p, size_t len) {
  if (madvise(p, len, MADV_POPULATE_WRITE) == 0) return;
  for (size_t i = 0; i < len; i += PAGE) /* older kernels */
    ((volatile uint8_t *)p)[i] = 0;
}

/* An anonymous read-write mapping of len bytes (a multiple of PAGE), or
 * NULL. Multiples of LOG_BLOCK_SIZE are aligned to it and marked for huge
 * pages. Faulted in when `fault_in`. */
static void *map(size_t len, int fault_in) {
  void *p;
  if (len % LOG_BLOCK_SIZE == 0) {
    uint8_t *r = mmap(NULL, len + LOG_BLOCK_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) return NULL;
    size_t head = (size_t)(-(uintptr_t)r & (LOG_BLOCK_SIZE - 1));
    if (head) munmap(r, head);
    munmap(r + head + len, LOG_BLOCK_SIZE - head);
    p = r + head;
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE); /* advice: failure does not matter */
#endif
  } else {
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
             0);
    if (p == MAP_FAILED) return NULL;
  }
  if (fault_in) populate(p, len);
  return p;
}

static void unmap(void *p, size_t len) {
  if (p) munmap(p, len);
}

/* A block with room for at least `need` bytes (a standard block when
 * need <= BLOCK_DATA), or NULL. */
static struct log_block *block_new(size_t need, int fault_in) {
  size_t len = need <= BLOCK_DATA ? LOG_BLOCK_SIZE
                                  : page_round(sizeof(struct log_block) + need);
  struct log_block *b = map(len, fault_in);
  if (!b) return NULL;
  b->next = NULL;
  b->refs = b->used = 0;
  b->size = len - sizeof *b;
  b->map_len = len;
  return b;
}

static void block_free(struct log_block *b) {
  unmap(b, b->map_len);
}

/* Bytes mapped for an array of cap elements of `elem` bytes. */
static size_t array_len(size_t cap, size_t elem) {
  return page_round(cap * elem);
}

static void arrays_free(struct store_entry *e, struct log_block **blk,
                        size_t cap) {
  if (!cap) return;
  unmap(e, array_len(cap, sizeof *e));
  unmap(blk, array_len(cap, sizeof *blk));
}

void log_init(struct log *l, uint64_t base) {
  memset(l, 0, sizeof *l);
  l->base = base;
}

/* A block with no live entry: reuse it (current), keep it (pool), or free
 * it. */
static void block_idle(struct log *l, struct log_block *b) {
  if (b == l->cur) {
    b->used = 0;
  } else if (b->map_len == LOG_BLOCK_SIZE && l->npool < LOG_POOL_MAX) {
    b->used = 0;
    b->next = l->pool;
    l->pool = b;
    l->npool++;
  } else {
    block_free(b);
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
  if (cur && cur->refs == 0) block_free(cur);
  while (l->pool) {
    struct log_block *b = l->pool;
    l->pool = b->next;
    block_free(b);
  }
  arrays_free(l->e, l->blk, l->cap);
  log_prep_free(&l->spare_arrays);
  memset(l, 0, sizeof *l);
}

/* Room for `len` payload bytes; sets *bp to their block. */
static uint8_t *payload_alloc(struct log *l, size_t len,
                              struct log_block **bp) {
  size_t need = (len + 7) & ~(size_t)7;
  struct log_block *b = l->cur;
  if (!b || b->size - b->used < need) {
    struct log_block *nb;
    if (need <= BLOCK_DATA && l->pool) {
      nb = l->pool;
      l->pool = nb->next;
      l->npool--;
    } else {
      nb = block_new(need, 0);
      if (!nb) return NULL;
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
  struct log_prep *sp = &l->spare_arrays;
  struct store_entry *e;
  struct log_block **blk;
  if (sp->cap > l->cap && sp->cap >= l->n + more) { /* prepared ahead */
    e = sp->e;
    blk = sp->blk;
    cap = sp->cap;
    sp->e = NULL;
    sp->blk = NULL;
    sp->cap = 0;
  } else {
    log_prep_free(sp); /* too small to be of use */
    e = map(array_len(cap, sizeof *e), 0);
    blk = map(array_len(cap, sizeof *blk), 0);
    if (!e || !blk) {
      unmap(e, array_len(cap, sizeof *e));
      unmap(blk, array_len(cap, sizeof *blk));
      return -1;
    }
  }
  if (l->n) {
    memcpy(e, l->e + l->start, l->n * sizeof *e);
    memcpy(blk, l->blk + l->start, l->n * sizeof *blk);
  }
  arrays_free(l->e, l->blk, l->cap);
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

int log_wants(const struct log *l, struct log_want *want) {
  size_t room = l->npool * BLOCK_DATA;
  if (l->cur) room += l->cur->size - l->cur->used;
  want->block = room < BLOCK_DATA;
  want->cap = 0;
  /* The arrays grow (double) when full unless half of them is free at the
   * front; prepare the doubled ones once half is in use. */
  if (l->cap && l->n >= l->cap / 2 && l->spare_arrays.cap < 2 * l->cap)
    want->cap = 2 * l->cap;
  return want->block || want->cap;
}

void log_prep_make(const struct log_want *want, struct log_prep *out) {
  memset(out, 0, sizeof *out);
  if (want->block) out->block = block_new(BLOCK_DATA, 1);
  if (want->cap) {
    out->e = map(array_len(want->cap, sizeof *out->e), 1);
    out->blk = map(array_len(want->cap, sizeof *out->blk), 1);
    out->cap = want->cap;
    if (!out->e || !out->blk) {
      unmap(out->e, array_len(want->cap, sizeof *out->e));
      unmap(out->blk, array_len(want->cap, sizeof *out->blk));
      out->e = NULL;
      out->blk = NULL;
      out->cap = 0;
    }
  }
}

void log_prep_give(struct log *l, struct log_prep *p) {
  if (p->block) {
    block_idle(l, p->block); /* into the pool, or freed if it is full */
    p->block = NULL;
  }
  if (p->cap > l->cap && p->cap > l->spare_arrays.cap) {
    log_prep_free(&l->spare_arrays);
    l->spare_arrays = *p;
    p->e = NULL;
    p->blk = NULL;
    p->cap = 0;
  }
  log_prep_free(p);
}

void log_prep_free(struct log_prep *p) {
  if (p->block) block_free(p->block);
  arrays_free(p->e, p->blk, p->cap);
  memset(p, 0, sizeof *p);
}
