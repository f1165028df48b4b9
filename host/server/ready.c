/*
 * ready.c — the carrying-out of the core's outputs (struct raft_ready): what
 * must be durable goes to the store (persist; on_durable tells the core),
 * messages go to the peers only for a term and vote saved durably (held.c
 * holds them while the store saves it), committed entries
 * are applied to the state machine and their clients answered, snapshot
 * chunks are answered; then the changes of role, leader and membership are
 * logged (note_changes). Also the clock: ticks given to the core.
 *
 * Contract: server__process never re-enters itself (in_ready) and does
 * nothing once the server is stopping or failed.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"

/* ---- the store ---- */

static void on_durable(struct store *st, uint64_t durable, int status,
                       void *data) {
  struct server *s = data;
  if (s->stopping) return;
  if (status < 0) {
    /* Nothing more is acknowledged: the core never hears of these entries
     * as durable, so no client is told they are committed by our vote. */
    if (!s->failed) server__storage_failed(s, "append", store_errmsg(st));
    s->failed = 1;
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
  clients__applying(s, index);
  if (e->type >= RAFT_COMMAND) {
    /* A leader never stamps a time older than one already in the log. */
    uint64_t t = entry_time(e);
    sessions__saw_time(s, t);
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
  snapshot__applied(s, e->buf ? e->buf->len : 0);
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
                          false, NULL);
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
                          false, NULL);
      continue;
    }
    raft_snapshot_chunk(s->raft, a[i].to, a[i].index, a[i].offset, b,
                        a[i].offset + len == snap->data_len, &snap->data_crc);
    raft_buf_unref(b);
    transfer__sent(s, a[i].to, a[i].index, a[i].offset + len, snap->data_len);
  }
}

static void handle(struct server *s, struct raft_ready *rd,
                   struct chunk_answer **answers, size_t *n_answers) {
  /* Durable before sent: the writer thread saves the term and vote, in
   * order with the log; the messages wait for it (held.c). */
  if (rd->hs_changed) {
    int rc = held__save_meta(s, &rd->hs);
    if (rc < 0) {
      server__storage_failed(s, "save_meta",
                             store_errmsg(s->store)[0] ? store_errmsg(s->store)
                                                       : store_strerror(rc));
      s->failed = 1;
      return; /* no message that depends on it may leave */
    }
  }
  if (rd->snap_refused.index) snapshot__refused(s, rd);
  for (size_t i = 0; i < rd->n_chunks && !s->failed; i++)
    snapshot__receive_chunk(s, &rd->chunks[i]);
  if (rd->snap_install && !s->failed) snapshot__install(s, rd);
  if (s->failed) return;
  int rc = persist(s, rd);
  if (rc < 0) {
    server__storage_failed(s, "append",
                           store_errmsg(s->store)[0]
                               ? store_errmsg(s->store)
                               : "the store refused the append");
    s->failed = 1;
    return;
  }
  for (size_t i = 0; i < rd->n_msgs; i++)
    held__send(s, &rd->msgs[i]);
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

static void member_line(struct server *s, const char *event,
                        const struct raft_member *m, uint64_t index) {
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, event);
  logger_str(&l, "member", m->name);
  logger_str(&l, "address", m->address);
  logger_str(&l, "type", server__type_name(m->type));
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
      logger_str(&l, "from", server__type_name(old->m[k].type));
      logger_str(&l, "to", server__type_name(c->m[i].type));
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
                            c->m[i].name, server__type_name(c->m[i].type));
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
  /* While a snapshot from the leader is installed, nothing of the core's
   * later outputs may run ahead of it: on_sealed runs this again. */
  if (s->in_ready || s->stopping || snapshot__installing(s)) return;
  s->in_ready = 1;
  while (!s->failed && !snapshot__installing(s) && raft_has_ready(s->raft)) {
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
    if (!s->agree.diverged && !snapshot__installing(s) && snapshot__due(s))
      snapshot__take(s, 1);
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

void server__on_tick(uv_timer_t *t) {
  struct server *s = t->data;
  metrics__tick(s);
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
