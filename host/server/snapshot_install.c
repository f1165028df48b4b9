/*
 * snapshot_install.c — a snapshot received from the leader: its chunks are
 * written to a temporary file as they arrive (never held whole in memory),
 * the finished file is checked (read back against what was received), made
 * durable and renamed on libuv's thread pool, and the state machine is
 * restored from it. What arrives is checked end to end first: the core
 * sums the chunks (CRC-32C) and refuses a snapshot whose sum is not the
 * one the leader sends with the last chunk (snapshot__refused drops the
 * file; nothing is restored; the leader sends it again). The restore runs
 * on the loop: the state machine's Lua state belongs to the loop thread, so
 * a state machine that takes long to load its snapshot still stalls the
 * loop for that long. A follower does not serve meanwhile; the leader's
 * quorum does not wait for it.
 */
#include <assert.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"

/* Restores the state machine from the store's snapshot, mapped from its
 * file for the time of the call (so the bytes are never copied into this
 * process's heap by the host). 0 or -1. */
int snapshot__restore(struct server *s, const struct store_snapshot *ss) {
  const uint8_t *data;
  void *cookie;
  if (snap_map(ss, &data, &cookie) != 0) return -1;
  int rc = s->o.sm->restore(s->o.sm->data, data, ss->data_len);
  snap_unmap(ss, cookie);
  return rc < 0 ? -1 : 0;
}

/* One chunk of the snapshot the leader is sending: written to the
 * snapshot's temporary file as it arrives, so a large snapshot is never
 * held whole in memory twice and a crash mid-transfer leaves only a .tmp
 * file (which start-up deletes). The core hands chunks over in order and
 * starts every transfer at offset 0, where it names the configuration. */
void snapshot__receive_chunk(struct server *s,
                             const struct raft_chunk_recv *c) {
  char err[512] = "";
  int rc = 0;
  if (c->offset == 0) {
    store_snap_abort(s->store, s->snaps.in); /* a transfer started over */
    s->snaps.in = NULL;
    if (!c->conf) return;
    rc = store_snap_begin(s->store, c->index, c->term, c->conf->data,
                          c->conf->len, &s->snaps.in, err);
  } else if (!s->snaps.in || snap_writer_index(s->snaps.in) != c->index ||
             snap_writer_term(s->snaps.in) != c->term) {
    return; /* not one we are writing: its install fails below */
  }
  if (rc == 0 && c->data)
    rc = store_snap_write(s->store, s->snaps.in, c->offset, c->data->data,
                          c->data->len, err);
  if (rc == 0)
    transfer__received(s, c->index, c->offset + (c->data ? c->data->len : 0));
  if (rc < 0) {
    store_snap_abort(s->store, s->snaps.in);
    s->snaps.in = NULL;
    server__storage_failed(s, "snapshot_receive",
                           err[0] ? err : store_strerror(rc));
    s->failed = 1;
  }
}

/* The second half, on the loop: the store holds the snapshot it just made
 * durable, read back from the file and checked; the state machine is
 * restored from that (the Lua state belongs to the loop thread, so the
 * restore itself, as long as the state machine takes to load the bytes,
 * stays on the loop). */
static void installed(struct server *s, uint64_t index, uint64_t term,
                      uint64_t t0) {
  struct logger_line l;
  const struct store_snapshot *snap = store_snapshot(s->store);
  uint64_t r0 = uv_hrtime();
  if (snapshot__restore(s, snap) < 0) {
    logger_begin(&l, &s->log, LOGGER_ERROR, "snapshot_restore_failed");
    logger_u64(&l, "index", index);
    logger_u64(&l, "bytes", snap->data_len);
    logger_str(&l, "msg",
               "the state machine refused the leader's snapshot; this "
               "server accepts no more writes");
    logger_end(&l);
    s->failed = 1;
    return;
  }
  snapshot__restored(s, index);
  double secs = server__seconds_since(t0);
  metrics__snapshot(s, 1, snap->data_len, secs);
  logger_begin(&l, &s->log, LOGGER_INFO, "snapshot_installed");
  logger_u64(&l, "index", index);
  logger_u64(&l, "term", term);
  logger_u64(&l, "bytes", snap->data_len);
  logger_f64(&l, "duration_ms", secs * 1e3);
  /* The part of it that ran on the loop: the state machine's restore. */
  logger_f64(&l, "restore_ms", server__seconds_since(r0) * 1e3);
  logger_str(&l, "leader", raft_leader(s->raft));
  logger_end(&l);
  server__notify(s, "snapshot_installed", "index=%llu bytes=%zu",
                 (unsigned long long)index, snap->data_len);
}

static void on_sealed(struct store *st, int status, const char *err,
                      void *data) {
  (void)st;
  struct server *s = data;
  s->snaps.installing = 0;
  if (!s->stopping) {
    if (status < 0) {
      server__snapshot_failed(s, s->snaps.inst_index, s->snaps.inst_term, err);
      s->failed = 1;
    } else {
      installed(s, s->snaps.inst_index, s->snaps.inst_term, s->snaps.inst_t0);
    }
  }
  held__release(s); /* the "done" answer leaves only now, or never */
}

int snapshot__installing(const struct server *s) {
  return s->snaps.installing;
}

