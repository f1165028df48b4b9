/*
 * fixture.h — a small in-memory cluster for the Raft core's unit tests.
 *
 * Nodes "a", "b", "c", ... run real cores; messages wait in one FIFO queue
 * until a test delivers them (optionally dropping those across cut links);
 * disk writes complete at once (auto_persist) or when the test says so.
 * Everything a test may want to inspect is recorded: applied entries,
 * served reads, the last hard state, messages sent by type.
 */
#ifndef RAFT_FIXTURE_H
#define RAFT_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"

#define FX_MAX 8
#define FX_QMAX 4096

struct fx_node {
  struct raft *r;
  char name[8];
  bool up;
  bool auto_persist;
  struct raft_hard_state hs;
  int hs_writes;
  uint64_t pend_index, pend_term; /* written but not reported durable */
  uint64_t applied;
  uint8_t applied_type[1024];
  uint64_t reads[64];
  int read_status[64];
  uint64_t read_index[64];
  int n_reads;
  unsigned char snap[64]; /* host snapshot bytes (leader side) */
  uint64_t snap_index;
  unsigned char rbuf[64]; /* received snapshot bytes */
  size_t rlen;
  bool installed;
  uint64_t installed_index;
  int lose_snapshot;  /* answer this many chunk requests with "gone" */
  int chunk_requests; /* chunk requests seen */
};

struct fx {
  int n;
  struct fx_node nodes[FX_MAX];
  struct raft_msg q[FX_QMAX];
  int qfrom[FX_QMAX];
  int nq;
  bool cut[FX_MAX][FX_MAX];
  long sent[16]; /* messages sent, by type */
  long sent_to[FX_MAX][16];
  size_t append_entries_sent;
  long rejects_sent; /* AppendEntries rejections */
};

static inline void fx_opts(struct raft_options *o, const char *name, int i) {
  raft_options_default(o, name);
  o->election_timeout = 10;
  o->heartbeat_interval = 2;
  o->seed = (uint64_t)i + 1;
  o->check_quorum = false; /* tests that need it turn it on */
  o->lease_drift = 2;
}

static inline int fx_find(struct fx *f, const char *name) {
  for (int i = 0; i < f->n; i++)
    if (strcmp(f->nodes[i].name, name) == 0) return i;
  return -1;
}

static inline void fx_drain(struct fx *f, int i);

/* Create n nodes; the first `voters` are bootstrapped as ACTIVE members,
 * the rest start empty (to be added). `tweak` may adjust options. */
static inline void fx_init_with(struct fx *f, int n, int voters,
                                void (*tweak)(struct raft_options *, int)) {
  memset(f, 0, sizeof *f);
  f->n = n;
  struct raft_conf c;
  memset(&c, 0, sizeof c);
  for (int i = 0; i < n; i++) {
    snprintf(f->nodes[i].name, sizeof f->nodes[i].name, "%c", 'a' + i);
    if (i < voters) raft_conf_add(&c, f->nodes[i].name, "addr", RAFT_ACTIVE);
  }
  for (int i = 0; i < n; i++) {
    struct fx_node *x = &f->nodes[i];
    struct raft_options o;
    fx_opts(&o, x->name, i);
    if (tweak) tweak(&o, i);
    x->r = raft_new(&o);
    x->up = true;
    x->auto_persist = true;
    if (i < voters) raft_bootstrap(x->r, &c);
    fx_drain(f, i);
  }
}

static inline void fx_init(struct fx *f, int n) {
  fx_init_with(f, n, n, NULL);
}

static inline void fx_free(struct fx *f) {
  for (int k = 0; k < f->nq; k++)
    raft_msg_clear(&f->q[k]);
  for (int i = 0; i < f->n; i++)
    raft_free(f->nodes[i].r);
}

static inline void fx_persist_now(struct fx *f, int i) {
  struct fx_node *x = &f->nodes[i];
  if (!x->pend_index) return;
  uint64_t idx = x->pend_index, t = x->pend_term;
  x->pend_index = 0;
  raft_persisted(x->r, idx, t);
  fx_drain(f, i);
}

