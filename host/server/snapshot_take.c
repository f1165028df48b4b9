/*
 * snapshot_take.c — when and how this server takes a snapshot of its state
 * machine: in a forked child (snapshot.c) when the store has files, in
 * process otherwise; the bookkeeping once one is durable; the operator's
 * snapshot requests (server_snapshot_now/begin/file).
 *
 * In process, the state machine hands the snapshot over piece by piece
 * through a sink (struct server_sink) that gives each piece to the store's
 * writer at once (store_snap_begin, store_snap_write at following offsets,
 * store_snap_finish: temporary file, checksum, fsync, rename, directory
 * fsync; a memory-only store keeps its one copy), so no second copy of the
 * state is ever assembled. A write the store refuses stops the snapshot and
 * is logged with the store's message.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"

/* The in-process sink: each piece goes to the store's snapshot writer at
 * once, at the offset following the last. */
struct take_sink {
  struct server *s;
  struct snap_writer *w;
  uint64_t off;
  int failed;
  char err[STORE_ERR_MAX];
};

static int take_write(void *ctx, const void *p, size_t n) {
  struct take_sink *k = ctx;
  assert(!k->failed); /* the state machine stops at the first failure */
  int rc = store_snap_write(k->s->store, k->w, k->off, p, n, k->err);
  if (rc != 0) {
    k->failed = 1;
    if (!k->err[0]) snprintf(k->err, sizeof k->err, "%s", store_strerror(rc));
    return -1;
  }
  k->off += n;
  return 0;
}

/* The store refused the snapshot of `index` (err): logged, and counted in
 * snapshot_failed_index. */
static void store_failed(struct server *s, uint64_t index, uint64_t term,
                         uint64_t bytes, const char *err) {
  struct logger_line l;
  if (index > s->snaps.failed) s->snaps.failed = index;
  logger_begin(&l, &s->log, LOGGER_ERROR, "snapshot_failed");
  logger_u64(&l, "index", index);
  logger_u64(&l, "term", term);
  logger_u64(&l, "bytes", bytes);
  logger_str(&l, "msg", err[0] ? err : "writing the snapshot failed");
  logger_end(&l);
}

/* The state machine's snapshot of `index`, written in process: the store's
 * writer is opened first and takes each piece as the state machine hands
 * it over (no copy of the whole in memory), then finished (durable and
 * installed). 0, or -1 (the handler failed, logged by the state machine;
 * or the store failed, logged here). *bytes: the snapshot's size. */
static int write_snapshot(struct server *s, uint64_t index, uint64_t term,
                          const struct raft_conf *conf, uint64_t *bytes) {
  struct take_sink k = {.s = s};
  struct raft_buf *cb = raft_conf_encode(conf);
  if (!cb) return -1;
  int rc =
      store_snap_begin(s->store, index, term, cb->data, cb->len, &k.w, k.err);
  raft_buf_unref(cb);
  if (rc != 0) {
    store_failed(s, index, term, 0, k.err);
    return -1;
  }
  struct server_sink sink = {take_write, &k};
  if (s->o.sm->snapshot(s->o.sm->data, &sink) != 0 || k.failed) {
    store_snap_abort(s->store, k.w);
    if (k.failed) store_failed(s, index, term, k.off, k.err);
    return -1;
  }
  if (store_snap_finish(s->store, k.w, k.err) != 0) {
    store_failed(s, index, term, k.off, k.err);
    return -1;
  }
  *bytes = k.off;
  return 0;
}

void server__snapshot_taken(struct server *s, uint64_t index, uint64_t term,
                            size_t bytes, double secs, int forked) {
  if (index > s->snaps.last) s->snaps.last = index;
  raft_snapshot_taken(s->raft, index);
  metrics__snapshot(s, 0, bytes, secs);
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, "snapshot_taken");
  logger_u64(&l, "index", index);
  logger_u64(&l, "term", term);
  logger_u64(&l, "bytes", bytes);
  logger_f64(&l, "duration_ms", secs * 1e3);
  logger_str(&l, "by", forked ? "child" : "server");
  logger_end(&l);
  server__notify(s, "snapshot", "index=%llu bytes=%zu",
                 (unsigned long long)index, bytes);
  /* The core may now compact, or send what waited for the snapshot. */
  if (forked) server__process(s);
}

