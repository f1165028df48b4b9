/*
 * store_open.c — start-up: create and lock the data directory, remove
 * leftovers of interrupted writes, load the metadata, the newest snapshot
 * and the log, cut a torn tail, and refuse — with the file, the offset and
 * a remedy — anything else that is not as it was written.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "storage/format.h"
#include "storage/store_int.h"

#define LOCK_FILE "LOCK"

void store_note(struct store *s, const char *fmt, ...) {
  size_t used = strlen(s->notice);
  if (used + 2 >= sizeof s->notice) return;
  if (used) {
    s->notice[used++] = ';';
    s->notice[used++] = ' ';
    s->notice[used] = 0;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->notice + used, sizeof s->notice - used, fmt, ap);
  va_end(ap);
}

static int sys_error(char *err, const char *path, const char *op, int e,
                     const char *remedy) {
  store_errf(err, "%s: %s failed: %s. %s", path, op, strerror(e), remedy);
  return store_errno_code(e);
}

/* mkdir -p, with an fsync of each parent that gained an entry. */
static int make_dir(struct store *s, char *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", s->dir);
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/')
    path[--len] = 0;
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p != 0) continue;
    char saved = *p;
    *p = 0;
    if (s->io->mkdir(s->io, path, 0755) == 0) {
      char parent[PATH_MAX];
      snprintf(parent, sizeof parent, "%s", path);
      char *slash = strrchr(parent, '/');
      if (slash == parent)
        slash[1] = 0;
      else if (slash)
        *slash = 0;
      else
        snprintf(parent, sizeof parent, ".");
      int rc = io_sync_dir(s->io, parent);
      if (rc) return sys_error(err, parent, "fsync", -rc, "Check the disk.");
    } else if (errno != EEXIST) {
      return sys_error(err, path, "mkdir", errno,
                       "Create the data directory or choose another one.");
    }
    *p = saved;
    if (saved == 0) break;
  }
  return 0;
}

static int lock_dir(struct store *s, char *err) {
  char path[PATH_MAX + 8];
  snprintf(path, sizeof path, "%s/" LOCK_FILE, s->dir);
  int fd = s->io->open(s->io, path, O_RDWR | O_CREAT, 0644);
  if (fd < 0)
    return sys_error(err, path, "open", errno,
                     "Check the data directory's permissions.");
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char pid[32] = "";
    size_t got = 0;
    io_pread_all(s->io, fd, pid, sizeof pid - 1, 0, &got);
    pid[got] = 0;
    pid[strcspn(pid, "\n")] = 0;
    s->io->close(s->io, fd);
    if (e == EWOULDBLOCK) {
      store_errf(err,
                 "%s: the data directory is in use by another process "
                 "(pid %s). Stop that server first, or give this one its "
                 "own data directory.",
                 s->dir, pid[0] ? pid : "unknown");
      return STORE_ELOCKED;
    }
    return sys_error(err, path, "flock", e, "Check the file system.");
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  /* Informational only (the lock is the flock): errors do not matter. */
  if (s->io->ftruncate(s->io, fd, 0) == 0)
    io_pwrite_all(s->io, fd, pid, (size_t)n, 0);
  s->lock_fd = fd;
  return 0;
}

void store_unlock(struct store *s) {
  if (s->lock_fd >= 0) s->io->close(s->io, s->lock_fd);
  s->lock_fd = -1;
}

/* What the data directory holds. */
struct listing {
  uint64_t *segs, *snaps;
  size_t nsegs, nsnaps, cap_segs, cap_snaps;
  int has_meta;
};

static int push(uint64_t **v, size_t *n, size_t *cap, uint64_t x) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    uint64_t *p = realloc(*v, c * sizeof *p);
    if (!p) return STORE_ENOMEM;
    *v = p;
    *cap = c;
  }
  (*v)[(*n)++] = x;
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int is_tmp(const char *name) {
  size_t n = strlen(name);
  return n > 4 && strcmp(name + n - 4, ".tmp") == 0 &&
         (strncmp(name, SEG_PREFIX, strlen(SEG_PREFIX)) == 0 ||
          strncmp(name, SNAP_PREFIX, strlen(SNAP_PREFIX)) == 0 ||
          strncmp(name, META_FILE, strlen(META_FILE)) == 0);
}

/* List the directory; remove temporary files left by interrupted writes
 * (they were never renamed, so nothing depends on them). */
