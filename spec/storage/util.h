/*
 * util.h — helpers shared by the storage tests: temporary directories, a
 * loop driver, deterministic payloads, and a fault-injecting file-operation
 * table.
 */
#ifndef SPEC_STORAGE_UTIL_H
#define SPEC_STORAGE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "storage/crc32c.h"
#include "storage/store.h"

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static inline void rm_rf(const char *path) {
  nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* out = a "/" b (aborts if it does not fit: test paths are short). */
static inline void join(char *out, size_t size, const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la + lb + 2 > size) abort();
  memcpy(out, a, la);
  out[la] = '/';
  memcpy(out + la + 1, b, lb + 1);
}

/* Copy a string that must fit. */
static inline void copy_str(char *out, size_t size, const char *a) {
  if (strlen(a) + 1 > size) abort();
  memcpy(out, a, strlen(a) + 1);
}

/* A fresh directory under /tmp; the caller rm_rf()s and frees it. */
static inline char *tmp_dir(void) {
  char *d = strdup("/tmp/copycat-storage-XXXXXX");
  if (!d || !mkdtemp(d)) abort();
  return d;
}

/* The payload of entry (index, term): len bytes derived from both, so that
 * a wrong, stale or shifted entry is recognised. */
static inline void payload_fill(uint8_t *p, size_t len, uint64_t index,
                                uint64_t term) {
  uint64_t x = index * 0x9E3779B97F4A7C15ull ^ (term << 32) ^ len;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (uint8_t)x;
  }
}

/* Length of entry `index`'s payload in the tests (varies, includes 0). */
static inline uint32_t payload_len(uint64_t index) {
  return (uint32_t)((index * 37) % 300);
}

/* Entry (index, term) with a `len`-byte payload as payload_fill makes. */
static inline int entry_ok_len(const struct store_entry *e, uint64_t index,
                               uint64_t term, uint32_t len) {
  if (e->index != index || e->term != term || e->len != len ||
      e->type != (uint8_t)(index % 3))
    return 0;
  uint8_t *buf = malloc(len + 1);
  payload_fill(buf, len, index, term);
  int ok = len == 0 || memcmp(buf, e->data, len) == 0;
  free(buf);
  return ok;
}

static inline int entry_ok(const struct store_entry *e, uint64_t index,
                           uint64_t term) {
  return entry_ok_len(e, index, term, payload_len(index));
}

struct waitc {
  int calls;
  uint64_t durable;
  int status;
};

static inline void wait_cb(struct store *s, uint64_t durable, int status,
                           void *data) {
  (void)s;
  struct waitc *w = data;
  w->calls++;
  w->durable = durable;
  w->status = status;
}

/* Append entries [first, first+n) with `term`, payloads of len(index)
 * bytes as above. */
static inline int append_range_len(struct store *s, uint64_t first, size_t n,
                                   uint64_t term, uint32_t (*len)(uint64_t),
                                   struct waitc *w) {
  struct store_entry *es = calloc(n ? n : 1, sizeof *es);
  uint8_t **bufs = calloc(n ? n : 1, sizeof *bufs);
  for (size_t i = 0; i < n; i++) {
    uint64_t idx = first + i;
    es[i].index = idx;
    es[i].term = term;
    es[i].type = (uint8_t)(idx % 3);
    es[i].len = len(idx);
    bufs[i] = malloc(es[i].len + 1);
    payload_fill(bufs[i], es[i].len, idx, term);
    es[i].data = bufs[i];
  }
  int rc = store_append(s, es, n, w ? wait_cb : NULL, w);
  /* The store copied what it needs: scribble over our buffers. */
  for (size_t i = 0; i < n; i++) {
    memset(bufs[i], 0xEE, es[i].len + 1);
    free(bufs[i]);
  }
  free(bufs);
  free(es);
  return rc;
}

static inline int append_range(struct store *s, uint64_t first, size_t n,
                               uint64_t term, struct waitc *w) {
  return append_range_len(s, first, n, term, payload_len, w);
}

/* The crash test's lengths: now and then a large entry, so that a kill
 * lands inside a long write more often. */