void server__snapshot_failed(struct server *s, uint64_t index, uint64_t term,
                             const char *msg) {
  if (index > s->snaps.failed) s->snaps.failed = index;
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_ERROR, "snapshot_failed");
  logger_u64(&l, "index", index);
  logger_u64(&l, "term", term);
  logger_str(&l, "msg", msg);
  logger_end(&l);
}

/* Takes a snapshot of the state machine at s->applied (after a ready): in
 * a forked child when `may_fork` and the store has files, so that the loop
 * goes on serving while it is serialized and written; in-process
 * otherwise. Returns 0 (taken, started, nothing to take yet, or a child is
 * still writing the previous one) or -1 (it failed). */
int snapshot__take(struct server *s, int may_fork) {
  uint64_t index = s->applied;
  uint64_t term = raft_term_at(s->raft, index);
  if (snapshot__busy(s)) return 0;
  /* Only what is durable here may be covered: a snapshot past our own
   * log's durable end could, after a crash, sit in front of entries of
   * another history. The next ready tries again. */
  if (index > raft_persisted_index(s->raft)) return 0;
  if (index <= s->snaps.last || term == 0) return 0;
  if (s->snaps.in) {
    /* A transfer from the leader is open. If this server has since
     * applied past it, it is moot (the core answers its later chunks with
     * "done"); otherwise it is still wanted, and the local snapshot waits. */
    if (snap_writer_index(s->snaps.in) > index) return 0;
    store_snap_abort(s->store, s->snaps.in);
    s->snaps.in = NULL;
  }
  /* The thresholds count again from here, whatever the outcome: a
   * snapshot that fails is tried again a threshold later, not at once. */
  s->snaps.attempt = index;
  s->snaps.bytes_since = 0;
  /* last_snapshot moves when the child has written the file. */
  if (may_fork && snapshot__fork(s, index, term, 0) == 0) return 0;
  uint64_t t0 = uv_hrtime(), bytes = 0;
  if (write_snapshot(s, index, term, raft_configuration(s->raft), &bytes) != 0)
    return -1;
  server__snapshot_taken(s, index, term, (size_t)bytes,
                         server__seconds_since(t0), 0);
  return 0;
}

int server_snapshot_now(struct server *s, uint64_t *index) {
  int rc = s->stopping || s->failed || s->agree.diverged ? -1
           : snapshot__busy(s)                           ? -2
                                                         : snapshot__take(s, 0);
  *index = s->snaps.last;
  return rc;
}

int server_snapshot_begin(struct server *s, uint64_t *target) {
  *target = s->snaps.last;
  if (s->stopping || s->failed || s->agree.diverged) return -1;
  if (snapshot__busy(s)) return -2;
  if (snapshot__take(s, 1) < 0) return -1;
  *target = snapshot__busy(s) ? s->snaps.child.index : s->snaps.last;
  return 0;
}

int server_snapshot_file(const struct server *s, char *path, size_t size,
                         uint64_t *index) {
  *index = s->snaps.last;
  const struct store_snapshot *ss = store_snapshot(s->store);
  if (!ss || store_snap_file(s->store, path, size) < 0) return -1;
  *index = ss->last_index;
  return 0;
}

int server__snapshot_with_hash(struct server *s, uint64_t index) {
  uint64_t term = raft_term_at(s->raft, index);
  if (!s->o.sm->snapshot_hash || snapshot__busy(s) || index != s->applied ||
      index > raft_persisted_index(s->raft) || index <= s->snaps.last ||
      term == 0 || s->snaps.in || store_is_memory(s->store))
    return -1;
  /* Due within half a threshold: taking it now costs nothing more, and
   * with equal thresholds and intervals the two stay together. */
  if (index < s->snaps.attempt + s->o.snapshot_entries / 2 &&
      s->snaps.bytes_since < s->o.snapshot_bytes / 2)
    return -1;
  if (snapshot__fork(s, index, term, 1) != 0) return -1;
  s->snaps.attempt = index;
  s->snaps.bytes_since = 0;
  return 0;
}

void snapshot__applied(struct server *s, size_t bytes) {
  s->snaps.bytes_since += bytes;
}

int snapshot__due(const struct server *s) {
  return s->applied >= s->snaps.attempt + s->o.snapshot_entries ||
         s->snaps.bytes_since >= s->o.snapshot_bytes;
}

uint64_t snapshot__failed_index(const struct server *s) {
  return s->snaps.failed;
}
