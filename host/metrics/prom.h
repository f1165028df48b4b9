/*
 * prom.h — writing the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * A page is a sequence of metric families, each introduced by prom_family
 * (its # HELP and # TYPE lines) and followed by its samples. Label values
 * are escaped (\\, \", \n); names and label names are the caller's
 * constants and must already be valid. Histograms keep per-bucket counts
 * and are written cumulatively, ending with le="+Inf" equal to _count.
 *
 * Nothing here allocates except the page buffer; a failed allocation marks
 * the buffer failed (prom_buf.failed) and later writes do nothing.
 */
#ifndef COPYCAT_PROM_H
#define COPYCAT_PROM_H

#include <stddef.h>
#include <stdint.h>

struct prom_buf {
  char *data;
  size_t len, cap;
  int failed;
};

void prom_buf_init(struct prom_buf *b);
void prom_buf_free(struct prom_buf *b);

/* # HELP name help / # TYPE name type ("counter", "gauge", "histogram"). */
void prom_family(struct prom_buf *b, const char *name, const char *type,
                 const char *help);

/* A label set: pairs of name and value, ended by a NULL name; NULL for no
 * labels. Example: const char *l[] = {"peer", "n2", NULL}; */
void prom_u64(struct prom_buf *b, const char *name, const char *const *labels,
              uint64_t v);
void prom_f64(struct prom_buf *b, const char *name, const char *const *labels,
              double v);

#define PROM_HIST_MAX 24 /* finite buckets at most */

struct prom_hist {
  const double *bounds; /* upper bounds, increasing, n of them */
  size_t n;
  uint64_t counts[PROM_HIST_MAX + 1]; /* per bucket; [n] is above the last */
  uint64_t count;
  double sum;
};

/* bounds must outlive h; n <= PROM_HIST_MAX. */
void prom_hist_init(struct prom_hist *h, const double *bounds, size_t n);
void prom_hist_observe(struct prom_hist *h, double v);
/* name_bucket{labels,le="..."} cumulative, then name_sum and name_count. */
void prom_hist_write(struct prom_buf *b, const char *name,
                     const char *const *labels, const struct prom_hist *h);

#endif
