/*
 * server.c — server lifecycle and the carrying-out of the core's outputs.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"

void server__log(struct server *s, const char *event, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, event);
  logger_str(&l, "msg", msg);
  logger_end(&l);
  if (s->o.sm && s->o.sm->notify) s->o.sm->notify(s->o.sm->data, event, msg);
}

void server__notify(struct server *s, const char *event, const char *fmt, ...) {
  if (!s->o.sm || !s->o.sm->notify) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  s->o.sm->notify(s->o.sm->data, event, msg);
}

/* Storage failures stop all writes: one error line says where and why. */
static void storage_failed(struct server *s, const char *op, const char *msg) {
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_ERROR, "storage_failed");
  logger_str(&l, "op", op);
  logger_str(&l, "msg", msg);
  logger_str(&l, "action", "fix the disk, then restart the server");
  logger_end(&l);
  server__notify(s, "storage_failed", "op=%s msg=\"%s\"", op, msg);
}

static double seconds_since(uint64_t t0) {
  return (double)(uv_hrtime() - t0) / 1e9;
}

/* ---- the store ---- */

static void on_durable(struct store *st, uint64_t durable, int status,
                       void *data) {
  struct server *s = data;
  if (s->stopping) return;
  if (status < 0) {
    /* Nothing more is acknowledged: the core never hears of these entries
     * as durable, so no client is told they are committed by our vote. */
    s->failed = 1;
    storage_failed(s, "append", store_errmsg(st));
    return;
  }
  uint64_t term = store_term_at(st, durable);
  if (durable > 0 && term > 0) raft_persisted(s->raft, durable, term);
  server__process_soon(s);
}

static int persist(struct server *s, const struct raft_ready *rd) {
  if (rd->n_persist == 0 && rd->persist_first > store_last_index(s->store))
    return 0;
  if (rd->persist_first <= store_last_index(s->store)) {
    int rc = store_truncate_suffix(s->store, rd->persist_first, NULL, NULL);
    if (rc < 0) return rc;
  }
  if (rd->n_persist == 0) return 0;
  struct store_entry stack[64];
  struct store_entry *e =
      rd->n_persist <= 64 ? stack : malloc(rd->n_persist * sizeof *e);
  if (!e) return STORE_ENOMEM;
  for (size_t i = 0; i < rd->n_persist; i++) {
    const struct raft_entry *re = &rd->persist[i];
    e[i].index = rd->persist_first + i;
    e[i].term = re->term;
    e[i].type = re->type;
    e[i].len = re->buf ? (uint32_t)re->buf->len : 0;
    e[i].data = re->buf ? re->buf->data : NULL;
  }
  int rc = store_append(s->store, e, rd->n_persist, on_durable, s);
  if (e != stack) free(e);
  return rc;
}

/* ---- snapshots ---- */

/* Restores the state machine from the store's snapshot, mapped from its
 * file for the time of the call (so the bytes are never copied into this
 * process's heap by the host). 0 or -1. */
static int restore_from(struct server *s, const struct store_snapshot *ss) {
  const uint8_t *data;
  void *cookie;
  if (snap_map(ss, &data, &cookie) != 0) return -1;
  int rc = s->o.sm->restore(s->o.sm->data, data, ss->data_len);
  snap_unmap(ss, cookie);
  return rc < 0 ? -1 : 0;
}

static int write_snapshot(struct server *s, uint64_t index, uint64_t term,
                          const struct raft_conf *conf, const void *data,
                          size_t len) {
  char err[512];
  struct snap_writer *w;
  struct raft_buf *cb = raft_conf_encode(conf);
  if (!cb) return -1;
  int rc = store_snap_begin(s->store, index, term, cb->data, cb->len, &w, err);
  raft_buf_unref(cb);
  if (rc == 0) rc = store_snap_write(s->store, w, 0, data, len, err);
  if (rc == 0) {
    rc = store_snap_finish(s->store, w, err);
  } else {
    store_snap_abort(s->store, w);
  }
  if (rc < 0) {
    struct logger_line l;
    if (index > s->snap_failed) s->snap_failed = index;
    logger_begin(&l, &s->log, LOGGER_ERROR, "snapshot_failed");
    logger_u64(&l, "index", index);
    logger_u64(&l, "term", term);
    logger_u64(&l, "bytes", len);
    logger_str(&l, "msg", err);
    logger_end(&l);
  }
  return rc;
}

