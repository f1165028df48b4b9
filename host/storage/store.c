/*
 * store.c — the store's operations on the loop thread: appends, suffix
 * truncation, prefix compaction, metadata, snapshots, reads, close.
 *
 * Log changes take effect in memory at once and are added to the pending
 * job (under the writer mutex), which the writer thread (writer.c) takes as
 * soon as it is free.
 */
#include "storage/store.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/format.h"
#include "storage/store_int.h"

void job_clear(struct job *j, uint64_t base) {
  j->base = base;
  j->truncate_from = j->reset_next = j->compact_upto = j->trunc_after = 0;
  j->len = j->nrec = j->nw = 0;
  j->status = 0;
  j->sync_ns = 0;
  j->err[0] = 0;
  if (j->has_meta) meta_free(&j->meta);
  j->has_meta = 0;
}

int job_empty(const struct job *j) {
  return j->nrec == 0 && !j->truncate_from && !j->reset_next &&
         !j->compact_upto && j->nw == 0 && !j->has_meta;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return STORE_ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}

static int add_waiter(struct job *j, store_cb cb, void *data) {
  if (!cb) return 0;
  if (grow((void **)&j->w, &j->wcap, j->nw + 1, sizeof *j->w))
    return STORE_ENOMEM;
  j->w[j->nw].cb = cb;
  j->w[j->nw].data = data;
  j->nw++;
  return 0;
}

/* Stands in for the callback of an append that failed after its batch was
 * queued (store_append). */
static void ignore_cb(struct store *s, uint64_t durable, int status,
                      void *data) {
  (void)s, (void)durable, (void)status, (void)data;
}

static int check_writable(const struct store *s) {
  if (s->closing) return STORE_ECLOSED;
  if (s->failed) return STORE_EFAILED;
  return 0;
}

uint64_t store_first_index(const struct store *s) {
  return log_first(&s->log);
}

uint64_t store_last_index(const struct store *s) {
  return log_last(&s->log);
}

uint64_t store_durable_index(const struct store *s) {
  return s->durable;
}

uint64_t store_term_at(const struct store *s, uint64_t index) {
  const struct store_entry *e = log_get(&s->log, index);
  if (e) return e->term;
  if (s->has_snap && index == s->snap.last_index) return s->snap.last_term;
  return 0;
}

uint64_t store_last_term(const struct store *s) {
  if (s->log.n) return log_get(&s->log, log_last(&s->log))->term;
  return s->has_snap ? s->snap.last_term : 0;
}

int store_entries(const struct store *s, uint64_t a, uint64_t b,
                  const struct store_entry **out) {
  if (a > b || a < log_first(&s->log) || b > log_last(&s->log) || s->log.n == 0)
    return STORE_ERANGE;
  *out = log_get(&s->log, a);
  return 0;
}

