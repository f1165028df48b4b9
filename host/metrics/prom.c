/*
 * prom.c — the Prometheus text format (see prom.h).
 */
#include "metrics/prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void prom_buf_init(struct prom_buf *b) {
  memset(b, 0, sizeof *b);
}

void prom_buf_free(struct prom_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

static void put(struct prom_buf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void puts_(struct prom_buf *b, const char *s) {
  put(b, s, strlen(s));
}

/* HELP text escapes \ and newline; label values also ". */
static void put_escaped(struct prom_buf *b, const char *s, int quote) {
  for (; *s; s++) {
    if (*s == '\\')
      put(b, "\\\\", 2);
    else if (*s == '\n')
      put(b, "\\n", 2);
    else if (*s == '"' && quote)
      put(b, "\\\"", 2);
    else
      put(b, s, 1);
  }
}

void prom_family(struct prom_buf *b, const char *name, const char *type,
                 const char *help) {
  puts_(b, "# HELP ");
  puts_(b, name);
  put(b, " ", 1);
  put_escaped(b, help, 0);
  puts_(b, "\n# TYPE ");
  puts_(b, name);
  put(b, " ", 1);
  puts_(b, type);
  put(b, "\n", 1);
}

/* name{l1="v1",...,extra="xv"} — extra may be NULL. */
static void put_series(struct prom_buf *b, const char *name, const char *suffix,
                       const char *const *labels, const char *extra,
                       const char *extra_value) {
  puts_(b, name);
  if (suffix) puts_(b, suffix);
  int n = 0;
  for (size_t i = 0; labels && labels[i]; i += 2) {
    put(b, n++ ? "," : "{", 1);
    puts_(b, labels[i]);
    put(b, "=\"", 2);
    put_escaped(b, labels[i + 1] ? labels[i + 1] : "", 1);
    put(b, "\"", 1);
  }
  if (extra) {
    put(b, n++ ? "," : "{", 1);
    puts_(b, extra);
    put(b, "=\"", 2);
    puts_(b, extra_value);
    put(b, "\"", 1);
  }
  if (n) put(b, "}", 1);
  put(b, " ", 1);
}

static void format_f64(char *out, size_t n, double v) {
  if (isnan(v))
    snprintf(out, n, "NaN");
  else if (isinf(v))
    snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
  else /* the shortest text that reads back as the same number */
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(out, n, "%.*g", prec, v);
      if (strtod(out, NULL) == v) break;
    }
}

void prom_u64(struct prom_buf *b, const char *name, const char *const *labels,
              uint64_t v) {
  char t[32];
  snprintf(t, sizeof t, "%" PRIu64 "\n", v);
  put_series(b, name, NULL, labels, NULL, NULL);
  puts_(b, t);
}

void prom_f64(struct prom_buf *b, const char *name, const char *const *labels,
              double v) {
  char t[40];
  format_f64(t, sizeof t - 1, v);
  put_series(b, name, NULL, labels, NULL, NULL);
  puts_(b, t);
  put(b, "\n", 1);
}

void prom_hist_init(struct prom_hist *h, const double *bounds, size_t n) {
  memset(h, 0, sizeof *h);
  h->bounds = bounds;
  h->n = n > PROM_HIST_MAX ? PROM_HIST_MAX : n;
}

void prom_hist_observe(struct prom_hist *h, double v) {
  size_t i = 0;
  while (i < h->n && v > h->bounds[i])
    i++;
  h->counts[i]++;
  h->count++;
  h->sum += v;
}

void prom_hist_write(struct prom_buf *b, const char *name,
                     const char *const *labels, const struct prom_hist *h) {
  uint64_t cum = 0;
  char le[40], t[32];
  for (size_t i = 0; i <= h->n; i++) {
    cum += h->counts[i];
    if (i < h->n)
      format_f64(le, sizeof le, h->bounds[i]);
    else
      snprintf(le, sizeof le, "+Inf");
    put_series(b, name, "_bucket", labels, "le", le);
    snprintf(t, sizeof t, "%" PRIu64 "\n", cum);
    puts_(b, t);
  }
  put_series(b, name, "_sum", labels, NULL, NULL);
  format_f64(t, sizeof t, h->sum);
  puts_(b, t);
  put(b, "\n", 1);
  put_series(b, name, "_count", labels, NULL, NULL);
  snprintf(t, sizeof t, "%" PRIu64 "\n", h->count);
  puts_(b, t);
}