void server__snapshot_taken(struct server *s, uint64_t index, uint64_t term,
                            size_t bytes, double secs, int forked) {
  if (index > s->last_snapshot) s->last_snapshot = index;
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
  if (index > s->snap_failed) s->snap_failed = index;
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
static int take_snapshot(struct server *s, int may_fork) {
  uint64_t index = s->applied;
  uint64_t term = raft_term_at(s->raft, index);
  if (snapshot__busy(s)) return 0;
  /* Only what is durable here may be covered: a snapshot past our own
   * log's durable end could, after a crash, sit in front of entries of
   * another history. The next ready tries again. */
  if (index > raft_persisted_index(s->raft)) return 0;
  if (index <= s->last_snapshot || term == 0) return 0;
  if (s->snap_in) {
    /* A transfer from the leader is open. If this server has since
     * applied past it, it is moot (the core answers its later chunks with
     * "done"); otherwise it is still wanted, and the local snapshot waits. */
    if (snap_writer_index(s->snap_in) > index) return 0;
    store_snap_abort(s->store, s->snap_in);
    s->snap_in = NULL;
  }
  /* The thresholds count again from here, whatever the outcome: a
   * snapshot that fails is tried again a threshold later, not at once. */
  s->snap_attempt = index;
  s->bytes_since_snapshot = 0;
  /* last_snapshot moves when the child has written the file. */
  if (may_fork && snapshot__fork(s, index, term, 0) == 0) return 0;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  uint64_t t0 = uv_hrtime();
  int rc = -1;
  if (s->o.sm->snapshot(s->o.sm->data, &sb) == 0 &&
      write_snapshot(s, index, term, raft_configuration(s->raft), sb.data,
                     sb.size) == 0) {
    rc = 0;
    server__snapshot_taken(s, index, term, sb.size, seconds_since(t0), 0);
  }
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

/* One chunk of the snapshot the leader is sending: written to the
 * snapshot's temporary file as it arrives, so a large snapshot is never
 * held whole in memory twice and a crash mid-transfer leaves only a .tmp
 * file (which start-up deletes). The core hands chunks over in order and
 * starts every transfer at offset 0, where it names the configuration. */
static void receive_chunk(struct server *s, const struct raft_chunk_recv *c) {
  char err[512] = "";
  int rc = 0;
  if (c->offset == 0) {
    store_snap_abort(s->store, s->snap_in); /* a transfer started over */
    s->snap_in = NULL;
    if (!c->conf) return;
    rc = store_snap_begin(s->store, c->index, c->term, c->conf->data,
                          c->conf->len, &s->snap_in, err);
  } else if (!s->snap_in || snap_writer_index(s->snap_in) != c->index ||
             snap_writer_term(s->snap_in) != c->term) {
    return; /* not one we are writing: its install fails below */
  }
  if (rc == 0 && c->data)
    rc = store_snap_write(s->store, s->snap_in, c->offset, c->data->data,
                          c->data->len, err);
  if (rc == 0)
    transfer__received(s, c->index, c->offset + (c->data ? c->data->len : 0));
  if (rc < 0) {
    store_snap_abort(s->store, s->snap_in);
    s->snap_in = NULL;
    storage_failed(s, "snapshot_receive", err[0] ? err : store_strerror(rc));
    s->failed = 1;
  }
}

static void install_snapshot(struct server *s, const struct raft_ready *rd) {
  uint64_t t0 = uv_hrtime();
  struct logger_line l;
  char err[512] = "";
  struct snap_writer *w = s->snap_in;
  s->snap_in = NULL;
  int rc;
  if (!w || snap_writer_index(w) != rd->snap.index ||
      snap_writer_term(w) != rd->snap.term) {
    store_snap_abort(s->store, w);
    snprintf(err, sizeof err,
             "snapshot %llu: its chunks were not all received here",
             (unsigned long long)rd->snap.index);
    rc = -1;
  } else {
    rc = store_snap_finish(s->store, w, err);
  }
  if (rc < 0) {
    server__snapshot_failed(s, rd->snap.index, rd->snap.term, err);
    s->failed = 1;
    return;
  }
  /* The store holds the snapshot it just made durable, read back from the
   * file and checksummed: the state machine is restored from that. */
  const struct store_snapshot *snap = store_snapshot(s->store);
  if (restore_from(s, snap) < 0) {
    logger_begin(&l, &s->log, LOGGER_ERROR, "snapshot_restore_failed");
    logger_u64(&l, "index", rd->snap.index);
    logger_u64(&l, "bytes", snap->data_len);
    logger_str(&l, "msg",
               "the state machine refused the leader's snapshot; this "
               "server accepts no more writes");
    logger_end(&l);
    s->failed = 1;
    return;
  }
  s->applied = s->last_snapshot = s->snap_attempt = rd->snap.index;
  double secs = seconds_since(t0);
  metrics__snapshot(s, 1, snap->data_len, secs);
  logger_begin(&l, &s->log, LOGGER_INFO, "snapshot_installed");
  logger_u64(&l, "index", rd->snap.index);
  logger_u64(&l, "term", rd->snap.term);
  logger_u64(&l, "bytes", snap->data_len);
  logger_f64(&l, "duration_ms", secs * 1e3);
  logger_str(&l, "leader", raft_leader(s->raft));
  logger_end(&l);
  server__notify(s, "snapshot_installed", "index=%llu bytes=%zu",
                 (unsigned long long)rd->snap.index, snap->data_len);
}

/* ---- applying ---- */

/* The time stamped on a command entry ([time, op, args]), or 0. */
static uint64_t entry_time(const struct raft_entry *e) {
  struct mp_reader r;
  uint32_t n;
  uint64_t t;
  if (!e->buf) return 0;
  mp_reader_init(&r, e->buf->data, e->buf->len);
  if (mp_read_array(&r, &n) < 0 || mp_read_uint(&r, &t) < 0) return 0;
  return t;
}

static void apply(struct server *s, uint64_t index,
                  const struct raft_entry *e) {
  /* Acknowledged only once committed (a majority holds it durably). */
  assert(index <= raft_commit_index(s->raft));
  s->applying = index;
  if (e->type >= RAFT_COMMAND) {
    /* A leader never stamps a time older than one already in the log. */
    uint64_t t = entry_time(e);
    if (t > s->last_time) s->last_time = t;
    msgpack_sbuffer *out = &s->scratch;
    out->size = 0;
    s->events.size = 0;
    s->o.sm->apply(s->o.sm->data, index, e->term, e->buf ? e->buf->data : NULL,
                   e->buf ? e->buf->len : 0, out, &s->events);
    /* The reply first: a client sees a command's result before the events
     * it caused. */
    clients__applied(s, index, e->term, out->data, out->size);
    if (s->events.size) sessions__push(s, s->events.data, s->events.size);
  } else {
    clients__applied(s, index, e->term, NULL, 0);
  }
  s->applied = index;
  if (e->buf) s->bytes_since_snapshot += e->buf->len;
}

/* ---- the ready loop ---- */

struct chunk_answer {
  char to[RAFT_NAME_MAX];
  uint64_t index, offset;
  size_t max_len;
};

static void answer_chunks(struct server *s, struct chunk_answer *a, size_t n) {
  const struct store_snapshot *snap = store_snapshot(s->store);
  for (size_t i = 0; i < n; i++) {
    if (!snap || snap->last_index != a[i].index ||
        a[i].offset > snap->data_len) {
      raft_snapshot_chunk(s->raft, a[i].to, a[i].index, a[i].offset, NULL,
                          false);
      continue;
    }
    size_t len = snap->data_len - a[i].offset;
    if (len > a[i].max_len) len = a[i].max_len;
    /* Read from the file a chunk at a time: the snapshot is never held
     * whole in memory, however large it is. */
    struct raft_buf *b = raft_buf_new(len);
    if (!b) continue;
    if (snap_pread(snap, a[i].offset, b->data, len) != 0) {
      raft_buf_unref(b);
      raft_snapshot_chunk(s->raft, a[i].to, a[i].index, a[i].offset, NULL,
                          false);
      continue;
    }
    raft_snapshot_chunk(s->raft, a[i].to, a[i].index, a[i].offset, b,
                        a[i].offset + len == snap->data_len);
    raft_buf_unref(b);
    transfer__sent(s, a[i].to, a[i].index, a[i].offset + len, snap->data_len);
  }
}

/* Durable before sent: a message speaks for a term (and vote) this
 * server has saved; a pre-vote poll and its answer ask about the next
 * term without taking it. */
static int term_saved(const struct server *s, const struct raft_msg *m) {
  if (m->type == RAFT_MSG_VOTE && m->u.vote.prevote) return 1;
  if (m->type == RAFT_MSG_VOTE_RESP && m->u.vote_resp.prevote) return 1;
  return m->term <= store_meta(s->store)->term;
}

static void handle(struct server *s, struct raft_ready *rd,
                   struct chunk_answer **answers, size_t *n_answers) {
  if (rd->hs_changed) {
    char err[512];
    if (store_save_meta(s->store, rd->hs.term, rd->hs.vote, 0, NULL, 0, err) <
        0) {
      storage_failed(s, "save_meta", err);
      s->failed = 1;
      return; /* no message that depends on it may leave */
    }
  }
  for (size_t i = 0; i < rd->n_chunks && !s->failed; i++)
    receive_chunk(s, &rd->chunks[i]);
  if (rd->snap_install && !s->failed) install_snapshot(s, rd);
  if (s->failed) return;
  int rc = persist(s, rd);
  if (rc < 0) {
    storage_failed(s, "append",
                   store_errmsg(s->store)[0] ? store_errmsg(s->store)
                                             : "the store refused the append");
    s->failed = 1;
    return;
  }
  for (size_t i = 0; i < rd->n_msgs; i++) {
    assert(term_saved(s, &rd->msgs[i]));
    peers__send(s, &rd->msgs[i]);
  }
  for (size_t i = 0; i < rd->n_committed; i++) {
    if (s->agree.diverged) break; /* its state is wrong: nothing more */
    apply(s, rd->commit_first + i, &rd->committed[i]);
    agree__applied(s, rd->commit_first + i);
  }
  if (rd->n_reads) clients__reads_ready(s, rd->reads, rd->n_reads);
  if (rd->n_chunk_reqs) {
    *answers = calloc(rd->n_chunk_reqs, sizeof **answers);
    if (*answers) {
      *n_answers = rd->n_chunk_reqs;
      for (size_t i = 0; i < rd->n_chunk_reqs; i++) {
        memcpy((*answers)[i].to, rd->chunk_reqs[i].to, RAFT_NAME_MAX);
        (*answers)[i].index = rd->chunk_reqs[i].index;
        (*answers)[i].offset = rd->chunk_reqs[i].offset;
        (*answers)[i].max_len = rd->chunk_reqs[i].max_len;
      }
    }
  }
}

static const char *type_name(int t) {
  return t == RAFT_ACTIVE    ? "active"
         : t == RAFT_PASSIVE ? "passive"
                             : "reserve";
}

static void member_line(struct server *s, const char *event,
                        const struct raft_member *m, uint64_t index) {
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, event);
  logger_str(&l, "member", m->name);
  logger_str(&l, "address", m->address);
  logger_str(&l, "type", type_name(m->type));
  logger_u64(&l, "index", index);
  logger_end(&l);
}

/* Logs how configuration c (at index ci) differs from the one logged
 * before (at start: the stored one): a line per member added, removed or
 * changed, then the whole. */
static void log_membership(struct server *s, uint64_t ci,
                           const struct raft_conf *c, const char *list) {
  struct raft_conf *old = &s->metrics.last_conf;
  struct logger_line l;
  for (unsigned i = 0; i < c->n; i++) {
    int k = raft_conf_find(old, c->m[i].name);
    if (k < 0) {
      member_line(s, "member_added", &c->m[i], ci);
    } else if (old->m[k].type != c->m[i].type) {
      logger_begin(&l, &s->log, LOGGER_INFO, "member_type_changed");
      logger_str(&l, "member", c->m[i].name);
      logger_str(&l, "from", type_name(old->m[k].type));
      logger_str(&l, "to", type_name(c->m[i].type));
      logger_u64(&l, "index", ci);
      logger_end(&l);
    } else if (strcmp(old->m[k].address, c->m[i].address) != 0) {
      member_line(s, "member_address_changed", &c->m[i], ci);
    }
  }
  for (unsigned k = 0; k < old->n; k++)
    if (raft_conf_find(c, old->m[k].name) < 0)
      member_line(s, "member_removed", &old->m[k], ci);
  unsigned voters = 0;
  for (unsigned i = 0; i < c->n; i++)
    voters += c->m[i].type == RAFT_ACTIVE;
  logger_begin(&l, &s->log, LOGGER_INFO, "membership_changed");
  logger_u64(&l, "index", ci);
  logger_str(&l, "members", list);
  logger_u64(&l, "voters", voters);
  logger_bool(&l, "committed", raft_commit_index(s->raft) >= ci);
  logger_bool(&l, "member", raft_conf_find(c, s->name) >= 0);
  logger_end(&l);
  *old = *c;
}

static void note_changes(struct server *s) {
  uint64_t ci = raft_configuration_index(s->raft);
  if (ci != s->config_index) {
    s->config_index = ci;
    const struct raft_conf *c = raft_configuration(s->raft);
    char list[RAFT_MAX_MEMBERS * (RAFT_NAME_MAX + 12)] = "";
    size_t n = 0;
    for (unsigned i = 0; i < c->n && n < sizeof list; i++)
      n += (size_t)snprintf(list + n, sizeof list - n, "%s%s(%s)", i ? "," : "",
                            c->m[i].name, type_name(c->m[i].type));
    log_membership(s, ci, c, list);
    agree__config_changed(s);
    server__notify(s, "config", "index=%llu members=%s", (unsigned long long)ci,
                   list);
  }
  int role = raft_role(s->raft);
  uint64_t term = raft_term(s->raft);
  if (role != s->role) {
    int old = s->role;
    s->role = role;
    s->view_since_ms = uv_now(s->loop);
    metrics__observe_role(s, old, role, term);
    server__notify(s, "role", "role=%s term=%llu", raft_role_name(role),
                   (unsigned long long)term);
  }
  const char *leader = raft_leader(s->raft);
  if (strcmp(leader, s->leader) != 0) {
    snprintf(s->leader, sizeof s->leader, "%s", leader);
    s->view_since_ms = uv_now(s->loop);
    metrics__observe_leader(s, leader, term);
    server__notify(s, "leader", "leader=%s term=%llu",
                   leader[0] ? leader : "none", (unsigned long long)term);
  }
}

void server__process(struct server *s) {
  if (s->in_ready || s->stopping) return;
  s->in_ready = 1;
  while (!s->failed && raft_has_ready(s->raft)) {
    struct raft_ready rd;
    struct chunk_answer *answers = NULL;
    size_t n_answers = 0;
    raft_ready_get(s->raft, &rd);
    handle(s, &rd, &answers, &n_answers);
    raft_ready_done(s->raft, &rd);
    agree__act(s);
    if (answers) {
      answer_chunks(s, answers, n_answers);
      free(answers);
    }
    if (!s->agree.diverged &&
        (s->applied >= s->snap_attempt + s->o.snapshot_entries ||
         s->bytes_since_snapshot >= s->o.snapshot_bytes))
      take_snapshot(s, 1);
    peers__sync(s);
    clients__serve_reads(s);
  }
  note_changes(s);
  s->in_ready = 0;
}

static void on_soon(uv_check_t *h) {
  struct server *s = h->data;
  uv_check_stop(h);
  server__process(s);
}

void server__process_soon(struct server *s) {
  if (!s->stopping) uv_check_start(&s->soon, on_soon);
}

/* The core counts time in ticks. A timer that fires late (a loaded
 * machine, a process paused with SIGSTOP) still fires once, so the ticks
 * are counted from the monotonic clock instead: every tick that is due is
 * given, up to a bound (past an election timeout more ticks change
 * nothing). Called before anything that depends on elapsed time, such as a
 * lease read: after a pause, network callbacks can run before the timer. */
void server__catch_up(struct server *s) {
  uint64_t now = uv_hrtime() / 1000000;
  uint64_t due = (now - s->tick_start_ms) / s->o.tick_ms;
  uint64_t max = 2ull * s->o.election_ms / s->o.tick_ms + 2;
  if (due > s->ticks + max) s->ticks = due - max;
  while (s->ticks < due) {
    raft_tick(s->raft);
    s->ticks++;
  }
}

static void on_tick(uv_timer_t *t) {
  struct server *s = t->data;
  /* After a storage failure the core is no longer driven: it would run
   * elections (and claim leadership in the log) that it cannot act on. */
  if (s->failed) return;
  /* A server that is not the leader and whose own loop was held up (a
   * loaded machine: its timer fires late) has not heard from the leader
   * for that long through no fault of the leader, whose messages wait in
   * the socket: counting the whole delay at once would start an election
   * before they are read. So a late timer gives it at most a heartbeat
   * interval's worth of ticks; the rest of the delay is forgotten. Only
   * elections come later for it (never earlier), which keeps every lease
   * bound: a leader always counts the full delay. */
  if (raft_role(s->raft) != RAFT_LEADER) {
    uint64_t due = (uv_hrtime() / 1000000 - s->tick_start_ms) / s->o.tick_ms;
    uint64_t most = s->o.heartbeat_ms / s->o.tick_ms + 1;
    if (due > s->ticks + most) s->ticks = due - most;
  }
  server__catch_up(s);
  agree__tick(s);
  sessions__tick(s); /* ends with server__process */
}

/* ---- start and stop ---- */

static void on_accept(net_listener *l, net_conn *c) {
  struct server *s = net_listener_data(l);
  if (s->stopping || peers__accept(s, c) < 0) net_conn_close(c, "refused");
}

/* COPYCAT_TEST_RAFT_BUGS=NAME,...: deliberate Raft bugs, so that the fault
 * suite can prove it catches them (docs/faults.md). Only a core built with
 * RAFT_BUGS honours them (`make chaos-bugs`); any other build refuses to
 * start rather than seem to run them. Unset or empty: no bug, ever. */
static int test_bugs(struct server *s, unsigned *bits, char *err,
                     size_t errlen) {
  const char *env = getenv("COPYCAT_TEST_RAFT_BUGS");
  *bits = 0;
  if (!env || !*env) return 0;
  if (!raft_bugs_built()) {
    snprintf(err, errlen,
             "COPYCAT_TEST_RAFT_BUGS is set, but this build has no "
             "deliberate bugs (only the fault suite's copycat-lua-bugs has)");
    return -1;
  }
  char names[256];
  snprintf(names, sizeof names, "%s", env);
  for (char *save = NULL, *n = strtok_r(names, ",", &save); n;
       n = strtok_r(NULL, ",", &save)) {
    int b = raft_bug_by_name(n);
    if (!b) {
      snprintf(err, errlen, "COPYCAT_TEST_RAFT_BUGS: no bug named '%s'", n);
      return -1;
    }
    *bits |= (unsigned)b;
  }
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_WARN, "deliberate_bugs");
  logger_str(&l, "bugs", env);
  logger_str(&l, "msg", "this server is broken on purpose (fault suite)");
  logger_end(&l);
  return 0;
}