int store_append(struct store *s, const struct store_entry *entries, size_t n,
                 store_cb cb, void *data) {
  int rc = check_writable(s);
  if (rc) return rc;
  uint64_t next = log_last(&s->log) + 1, term = store_last_term(s);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    const struct store_entry *e = &entries[i];
    if (e->index != next + i || e->term < term || e->index == 0 ||
        e->len > REC_MAX_PAYLOAD || (e->len && !e->data))
      return STORE_EINVAL;
    term = e->term;
    bytes += rec_size(e->len);
  }
  /* The batch is encoded and handed to the writer first, and copied into
   * the in-memory log while the disk works: the copy (into memory the CPU
   * has not touched lately) costs more than the encoding. The writer is
   * woken before either, so that its wake-up overlaps with the encoding;
   * while `filling` it leaves the pending job to us, so the encoding needs
   * no lock (which the writer would otherwise wait for asleep). */
  writer_filling(s);
  struct job *j = s->pending;
  assert(j->base + j->nrec == next);
  if ((!s->memory &&
       (grow((void **)&j->buf, &j->cap, j->len + bytes, 1) ||
        grow((void **)&j->recs, &j->rcap, j->nrec + n, sizeof *j->recs))) ||
      (cb && grow((void **)&j->w, &j->wcap, j->nw + 1, sizeof *j->w))) {
    writer_filled(s);
    writer_kick(s);
    return STORE_ENOMEM; /* nothing changed */
  }
  for (size_t i = 0; i < n && !s->memory; i++) {
    const struct store_entry *e = &entries[i];
    j->recs[j->nrec + i] = j->len;
    rec_encode(j->buf + j->len, e->index, e->term, e->type, e->data, e->len);
    j->len += rec_size(e->len);
  }
  j->nrec += n;
  struct waiter *w = NULL;
  if (cb) {
    add_waiter(j, cb, data);
    w = &j->w[j->nw - 1];
  }
  writer_filled(s);
  writer_kick(s);
  if ((rc = log_append(&s->log, entries, n)) != 0) {
    /* The batch is being written but cannot be held in memory: stop, as
     * after a write error (durable indexes never pass the in-memory log,
     * and a restart finds the entries on disk like after a crash). */
    uv_mutex_lock(&s->mu);
    if (w) w->cb = ignore_cb; /* the caller is told now, not later */
    uv_mutex_unlock(&s->mu);
    s->failed = STORE_ENOMEM;
    snprintf(s->errmsg, sizeof s->errmsg,
             "out of memory holding entries %" PRIu64 "..%" PRIu64
             " in memory: the store takes no more writes; restart the "
             "server",
             next, next + n - 1);
    return rc;
  }
  store_prepare_memory(s);
  return 0;
}

int store_truncate_suffix(struct store *s, uint64_t from, store_cb cb,
                          void *data) {
  int rc = check_writable(s);
  if (rc) return rc;
  if (from < log_first(&s->log) || from == 0 ||
      (s->has_snap && from <= s->snap.last_index))
    return STORE_EINVAL;
  uv_mutex_lock(&s->mu);
  struct job *j = s->pending;
  if (cb && grow((void **)&j->w, &j->wcap, j->nw + 1, sizeof *j->w)) {
    uv_mutex_unlock(&s->mu);
    return STORE_ENOMEM;
  }
  if (from <= log_last(&s->log)) {
    log_truncate(&s->log, from);
    if (from >= j->base) {
      size_t k = (size_t)(from - j->base);
      assert(k < j->nrec);
      j->nrec = k;
      if (!s->memory) j->len = j->recs[k];
    } else {
      /* The entries to remove are on disk (or being written). */
      assert(!j->reset_next);
      j->nrec = j->len = 0;
      j->truncate_from = from;
      j->base = from;
      writer_cap_taken(s, from);
    }
    if (s->durable > from - 1) s->durable = from - 1;
  }
  add_waiter(j, cb, data);
  uv_mutex_unlock(&s->mu);
  writer_kick(s);
  return 0;
}

/* Drop entries <= up_to from memory and schedule the segment deletions. */
static void compact(struct store *s, uint64_t up_to) {
  if (up_to < log_first(&s->log)) return;
  log_compact(&s->log, up_to);
  if (s->durable < up_to) s->durable = up_to;
  if (s->failed) return;
  uv_mutex_lock(&s->mu);
  if (up_to > s->pending->compact_upto) s->pending->compact_upto = up_to;
  uv_mutex_unlock(&s->mu);
  writer_kick(s);
}

int store_compact_prefix(struct store *s, uint64_t up_to) {
  if (s->closing) return STORE_ECLOSED;
  if (!s->has_snap || up_to > s->snap.last_index || up_to > log_last(&s->log))
    return STORE_EINVAL;
  compact(s, up_to);
  return 0;
}