static int list_dir(struct store *s, struct listing *l, char *err) {
  DIR *d = opendir(s->dir);
  if (!d)
    return sys_error(err, s->dir, "opendir", errno,
                     "Check the data directory's permissions.");
  int rc = 0, removed = 0;
  struct dirent *de;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    uint64_t x;
    if (strcmp(de->d_name, META_FILE) == 0) {
      l->has_meta = 1;
    } else if (is_tmp(de->d_name)) {
      char path[PATH_MAX + 300];
      snprintf(path, sizeof path, "%s/%s", s->dir, de->d_name);
      if (s->io->unlink(s->io, path) != 0) {
        rc = sys_error(err, path, "unlink", errno,
                       "Check the data directory's permissions.");
      } else {
        removed++;
        store_note(s, "removed unfinished file %s", de->d_name);
      }
    } else if (seg_parse_name(de->d_name, &x)) {
      rc = push(&l->segs, &l->nsegs, &l->cap_segs, x);
    } else if (snap_parse_name(de->d_name, &x)) {
      rc = push(&l->snaps, &l->nsnaps, &l->cap_snaps, x);
    }
  }
  closedir(d);
  if (rc == 0 && removed && (rc = io_sync_dir(s->io, s->dir)) != 0)
    rc = sys_error(err, s->dir, "fsync", -rc, "Check the disk.");
  if (rc == 0) {
    if (l->nsegs) qsort(l->segs, l->nsegs, sizeof *l->segs, cmp_u64);
    if (l->nsnaps) qsort(l->snaps, l->nsnaps, sizeof *l->snaps, cmp_u64);
  }
  return rc;
}

static int load_meta(struct store *s, const struct listing *l, char *err) {
  int found, rc = meta_load(s->io, s->dir, &s->meta, &found, err);
  if (rc) return rc;
  if (found) return 0;
  if (l->nsegs || l->nsnaps) {
    store_errf(err,
               "%s/" META_FILE
               ": missing, but the directory holds log or "
               "snapshot files. The server's term and vote are lost: move "
               "the data directory away and let the server rejoin the "
               "cluster.",
               s->dir);
    return STORE_EMISSING;
  }
  /* A new directory: the metadata file is written first, so that log files
   * never exist without it. */
  return meta_save(s->io, s->dir, &s->meta, err);
}

static int load_snapshot(struct store *s, const struct listing *l, char *err) {
  if (l->nsnaps == 0) return 0;
  char path[PATH_MAX + 64], name[64];
  uint64_t newest = l->snaps[l->nsnaps - 1];
  snap_name(name, sizeof name, newest);
  snprintf(path, sizeof path, "%s/%s", s->dir, name);
  int rc = snap_load(s->io, path, &s->snap, err);
  if (rc) return rc;
  s->has_snap = 1;
  if (s->snap.last_index != newest) {
    store_errf(err,
               "%s: header says last index %" PRIu64
               " at offset 16, the name says %" PRIu64
               ". Move the data directory away and let the server rejoin "
               "the cluster.",
               path, s->snap.last_index, newest);
    return STORE_ECORRUPT;
  }
  /* Older snapshots were superseded when this one became durable. */
  for (size_t i = 0; i + 1 < l->nsnaps; i++) {
    snap_name(name, sizeof name, l->snaps[i]);
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    if (s->io->unlink(s->io, path) != 0)
      return sys_error(err, path, "unlink", errno, "Check the permissions.");
    if ((rc = io_sync_dir(s->io, s->dir)) != 0)
      return sys_error(err, s->dir, "fsync", -rc, "Check the disk.");
    store_note(s, "removed superseded %s", name);
  }
  return 0;
}

struct scan_ctx {
  struct store *s;
  const char *path;
  uint64_t expect; /* index the next record must have */
  char *err;
};

static int on_record(void *ud, uint64_t index, uint64_t term, uint8_t type,
                     const uint8_t *payload, uint32_t len, uint64_t offset) {
  struct scan_ctx *c = ud;
  struct store *s = c->s;
  if (index != c->expect) {
    /* Records are consecutive from the header's first index, so this is a
     * header that disagrees with the file name (a renamed file). */
    store_errf(c->err,
               "%s: holds index %" PRIu64 " at offset %" PRIu64
               " where its name says %" PRIu64
               ". Restore the original file names, or move the data "
               "directory away and let the server rejoin the cluster.",
               c->path, index, offset, c->expect);
    return STORE_ECORRUPT;
  }
  struct store_entry e = {index, term, type, len, payload};
  if (log_append(&s->log, &e, 1) != 0) return STORE_ENOMEM;
  if (segs_add_record(&s->segs, index, offset) != 0) return STORE_ENOMEM;
  c->expect = index + 1;
  return 0;
}