static int load(struct server *s, char *err, size_t errlen) {
  const struct store_meta *meta = store_meta(s->store);
  struct raft_hard_state hs;
  memset(&hs, 0, sizeof hs);
  hs.term = meta->term;
  snprintf(hs.vote, sizeof hs.vote, "%s", meta->vote);

  struct raft_snapshot_meta snap, *sp = NULL;
  const struct store_snapshot *ss = store_snapshot(s->store);
  if (ss) {
    memset(&snap, 0, sizeof snap);
    snap.index = ss->last_index;
    snap.term = ss->last_term;
    if (raft_conf_decode(&snap.conf, ss->config, ss->config_len) < 0) {
      snprintf(err, errlen, "the newest snapshot's configuration is damaged");
      return -1;
    }
    if (restore_from(s, ss) < 0) {
      snprintf(err, errlen, "the state machine could not restore snapshot %llu",
               (unsigned long long)ss->last_index);
      return -1;
    }
    s->applied = s->last_snapshot = s->snap_attempt = ss->last_index;
    sp = &snap;
  }
  uint64_t first = store_first_index(s->store);
  uint64_t last = store_last_index(s->store);
  size_t n = last >= first ? (size_t)(last - first + 1) : 0;
  struct raft_entry *entries = n ? calloc(n, sizeof *entries) : NULL;
  if (n && !entries) return -1;
  const struct store_entry *se = NULL;
  if (n) store_entries(s->store, first, last, &se);
  for (size_t i = 0; i < n; i++) {
    entries[i].term = se[i].term;
    entries[i].type = se[i].type;
    entries[i].buf = se[i].len ? raft_buf_from(se[i].data, se[i].len) : NULL;
  }
  int rc = raft_load(s->raft, &hs, sp, first, entries, n);
  for (size_t i = 0; i < n; i++)
    raft_buf_unref(entries[i].buf);
  free(entries);
  if (rc < 0) {
    snprintf(err, errlen, "the Raft core refused the stored state: %s",
             raft_strerror(rc));
    return -1;
  }
  return 0;
}