/* The snapshot replaces the whole log: the next entry is `next`. */
static void reset_log(struct store *s, uint64_t next) {
  log_truncate(&s->log, log_first(&s->log));
  s->log.base = next;
  s->log.start = 0;
  s->durable = next - 1;
  if (s->failed) return;
  uv_mutex_lock(&s->mu);
  struct job *j = s->pending;
  j->nrec = j->len = 0;
  j->truncate_from = j->compact_upto = 0;
  j->reset_next = next;
  j->base = next;
  writer_cap_taken(s, 1); /* nothing they wrote is part of the log now */
  uv_mutex_unlock(&s->mu);
  writer_kick(s);
}

int store_save_meta(struct store *s, uint64_t term, const char *vote,
                    uint64_t config_index, const void *config,
                    size_t config_len, char *err) {
  struct store_meta m;
  if (s->closing) return STORE_ECLOSED;
  if (vote && strlen(vote) > META_MAX_VOTE) return STORE_EINVAL;
  if (config_len > META_MAX_CONFIG) return STORE_EINVAL;
  if (s->meta_queued != s->meta_done) {
    store_errf(err,
               "metadata not saved: a queued metadata write is "
               "outstanding");
    return STORE_EINVAL;
  }
  int rc = meta_copy(&m, term, vote, config_index, config, config_len);
  if (rc) return rc;
  if (!s->memory && (rc = meta_save(s->io, s->dir, &m, err)) != 0) {
    meta_free(&m);
    return rc;
  }
  meta_free(&s->meta);
  s->meta = m;
  return 0;
}

int store_queue_meta(struct store *s, uint64_t term, const char *vote,
                     uint64_t config_index, const void *config,
                     size_t config_len, store_cb cb, void *data) {
  int rc = check_writable(s);
  if (rc) return rc;
  if (vote && strlen(vote) > META_MAX_VOTE) return STORE_EINVAL;
  if (config_len > META_MAX_CONFIG) return STORE_EINVAL;
  struct store_meta m;
  if ((rc = meta_copy(&m, term, vote, config_index, config, config_len)) != 0)
    return rc;
  uv_mutex_lock(&s->mu);
  struct job *j = s->pending;
  if (cb && grow((void **)&j->w, &j->wcap, j->nw + 1, sizeof *j->w)) {
    uv_mutex_unlock(&s->mu);
    meta_free(&m);
    return STORE_ENOMEM;
  }
  /* A newer replacement of the whole file makes the one not yet taken
   * redundant: the job writes only the newest, before its records. */
  if (j->has_meta) meta_free(&j->meta);
  j->meta = m;
  j->has_meta = 1;
  j->meta_seq = ++s->meta_queued;
  add_waiter(j, cb, data);
  uv_mutex_unlock(&s->mu);
  writer_kick(s);
  return 0;
}

const struct store_meta *store_meta(const struct store *s) {
  return &s->meta;
}

int store_snap_begin(struct store *s, uint64_t last_index, uint64_t last_term,
                     const void *config, size_t config_len,
                     struct snap_writer **w, char *err) {
  if (s->closing) return STORE_ECLOSED;
  if (s->writer || s->fin_busy ||
      (s->has_snap && last_index <= s->snap.last_index)) {
    store_errf(err,
               "snapshot %" PRIu64
               " refused: another snapshot is being "
               "written or a newer one is installed",
               last_index);
    return STORE_EINVAL;
  }
  int rc = snap_begin(s->io, s->memory ? NULL : s->dir, last_index, last_term,
                      config, config_len, w, err);
  if (rc == 0) s->writer = *w;
  return rc;
}

int store_snap_write(struct store *s, struct snap_writer *w, uint64_t offset,
                     const void *buf, size_t len, char *err) {
  if (w == NULL || w != s->writer) return STORE_EINVAL;
  return snap_write(w, offset, buf, len, err);
}

void store_snap_abort(struct store *s, struct snap_writer *w) {
  if (w == NULL || w != s->writer) return;
  s->writer = NULL;
  snap_abort(w);
}

/* The path of snapshot-<index> in the store's directory. */
static void snap_path(const struct store *s, uint64_t index, char *out,
                      size_t size) {
  char name[64];
  snap_name(name, sizeof name, index);
  snprintf(out, size, "%s/%s", s->dir, name);
}