static inline void fx_drain(struct fx *f, int i) {
  struct fx_node *x = &f->nodes[i];
  while (raft_has_ready(x->r)) {
    struct raft_ready rd;
    raft_ready_get(x->r, &rd);
    if (rd.hs_changed) {
      x->hs = rd.hs;
      x->hs_writes++;
    }
    for (size_t k = 0; k < rd.n_chunks; k++) {
      if (rd.chunks[k].offset == 0) x->rlen = 0;
      if (rd.chunks[k].offset == x->rlen) {
        memcpy(x->rbuf + x->rlen, rd.chunks[k].data->data,
               rd.chunks[k].data->len);
        x->rlen += rd.chunks[k].data->len;
      }
    }
    if (rd.snap_install) {
      x->installed = true;
      x->installed_index = rd.snap.index;
      x->applied = rd.snap.index;
    }
    if (rd.n_persist) {
      x->pend_index = rd.persist_first + rd.n_persist - 1;
      x->pend_term = rd.persist[rd.n_persist - 1].term;
    }
    for (size_t k = 0; k < rd.n_msgs; k++) {
      if (f->nq < FX_QMAX) {
        raft_msg_copy(&f->q[f->nq], &rd.msgs[k]);
        f->qfrom[f->nq++] = i;
      }
      f->sent[rd.msgs[k].type]++;
      int to = fx_find(f, rd.msgs[k].to);
      if (to >= 0) f->sent_to[to][rd.msgs[k].type]++;
      if (rd.msgs[k].type == RAFT_MSG_APPEND)
        f->append_entries_sent += rd.msgs[k].u.append.n;
      if (rd.msgs[k].type == RAFT_MSG_APPEND_RESP &&
          !rd.msgs[k].u.append_resp.success)
        f->rejects_sent++;
    }
    for (size_t k = 0; k < rd.n_committed; k++) {
      uint64_t idx = rd.commit_first + k;
      if (idx < 1024) x->applied_type[idx] = rd.committed[k].type;
      x->applied = idx;
    }
    for (size_t k = 0; k < rd.n_reads && x->n_reads < 64; k++) {
      x->reads[x->n_reads] = rd.reads[k].ctx;
      x->read_status[x->n_reads] = rd.reads[k].status;
      x->read_index[x->n_reads++] = rd.reads[k].index;
    }
    struct raft_chunk_req req[4];
    size_t nreq = rd.n_chunk_reqs < 4 ? rd.n_chunk_reqs : 4;
    if (nreq) memcpy(req, rd.chunk_reqs, nreq * sizeof *req);
    raft_ready_done(x->r, &rd);
    for (size_t k = 0; k < nreq; k++) {
      x->chunk_requests++;
      if (x->lose_snapshot > 0) {
        x->lose_snapshot--;
        raft_snapshot_chunk(x->r, req[k].to, req[k].index, req[k].offset, NULL,
                            false, NULL);
        continue;
      }
      size_t total = sizeof x->snap, off = (size_t)req[k].offset;
      size_t len = total - off < req[k].max_len ? total - off : req[k].max_len;
      struct raft_buf *b = raft_buf_from(x->snap + off, len);
      raft_snapshot_chunk(x->r, req[k].to, req[k].index, req[k].offset, b,
                          off + len == total, NULL);
      raft_buf_unref(b);
    }
    if (x->auto_persist && x->pend_index) {
      uint64_t idx = x->pend_index, t = x->pend_term;
      x->pend_index = 0;
      raft_persisted(x->r, idx, t);
    }
  }
}

/* Deliver queued messages (FIFO) until none are left or `max` delivered;
 * messages across cut links or to down nodes are dropped. */
static inline int fx_deliver(struct fx *f, int max) {
  int delivered = 0;
  while (f->nq > 0 && delivered < max) {
    struct raft_msg m = f->q[0];
    int from = f->qfrom[0];
    memmove(f->q, f->q + 1, (size_t)(f->nq - 1) * sizeof f->q[0]);
    memmove(f->qfrom, f->qfrom + 1, (size_t)(f->nq - 1) * sizeof(int));
    f->nq--;
    int to = fx_find(f, m.to);
    if (to >= 0 && f->nodes[to].up && !f->cut[from][to]) {
      raft_step(f->nodes[to].r, &m);
      fx_drain(f, to);
    }
    raft_msg_clear(&m);
    delivered++;
  }
  return delivered;
}