int server_start(uv_loop_t *loop, const struct server_opts *o,
                 struct server **out, char *err, size_t errlen) {
  *out = NULL;
  if (!o->sm || !o->name || !o->name[0] || !o->address) {
    snprintf(err, errlen,
             "a server needs a name, an address and a state "
             "machine");
    return -1;
  }
  if (strlen(o->name) >= RAFT_NAME_MAX || strlen(o->address) >= RAFT_ADDR_MAX) {
    snprintf(err, errlen,
             "name or address too long (name < %d, address < %d "
             "bytes)",
             RAFT_NAME_MAX, RAFT_ADDR_MAX);
    return -1;
  }
  struct server *s = calloc(1, sizeof *s);
  if (!s) return -1;
  s->loop = loop;
  s->o = *o;
  snprintf(s->name, sizeof s->name, "%s", o->name);
  snprintf(s->address, sizeof s->address, "%s", o->address);
  snprintf(s->cluster, sizeof s->cluster, "%s",
           o->cluster ? o->cluster : "copycat");
  s->o.name = s->name;
  s->o.address = s->address;
  s->o.cluster = s->cluster;
  s->o.data_dir = NULL; /* not kept: only used here */
  s->o.client_address = NULL;
  s->o.metrics_address = s->o.log_level = s->o.log_format = NULL;
  s->o.http_address = NULL;
  logger_init(&s->log);
  snprintf(s->log.name, sizeof s->log.name, "%s", s->name);
  if (o->log_level && (s->log.level = logger_level_parse(o->log_level)) < 0) {
    snprintf(err, errlen,
             "unknown log level '%s': use error, warn, info or debug",
             o->log_level);
    free(s);
    return -1;
  }
  if (o->log_format &&
      (s->log.format = logger_format_parse(o->log_format)) < 0) {
    snprintf(err, errlen, "unknown log format '%s': use kv or json",
             o->log_format);
    free(s);
    return -1;
  }
  if (!s->o.tick_ms) s->o.tick_ms = 10;
  if (!s->o.election_ms) s->o.election_ms = 500;
  if (!s->o.heartbeat_ms) s->o.heartbeat_ms = 50;
  if (!s->o.snapshot_entries) s->o.snapshot_entries = 10000;
  if (!s->o.snapshot_bytes) s->o.snapshot_bytes = 64u << 20;
  if (!s->o.max_request) s->o.max_request = SERVER_DEFAULT_MAX_REQUEST;
  if (o->admin_token && strlen(o->admin_token) >= sizeof s->admin_token) {
    snprintf(err, errlen, "the admin token is longer than %zu bytes",
             sizeof s->admin_token - 1);
    free(s);
    return -1;
  }
  snprintf(s->admin_token, sizeof s->admin_token, "%s",
           o->admin_token ? o->admin_token : "");
  s->o.admin_token = NULL; /* the copy above is what counts */
  if (!s->o.hello_timeout_ms) s->o.hello_timeout_ms = 5000;
  if (!s->o.max_unauthenticated) s->o.max_unauthenticated = 256;
  if (!s->o.time_ms) s->o.time_ms = 200;
  agree__init(s);
  msgpack_sbuffer_init(&s->scratch);
  msgpack_sbuffer_init(&s->events);
  msgpack_sbuffer_init(&s->ka);

  struct raft_options ro;
  raft_options_default(&ro, s->name);
  ro.election_timeout = s->o.election_ms / s->o.tick_ms;
  ro.heartbeat_interval = s->o.heartbeat_ms / s->o.tick_ms;
  if (ro.heartbeat_interval == 0) ro.heartbeat_interval = 1;
  ro.seed = o->seed ? o->seed : (uint64_t)uv_hrtime() ^ (uint64_t)(uintptr_t)s;
  if (test_bugs(s, &ro.bugs, err, errlen) < 0) {
    free(s);
    return -1;
  }
  s->raft = raft_new(&ro);
  if (!s->raft) {
    snprintf(err, errlen,
             "bad timing options: the election timeout must be "
             "several heartbeats");
    free(s);
    return -1;
  }

  char serr[1024] = "";
  struct store_opts so;
  memset(&so, 0, sizeof so);
  so.memory = o->memory;
  int rc = store_open(loop, o->data_dir, &so, &s->store, serr);
  if (rc < 0) {
    snprintf(err, errlen, "%s", serr);
    raft_free(s->raft);
    free(s);
    return -1;
  }
  if (store_notice(s->store)[0]) {
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_WARN, "storage_repaired");
    logger_str(&l, "msg", store_notice(s->store));
    logger_end(&l);
  }
  if (load(s, err, errlen) < 0) goto fail;
  metrics__init(s);
  s->metrics.last_conf = *raft_configuration(s->raft);

  if (o->tls && tls_ctx_role(o->tls) != TLS_ROLE_MEMBER) {
    snprintf(err, errlen,
             "TLS: the server's certificate must be a member certificate "
             "(made with ctl certs DIR %s)",
             s->name);
    goto fail;
  }
  if (o->tls && strcmp(tls_ctx_name(o->tls), s->name) != 0) {
    snprintf(err, errlen,
             "TLS: the certificate names member '%s', this server is '%s' "
             "(give it the certificate made for its own name)",
             tls_ctx_name(o->tls), s->name);
    goto fail;
  }
  struct net_conn_opts lo = {.tls = o->tls};
  trust__listen_opts(s, &lo);
  rc = net_listen(loop, s->address, &lo, on_accept, s, &s->listener, err,
                  errlen);
  if (rc < 0) goto fail;
  if (o->client_address && o->client_address[0]) {
    rc = net_listen(loop, o->client_address, &lo, on_accept, s,
                    &s->client_listener, err, errlen);
    if (rc < 0) {
      net_listener_close(s->listener);
      goto fail;
    }
  }
  if (((o->metrics_address && o->metrics_address[0]) ||
       (o->http_address && o->http_address[0])) &&
      metrics__listen(s, o->http_address, o->metrics_address, err, errlen) <
          0) {
    net_listener_close(s->listener);
    if (s->client_listener) net_listener_close(s->client_listener);
    goto fail;
  }
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, "server_started");
  logger_str(&l, "address", s->address);
  if (o->client_address && o->client_address[0])
    logger_str(&l, "client_address", o->client_address);
  if (server_http_address(s))
    logger_str(&l, "http_address", server_http_address(s));
  if (server_metrics_address(s))
    logger_str(&l, "metrics_address", server_metrics_address(s));
  logger_str(&l, "data_dir", o->memory ? "(memory)" : o->data_dir);
  logger_str(&l, "cluster", s->cluster);
  logger_str(&l, "tls", o->tls ? "on" : "off");
  logger_u64(&l, "term", raft_term(s->raft));
  logger_u64(&l, "last_index", raft_last_index(s->raft));
  logger_u64(&l, "snapshot_index", raft_snapshot_index(s->raft));
  logger_u64(&l, "members", raft_configuration(s->raft)->n);
  logger_end(&l);
  uv_check_init(loop, &s->soon);
  s->soon.data = s;
  uv_timer_init(loop, &s->tick);
  s->tick.data = s;
  s->tick_start_ms = uv_hrtime() / 1000000;
  uv_timer_start(&s->tick, on_tick, s->o.tick_ms, s->o.tick_ms);
  if (o->tls) {
    s->tls = o->tls;
    tls_ctx_ref(s->tls);
  }
  s->o.tls = NULL; /* s->tls is the one in use */
  peers__sync(s);
  *out = s;
  return 0;