/* Snapshot ns is durable under its final name: it replaces the current
 * one, and the log is compacted behind it (or reset). */
static void install_snapshot(struct store *s, struct store_snapshot *ns) {
  if (s->has_snap) {
    /* The new snapshot is durable: the old one is redundant. A failure to
     * delete it only leaves a file that start-up removes. */
    if (!s->memory) {
      char path[PATH_MAX + 64];
      snap_path(s, s->snap.last_index, path, sizeof path);
      if (s->io->unlink(s->io, path) == 0) io_sync_dir(s->io, s->dir);
    }
    snap_free(&s->snap);
  }
  s->snap = *ns;
  s->has_snap = 1;
  const struct store_entry *e = log_get(&s->log, ns->last_index);
  if (e && e->term == ns->last_term)
    compact(s, ns->last_index);
  else
    reset_log(s, ns->last_index + 1);
}

int store_snap_finish(struct store *s, struct snap_writer *w, char *err) {
  if (w == NULL || w != s->writer) return STORE_EINVAL;
  s->writer = NULL;
  struct store_snapshot ns;
  int rc = snap_finish(w, &ns, err);
  if (rc) return rc;
  install_snapshot(s, &ns);
  return 0;
}

static void fin_work(uv_work_t *req) {
  struct store *s = req->data;
  s->fin_rc = snap_finish(s->fin_w, &s->fin_ns, s->fin_err);
  s->fin_w = NULL; /* freed by snap_finish, whatever the outcome */
}

static void fin_done(uv_work_t *req, int uvstatus) {
  struct store *s = req->data;
  struct store_snapshot ns = s->fin_ns;
  int rc = uvstatus ? STORE_EIO : s->fin_rc;
  s->fin_busy = 0;
  memset(&s->fin_ns, 0, sizeof s->fin_ns);
  if (rc == 0 && s->closing) {
    store_errf(s->fin_err, "snapshot %" PRIu64 " not installed: closing",
               ns.last_index);
    snap_free(&ns);
    rc = STORE_ECLOSED;
  } else if (rc == 0 && s->has_snap && ns.last_index <= s->snap.last_index) {
    store_errf(s->fin_err,
               "snapshot %" PRIu64 " not installed: snapshot %" PRIu64
               " is newer",
               ns.last_index, s->snap.last_index);
    snap_free(&ns);
    rc = STORE_EINVAL;
  } else if (rc == 0) {
    install_snapshot(s, &ns);
  }
  if (rc && !s->fin_err[0]) store_errf(s->fin_err, "%s", store_strerror(rc));
  store_snap_cb cb = s->fin_cb;
  s->fin_cb = NULL;
  if (cb) cb(s, rc, s->fin_err, s->fin_data);
  if (s->closing) store_maybe_free(s);
}

int store_snap_finish_async(struct store *s, struct snap_writer *w,
                            store_snap_cb cb, void *data) {
  if (w == NULL || w != s->writer || s->fin_busy) return STORE_EINVAL;
  if (s->closing) return STORE_ECLOSED;
  s->writer = NULL;
  s->fin_w = w;
  s->fin_err[0] = 0;
  s->fin_cb = cb;
  s->fin_data = data;
  s->fin_req.data = s;
  s->fin_busy = 1;
  if (uv_queue_work(s->loop, &s->fin_req, fin_work, fin_done) != 0) {
    s->fin_busy = 0;
    s->fin_w = NULL;
    snap_abort(w);
    return STORE_ENOMEM;
  }
  return 0;
}

int store_is_memory(const struct store *s) {
  return s->memory;
}

int store_snap_begin_detached(const struct store *s, uint64_t last_index,
                              uint64_t last_term, const void *config,
                              size_t config_len, struct snap_writer **w,
                              char *err) {
  if (s->memory) {
    store_errf(err, "a memory-only store has no snapshot files");
    return STORE_EINVAL;
  }
  return snap_begin(s->io, s->dir, last_index, last_term, config, config_len, w,
                    err);
}

