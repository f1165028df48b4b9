/*
 * segments.c — creating, appending to, cutting and deleting segment files.
 */
#include "storage/segments.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "storage/error.h"
#include "storage/format.h"

#define REMEDY_WRITE                                                       \
  "Nothing after the last acknowledged entry was acknowledged; the store " \
  "takes no more writes. Free disk space or fix the disk, then restart "   \
  "the server."

void segs_init(struct segs *g, struct store_io *io, const char *dir,
               size_t seg_size, uint64_t next) {
  memset(g, 0, sizeof *g);
  g->io = io;
  snprintf(g->dir, sizeof g->dir, "%s", dir ? dir : "");
  g->seg_size = seg_size;
  g->fd = -1;
  g->spare_fd = -1;
  g->next = next;
  g->offs_first = next;
}

void segs_close(struct segs *g) {
  if (g->fd >= 0) g->io->close(g->io, g->fd);
  g->fd = -1;
  if (g->spare_fd >= 0) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" SEG_SPARE, g->dir);
    g->io->close(g->io, g->spare_fd);
    g->io->unlink(g->io, path);
    g->spare_fd = -1;
  }
  free(g->firsts);
  free(g->ends);
  free(g->offs);
  g->firsts = g->ends = NULL;
  g->offs = NULL;
  g->n = g->noffs = 0;
}

void segs_path(const struct segs *g, char *out, size_t size, uint64_t first) {
  char name[64];
  seg_name(name, sizeof name, first);
  snprintf(out, size, "%s/%s", g->dir, name);
}

static int fail(char *err, const char *path, const char *op, uint64_t off,
                int e) {
  store_errf(err, "%s: %s at offset %" PRIu64 " failed: %s. %s", path, op, off,
             strerror(e), REMEDY_WRITE);
  return store_errno_code(e);
}

int segs_add_segment(struct segs *g, uint64_t first) {
  if (g->n == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 8;
    uint64_t *p = realloc(g->firsts, cap * sizeof *p);
    if (!p) return STORE_ENOMEM;
    g->firsts = p;
    p = realloc(g->ends, cap * sizeof *p);
    if (!p) return STORE_ENOMEM;
    g->ends = p;
    g->cap = cap;
  }
  assert(g->n == 0 || first > g->firsts[g->n - 1]);
  if (g->n == 0) {
    g->offs_first = first;
    g->noffs = 0;
  }
  g->ends[g->n] = SEG_HEADER_SIZE;
  g->firsts[g->n++] = first;
  g->next = first;
  return 0;
}

void segs_set_end(struct segs *g, uint64_t end) {
  assert(g->n > 0);
  g->ends[g->n - 1] = end;
}

int segs_add_record(struct segs *g, uint64_t index, uint64_t off) {
  assert(index == g->offs_first + g->noffs);
  if (g->noffs == g->ocap) {
    size_t cap = g->ocap ? g->ocap * 2 : 1024;
    uint64_t *p = realloc(g->offs, cap * sizeof *p);
    if (!p) return STORE_ENOMEM;
    g->offs = p;
    g->ocap = cap;
  }
  g->offs[g->noffs++] = off;
  g->next = index + 1;
  return 0;
}

/* Create the segment starting at g->next, durably, and make it the open
 * one. The previous open segment must be synced and closed already. */