fail:
  store_set_write_observer(s->store, NULL, NULL);
  store_close(s->store, NULL, NULL);
  raft_free(s->raft);
  msgpack_sbuffer_destroy(&s->scratch);
  sessions__free(s);
  free(s);
  return -1;
}

int server_bootstrap(struct server *s, const struct raft_conf *conf, char *err,
                     size_t errlen) {
  if (raft_conf_find(conf, s->name) < 0) {
    snprintf(err, errlen,
             "this server (%s) is not among the members to "
             "bootstrap",
             s->name);
    return -1;
  }
  int rc = raft_bootstrap(s->raft, conf);
  if (rc < 0) {
    snprintf(err, errlen, "cannot bootstrap: %s",
             rc == RAFT_EINVAL ? "this server already has a log (it was "
                                 "bootstrapped or joined before)"
                               : raft_strerror(rc));
    return rc;
  }
  server__process(s);
  return 0;
}

void server__closed_one(struct server *s) {
  if (--s->closing_handles > 0) return;
  tls_ctx_unref(s->tls);
  raft_free(s->raft);
  msgpack_sbuffer_destroy(&s->scratch);
  sessions__free(s);
  void (*cb)(void *) = s->stop_cb;
  void *data = s->stop_data;
  free(s);
  if (cb) cb(data);
}