static inline uint32_t crash_len(uint64_t index) {
  return index % 61 == 0 ? 96 * 1024 : payload_len(index);
}

static inline void run_until(uv_loop_t *loop, const int *flag, int target) {
  while (*flag < target)
    uv_run(loop, UV_RUN_ONCE);
}

static inline void close_cb(void *data) {
  (*(int *)data)++;
}

static inline void close_store(uv_loop_t *loop, struct store *s) {
  int closed = 0;
  store_close(s, close_cb, &closed);
  run_until(loop, &closed, 1);
}

/* ---- fault injection ---------------------------------------------- */

enum {
  FOP_OPEN,
  FOP_CLOSE,
  FOP_PREAD,
  FOP_PWRITE,
  FOP_FSYNC,
  FOP_FDATASYNC,
  FOP_FTRUNCATE,
  FOP_FALLOCATE,
  FOP_RENAME,
  FOP_UNLINK,
  FOP_MKDIR,
  FOP_N
};

struct fault_io {
  struct store_io io; /* first: the store sees this */
  struct store_io sys;
  int fail_op;      /* FOP_* to fail, or -1 */
  int fail_after;   /* successful calls of fail_op before failures start */
  int fail_count;   /* how many calls fail then (-1: all later ones) */
  int err;          /* errno to fail with */
  int short_writes; /* 1: pwrite writes at most half (at least 1 byte) */
  int nosync;       /* 1: fsync and fdatasync do nothing (fast tests of
                       logic that does not depend on durability) */
  int counts[FOP_N];
  int failures;
  char fd_path[256][96]; /* file name behind each fd (for reports) */
  char failed_path[96];  /* file of the last injected failure */
  pthread_mutex_t mu;    /* the writer and spare threads call in too */
  pthread_cond_t cv;
  int gate;    /* 1: fdatasync waits until gate is 0 again */
  int waiting; /* calls waiting at the gate */
};

static inline void base_name(char *out, const char *path) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  size_t n = strlen(b);
  if (n > 95) n = 95;
  memcpy(out, b, n);
  out[n] = 0;
}

/* Count a call on file `path` (or fd); 1 if it must fail now. */
static inline int fault_hit_on(struct fault_io *f, int op, const char *path,
                               int fd) {
  int hit = 0;
  pthread_mutex_lock(&f->mu);
  f->counts[op]++;
  if (op == f->fail_op) {
    if (f->fail_after > 0) {
      f->fail_after--;
    } else if (f->fail_count != 0) {
      if (f->fail_count > 0) f->fail_count--;
      f->failures++;
      if (path)
        base_name(f->failed_path, path);
      else if (fd >= 0 && fd < 256)
        memcpy(f->failed_path, f->fd_path[fd], sizeof f->failed_path);
      hit = 1;
    }
  }
  pthread_mutex_unlock(&f->mu);
  if (hit) errno = f->err;
  return hit;
}
#define fault_hit(f, op) fault_hit_on(f, op, NULL, -1)