static inline void fx_deliver_all(struct fx *f) {
  fx_deliver(f, 100000);
}

/* Drop every queued message. */
static inline void fx_drop_all(struct fx *f) {
  for (int k = 0; k < f->nq; k++)
    raft_msg_clear(&f->q[k]);
  f->nq = 0;
}

static inline void fx_tick(struct fx *f, int i, int times) {
  for (int k = 0; k < times; k++) {
    if (!f->nodes[i].up) return;
    raft_tick(f->nodes[i].r);
    fx_drain(f, i);
  }
}

/* Tick every live node once, then deliver everything: one round. */
static inline void fx_round(struct fx *f) {
  for (int i = 0; i < f->n; i++)
    fx_tick(f, i, 1);
  fx_deliver_all(f);
}

/* Tick node i until it starts an election, then deliver everything. */
static inline bool fx_elect(struct fx *f, int i) {
  for (int k = 0; k < 100 && raft_role(f->nodes[i].r) == RAFT_FOLLOWER; k++)
    fx_tick(f, i, 1);
  fx_deliver_all(f);
  return raft_role(f->nodes[i].r) == RAFT_LEADER;
}

/* Make node i campaign at once as if told by a leadership transfer, which
 * voters honour even while sticky to a leader. */
static inline bool fx_force_elect(struct fx *f, int i) {
  struct raft_msg m;
  memset(&m, 0, sizeof m);
  m.type = RAFT_MSG_TIMEOUT_NOW;
  m.term = raft_term(f->nodes[i].r);
  strcpy(m.from, f->nodes[(i + 1) % f->n].name);
  strcpy(m.to, f->nodes[i].name);
  raft_step(f->nodes[i].r, &m);
  fx_drain(f, i);
  fx_deliver_all(f);
  return raft_role(f->nodes[i].r) == RAFT_LEADER;
}

static inline void fx_isolate(struct fx *f, int i, bool cut) {
  for (int k = 0; k < f->n; k++)
    f->cut[i][k] = f->cut[k][i] = cut;
}

/* Propose without draining (to batch several proposals in one ready). */
static inline int64_t fx_propose_nodrain(struct fx *f, int i,
                                         const char *data) {
  struct raft_buf *b = raft_buf_from(data, strlen(data));
  int64_t rc = raft_propose(f->nodes[i].r, RAFT_COMMAND, b);
  raft_buf_unref(b);
  return rc;
}

static inline int64_t fx_propose(struct fx *f, int i, const char *data) {
  struct raft_buf *b = raft_buf_from(data, strlen(data));
  int64_t rc = raft_propose(f->nodes[i].r, RAFT_COMMAND, b);
  raft_buf_unref(b);
  fx_drain(f, i);
  return rc;
}

/* A vote request (or, with pre, a pre-vote poll) from `from` to `to`. */
static inline struct raft_msg fx_vote_msg(const char *from, const char *to,
                                          uint64_t term, uint64_t li,
                                          uint64_t lt, bool pre,
                                          bool transfer) {
  struct raft_msg m;
  memset(&m, 0, sizeof m);
  m.type = RAFT_MSG_VOTE;
  m.term = term;
  strcpy(m.from, from);
  strcpy(m.to, to);
  m.u.vote.last_index = li;
  m.u.vote.last_term = lt;
  m.u.vote.prevote = pre;
  m.u.vote.transfer = transfer;
  return m;
}

/* Steps m into node i: 1 if it granted the vote, 0 if it refused, -1 if it
 * did not answer. What it sent is dropped. */
static inline int fx_vote_granted(struct fx *f, int i,
                                  const struct raft_msg *m) {
  f->nq = 0;
  raft_step(f->nodes[i].r, m);
  fx_drain(f, i);
  int g = -1;
  for (int k = 0; k < f->nq; k++)
    if (f->q[k].type == RAFT_MSG_VOTE_RESP) g = f->q[k].u.vote_resp.granted;
  fx_drop_all(f);
  return g;
}

#endif
