/*
 * node.c — the host of one simulated server: it starts a core from what
 * its simulated disk holds, carries out every ready (hard state written at
 * once, log writes completing later and in order, messages into the
 * network, committed entries into a digest state machine, snapshots), and
 * loses everything not yet durable when it crashes.
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

/* ---- nodes -------------------------------------------------------------- */

static void options(struct sim *s, struct sim_node *n, struct raft_options *o) {
  raft_options_default(o, n->name);
  o->election_timeout = 10;
  o->heartbeat_interval = 3;
  o->lease_drift = 2;
  o->seed = sim_rnd64(s);
  /* Some nodes send one entry per message, to split batches. */
  o->max_append_bytes = sim_rnd(s, 3) ? (size_t)(100 + sim_rnd(s, 2000)) : 1;
  o->max_inflight_msgs = 1 + (unsigned)sim_rnd(s, 8);
  o->max_inflight_bytes = (size_t)(500 + sim_rnd(s, 10000));
  o->max_uncommitted_bytes = (size_t)(2000 + sim_rnd(s, 20000));
  o->catchup_margin = 3 + (uint64_t)sim_rnd(s, 10);
  o->snapshot_trailing = (uint64_t)sim_rnd(s, 12);
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

void sim_dlog_truncate(struct sim_node *n, uint64_t from) {
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

void sim_drop_ops(struct sim_node *n) {
  for (size_t i = 0; i < n->nops; i++) {
    for (size_t k = 0; k < n->ops[i].n; k++)
      raft_buf_unref(n->ops[i].entries[k].buf);
    free(n->ops[i].entries);
  }
  n->nops = 0;
}

void sim_node_start(struct sim *s, int i, bool bootstrap) {
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
    /* What it restarts with must still obey log matching. */
    check_persist(s, n, first, n->dlog + skip, n->dn - skip);
  }
  n->seen_commit = raft_commit_index(n->r);
  n->seen_applied = n->applied;
  n->snap_every = 5 + (uint64_t)sim_rnd(s, 40);
  sim_push(s, s->now + 1 + sim_rnd(s, n->tick_period), EV_TICK, i);
}

void sim_node_crash(struct sim *s, int i) {
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
  sim_drop_ops(n);
  s->n_crashes++;
  size_t k = 0;
  for (size_t j = 0; j < s->nreads; j++)
    if (s->reads[j].node != i) s->reads[k++] = s->reads[j];
  s->nreads = k;
}

/* ---- network ------------------------------------------------------------ */

static void net_send(struct sim *s, int from, const struct raft_msg *m) {
  int to = sim_node_by_name(s, m->to);
  if (to < 0) return;
  int copies = 1;
  if (!s->healing) {
    if (sim_rnd(s, 100) < s->loss_pct) return;
    if (sim_rnd(s, 100) < s->dup_pct) copies = 2;
  }
  for (int c = 0; c < copies; c++) {
    int64_t delay = 1 + sim_rnd(s, 5);
    if (!s->healing && sim_rnd(s, 100) < s->long_delay_pct)
      delay = 10 + sim_rnd(s, 80);
    struct sim_event *e = sim_push(s, s->now + delay, EV_DELIVER, to);
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
    sim_dlog_truncate(n, n->dbase + 1);
    n->dbase = idx;
    sim_drop_ops(n); /* writes of the discarded log are moot */
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
  int64_t delay = n->slow_until > s->now && !s->healing ? 20 + sim_rnd(s, 80)
                                                        : 1 + sim_rnd(s, 4);
  op->done_at = s->now + delay;
  if (n->nops > 1 && n->ops[n->nops - 2].done_at > op->done_at)
    op->done_at = n->ops[n->nops - 2].done_at;
  sim_push(s, op->done_at, EV_DISK, i)->opid = op->id;
}

void sim_drain(struct sim *s, int i) {
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
                     sim_rnd(s, 100) < s->crash_new_leader_pct;
    if (crash_now) {
      for (size_t k = 0; k < rd.n_committed && !s->failed; k++)
        apply(s, n, rd.commit_first + k, &rd.committed[k]);
      raft_ready_done(n->r, &rd);
      sim_log(s, "%s crashes after applying, before sending", n->name);
      sim_node_crash(s, i);
      sim_push(s, s->now + 10 + sim_rnd(s, 150), EV_RESTART, i);
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
      net_send(s, i, &rd.msgs[k]);
      /* Crash right after voting: the vote must have been durable. */
      if (rd.msgs[k].type == RAFT_MSG_VOTE_RESP &&
          rd.msgs[k].u.vote_resp.granted && !rd.msgs[k].u.vote_resp.prevote &&
          sim_rnd(s, 100) < s->crash_after_vote_pct)
        sim_push(s, s->now, EV_CRASH, i);
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
                          last, NULL);
      raft_buf_unref(b);
    }
    /* The state machine snapshots itself now and then. */
    if (n->applied >= raft_snapshot_index(n->r) + n->snap_every &&
        n->applied > n->snap.index &&
        n->applied <= raft_persisted_index(n->r)) {
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

void sim_disk_done(struct sim *s, int i, uint64_t opid) {
  struct sim_node *n = &s->nodes[i];
  if (!n->nops || n->ops[0].id != opid) return; /* cancelled */
  struct sim_diskop op = n->ops[0];
  memmove(n->ops, n->ops + 1, (n->nops - 1) * sizeof *n->ops);
  n->nops--;
  /* Entries at or below dbase are covered by the snapshot already. */
  uint64_t from = op.first > n->dbase ? op.first : n->dbase + 1;
  if (from <= n->dbase + n->dn) sim_dlog_truncate(n, from);
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
  sim_drain(s, i);
}