#define FAULT(op) ((struct fault_io *)(void *)io)
static int f_open(struct store_io *io, const char *p, int fl, mode_t m) {
  if (fault_hit_on(FAULT(io), FOP_OPEN, p, -1)) return -1;
  int fd = FAULT(io)->sys.open(io, p, fl, m);
  if (fd >= 0 && fd < 256) {
    pthread_mutex_lock(&FAULT(io)->mu);
    base_name(FAULT(io)->fd_path[fd], p);
    pthread_mutex_unlock(&FAULT(io)->mu);
  }
  return fd;
}
static int f_close(struct store_io *io, int fd) {
  if (fault_hit(FAULT(io), FOP_CLOSE)) {
    FAULT(io)->sys.close(io, fd);
    return -1;
  }
  return FAULT(io)->sys.close(io, fd);
}
static ssize_t f_pread(struct store_io *io, int fd, void *b, size_t n,
                       off_t at) {
  if (fault_hit_on(FAULT(io), FOP_PREAD, NULL, fd)) return -1;
  return FAULT(io)->sys.pread(io, fd, b, n, at);
}
static ssize_t f_pwrite(struct store_io *io, int fd, const void *b, size_t n,
                        off_t at) {
  if (fault_hit_on(FAULT(io), FOP_PWRITE, NULL, fd)) return -1;
  if (FAULT(io)->short_writes && n > 1) n /= 2;
  return FAULT(io)->sys.pwrite(io, fd, b, n, at);
}
static int f_fsync(struct store_io *io, int fd) {
  if (fault_hit_on(FAULT(io), FOP_FSYNC, NULL, fd)) return -1;
  if (FAULT(io)->nosync) return 0;
  return FAULT(io)->sys.fsync(io, fd);
}
static int f_fdatasync(struct store_io *io, int fd) {
  struct fault_io *f = FAULT(io);
  pthread_mutex_lock(&f->mu);
  f->waiting++;
  pthread_cond_broadcast(&f->cv);
  while (f->gate)
    pthread_cond_wait(&f->cv, &f->mu);
  f->waiting--;
  pthread_mutex_unlock(&f->mu);
  if (fault_hit_on(FAULT(io), FOP_FDATASYNC, NULL, fd)) return -1;
  if (FAULT(io)->nosync) return 0;
  return FAULT(io)->sys.fdatasync(io, fd);
}
static int f_ftruncate(struct store_io *io, int fd, off_t len) {
  if (fault_hit_on(FAULT(io), FOP_FTRUNCATE, NULL, fd)) return -1;
  return FAULT(io)->sys.ftruncate(io, fd, len);
}
static int f_fallocate(struct store_io *io, int fd, off_t at, off_t len) {
  if (fault_hit_on(FAULT(io), FOP_FALLOCATE, NULL, fd)) return -1;
  return FAULT(io)->sys.fallocate(io, fd, at, len);
}
static int f_rename(struct store_io *io, const char *a, const char *b) {
  if (fault_hit_on(FAULT(io), FOP_RENAME, a, -1)) return -1;
  return FAULT(io)->sys.rename(io, a, b);
}
static int f_unlink(struct store_io *io, const char *p) {
  if (fault_hit_on(FAULT(io), FOP_UNLINK, p, -1)) return -1;
  return FAULT(io)->sys.unlink(io, p);
}
static int f_mkdir(struct store_io *io, const char *p, mode_t m) {
  if (fault_hit_on(FAULT(io), FOP_MKDIR, p, -1)) return -1;
  return FAULT(io)->sys.mkdir(io, p, m);
}
#undef FAULT

static inline void fault_init(struct fault_io *f) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  store_io_default(&f->sys);
  f->io.open = f_open;
  f->io.close = f_close;
  f->io.pread = f_pread;
  f->io.pwrite = f_pwrite;
  f->io.fsync = f_fsync;
  f->io.fdatasync = f_fdatasync;
  f->io.ftruncate = f_ftruncate;
  f->io.fallocate = f_fallocate;
  f->io.rename = f_rename;
  f->io.unlink = f_unlink;
  f->io.mkdir = f_mkdir;
  f->fail_op = -1;
}

/* Fail `op` with `err` after `after` successful calls, `count` times. */
static inline void fault_set(struct fault_io *f, int op, int after, int count,
                             int err) {
  pthread_mutex_lock(&f->mu);
  f->fail_op = op;
  f->fail_after = after;
  f->fail_count = count;
  pthread_mutex_unlock(&f->mu);
  pthread_mutex_lock(&f->mu);
  f->err = err;
  f->failures = 0;
  f->failed_path[0] = 0;
  pthread_mutex_unlock(&f->mu);
}

/* Close the gate: fdatasync calls block until gate_open. */
static inline void gate_close(struct fault_io *f) {
  pthread_mutex_lock(&f->mu);
  f->gate = 1;
  pthread_mutex_unlock(&f->mu);
}

/* Wait until a writer is blocked at the gate. */
static inline void gate_wait_blocked(struct fault_io *f) {
  pthread_mutex_lock(&f->mu);
  while (f->waiting == 0)
    pthread_cond_wait(&f->cv, &f->mu);
  pthread_mutex_unlock(&f->mu);
}

static inline void gate_open(struct fault_io *f) {
  pthread_mutex_lock(&f->mu);
  f->gate = 0;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

#endif