static int create_segment(struct segs *g, char *err) {
  struct store_io *io = g->io;
  char path[PATH_MAX], tmp[PATH_MAX + 32];
  uint64_t first = g->next;
  assert(g->fd < 0);
  segs_path(g, path, sizeof path, first);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  uint8_t h[SEG_HEADER_SIZE];
  seg_header_encode(h, first);
  int fd, rc;
  if (g->spare_fd >= 0) {
    /* The spare is allocated and durable already: only the header needs
     * to reach the disk before the rename. */
    fd = g->spare_fd;
    g->spare_fd = -1;
    snprintf(tmp, sizeof tmp, "%s/" SEG_SPARE, g->dir);
    if ((rc = io_pwrite_all(io, fd, h, sizeof h, 0)) != 0)
      rc = fail(err, tmp, "write of the header", 0, -rc);
    else if (io->fdatasync(io, fd) != 0)
      rc = fail(err, tmp, "fdatasync", 0, errno);
  } else {
    fd = io->open(io, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fail(err, tmp, "create", 0, errno);
    if ((rc = io_pwrite_all(io, fd, h, sizeof h, 0)) != 0)
      rc = fail(err, tmp, "write of the header", 0, -rc);
    else if (io->fallocate(io, fd, 0, (off_t)g->seg_size) != 0)
      rc = fail(err, tmp, "preallocation", 0, errno);
    else if (io->fsync(io, fd) != 0)
      rc = fail(err, tmp, "fsync", 0, errno);
  }
  if (rc == 0 && io->rename(io, tmp, path) != 0)
    rc = fail(err, path, "rename", 0, errno);
  else if (rc == 0 && (rc = io_sync_dir(io, g->dir)) != 0)
    rc = fail(err, g->dir, "fsync of the directory", 0, -rc);
  if (rc == 0) rc = segs_add_segment(g, first);
  if (rc) {
    io->close(io, fd);
    return rc;
  }
  /* segs_add_segment reset offs only for the first segment; otherwise the
   * offsets continue across segments. */
  g->fd = fd;
  g->full = 0;
  g->off = SEG_HEADER_SIZE;
  return 0;
}

/* Move on from the full open segment to a new one: sync it, create the
 * next segment durably, then seal the old one (a seal says "the log goes
 * on in the next segment", so a lost newest segment is noticed). */
static int roll_over(struct segs *g, char *err) {
  char path[PATH_MAX];
  uint64_t first = g->firsts[g->n - 1], end = g->off;
  int prev = g->fd, rc;
  segs_path(g, path, sizeof path, first);
  if (g->io->fdatasync(g->io, prev) != 0)
    return fail(err, path, "fdatasync", end, errno);
  g->fd = -1;
  g->full = 1;
  rc = create_segment(g, err);
  if (rc == 0) {
    uint8_t seal[SEAL_SIZE];
    seal_encode(seal, g->next);
    if ((rc = io_pwrite_all(g->io, prev, seal, sizeof seal, (off_t)end)) != 0)
      rc = fail(err, path, "write of the seal", end, -rc);
    else if (g->io->fdatasync(g->io, prev) != 0)
      rc = fail(err, path, "fdatasync", end, errno);
  }
  g->io->close(g->io, prev);
  return rc;
}

static int open_last(struct segs *g, char *err) {
  char path[PATH_MAX];
  segs_path(g, path, sizeof path, g->firsts[g->n - 1]);
  g->fd = g->io->open(g->io, path, O_RDWR, 0);
  if (g->fd < 0) return fail(err, path, "open", 0, errno);
  return 0;
}

int segs_write(struct segs *g, const uint8_t *buf, size_t len,
               const size_t *recs, size_t nrec, char *err) {
  size_t i = 0;
  int rc;
  while (i < nrec) {
    if (g->n == 0 || g->full) {
      if ((rc = create_segment(g, err)) != 0) return rc;
    } else if (g->fd < 0 && (rc = open_last(g, err)) != 0) {
      return rc;
    }
    /* Take the records that fit; an empty segment takes at least one. */
    size_t start = recs[i], j = i;
    uint64_t avail = g->off < g->seg_size ? g->seg_size - g->off : 0;
    while (j < nrec) {
      size_t end = j + 1 < nrec ? recs[j + 1] : len;
      if (end - start > avail && !(j == i && g->off == SEG_HEADER_SIZE)) break;
      j++;
    }
    if (j > i) {
      size_t end = j < nrec ? recs[j] : len;
      char path[PATH_MAX];
      rc = io_pwrite_all(g->io, g->fd, buf + start, end - start, (off_t)g->off);
      if (rc) {
        segs_path(g, path, sizeof path, g->firsts[g->n - 1]);
        return fail(err, path, "write", g->off, -rc);
      }
      for (size_t k = i; k < j; k++) {
        rc = segs_add_record(g, g->next, g->off + (recs[k] - start));
        if (rc) return rc;
      }
      g->off += end - start;
      g->ends[g->n - 1] = g->off;
      i = j;
    }
    if (i < nrec && (rc = roll_over(g, err)) != 0) return rc;
  }
  g->sync_ns = 0;
  uint64_t t0 = nrec > 0 ? uv_hrtime() : 0;
  if (nrec > 0 && g->io->fdatasync(g->io, g->fd) != 0) {
    char path[PATH_MAX];
    segs_path(g, path, sizeof path, g->firsts[g->n - 1]);
    return fail(err, path, "fdatasync", g->off, errno);
  }
  if (nrec > 0) g->sync_ns = uv_hrtime() - t0;
  return 0;
}

/* Delete the last segment durably. */
static int drop_last(struct segs *g, char *err) {
  char path[PATH_MAX];
  segs_path(g, path, sizeof path, g->firsts[g->n - 1]);
  if (g->fd >= 0) g->io->close(g->io, g->fd);
  g->fd = -1;
  if (g->io->unlink(g->io, path) != 0 && errno != ENOENT)
    return fail(err, path, "unlink", 0, errno);
  int rc = io_sync_dir(g->io, g->dir);
  if (rc) return fail(err, g->dir, "fsync of the directory", 0, -rc);
  g->n--;
  return 0;
}

/* Remove the seal of segment k, which is about to become the last one:
 * done before the segment after it is deleted, so that no crash leaves a
 * sealed segment last. */
static int unseal(struct segs *g, size_t k, char *err) {
  char path[PATH_MAX];
  uint64_t end = g->ends[k];
  segs_path(g, path, sizeof path, g->firsts[k]);
  int fd = g->io->open(g->io, path, O_RDWR, 0);
  if (fd < 0) return fail(err, path, "open", 0, errno);
  int rc = 0;
  if (g->io->ftruncate(g->io, fd, (off_t)end) != 0)
    rc = fail(err, path, "ftruncate", end, errno);
  else if (end < g->seg_size &&
           g->io->fallocate(g->io, fd, (off_t)end, (off_t)(g->seg_size - end)))
    rc = fail(err, path, "preallocation", end, errno);
  else if (g->io->fsync(g->io, fd) != 0)
    rc = fail(err, path, "fsync", end, errno);
  g->io->close(g->io, fd);
  return rc;
}

int segs_truncate(struct segs *g, uint64_t from, char *err) {
  int rc;
  if (from >= g->next) return 0;
  assert(from >= g->offs_first);
  /* The segment that ends up last, and its last index. */
  size_t keep = g->n;
  while (keep > 0 && g->firsts[keep - 1] >= from)
    keep--;
  uint64_t keep_last = keep < g->n ? g->firsts[keep] - 1 : g->next - 1;
  /* Newest first, each step leaving an unsealed segment last. */
  while (g->n > keep) {
    if (g->n >= 2 && (rc = unseal(g, g->n - 2, err)) != 0) return rc;
    if ((rc = drop_last(g, err)) != 0) return rc;
  }
  g->noffs = (size_t)(from - g->offs_first);
  g->next = from;
  if (g->n == 0) {
    g->offs_first = from;
    return 0;
  }
  if (g->fd < 0 && (rc = open_last(g, err)) != 0) return rc;
  if (from <= keep_last) {
    /* The cut is inside this segment. */
    uint64_t cut = g->offs[g->noffs];
    char path[PATH_MAX];
    segs_path(g, path, sizeof path, g->firsts[g->n - 1]);
    if (g->io->ftruncate(g->io, g->fd, (off_t)cut) != 0)
      return fail(err, path, "ftruncate", cut, errno);
    if (cut < g->seg_size &&
        g->io->fallocate(g->io, g->fd, (off_t)cut, (off_t)(g->seg_size - cut)))
      return fail(err, path, "preallocation", cut, errno);
    if (g->io->fsync(g->io, g->fd) != 0)
      return fail(err, path, "fsync", cut, errno);
    g->ends[g->n - 1] = cut;
  }
  /* Otherwise the cut fell on a segment boundary: this (closed) segment
   * keeps all its records and takes the next ones after them. */
  g->off = g->ends[g->n - 1];
  g->full = 0;
  return 0;
}

int segs_reset(struct segs *g, uint64_t next, char *err) {
  int rc;
  while (g->n > 0)
    if ((rc = drop_last(g, err)) != 0) return rc;
  g->next = g->offs_first = next;
  g->noffs = 0;
  return 0;
}

int segs_compact(struct segs *g, uint64_t up_to, char *err) {
  while (g->n > 1 && g->firsts[1] - 1 <= up_to) {
    char path[PATH_MAX];
    segs_path(g, path, sizeof path, g->firsts[0]);
    if (g->io->unlink(g->io, path) != 0 && errno != ENOENT)
      return fail(err, path, "unlink", 0, errno);
    int rc = io_sync_dir(g->io, g->dir);
    if (rc) return fail(err, g->dir, "fsync of the directory", 0, -rc);
    size_t drop = (size_t)(g->firsts[1] - g->offs_first);
    memmove(g->offs, g->offs + drop, (g->noffs - drop) * sizeof *g->offs);
    g->noffs -= drop;
    g->offs_first = g->firsts[1];
    memmove(g->firsts, g->firsts + 1, (g->n - 1) * sizeof *g->firsts);
    memmove(g->ends, g->ends + 1, (g->n - 1) * sizeof *g->ends);
    g->n--;
  }
  return 0;
}

/* A failure to prepare the spare is not a write error (new segments are
 * then preallocated when needed): no "takes no more writes" remedy. */
static int spare_fail(char *err, const char *path, const char *op, uint64_t off,
                      int e) {
  store_errf(err, "%s: %s at offset %" PRIu64 " failed: %s", path, op, off,
             strerror(e));
  return store_errno_code(e);
}

int segs_prepare_spare(struct store_io *io, const char *dir, size_t size,
                       int *out, char *err) {
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/" SEG_SPARE, dir);
  int fd = io->open(io, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return spare_fail(err, path, "create", 0, errno);
  enum { CHUNK = 256 * 1024 };
  uint8_t *zeros = calloc(1, CHUNK);
  int rc = zeros ? 0 : STORE_ENOMEM;
  for (size_t at = 0; rc == 0 && at < size; at += CHUNK) {
    size_t n = size - at < CHUNK ? size - at : CHUNK;
    if ((rc = io_pwrite_all(io, fd, zeros, n, (off_t)at)) != 0)
      rc = spare_fail(err, path, "write of zeros", at, -rc);
#ifdef SYNC_FILE_RANGE_WRITE
    else /* one chunk on its way to the disk at a time (segments.h) */
      sync_file_range(fd, (off_t)at, (off_t)n,
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                          SYNC_FILE_RANGE_WAIT_AFTER);
#endif
  }
  free(zeros);
  if (rc == 0 && io->fsync(io, fd) != 0)
    rc = spare_fail(err, path, "fsync", 0, errno);
  if (rc) {
    io->close(io, fd);
    io->unlink(io, path);
    return rc;
  }
  *out = fd;
  return 0;
}