int store_snap_finish_detached(struct snap_writer *w, char *err) {
  return snap_finish_file(w, err);
}

int store_snap_write_detached(const struct store *s, uint64_t last_index,
                              uint64_t last_term, const void *config,
                              size_t config_len, const void *data, size_t len,
                              char *err) {
  struct snap_writer *w;
  int rc = store_snap_begin_detached(s, last_index, last_term, config,
                                     config_len, &w, err);
  if (rc) return rc;
  if ((rc = snap_write(w, 0, data, len, err)) != 0) {
    snap_abort(w);
    return rc;
  }
  return store_snap_finish_detached(w, err);
}

int store_snap_read(const struct store *s, uint64_t last_index,
                    struct store_snapshot *out, char *err) {
  memset(out, 0, sizeof *out);
  if (s->memory) {
    store_errf(err, "a memory-only store has no snapshot files");
    return STORE_EINVAL;
  }
  char path[PATH_MAX + 64];
  snap_path(s, last_index, path, sizeof path);
  int rc = snap_load(s->io, path, out, err);
  if (rc) return rc;
  if (out->last_index != last_index) {
    store_errf(err, "%s holds snapshot %" PRIu64, path, out->last_index);
    snap_free(out);
    return STORE_ECORRUPT;
  }
  return 0;
}

int store_snap_adopt(struct store *s, struct store_snapshot *ns, char *err) {
  if (s->closing) {
    snap_free(ns);
    return STORE_ECLOSED;
  }
  if (s->has_snap && ns->last_index <= s->snap.last_index) {
    char path[PATH_MAX + 64];
    snap_path(s, ns->last_index, path, sizeof path);
    if (s->io->unlink(s->io, path) == 0) io_sync_dir(s->io, s->dir);
    store_errf(err,
               "snapshot %" PRIu64 " not installed: snapshot %" PRIu64
               " is newer",
               ns->last_index, s->snap.last_index);
    snap_free(ns);
    return STORE_EINVAL;
  }
  install_snapshot(s, ns);
  memset(ns, 0, sizeof *ns); /* the store owns it now */
  return 0;
}

int store_snap_file(const struct store *s, char *path, size_t size) {
  if (s->memory || !s->has_snap) return -1;
  snap_path(s, s->snap.last_index, path, size);
  return 0;
}

const struct store_snapshot *store_snapshot(const struct store *s) {
  return s->has_snap ? &s->snap : NULL;
}

void store_set_write_observer(struct store *s, store_write_cb cb, void *data) {
  s->write_cb = cb;
  s->write_data = data;
}

const char *store_errmsg(const struct store *s) {
  return s->errmsg;
}

const char *store_notice(const struct store *s) {
  return s->notice;
}

void store_free(struct store *s) {
  assert(!s->started);
  if (s->writer) snap_abort(s->writer);
  if (s->sync_init && s->spare_offer >= 0 && s->segs.spare_fd < 0) {
    s->segs.spare_fd = s->spare_offer; /* segs_close removes it */
    s->spare_offer = -1;
  }
  segs_close(&s->segs);
  log_free(&s->log);
  meta_free(&s->meta);
  snap_free(&s->snap);
  for (int i = 0; i < STORE_JOBS; i++) {
    if (s->jobs[i].has_meta) meta_free(&s->jobs[i].meta);
    free(s->jobs[i].buf);
    free(s->jobs[i].recs);
    free(s->jobs[i].w);
  }
  if (s->sync_init) {
    uv_cond_destroy(&s->cv);
    uv_mutex_destroy(&s->mu);
  }
  store_unlock(s);
  free(s);
}

void store_close(struct store *s, store_close_cb cb, void *data) {
  assert(!s->closing);
  s->closing = 1;
  s->close_cb = cb;
  s->close_data = data;
  if (s->writer) {
    snap_abort(s->writer);
    s->writer = NULL;
  }
  writer_close(s);
}