void snapshot__install(struct server *s, const struct raft_ready *rd) {
  uint64_t t0 = uv_hrtime();
  char err[512] = "";
  struct snap_writer *w = s->snaps.in;
  s->snaps.in = NULL;
  int rc;
  if (!w || snap_writer_index(w) != rd->snap.index ||
      snap_writer_term(w) != rd->snap.term) {
    store_snap_abort(s->store, w);
    snprintf(err, sizeof err,
             "snapshot %llu: its chunks were not all received here",
             (unsigned long long)rd->snap.index);
    rc = -1;
  } else if (rd->n_persist == 0 && rd->n_committed == 0 && rd->n_reads == 0) {
    /* Nothing else in this ready depends on the new state: the slow half
     * goes to the thread pool, and the ready loop waits for it. */
    s->snaps.inst_index = rd->snap.index;
    s->snaps.inst_term = rd->snap.term;
    s->snaps.inst_t0 = t0;
    rc = store_snap_finish_async(s->store, w, on_sealed, s);
    if (rc == 0) {
      s->snaps.installing = 1;
      held__hold(s);
      return;
    }
    snprintf(err, sizeof err, "snapshot %llu: %s",
             (unsigned long long)rd->snap.index, store_strerror(rc));
  } else {
    rc = store_snap_finish(s->store, w, err);
  }
  if (rc < 0) {
    server__snapshot_failed(s, rd->snap.index, rd->snap.term, err);
    s->failed = 1;
    return;
  }
  installed(s, rd->snap.index, rd->snap.term, t0);
}

void snapshot__refused(struct server *s, const struct raft_ready *rd) {
  uint64_t index = rd->snap_refused.index;
  assert(index != 0);
  if (s->snaps.in && snap_writer_index(s->snaps.in) == index &&
      snap_writer_term(s->snaps.in) == rd->snap_refused.term) {
    store_snap_abort(s->store, s->snaps.in);
    s->snaps.in = NULL;
  }
  s->snaps.refused++;
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_ERROR, "snapshot_refused");
  logger_u64(&l, "index", index);
  logger_u64(&l, "term", rd->snap_refused.term);
  char sums[64];
  snprintf(sums, sizeof sums, "%08x", (unsigned)rd->snap_refused.got);
  logger_str(&l, "crc", sums);
  snprintf(sums, sizeof sums, "%08x", (unsigned)rd->snap_refused.want);
  logger_str(&l, "leader_crc", sums);
  logger_str(&l, "leader", raft_leader(s->raft));
  logger_str(&l, "msg",
             "the snapshot received from the leader is damaged (its "
             "checksum differs from the leader's): it was not installed, "
             "and the leader sends it again");
  logger_end(&l);
}

/* A count from environment variable `name` into *out (0 if unset). 0, or
 * -1 with err filled: set in a build without deliberate bugs, or not a
 * count. */
static int test_count(const char *name, unsigned *out, char *err,
                      size_t errlen) {
  const char *env = getenv(name);
  *out = 0;
  if (!env || !*env) return 0;
  if (!raft_bugs_built()) {
    snprintf(err, errlen,
             "%s is set, but this build breaks nothing on purpose (only "
             "the fault suite's copycat-lua-bugs does)",
             name);
    return -1;
  }
  char *end;
  unsigned long n = strtoul(env, &end, 10);
  if (*end || n > 1000000) {
    snprintf(err, errlen, "%s: '%s' is not a count of chunks", name, env);
    return -1;
  }
  *out = (unsigned)n;
  return 0;
}

int snapshot__test_hooks(struct server *s, char *err, size_t errlen) {
  if (test_count("COPYCAT_TEST_CORRUPT_SNAPSHOT_CHUNKS",
                 &s->snaps.corrupt_chunks, err, errlen) < 0 ||
      test_count("COPYCAT_TEST_STOP_AT_SNAPSHOT_CHUNK", &s->snaps.stop_at_chunk,
                 err, errlen) < 0)
    return -1;
  if (!s->snaps.corrupt_chunks && !s->snaps.stop_at_chunk) return 0;
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_WARN, "deliberate_bugs");
  logger_u64(&l, "corrupt_snapshot_chunks", s->snaps.corrupt_chunks);
  logger_u64(&l, "stop_at_snapshot_chunk", s->snaps.stop_at_chunk);
  logger_str(&l, "msg", "this server is broken on purpose (fault suite)");
  logger_end(&l);
  return 0;
}

void snapshot__test_chunk(struct server *s, struct raft_msg *m) {
  if (m->type != RAFT_MSG_SNAPSHOT) return;
  struct raft_buf *d = m->u.snapshot.data;
  if (!d || !d->len) return;
  if (s->snaps.stop_at_chunk &&
      ++s->snaps.chunks_seen == s->snaps.stop_at_chunk) {
    /* The answer to the chunk before has left (one is in flight at a
     * time): the leader knows what we have. Wait here for SIGCONT. */
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_WARN, "deliberate_stop");
    logger_u64(&l, "chunk", s->snaps.chunks_seen);
    logger_u64(&l, "offset", m->u.snapshot.offset);
    logger_end(&l);
    raise(SIGSTOP);
  }
  if (s->snaps.corrupt_chunks && d->refs == 1) { /* only a buffer of ours */
    s->snaps.corrupt_chunks--;
    d->data[d->len / 2] ^= 0x20;
  }
}

void snapshot__restored(struct server *s, uint64_t index) {
  s->applied = s->snaps.last = s->snaps.attempt = index;
}
