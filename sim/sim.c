/*
 * sim.c — the simulated cluster: event queue, network with faults, disks
 * that lose what is not yet durable on a crash, clients and an operator
 * doing membership changes and transfers, all from one seeded PRNG.
 */
#include "sim.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum {
  EV_TICK,
  EV_DELIVER,
  EV_DISK,
  EV_PROPOSE,
  EV_READ,
  EV_FAULT,
  EV_RESTART,
  EV_OPERATOR,
  EV_OPERATOR_ONCE,
  EV_CRASH
};

struct sim_event {
  int64_t at;
  uint64_t seq;
  uint64_t opid; /* EV_DISK: which write completes */
  int kind, node, inc, from;
  struct raft_msg msg;
};

#define TICK_UNITS 10
#define RING_LINES 400

/* ---- randomness and events ---------------------------------------------- */

static uint64_t rnd64(struct sim *s) {
  uint64_t z = (s->rng += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
static int rnd(struct sim *s, int n) {
  return n <= 0 ? 0 : (int)(rnd64(s) % (uint64_t)n);
}

static bool ev_less(const struct sim_event *a, const struct sim_event *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static struct sim_event *push(struct sim *s, int64_t at, int kind, int node) {
  if (s->nheap == s->capheap) {
    s->capheap = s->capheap ? s->capheap * 2 : 256;
    s->heap = realloc(s->heap, s->capheap * sizeof *s->heap);
    if (!s->heap) abort();
  }
  struct sim_event *e = calloc(1, sizeof *e);
  if (!e) abort();
  e->at = at;
  e->seq = s->evseq++;
  e->kind = kind;
  e->node = node;
  e->inc = node >= 0 ? s->nodes[node].incarnation : 0;
  size_t i = s->nheap++;
  while (i > 0 && ev_less(e, s->heap[(i - 1) / 2])) {
    s->heap[i] = s->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  s->heap[i] = e;
  return e;
}

static struct sim_event *pop(struct sim *s) {
  if (!s->nheap) return NULL;
  struct sim_event *top = s->heap[0], *last = s->heap[--s->nheap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= s->nheap) break;
    if (c + 1 < s->nheap && ev_less(s->heap[c + 1], s->heap[c])) c++;
    if (!ev_less(s->heap[c], last)) break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (s->nheap) s->heap[i] = last;
  return top;
}

static void free_event(struct sim_event *e) {
  if (e->kind == EV_DELIVER) raft_msg_clear(&e->msg);
  free(e);
}

/* ---- trace -------------------------------------------------------------- */

void sim_log(struct sim *s, const char *fmt, ...) {
  char *line = s->ring[s->ring_head];
  int k = snprintf(line, 200, "[%7lld] ", (long long)s->now);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + k, (size_t)(200 - k), fmt, ap);
  va_end(ap);
  s->ring_head = (s->ring_head + 1) % RING_LINES;
  if (s->ring_n < RING_LINES) s->ring_n++;
  if (s->trace) printf("%s\n", line);
}

void sim_fail(struct sim *s, const char *fmt, ...) {
  if (s->failed) return;
  s->failed = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->why, sizeof s->why, fmt, ap);
  va_end(ap);
  sim_log(s, "VIOLATION: %s", s->why);
}

uint64_t sim_entry_id(const struct raft_entry *e) {
  uint64_t h = 1469598103934665603ULL ^ e->term;
  h = (h ^ e->type) * 1099511628211ULL;
  if (e->buf)
    for (size_t i = 0; i < e->buf->len; i++)
      h = (h ^ e->buf->data[i]) * 1099511628211ULL;
  return h ? h : 1;
}

static const char *node_name(int i) {
  static const char *names[SIM_MAX_NODES] = {"n0", "n1", "n2", "n3",
                                             "n4", "n5", "n6", "n7"};
  return names[i];
}

static int node_by_name(struct sim *s, const char *name) {
  for (int i = 0; i < s->n_total; i++)
    if (strcmp(s->nodes[i].name, name) == 0) return i;
  return -1;
}

/* ---- nodes -------------------------------------------------------------- */

static void options(struct sim *s, struct sim_node *n, struct raft_options *o) {
  raft_options_default(o, n->name);
  o->election_timeout = 10;
  o->heartbeat_interval = 3;
  o->lease_drift = 2;
  o->seed = rnd64(s);
  /* Some nodes send one entry per message, to split batches. */
  o->max_append_bytes = rnd(s, 3) ? (size_t)(100 + rnd(s, 2000)) : 1;
  o->max_inflight_msgs = 1 + (unsigned)rnd(s, 8);
  o->max_inflight_bytes = (size_t)(500 + rnd(s, 10000));
  o->max_uncommitted_bytes = (size_t)(2000 + rnd(s, 20000));
  o->catchup_margin = 3 + (uint64_t)rnd(s, 10);
  o->snapshot_trailing = (uint64_t)rnd(s, 12);
  o->snapshot_chunk = 40;
  o->bugs = s->bugs;
}

static void snap_bytes(const struct sim_node *n, unsigned char out[96]) {
  memset(out, 0xAB, 96);
  memcpy(out, &n->snap.index, 8);
  memcpy(out + 8, &n->snap.term, 8);
  memcpy(out + 16, &n->snap_digest, 8);
}

static void dlog_drop_to(struct sim_node *n, uint64_t index) {
  /* Forget durable entries <= index (covered by the snapshot). */
  while (n->dn && n->dbase < index) {
    raft_buf_unref(n->dlog[0].buf);
    memmove(n->dlog, n->dlog + 1, (n->dn - 1) * sizeof *n->dlog);
    n->dn--;
    n->dbase++;
  }
  if (n->dn == 0 && n->dbase < index) n->dbase = index;
}

static void dlog_truncate(struct sim_node *n, uint64_t from) {
  while (n->dn && n->dbase + n->dn >= from) {
    raft_buf_unref(n->dlog[n->dn - 1].buf);
    n->dn--;
  }
}

static void dlog_append(struct sim_node *n, const struct raft_entry *e) {
  if (n->dn == n->dcap) {
    n->dcap = n->dcap ? n->dcap * 2 : 64;
    n->dlog = realloc(n->dlog, n->dcap * sizeof *n->dlog);
    if (!n->dlog) abort();
  }
  n->dlog[n->dn] = *e;
  raft_buf_ref(e->buf);
  n->dn++;
}

static void drop_ops(struct sim_node *n) {
  for (size_t i = 0; i < n->nops; i++) {
    for (size_t k = 0; k < n->ops[i].n; k++)
      raft_buf_unref(n->ops[i].entries[k].buf);
    free(n->ops[i].entries);
  }
  n->nops = 0;
}

static void node_start(struct sim *s, int i, bool bootstrap) {
  struct sim_node *n = &s->nodes[i];
  struct raft_options o;
  options(s, n, &o);
  n->r = raft_new(&o);
  if (!n->r) abort();
  n->incarnation++;
  n->up = true;
  n->applied = n->digest = 0;
  if (bootstrap) {
    struct raft_conf c;
    memset(&c, 0, sizeof c);
    for (int k = 0; k < s->n_nodes; k++)
      raft_conf_add(&c, s->nodes[k].name, s->nodes[k].addr, RAFT_ACTIVE);
    if (raft_bootstrap(n->r, &c) != 0) abort();
  } else {
    uint64_t first = n->dbase + 1;
    size_t skip = 0;
    if (n->has_snap && n->snap.index >= n->dbase) {
      skip = (size_t)(n->snap.index - n->dbase);
      if (skip > n->dn) skip = n->dn;
      first = n->snap.index + 1;
      n->applied = n->snap.index;
      n->digest = n->snap_digest;
    }
    int rc = raft_load(n->r, &n->hs, n->has_snap ? &n->snap : NULL, first,
                       n->dlog + skip, n->dn - skip);
    if (rc != 0) sim_fail(s, "%s: raft_load failed (%d)", n->name, rc);
  }
  n->seen_commit = raft_commit_index(n->r);
  n->seen_applied = n->applied;
  n->snap_every = 5 + (uint64_t)rnd(s, 40);
  push(s, s->now + 1 + rnd(s, n->tick_period), EV_TICK, i);
}

static void node_crash(struct sim *s, int i) {
  struct sim_node *n = &s->nodes[i];
  if (!n->up) return;
  sim_log(s, "CRASH %s (term %llu, role %s, persisted %llu of %llu)", n->name,
          (unsigned long long)raft_term(n->r), raft_role_name(raft_role(n->r)),
          (unsigned long long)raft_persisted_index(n->r),
          (unsigned long long)raft_last_index(n->r));
  raft_free(n->r);
  n->r = NULL;
  n->up = false;
  n->incarnation++;
  n->rlen = 0;
  drop_ops(n);
  s->n_crashes++;
  size_t k = 0;
  for (size_t j = 0; j < s->nreads; j++)
    if (s->reads[j].node != i) s->reads[k++] = s->reads[j];
  s->nreads = k;
}

/* ---- network ------------------------------------------------------------ */

static void send(struct sim *s, int from, const struct raft_msg *m) {
  int to = node_by_name(s, m->to);
  if (to < 0) return;
  int copies = 1;
  if (!s->healing) {
    if (rnd(s, 100) < s->loss_pct) return;
    if (rnd(s, 100) < s->dup_pct) copies = 2;
  }
  for (int c = 0; c < copies; c++) {
    int64_t delay = 1 + rnd(s, 5);
    if (!s->healing && rnd(s, 100) < s->long_delay_pct) delay = 10 + rnd(s, 80);
    struct sim_event *e = push(s, s->now + delay, EV_DELIVER, to);
    e->from = from;
    raft_msg_copy(&e->msg, m);
  }
}

static void describe(char *buf, size_t len, const struct raft_msg *m) {
  switch (m->type) {
    case RAFT_MSG_VOTE:
      snprintf(buf, len, "%s%s last=%llu/%llu", m->u.vote.prevote ? "pre" : "",
               m->u.vote.transfer ? " transfer" : "",
               (unsigned long long)m->u.vote.last_index,
               (unsigned long long)m->u.vote.last_term);
      break;
    case RAFT_MSG_VOTE_RESP:
      snprintf(buf, len, "%s%s", m->u.vote_resp.prevote ? "pre " : "",
               m->u.vote_resp.granted ? "granted" : "rejected");
      break;
    case RAFT_MSG_APPEND:
      snprintf(buf, len, "prev=%llu/%llu n=%zu commit=%llu",
               (unsigned long long)m->u.append.prev_index,
               (unsigned long long)m->u.append.prev_term, m->u.append.n,
               (unsigned long long)m->u.append.commit);
      break;
    case RAFT_MSG_APPEND_RESP:
      snprintf(buf, len, "%s index=%llu conflict=%llu/%llu",
               m->u.append_resp.success ? "ok" : "reject",
               (unsigned long long)m->u.append_resp.index,
               (unsigned long long)m->u.append_resp.conflict_index,
               (unsigned long long)m->u.append_resp.conflict_term);
      break;
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_HEARTBEAT_RESP:
      snprintf(buf, len, "commit=%llu seq=%llu",
               (unsigned long long)m->u.heartbeat.commit,
               (unsigned long long)m->u.heartbeat.seq);
      break;
    case RAFT_MSG_SNAPSHOT:
      snprintf(buf, len, "index=%llu/%llu offset=%llu%s",
               (unsigned long long)m->u.snapshot.index,
               (unsigned long long)m->u.snapshot.term,
               (unsigned long long)m->u.snapshot.offset,
               m->u.snapshot.last ? " last" : "");
      break;
    case RAFT_MSG_SNAPSHOT_RESP:
      snprintf(buf, len, "index=%llu offset=%llu%s",
               (unsigned long long)m->u.snapshot_resp.index,
               (unsigned long long)m->u.snapshot_resp.offset,
               m->u.snapshot_resp.done ? " done" : "");
      break;
    default:
      buf[0] = 0;
  }
}

/* ---- the host loop for one node ----------------------------------------- */

static void apply(struct sim *s, struct sim_node *n, uint64_t index,
                  const struct raft_entry *e) {
  if (index != n->applied + 1) {
    sim_fail(s, "%s: asked to apply %llu after %llu", n->name,
             (unsigned long long)index, (unsigned long long)n->applied);
    return;
  }
  n->digest = (n->digest ^ sim_entry_id(e)) * 0x100000001B3ULL + index;
  n->applied = index;
  check_apply(s, n, index, e);
  if (index > s->max_acked) s->max_acked = index;
  if (e->type == RAFT_COMMAND) s->n_applied_writes++;
  if (s->healing && e->type == RAFT_COMMAND && e->buf && e->buf->len >= 8 &&
      e->buf->data[0] == 0xEE)
    s->heal_done = true;
}

static void serve_reads(struct sim *s, int i, const struct raft_ready *rd) {
  struct sim_node *n = &s->nodes[i];
  for (size_t k = 0; k < rd->n_reads; k++) {
    size_t j = 0;
    while (j < s->nreads && s->reads[j].ctx != rd->reads[k].ctx)
      j++;
    if (j == s->nreads) continue;
    if (rd->reads[k].status == 0) {
      check_read(s, n, &s->reads[j], rd->reads[k].index);
      s->n_reads_ok++;
      sim_log(s, "%s served read %llu at %llu (needed %llu)", n->name,
              (unsigned long long)rd->reads[k].ctx,
              (unsigned long long)n->applied,
              (unsigned long long)s->reads[j].acked_before);
    } else {
      s->n_reads_failed++;
    }
    s->reads[j] = s->reads[--s->nreads];
  }
}

static void install(struct sim *s, struct sim_node *n,
                    const struct raft_ready *rd) {
  uint64_t idx, term, digest;
  if (n->rlen < 24) {
    sim_fail(s, "%s: snapshot install with %zu bytes", n->name, n->rlen);
    return;
  }
  memcpy(&idx, n->rbuf, 8);
  memcpy(&term, n->rbuf + 8, 8);
  memcpy(&digest, n->rbuf + 16, 8);
  if (idx != rd->snap.index || term != rd->snap.term) {
    sim_fail(s, "%s: snapshot bytes for %llu but install of %llu", n->name,
             (unsigned long long)idx, (unsigned long long)rd->snap.index);
    return;
  }
  n->has_snap = true;
  n->snap = rd->snap;
  n->snap_digest = digest;
  if (rd->snap_drop_log) {
    dlog_truncate(n, n->dbase + 1);
    n->dbase = idx;
    drop_ops(n); /* writes of the discarded log are moot */
  } else {
    dlog_drop_to(n, idx);
  }
  n->applied = idx;
  n->digest = digest;
  n->rlen = 0;
  check_snapshot_install(s, n, idx, digest);
  s->n_snap_installs++;
  sim_log(s, "%s installed snapshot %llu/%llu", n->name,
          (unsigned long long)idx, (unsigned long long)term);
}

static void persist(struct sim *s, int i, const struct raft_ready *rd) {
  struct sim_node *n = &s->nodes[i];
  check_persist(s, n, rd->persist_first, rd->persist, rd->n_persist);
  if (n->nops == n->capops) {
    n->capops = n->capops ? n->capops * 2 : 16;
    n->ops = realloc(n->ops, n->capops * sizeof *n->ops);
    if (!n->ops) abort();
  }
  struct sim_diskop *op = &n->ops[n->nops++];
  op->first = rd->persist_first;
  op->id = ++n->opseq;
  op->n = rd->n_persist;
  op->entries = malloc(op->n * sizeof *op->entries);
  if (!op->entries) abort();
  for (size_t k = 0; k < op->n; k++) {
    op->entries[k] = rd->persist[k];
    raft_buf_ref(op->entries[k].buf);
  }
  int64_t delay =
      n->slow_until > s->now && !s->healing ? 20 + rnd(s, 80) : 1 + rnd(s, 4);
  op->done_at = s->now + delay;
  if (n->nops > 1 && n->ops[n->nops - 2].done_at > op->done_at)
    op->done_at = n->ops[n->nops - 2].done_at;
  push(s, op->done_at, EV_DISK, i)->opid = op->id;
}

static void drain(struct sim *s, int i) {
  struct sim_node *n = &s->nodes[i];
  while (n->up && raft_has_ready(n->r) && !s->failed) {
    struct raft_ready rd;
    raft_ready_get(n->r, &rd);
    if (rd.hs_changed) n->hs = rd.hs;
    for (size_t k = 0; k < rd.n_chunks; k++) {
      const struct raft_chunk_recv *c = &rd.chunks[k];
      if (c->offset == 0) n->rlen = 0;
      if (c->offset == n->rlen && c->data &&
          n->rlen + c->data->len <= sizeof n->rbuf) {
        memcpy(n->rbuf + n->rlen, c->data->data, c->data->len);
        n->rlen += c->data->len;
      }
    }
    if (rd.snap_install) install(s, n, &rd);
    if (rd.n_persist) persist(s, i, &rd);
    /* A leader may crash after applying its first commit of a term but
     * before its next messages leave (the host applies, then sends). */
    bool crash_now = rd.n_committed && raft_role(n->r) == RAFT_LEADER &&
                     n->first_commit_term != raft_term(n->r) &&
                     rnd(s, 100) < s->crash_new_leader_pct;
    if (crash_now) {
      for (size_t k = 0; k < rd.n_committed && !s->failed; k++)
        apply(s, n, rd.commit_first + k, &rd.committed[k]);
      raft_ready_done(n->r, &rd);
      sim_log(s, "%s crashes after applying, before sending", n->name);
      node_crash(s, i);
      push(s, s->now + 10 + rnd(s, 150), EV_RESTART, i);
      return;
    }
    for (size_t k = 0; k < rd.n_msgs; k++) {
      if (s->trace || s->ring) {
        char d[120];
        describe(d, sizeof d, &rd.msgs[k]);
        sim_log(s, "%s -> %s %s t%llu %s", rd.msgs[k].from, rd.msgs[k].to,
                raft_msg_name(rd.msgs[k].type),
                (unsigned long long)rd.msgs[k].term, d);
      }
      send(s, i, &rd.msgs[k]);
      /* Crash right after voting: the vote must have been durable. */
      if (rd.msgs[k].type == RAFT_MSG_VOTE_RESP &&
          rd.msgs[k].u.vote_resp.granted && !rd.msgs[k].u.vote_resp.prevote &&
          rnd(s, 100) < s->crash_after_vote_pct)
        push(s, s->now, EV_CRASH, i);
    }
    for (size_t k = 0; k < rd.n_committed && !s->failed; k++)
      apply(s, n, rd.commit_first + k, &rd.committed[k]);
    serve_reads(s, i, &rd);
    struct raft_chunk_req reqs[8];
    size_t nreq = rd.n_chunk_reqs < 8 ? rd.n_chunk_reqs : 8;
    if (nreq) memcpy(reqs, rd.chunk_reqs, nreq * sizeof *reqs);
    raft_ready_done(n->r, &rd);
    for (size_t k = 0; k < nreq; k++) {
      unsigned char bytes[96];
      struct raft_buf *b = NULL;
      bool last = false;
      if (n->has_snap && n->snap.index == reqs[k].index &&
          reqs[k].offset < sizeof bytes) {
        snap_bytes(n, bytes);
        size_t len = sizeof bytes - (size_t)reqs[k].offset;
        if (len > reqs[k].max_len) len = reqs[k].max_len;
        b = raft_buf_from(bytes + reqs[k].offset, len);
        last = reqs[k].offset + len == sizeof bytes;
      }
      raft_snapshot_chunk(n->r, reqs[k].to, reqs[k].index, reqs[k].offset, b,
                          last);
      raft_buf_unref(b);
    }
    /* The state machine snapshots itself now and then. */
    if (n->applied >= raft_snapshot_index(n->r) + n->snap_every &&
        n->applied > n->snap.index) {
      uint64_t idx = n->applied;
      if (raft_snapshot_taken(n->r, idx) == 0) {
        raft_snapshot_get(n->r, &n->snap);
        n->has_snap = true;
        n->snap_digest = n->digest;
        dlog_drop_to(n, idx);
        sim_log(s, "%s took snapshot %llu", n->name, (unsigned long long)idx);
      }
    }
  }
}

/* ---- events ------------------------------------------------------------- */

static int pick_leader(struct sim *s) {
  int cand[SIM_MAX_NODES], k = 0;
  for (int i = 0; i < s->n_total; i++)
    if (s->nodes[i].up && raft_role(s->nodes[i].r) == RAFT_LEADER)
      cand[k++] = i;
  return k ? cand[rnd(s, k)] : -1;
}

static void do_propose(struct sim *s) {
  int l = pick_leader(s);
  if (l < 0) return;
  size_t len = 9 + (size_t)rnd(s, 60);
  struct raft_buf *b = raft_buf_new(len);
  uint64_t id = ++s->next_proposal;
  memset(b->data, (int)(id & 0xff), len);
  memcpy(b->data, &id, 8);
  b->data[0] = s->healing ? 0xEE : 0x01;
  int64_t rc = raft_propose(s->nodes[l].r, RAFT_COMMAND, b);
  raft_buf_unref(b);
  sim_log(s, "propose #%llu on %s -> %lld", (unsigned long long)id,
          s->nodes[l].name, (long long)rc);
  drain(s, l);
}

static void do_read(struct sim *s) {
  int l = pick_leader(s);
  if (l < 0) return;
  if (s->nreads == s->capreads) {
    s->capreads = s->capreads ? s->capreads * 2 : 64;
    s->reads = realloc(s->reads, s->capreads * sizeof *s->reads);
    if (!s->reads) abort();
  }
  struct sim_pending_read *p = &s->reads[s->nreads++];
  p->ctx = ++s->next_read;
  p->node = l;
  p->incarnation = s->nodes[l].incarnation;
  p->acked_before = s->max_acked;
  bool lease = rnd(s, 2);
  int rc = raft_read(s->nodes[l].r, p->ctx, lease);
  sim_log(s, "read %llu (%s) on %s -> %d", (unsigned long long)p->ctx,
          lease ? "lease" : "index", s->nodes[l].name, rc);
  if (rc != 0) s->nreads--;
  drain(s, l);
}

static void heal_network(struct sim *s) {
  memset(s->blocked, 0, sizeof s->blocked);
}

static void do_fault(struct sim *s) {
  int n = s->n_total, a = rnd(s, n), b = rnd(s, n);
  int kind = rnd(s, 12);
  switch (kind) {
    case 0:
    case 1:
      heal_network(s);
      sim_log(s, "FAULT heal network");
      break;
    case 2: { /* symmetric partition */
      heal_network(s);
      unsigned side = (unsigned)rnd64(s);
      for (int x = 0; x < n; x++)
        for (int y = 0; y < n; y++)
          if (((side >> x) & 1) != ((side >> y) & 1)) s->blocked[x][y] = true;
      sim_log(s, "FAULT partition mask %x", side & ((1u << n) - 1));
      break;
    }
    case 3:
      if (a != b) s->blocked[a][b] = true;
      sim_log(s, "FAULT one-way %s -/-> %s", node_name(a), node_name(b));
      break;
    case 4: {
      int l = pick_leader(s);
      if (l < 0) break;
      for (int x = 0; x < n; x++)
        if (x != l) s->blocked[l][x] = s->blocked[x][l] = true;
      sim_log(s, "FAULT isolate leader %s", node_name(l));
      break;
    }
    case 5: { /* bridge: a and b cannot talk, everyone else can */
      heal_network(s);
      if (a != b) s->blocked[a][b] = s->blocked[b][a] = true;
      sim_log(s, "FAULT bridge: %s and %s apart", node_name(a), node_name(b));
      break;
    }
    case 6:
    case 7:
      if (s->nodes[a].up) {
        node_crash(s, a);
        push(s, s->now + 50 + rnd(s, 600), EV_RESTART, a);
      }
      break;
    case 8: /* power failure of several nodes at once */
      for (int x = 0; x < n; x++)
        if (s->nodes[x].up && rnd(s, 2)) {
          node_crash(s, x);
          push(s, s->now + 20 + rnd(s, 300), EV_RESTART, x);
        }
      break;
    case 9:
      s->nodes[a].slow_until = s->now + 100 + rnd(s, 1000);
      sim_log(s, "FAULT slow disk on %s", node_name(a));
      break;
    case 10:
      s->loss_pct = rnd(s, 15);
      s->dup_pct = rnd(s, 10);
      s->long_delay_pct = rnd(s, 15);
      sim_log(s, "FAULT network loss %d%% dup %d%% long delay %d%%",
              s->loss_pct, s->dup_pct, s->long_delay_pct);
      break;
    default: {
      int l = pick_leader(s);
      if (l >= 0) {
        node_crash(s, l);
        push(s, s->now + 50 + rnd(s, 400), EV_RESTART, l);
      }
      break;
    }
  }
}

static void do_operator(struct sim *s) {
  int l = pick_leader(s);
  if (l < 0) return;
  struct raft *r = s->nodes[l].r;
  const struct raft_conf *c = raft_configuration(r);
  int voters = 0;
  for (unsigned k = 0; k < c->n; k++)
    voters += c->m[k].type == RAFT_ACTIVE;
  int t = rnd(s, s->n_total);
  struct sim_node *tn = &s->nodes[t];
  int in = raft_conf_find(c, tn->name);
  int rc = 0;
  const char *what = "";
  int action = rnd(s, 6);
  if (action == 0 && t != l) {
    what = "transfer to";
    rc = raft_transfer(r, tn->name);
    if (rc == 0) s->n_transfers++;
  } else if (in < 0) {
    what = rnd(s, 3) ? "add passive" : "add reserve";
    rc = raft_change(r, tn->name, tn->addr,
                     what[4] == 'p' ? RAFT_PASSIVE : RAFT_RESERVE);
  } else if (c->m[in].type == RAFT_PASSIVE) {
    if (rnd(s, 4)) {
      what = "promote";
      rc = raft_change(r, tn->name, tn->addr, RAFT_ACTIVE);
    } else {
      what = "remove";
      rc = raft_remove(r, tn->name);
    }
  } else if (c->m[in].type == RAFT_RESERVE) {
    what = "passive";
    rc = raft_change(r, tn->name, tn->addr, RAFT_PASSIVE);
  } else if (voters > 3) {
    what = rnd(s, 2) ? "demote" : "remove";
    rc = what[0] == 'd' ? raft_change(r, tn->name, tn->addr, RAFT_PASSIVE)
                        : raft_remove(r, tn->name);
  } else {
    return;
  }
  if (rc == 0 && action != 0) {
    s->n_changes++;
    /* A leader failing right after starting a change leaves it
     * uncommitted for the next leader to deal with. */
    if (rnd(s, 100) < s->crash_new_leader_pct)
      push(s, s->now + rnd(s, 4), EV_CRASH, l);
  }
  sim_log(s, "OPERATOR on %s: %s %s -> %s", s->nodes[l].name, what, tn->name,
          raft_strerror(rc));
  drain(s, l);
}

static void disk_done(struct sim *s, int i, uint64_t opid) {
  struct sim_node *n = &s->nodes[i];
  if (!n->nops || n->ops[0].id != opid) return; /* cancelled */
  struct sim_diskop op = n->ops[0];
  memmove(n->ops, n->ops + 1, (n->nops - 1) * sizeof *n->ops);
  n->nops--;
  /* Entries at or below dbase are covered by the snapshot already. */
  uint64_t from = op.first > n->dbase ? op.first : n->dbase + 1;
  if (from <= n->dbase + n->dn) dlog_truncate(n, from);
  if (from > n->dbase + n->dn + 1 && from < op.first + op.n)
    sim_fail(s, "simulator: %s disk write at %llu leaves a gap after %llu",
             n->name, (unsigned long long)from,
             (unsigned long long)(n->dbase + n->dn));
  uint64_t last = 0, last_term = 0;
  for (size_t k = 0; k < op.n; k++) {
    uint64_t index = op.first + k;
    if (index == n->dbase + n->dn + 1) dlog_append(n, &op.entries[k]);
    last = index;
    last_term = op.entries[k].term;
    raft_buf_unref(op.entries[k].buf);
  }
  free(op.entries);
  if (last) raft_persisted(n->r, last, last_term);
  drain(s, i);
}

static void handle(struct sim *s, struct sim_event *e) {
  struct sim_node *n = e->node >= 0 ? &s->nodes[e->node] : NULL;
  switch (e->kind) {
    case EV_TICK:
      if (!n->up || e->inc != n->incarnation) break;
      raft_tick(n->r);
      drain(s, e->node);
      push(s, s->now + n->tick_period, EV_TICK, e->node);
      break;
    case EV_DELIVER:
      if (!n->up || s->blocked[e->from][e->node]) break;
      raft_step(n->r, &e->msg);
      drain(s, e->node);
      break;
    case EV_DISK:
      if (!n->up || e->inc != n->incarnation) break;
      disk_done(s, e->node, e->opid);
      break;
    case EV_PROPOSE:
      do_propose(s);
      push(s, s->now + 2 + rnd(s, 20), EV_PROPOSE, -1);
      break;
    case EV_READ:
      do_read(s);
      push(s, s->now + 5 + rnd(s, 30), EV_READ, -1);
      break;
    case EV_FAULT:
      if (!s->healing) {
        do_fault(s);
        push(s, s->now + 100 + rnd(s, 400), EV_FAULT, -1);
      }
      break;
    case EV_RESTART:
      if (!n->up && e->inc == n->incarnation) {
        node_start(s, e->node, false);
        sim_log(s, "RESTART %s (term %llu, log %llu, snapshot %llu)", n->name,
                (unsigned long long)raft_term(n->r),
                (unsigned long long)raft_last_index(n->r),
                (unsigned long long)raft_snapshot_index(n->r));
        drain(s, e->node);
      }
      break;
    case EV_OPERATOR:
      if (!s->healing) {
        do_operator(s);
        push(s, s->now + 50 + rnd(s, 150), EV_OPERATOR, -1);
      }
      break;
    case EV_OPERATOR_ONCE:
      if (!s->healing) do_operator(s);
      break;
    case EV_CRASH: /* a crash at an interesting moment */
      if (n->up && e->inc == n->incarnation && !s->healing) {
        node_crash(s, e->node);
        push(s, s->now + 10 + rnd(s, 150), EV_RESTART, e->node);
      }
      break;
  }
}

/* ---- runs --------------------------------------------------------------- */

void sim_init(struct sim *s, uint64_t seed, int nodes, unsigned bugs,
              bool trace) {
  memset(s, 0, sizeof *s);
  s->seed = seed;
  s->rng = seed * 0x2545F4914F6CDD1DULL + 1;
  s->n_nodes = nodes;
  s->n_total = nodes + 2 <= SIM_MAX_NODES ? nodes + 2 : SIM_MAX_NODES;
  s->bugs = bugs;
  s->trace = trace;
  s->ring = calloc(RING_LINES, sizeof *s->ring);
  for (int i = 0; i < s->n_total; i++) {
    struct sim_node *n = &s->nodes[i];
    n->id = i;
    snprintf(n->name, sizeof n->name, "%s", node_name(i));
    snprintf(n->addr, sizeof n->addr, "10.0.0.%d:5000", i + 1);
    n->tick_period = TICK_UNITS - 1 + rnd(s, 3); /* skew: 9..11 */
  }
  for (int i = 0; i < s->n_total; i++)
    node_start(s, i, i < nodes);
  s->loss_pct = rnd(s, 5);
  s->dup_pct = rnd(s, 5);
  s->long_delay_pct = rnd(s, 5);
  s->crash_after_vote_pct = rnd(s, 2) ? 0 : 10 + rnd(s, 30);
  s->crash_new_leader_pct = rnd(s, 2) ? 0 : 20 + rnd(s, 50);
  push(s, 5, EV_PROPOSE, -1);
  push(s, 7, EV_READ, -1);
  push(s, 200 + rnd(s, 300), EV_FAULT, -1);
  push(s, 300 + rnd(s, 300), EV_OPERATOR, -1);
}

void sim_free(struct sim *s) {
  while (s->nheap)
    free_event(pop(s));
  free(s->heap);
  for (int i = 0; i < s->n_total; i++) {
    struct sim_node *n = &s->nodes[i];
    raft_free(n->r);
    drop_ops(n);
    free(n->ops);
    dlog_truncate(n, n->dbase + 1);
    free(n->dlog);
  }
  free(s->reads);
  free(s->ring);
  check_free(s);
}

static bool step(struct sim *s) {
  struct sim_event *e = pop(s);
  if (!e) return false;
  s->now = e->at;
  handle(s, e);
  free_event(e);
  long elections = s->n_elections;
  s->first_commit = -1;
  if (!s->failed) check_step(s);
  if (s->first_commit >= 0 && rnd(s, 100) < s->crash_new_leader_pct)
    push(s, s->now, EV_CRASH, s->first_commit);
  /* Membership changes right after an election probe the rule that a new
   * leader first commits an entry of its own term. */
  if (s->n_elections > elections && rnd(s, 3) != 0)
    push(s, s->now + rnd(s, 3), EV_OPERATOR_ONCE, -1);
  /* ...and so does a leader crashing before its first entries spread. */
  if (s->n_elections > elections && rnd(s, 100) < s->crash_new_leader_pct)
    push(s, s->now + (rnd(s, 2) ? rnd(s, 8) : rnd(s, 30)), EV_CRASH,
         s->new_leader);
  return true;
}

bool sim_run(struct sim *s, long steps) {
  for (s->steps = 0; s->steps < steps && !s->failed; s->steps++)
    if (!step(s)) break;
  if (s->failed) return false;
  /* Heal everything; a leader must emerge and new proposals commit. */
  s->healing = true;
  heal_network(s);
  s->loss_pct = s->dup_pct = s->long_delay_pct = 0;
  sim_log(s, "HEAL all faults");
  for (int i = 0; i < s->n_total; i++) {
    s->nodes[i].slow_until = 0;
    if (!s->nodes[i].up) {
      node_start(s, i, false);
      drain(s, i);
    }
  }
  int64_t deadline = s->now + 60 * 10 * TICK_UNITS;
  while (!s->failed && !s->heal_done && s->now < deadline)
    if (!step(s)) break;
  if (!s->failed && !s->heal_done)
    sim_fail(s, "liveness: no proposal committed within %d ticks of healing",
             60 * 10);
  return !s->failed;
}

void sim_dump_nodes(struct sim *s, FILE *f) {
  for (int i = 0; i < s->n_total; i++) {
    struct sim_node *n = &s->nodes[i];
    if (!n->up) {
      fprintf(f, "  %s: down\n", n->name);
      continue;
    }
    struct raft *r = n->r;
    const struct raft_conf *c = raft_configuration(r);
    char conf[200] = "";
    size_t k = 0;
    for (unsigned j = 0; j < c->n && k < sizeof conf - 16; j++)
      k += (size_t)snprintf(conf + k, sizeof conf - k, " %s:%c", c->m[j].name,
                            "?APR"[c->m[j].type & 3]);
    fprintf(f,
            "  %s: %s term %llu vote '%s' leader '%s' last %llu/%llu commit "
            "%llu applied %llu persisted %llu snapshot %llu conf@%llu%s\n",
            n->name, raft_role_name(raft_role(r)),
            (unsigned long long)raft_term(r), n->hs.vote, raft_leader(r),
            (unsigned long long)raft_last_index(r),
            (unsigned long long)raft_term_at(r, raft_last_index(r)),
            (unsigned long long)raft_commit_index(r),
            (unsigned long long)n->applied,
            (unsigned long long)raft_persisted_index(r),
            (unsigned long long)raft_snapshot_index(r),
            (unsigned long long)raft_configuration_index(r), conf);
  }
}

void sim_dump_trace(struct sim *s, FILE *f, size_t lines) {
  size_t n = s->ring_n < lines ? s->ring_n : lines;
  size_t start = (s->ring_head + RING_LINES - n) % RING_LINES;
  for (size_t k = 0; k < n; k++)
    fprintf(f, "  %s\n", s->ring[(start + k) % RING_LINES]);
}