static void on_tick_closed(uv_handle_t *h) {
  server__closed_one(h->data);
}

static void on_soon_closed(uv_handle_t *h) {
  server__closed_one(h->data);
}

static void on_store_closed(void *data) {
  server__closed_one(data);
}

void server__close_store(struct server *s) {
  store_close(s->store, on_store_closed, s);
}

static void on_http_closed(void *data) {
  server__closed_one(data);
}

void server_stop(struct server *s, void (*cb)(void *data), void *data) {
  if (s->stopping) return;
  s->stopping = 1;
  s->stop_cb = cb;
  s->stop_data = data;
  s->closing_handles = 3 + (s->http != NULL);
  /* One more handle while a child writes a snapshot; while its file is
   * being read back on the thread pool, the store stays open until that
   * is done (snapshot.c closes it). */
  int store_waits = snapshot__stop(s);
  s->closing_handles += hash__stop(s);
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, "server_stopping");
  logger_u64(&l, "term", raft_term(s->raft));
  logger_u64(&l, "applied_index", s->applied);
  logger_end(&l);
  if (s->http) gw_close(s->http, on_http_closed, s);
  uv_timer_stop(&s->tick);
  uv_close((uv_handle_t *)&s->tick, on_tick_closed);
  uv_check_stop(&s->soon);
  uv_close((uv_handle_t *)&s->soon, on_soon_closed);
  net_listener_close(s->listener);
  if (s->client_listener) net_listener_close(s->client_listener);
  clients__fail_all(s, CPROTO_ESTOPPING, "server is stopping");
  forward__free(s);
  for (uint32_t i = 0; i < s->ka_n; i++)
    clients__reply_error(s->ka_waits[i].conn, s->ka_waits[i].id,
                         CPROTO_ESTOPPING, "server is stopping");
  s->ka_n = 0;
  peers__close_all(s);
  if (!store_waits) server__close_store(s);
}

