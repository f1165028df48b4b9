/*
 * log.c — the in-memory log.
 */
#include "storage/log.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void log_init(struct log *l, uint64_t base) {
  memset(l, 0, sizeof *l);
  l->base = base;
}

static void entry_free(struct store_entry *e) {
  /* The store owns its payload copies; the public struct shows them const. */
  free((void *)(uintptr_t)e->data);
  e->data = NULL;
}

void log_free(struct log *l) {
  for (size_t i = 0; i < l->n; i++)
    entry_free(&l->e[l->start + i]);
  free(l->e);
  memset(l, 0, sizeof *l);
}

/* Make room for `more` entries after the last one. */
static int reserve(struct log *l, size_t more) {
  if (l->start + l->n + more <= l->cap) return 0;
  if (l->start > 0 && l->n + more <= l->cap && l->start >= l->cap / 2) {
    memmove(l->e, l->e + l->start, l->n * sizeof *l->e);
    l->start = 0;
    return 0;
  }
  size_t cap = l->cap ? l->cap : 64;
  while (cap < l->n + more)
    cap *= 2;
  if (cap < 2 * (l->n + more)) cap *= 2;
  struct store_entry *p = malloc(cap * sizeof *p);
  if (!p) return -1;
  if (l->n) memcpy(p, l->e + l->start, l->n * sizeof *p);
  free(l->e);
  l->e = p;
  l->cap = cap;
  l->start = 0;
  return 0;
}

int log_append(struct log *l, const struct store_entry *src, size_t n) {
  if (reserve(l, n) != 0) return STORE_ENOMEM;
  struct store_entry *dst = l->e + l->start + l->n;
  for (size_t i = 0; i < n; i++) {
    assert(src[i].index == l->base + l->n + i);
    uint8_t *copy = malloc(src[i].len ? src[i].len : 1);
    if (!copy) {
      for (size_t k = 0; k < i; k++)
        entry_free(&dst[k]);
      return STORE_ENOMEM;
    }
    if (src[i].len) memcpy(copy, src[i].data, src[i].len);
    dst[i] = src[i];
    dst[i].data = copy;
  }
  l->n += n;
  return 0;
}

void log_truncate(struct log *l, uint64_t from) {
  if (from < l->base) from = l->base;
  while (l->n > 0 && log_last(l) >= from) {
    entry_free(&l->e[l->start + l->n - 1]);
    l->n--;
  }
}

void log_compact(struct log *l, uint64_t up_to) {
  while (l->n > 0 && l->base <= up_to) {
    entry_free(&l->e[l->start]);
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