/* Read every segment in order, checking that they form one run. */
static int load_segments(struct store *s, const struct listing *l,
                         struct seg_scan *last, char *err) {
  uint64_t prev_term = 0;
  for (size_t i = 0; i < l->nsegs; i++) {
    char path[PATH_MAX];
    uint64_t first = l->segs[i];
    segs_path(&s->segs, path, sizeof path, first);
    if (i == 0) {
      log_init(&s->log, first);
    } else if (first != log_last(&s->log) + 1) {
      store_errf(err,
                 "%s: the log ends at index %" PRIu64
                 " in the previous "
                 "segment but this one starts at %" PRIu64
                 ": %s. Restore "
                 "the missing file, or move the data directory away and let "
                 "the server rejoin the cluster.",
                 path, log_last(&s->log), first,
                 first > log_last(&s->log) + 1 ? "a segment is missing"
                                               : "segments overlap");
      return first > log_last(&s->log) + 1 ? STORE_EMISSING : STORE_ECORRUPT;
    }
    uint8_t *buf;
    size_t size;
    int rc = io_read_file(s->io, path, SIZE_MAX / 2, &buf, &size);
    if (rc) return sys_error(err, path, "read", -rc, "Check the disk.");
    struct scan_ctx c = {s, path, first, err};
    if ((rc = segs_add_segment(&s->segs, first)) == 0)
      rc = seg_scan(buf, size, path, i + 1 == l->nsegs, prev_term, last,
                    on_record, &c, err);
    free(buf);
    if (rc) return rc;
    segs_set_end(&s->segs, last->end);
    if (last->first != first) {
      store_errf(err,
                 "%s: header says first index %" PRIu64
                 " at offset 16 but the name says %" PRIu64
                 ". Move the data directory away and let the server rejoin "
                 "the cluster.",
                 path, last->first, first);
      return STORE_ECORRUPT;
    }
    prev_term = last->last_term;
  }
  return 0;
}

/* Cut a torn tail and make what was read durable: a killed process leaves
 * its last writes in the page cache, not necessarily on disk. */
static int settle_last_segment(struct store *s, const struct seg_scan *last,
                               char *err) {
  struct segs *g = &s->segs;
  char path[PATH_MAX];
  segs_path(g, path, sizeof path, g->firsts[g->n - 1]);
  g->fd = s->io->open(s->io, path, O_RDWR, 0);
  if (g->fd < 0)
    return sys_error(err, path, "open", errno, "Check the permissions.");
  g->off = last->end;
  g->full = 0;
  if (last->torn) {
    if (s->io->ftruncate(s->io, g->fd, (off_t)last->end) != 0)
      return sys_error(err, path, "ftruncate", errno, "Check the disk.");
    if (last->end < g->seg_size &&
        s->io->fallocate(s->io, g->fd, (off_t)last->end,
                         (off_t)(g->seg_size - last->end)) != 0)
      return sys_error(err, path, "fallocate", errno, "Free disk space.");
    store_note(s,
               "%s: cut a torn write at offset %zu (after index %" PRIu64 ")",
               path, last->end, last->last);
  }
  if (s->io->fsync(s->io, g->fd) != 0)
    return sys_error(err, path, "fsync", errno, "Check the disk.");
  return 0;
}

/* Fit the log to the snapshot (Raft: keep the entries after the snapshot
 * only if the log holds the snapshot's last entry with the same term). */
static int fit_to_snapshot(struct store *s, char *err) {
  uint64_t S = s->has_snap ? s->snap.last_index : 0;
  uint64_t F = log_first(&s->log), L = log_last(&s->log);
  struct segs *g = &s->segs;
  if (g->n == 0) {
    log_init(&s->log, S + 1);
    segs_init(g, s->io, s->dir, s->seg_size, S + 1);
    return 0;
  }
  char path[PATH_MAX];
  segs_path(g, path, sizeof path, g->firsts[0]);
  if (F > S + 1) {
    store_errf(
        err,
        "%s: the log starts at index %" PRIu64
        " but %s: entries "
        "%" PRIu64 "..%" PRIu64
        " are missing. Restore the missing "
        "files, or move the data directory away and let the server "
        "rejoin the cluster.",
        path, F,
        S ? "the newest snapshot ends before it" : "there is no snapshot",
        S + 1, F - 1);
    return STORE_EMISSING;
  }
  if (S == 0) return 0;
  int keep =
      F == S + 1 || (L >= S && log_get(&s->log, S)->term == s->snap.last_term);
  int rc;
  if (keep) {
    log_compact(&s->log, S);
    rc = segs_compact(g, S, err);
  } else {
    /* A snapshot from the leader replaced this log; the old segments were
     * being deleted when the server stopped. */
    store_note(s,
               "discarded log %" PRIu64 "..%" PRIu64
               " superseded by snapshot %" PRIu64,
               F, L, S);
    log_free(&s->log);
    log_init(&s->log, S + 1);
    rc = segs_reset(g, S + 1, err);
  }
  return rc;
}