int server_set_tls(struct server *s, struct tls_ctx *ctx, char *err,
                   size_t errlen) {
  if (!s->tls) {
    snprintf(err, errlen,
             "this server was started without TLS: restart it with "
             "certificates to use TLS");
    return -1;
  }
  if (tls_ctx_role(ctx) != TLS_ROLE_MEMBER ||
      strcmp(tls_ctx_name(ctx), s->name) != 0) {
    snprintf(err, errlen,
             "the new certificate is not the member certificate of '%s' "
             "(it names '%s', role %s): kept the old one",
             s->name, tls_ctx_name(ctx), tls_role_name(tls_ctx_role(ctx)));
    return -1;
  }
  tls_ctx_ref(ctx);
  tls_ctx_unref(s->tls);
  s->tls = ctx;
  net_listener_set_tls(s->listener, ctx);
  if (s->client_listener) net_listener_set_tls(s->client_listener, ctx);
  if (s->http) gw_set_tls(s->http, ctx);
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, "tls_reloaded");
  logger_str(&l, "name", tls_ctx_name(ctx));
  logger_end(&l);
  return 0;
}

void server_status(const struct server *s, struct server_status *st) {
  st->role = raft_role(s->raft);
  st->term = raft_term(s->raft);
  st->commit = raft_commit_index(s->raft);
  st->applied = s->applied;
  st->last_index = raft_last_index(s->raft);
  st->first_index = raft_first_index(s->raft);
  st->snapshot_index = raft_snapshot_index(s->raft);
  st->leader = raft_leader(s->raft);
  st->conf = raft_configuration(s->raft);
  st->config_index = raft_configuration_index(s->raft);
  st->removed = s->agree.removed;
  st->snapshot_failed_index = s->snap_failed;
  st->diverged = s->agree.diverged;
  st->diverged_index = s->agree.div_index;
  st->diverged_hash = s->agree.div_hash;
  st->majority_hash = s->agree.div_majority;
  st->majority = s->agree.div_names;
}