int store_load_dir(struct store *s, char *err) {
  struct listing l;
  memset(&l, 0, sizeof l);
  struct seg_scan last;
  memset(&last, 0, sizeof last);
  int rc;
  if ((rc = make_dir(s, err)) != 0) return rc;
  if ((rc = lock_dir(s, err)) != 0) return rc;
  if ((rc = list_dir(s, &l, err)) == 0 && (rc = load_meta(s, &l, err)) == 0 &&
      (rc = load_snapshot(s, &l, err)) == 0 &&
      (rc = load_segments(s, &l, &last, err)) == 0) {
    if (s->segs.n > 0) rc = settle_last_segment(s, &last, err);
    if (rc == 0) rc = fit_to_snapshot(s, err);
    if (rc == 0 && s->segs.n > 0 && last.sealed) {
      /* The newest segment says the log goes on: its successor is gone. */
      char path[PATH_MAX];
      segs_path(&s->segs, path, sizeof path, s->segs.firsts[s->segs.n - 1]);
      store_errf(err,
                 "%s: sealed at offset %zu, so the log continues at index "
                 "%" PRIu64
                 " in a segment file that is missing. Restore "
                 "it, or move the data directory away and let the server "
                 "rejoin the cluster.",
                 path, last.end, last.last + 1);
      rc = STORE_EMISSING;
    }
  }
  free(l.segs);
  free(l.snaps);
  if (rc == 0) s->durable = log_last(&s->log);
  /* A new log: prepare its first segment now, so that the first appends
   * already write into zero-filled, allocated blocks. */
  if (rc == 0 && s->segs.n == 0 &&
      segs_prepare_spare(s->io, s->dir, s->seg_size, &s->segs.spare_fd,
                         s->spare_err) != 0)
    store_note(s, "no spare segment: %s", s->spare_err);
  return rc;
}

int store_open(uv_loop_t *loop, const char *dir, const struct store_opts *opts,
               struct store **out, char *err) {
  static const struct store_opts defaults = {0, 0, NULL};
  if (!opts) opts = &defaults;
  if (err) err[0] = 0;
  size_t seg_size =
      opts->segment_size ? opts->segment_size : STORE_DEFAULT_SEGMENT_SIZE;
  if (!loop || seg_size < 4096 || (!opts->memory && !dir) ||
      (dir && strlen(dir) + 64 >= PATH_MAX)) {
    store_errf(err, "store_open: invalid arguments");
    return STORE_EINVAL;
  }
  struct store *s = calloc(1, sizeof *s);
  if (!s) return STORE_ENOMEM;
  s->loop = loop;
  s->lock_fd = -1;
  store_io_default(&s->sysio);
  s->io = opts->io ? opts->io : &s->sysio;
  s->memory = opts->memory;
  s->seg_size = seg_size;
  snprintf(s->dir, sizeof s->dir, "%s", s->memory ? "" : dir);
  s->spare_offer = -1;
  s->pending = &s->jobs[0];
  log_init(&s->log, 1);
  segs_init(&s->segs, s->io, s->dir, seg_size, 1);
  int rc = meta_init(&s->meta);
  if (rc == 0 && !s->memory) {
    meta_free(&s->meta);
    rc = store_load_dir(s, err);
  }
  if (rc) {
    store_free(s);
    return rc;
  }
  s->jobs[0].base = log_last(&s->log) + 1;
  assert(s->memory || s->segs.next == s->jobs[0].base);
  store_prepare_memory_now(s); /* the first appends fault in nothing */
  s->seg_fill = s->segs.n ? s->segs.off : 0;
  if ((rc = writer_start(s)) != 0) {
    store_free(s);
    return rc;
  }
  *out = s;
  return 0;
}