const char *server_leader_address(const struct server *s) {
  const char *leader = raft_leader(s->raft);
  if (!leader[0]) return "";
  const struct raft_conf *c = raft_configuration(s->raft);
  int i = raft_conf_find(c, leader);
  return i < 0 ? "" : c->m[i].address;
}

void server__log_request(struct server *s, const char *verb, const char *name,
                         const char *address, int type, int rc) {
  if (rc == RAFT_ENOTLEADER) return; /* redirected: the leader logs it */
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO,
               verb[0] == 't' ? "transfer_requested" : "membership_requested");
  logger_str(&l, "op", verb);
  logger_str(&l, verb[0] == 't' ? "to" : "member", name);
  if (address) logger_str(&l, "address", address);
  if (type) logger_str(&l, "type", type_name(type));
  logger_str(&l, "result", rc < 0 ? raft_strerror(rc) : "accepted");
  logger_end(&l);
}

int server_change(struct server *s, const char *name, const char *address,
                  int type) {
  int rc = raft_change(s->raft, name, address, type);
  server__log_request(s, "change", name, address, type, rc);
  server__process(s);
  return rc;
}

int server_remove(struct server *s, const char *name) {
  int rc = raft_remove(s->raft, name);
  server__log_request(s, "remove", name, NULL, 0, rc);
  server__process(s);
  return rc;
}

int server_transfer(struct server *s, const char *name) {
  int rc = raft_transfer(s->raft, name);
  server__log_request(s, "transfer", name, NULL, 0, rc);
  server__process(s);
  return rc;
}

int server_snapshot_now(struct server *s, uint64_t *index) {
  int rc = s->stopping || s->failed || s->agree.diverged ? -1
           : snapshot__busy(s)                           ? -2
                                                         : take_snapshot(s, 0);
  *index = s->last_snapshot;
  return rc;
}

int server_snapshot_begin(struct server *s, uint64_t *target) {
  *target = s->last_snapshot;
  if (s->stopping || s->failed || s->agree.diverged) return -1;
  if (snapshot__busy(s)) return -2;
  if (take_snapshot(s, 1) < 0) return -1;
  *target = snapshot__busy(s) ? s->child.index : s->last_snapshot;
  return 0;
}

int server_snapshot_file(const struct server *s, char *path, size_t size,
                         uint64_t *index) {
  *index = s->last_snapshot;
  const struct store_snapshot *ss = store_snapshot(s->store);
  if (!ss || store_snap_file(s->store, path, size) < 0) return -1;
  *index = ss->last_index;
  return 0;
}

int server__snapshot_with_hash(struct server *s, uint64_t index) {
  uint64_t term = raft_term_at(s->raft, index);
  if (!s->o.sm->snapshot_hash || snapshot__busy(s) || index != s->applied ||
      index > raft_persisted_index(s->raft) || index <= s->last_snapshot ||
      term == 0 || s->snap_in || store_is_memory(s->store))
    return -1;
  /* Due within half a threshold: taking it now costs nothing more, and
   * with equal thresholds and intervals the two stay together. */
  if (index < s->snap_attempt + s->o.snapshot_entries / 2 &&
      s->bytes_since_snapshot < s->o.snapshot_bytes / 2)
    return -1;
  if (snapshot__fork(s, index, term, 1) != 0) return -1;
  s->snap_attempt = index;
  s->bytes_since_snapshot = 0;
  return 0;
}
