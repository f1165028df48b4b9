/*
 * raft.c — lifecycle, options, message validation and dispatch, the
 * ready hand-off, queries. Elections and time are in election.c.
 */
#include <stdlib.h>

#include "raft/internal.h"

void raft_options_default(struct raft_options *o, const char *name) {
  memset(o, 0, sizeof *o);
  o->name = name;
  o->election_timeout = 10;
  o->heartbeat_interval = 2;
  o->seed = 1;
  o->pre_vote = true;
  o->check_quorum = true;
  o->lease_drift = 2;
  o->max_append_bytes = 1 << 20;
  o->max_inflight_msgs = 16;
  o->max_inflight_bytes = 8 << 20;
  o->max_uncommitted_bytes = 64 << 20;
  o->catchup_margin = 64;
  o->snapshot_trailing = 1024;
  o->snapshot_chunk = 1 << 20;
}

static uint64_t next_random(struct raft *r) {
  /* xorshift64*: good enough to spread election timeouts. */
  r->rng ^= r->rng >> 12;
  r->rng ^= r->rng << 25;
  r->rng ^= r->rng >> 27;
  return r->rng * 2685821657736338717ULL;
}

void raft_reset_timeout(struct raft *r) {
  r->election_elapsed = 0;
  r->randomized_timeout = r->opt.election_timeout +
                          (unsigned)(next_random(r) % r->opt.election_timeout);
}

struct raft *raft_new(const struct raft_options *o) {
  if (!o || !o->name || !*o->name || strlen(o->name) >= RAFT_NAME_MAX)
    return NULL;
  if (o->election_timeout < 2 || o->heartbeat_interval < 1 ||
      o->heartbeat_interval >= o->election_timeout ||
      o->lease_drift >= o->election_timeout || o->max_inflight_msgs < 1 ||
      o->max_inflight_msgs > RAFT_INFLIGHT_MAX || o->max_append_bytes < 1 ||
      o->snapshot_chunk < 1)
    return NULL;
  struct raft *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->opt = *o;
  strcpy(r->name, o->name);
  r->opt.name = r->name;
  raft_log_init(&r->log);
  r->rng = o->seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
  for (const char *p = r->name; *p; p++)
    r->rng = r->rng * 31 + (uint8_t)*p;
  if (r->rng == 0) r->rng = 1;
  r->role = RAFT_FOLLOWER;
  r->self = -1;
  r->unstable = 1;
  r->have_leader_contact = true; /* stay sticky to a leader we may have had */
  raft_reset_timeout(r);
  return r;
}

void raft_free(struct raft *r) {
  if (!r) return;
  raft_log_free(&r->log);
  for (size_t i = 0; i < r->n_msgs; i++)
    raft_msg_clear(&r->msgs[i]);
  for (size_t i = 0; i < r->n_crecv; i++) {
    raft_buf_unref(r->crecv[i].data);
    raft_buf_unref(r->crecv[i].conf);
  }
  free(r->msgs);
  free(r->reads);
  free(r->read_out);
  free(r->creq);
  free(r->crecv);
  free(r);
}

int raft_load(struct raft *r, const struct raft_hard_state *hs,
              const struct raft_snapshot_meta *snap, uint64_t first,
              const struct raft_entry *entries, size_t n) {
  if (raft_log_last(&r->log) != 0 || r->snap_index != 0) return RAFT_EINVAL;
  if (hs) {
    if (strlen(hs->vote) >= RAFT_NAME_MAX) return RAFT_EINVAL;
    r->term = hs->term;
    strcpy(r->vote, hs->vote);
  }
  if (snap) {
    if (n && first != snap->index + 1) return RAFT_EINVAL;
    r->snap_index = snap->index;
    r->snap_term = snap->term;
    r->snap_conf = snap->conf;
    raft_log_reset(&r->log, snap->index, snap->term);
    raft_conf_adopt(r, &snap->conf, snap->index);
    r->conf_prev = snap->conf;
    r->conf_prev_index = snap->index;
    r->commit = r->applied = snap->index;
  } else if (n && first != 1) {
    return RAFT_EINVAL;
  }
  for (size_t i = 0; i < n; i++) {
    if (entries[i].term > r->term ||
        entries[i].term < raft_log_last_term(&r->log))
      return RAFT_EINVAL;
    int rc = raft_log_append(&r->log, &entries[i]);
    if (rc) return rc;
    raft_conf_on_append(r, raft_log_last(&r->log), &entries[i]);
  }
  r->persisted = raft_log_last(&r->log);
  r->unstable = r->persisted + 1;
  return 0;
}

int raft_bootstrap(struct raft *r, const struct raft_conf *conf) {
  if (raft_log_last(&r->log) != 0 || r->term != 0) return RAFT_EINVAL;
  bool voter = false;
  for (unsigned i = 0; i < conf->n; i++)
    if (conf->m[i].type == RAFT_ACTIVE) voter = true;
  if (!voter) return RAFT_EINVAL;
  struct raft_entry e = {.term = 1, .type = RAFT_CONFIG};
  e.buf = raft_conf_encode(conf);
  if (!e.buf) return RAFT_ENOMEM;
  r->term = 1;
  r->have_leader_contact = false; /* a new cluster has no leader to keep */
  raft_set_hs_dirty(r);
  int rc = raft_log_append(&r->log, &e);
  if (rc == 0) raft_conf_on_append(r, 1, &e);
  raft_buf_unref(e.buf);
  return rc;
}

/* ---- helpers ------------------------------------------------------------ */

void raft_set_hs_dirty(struct raft *r) {
  r->hs_dirty = true;
}

bool raft_is_voter(const struct raft *r, int i) {
  return i >= 0 && (unsigned)i < r->conf.n && r->conf.m[i].type == RAFT_ACTIVE;
}

int raft_quorum(const struct raft *r) {
  int voters = 0;
  for (unsigned i = 0; i < r->conf.n; i++)
    voters += raft_is_voter(r, (int)i);
  return voters / 2 + 1;
}

struct raft_msg *raft_new_msg(struct raft *r, int type, const char *to) {
  if (r->n_msgs == r->cap_msgs) {
    size_t cap = r->cap_msgs ? r->cap_msgs * 2 : 16;
    struct raft_msg *m = realloc(r->msgs, cap * sizeof *m);
    if (!m) return NULL;
    r->msgs = m;
    r->cap_msgs = cap;
  }
  struct raft_msg *m = &r->msgs[r->n_msgs++];
  memset(m, 0, sizeof *m);
  m->type = (uint8_t)type;
  m->term = r->term;
  strcpy(m->from, r->name);
  strcpy(m->to, to);
  return m;
}

/* ---- dispatch ----------------------------------------------------------- */

/* Reject what no correct peer sends, so that a malformed message can
 * neither crash the core nor corrupt its log. */
static bool msg_valid(const struct raft_msg *m) {
  if (!memchr(m->from, 0, RAFT_NAME_MAX) || !memchr(m->to, 0, RAFT_NAME_MAX) ||
      !m->from[0])
    return false;
  switch (m->type) {
    case RAFT_MSG_APPEND: {
      const struct raft_entry *es = m->u.append.entries;
      if (m->u.append.n && !es) return false;
      if (m->u.append.prev_index + m->u.append.n < m->u.append.prev_index)
        return false;
      uint64_t t = m->u.append.prev_term;
      for (size_t k = 0; k < m->u.append.n; k++) {
        if (es[k].term < t || es[k].term > m->term || es[k].type == 0)
          return false;
        t = es[k].term;
        struct raft_conf c;
        if (es[k].type == RAFT_CONFIG &&
            (!es[k].buf ||
             raft_conf_decode(&c, es[k].buf->data, es[k].buf->len) != 0))
          return false;
      }
      return m->u.append.prev_term <= m->term;
    }
    case RAFT_MSG_SNAPSHOT:
      return m->u.snapshot.conf && m->u.snapshot.data &&
             m->u.snapshot.term <= m->term && m->u.snapshot.index > 0;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_APPEND_RESP:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_HEARTBEAT_RESP:
    case RAFT_MSG_SNAPSHOT_RESP:
    case RAFT_MSG_TIMEOUT_NOW:
      return true;
    default:
      return false;
  }
}

int raft_step(struct raft *r, const struct raft_msg *m) {
  assert(!r->in_ready);
  if (!m || !msg_valid(m) || strcmp(m->to, r->name) != 0 ||
      strcmp(m->from, r->name) == 0)
    return RAFT_EINVAL;

  int from = raft_conf_find(&r->conf, m->from);
  bool leader_msg =
      m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
      m->type == RAFT_MSG_SNAPSHOT || m->type == RAFT_MSG_TIMEOUT_NOW;
  if (m->type == RAFT_MSG_VOTE) {
    raft_handle_vote(r, m);
    return 0;
  }
  if (m->term > r->term) {
    if (m->type == RAFT_MSG_VOTE_RESP && m->u.vote_resp.prevote &&
        m->u.vote_resp.granted) {
      /* a granted poll carries the term we would campaign in */
    } else {
      raft_become_follower(r, m->term, leader_msg ? m->from : "");
    }
  } else if (m->term < r->term) {
    if (leader_msg && m->type != RAFT_MSG_TIMEOUT_NOW) {
      /* Tell a stale leader about the newer term so it steps down. */
      struct raft_msg *resp = raft_new_msg(r, RAFT_MSG_APPEND_RESP, m->from);
      if (resp) resp->u.append_resp.index = 0;
    }
    return 0;
  }
  if (leader_msg && m->term == r->term) {
    if (r->role == RAFT_LEADER) return 0; /* impossible: one leader/term */
    if (r->role != RAFT_FOLLOWER) raft_become_follower(r, r->term, m->from);
    strcpy(r->leader, m->from);
    r->have_leader_contact = true;
    r->election_elapsed = 0;
  }
  switch (m->type) {
    case RAFT_MSG_VOTE_RESP:
      raft_handle_vote_resp(r, from, m);
      break;
    case RAFT_MSG_APPEND:
      return raft_handle_append(r, m);
    case RAFT_MSG_HEARTBEAT:
      raft_handle_heartbeat(r, m);
      break;
    case RAFT_MSG_SNAPSHOT:
      raft_handle_snapshot(r, m);
      break;
    case RAFT_MSG_TIMEOUT_NOW:
      if (raft_self_voter(r)) raft_campaign(r, false, true);
      break;
    case RAFT_MSG_APPEND_RESP:
      if (r->role == RAFT_LEADER && from >= 0 && from != r->self)
        raft_handle_append_resp(r, from, m);
      break;
    case RAFT_MSG_HEARTBEAT_RESP:
      if (r->role == RAFT_LEADER && from >= 0 && from != r->self)
        raft_handle_heartbeat_resp(r, from, m);
      break;
    case RAFT_MSG_SNAPSHOT_RESP:
      if (r->role == RAFT_LEADER && from >= 0 && from != r->self)
        raft_handle_snapshot_resp(r, from, m);
      break;
    default:
      return RAFT_EINVAL;
  }
  return 0;
}

/* ---- ready -------------------------------------------------------------- */

bool raft_has_ready(const struct raft *r) {
  return r->hs_dirty || r->unstable <= raft_log_last(&r->log) || r->n_msgs ||
         r->commit > r->applied || r->n_read_out || r->read_round_needed ||
         r->n_creq || r->n_crecv || r->install_pending || r->refused_index;
}

static struct raft_entry *copy_entries(const struct raft_log *l, uint64_t from,
                                       uint64_t to, size_t *n) {
  *n = from <= to ? (size_t)(to - from + 1) : 0;
  if (*n == 0) return NULL;
  struct raft_entry *es = malloc(*n * sizeof *es);
  if (!es) {
    *n = 0;
    return NULL;
  }
  for (uint64_t i = from; i <= to; i++) {
    es[i - from] = *raft_log_get(l, i);
    raft_buf_ref(es[i - from].buf);
  }
  return es;
}

void raft_ready_get(struct raft *r, struct raft_ready *rd) {
  assert(!r->in_ready);
  memset(rd, 0, sizeof *rd);
  if (r->role == RAFT_LEADER) {
    raft_bcast_append(r); /* batch whatever was proposed meanwhile */
    if (r->read_round_needed) {
      r->read_round_needed = false;
      ++r->hb_seq;
      for (size_t i = 0; i < r->n_reads; i++)
        if (r->reads[i].seq == 0) r->reads[i].seq = r->hb_seq;
      raft_bcast_heartbeat(r, r->hb_seq);
      raft_reads_on_ack(r); /* single voter: confirmed at once */
    }
  }
  r->in_ready = true;
  if (r->hs_dirty) {
    rd->hs_changed = true;
    rd->hs.term = r->term;
    strcpy(rd->hs.vote, BUG(r, FORGET_VOTE) ? "" : r->vote);
    r->hs_dirty = false;
  }
  if (r->install_pending) {
    rd->snap_install = true;
    rd->snap = r->install;
    rd->snap_drop_log = r->install_drop;
    r->install_pending = false;
  }
  if (r->refused_index) {
    rd->snap_refused.index = r->refused_index;
    rd->snap_refused.term = r->refused_term;
    rd->snap_refused.got = r->refused_got;
    rd->snap_refused.want = r->refused_want;
    r->refused_index = 0;
  }
  rd->persist_first = r->unstable;
  rd->persist = copy_entries(&r->log, r->unstable, raft_log_last(&r->log),
                             &rd->n_persist);
  r->unstable += rd->n_persist;
  rd->msgs = r->msgs;
  rd->n_msgs = r->n_msgs;
  r->msgs = NULL;
  r->n_msgs = r->cap_msgs = 0;
  rd->commit_first = r->applied + 1;
  rd->committed =
      copy_entries(&r->log, r->applied + 1, r->commit, &rd->n_committed);
  r->applied += rd->n_committed;
  rd->reads = r->read_out;
  rd->n_reads = r->n_read_out;
  r->read_out = NULL;
  r->n_read_out = r->cap_read_out = 0;
  rd->chunk_reqs = r->creq;
  rd->n_chunk_reqs = r->n_creq;
  r->creq = NULL;
  r->n_creq = r->cap_creq = 0;
  rd->chunks = r->crecv;
  rd->n_chunks = r->n_crecv;
  r->crecv = NULL;
  r->n_crecv = r->cap_crecv = 0;
}

static void free_entries(struct raft_entry *es, size_t n) {
  for (size_t i = 0; i < n; i++)
    raft_buf_unref(es[i].buf);
  free(es);
}

void raft_ready_done(struct raft *r, struct raft_ready *rd) {
  assert(r->in_ready);
  r->in_ready = false;
  free_entries(rd->persist, rd->n_persist);
  free_entries(rd->committed, rd->n_committed);
  for (size_t i = 0; i < rd->n_msgs; i++)
    raft_msg_clear(&rd->msgs[i]);
  free(rd->msgs);
  free(rd->reads);
  free(rd->chunk_reqs);
  for (size_t i = 0; i < rd->n_chunks; i++) {
    raft_buf_unref(rd->chunks[i].data);
    raft_buf_unref(rd->chunks[i].conf);
  }
  free(rd->chunks);
  memset(rd, 0, sizeof *rd);
}

/* ---- queries ------------------------------------------------------------ */

int raft_role(const struct raft *r) {
  return r->role;
}
uint64_t raft_term(const struct raft *r) {
  return r->term;
}
const char *raft_leader(const struct raft *r) {
  return r->leader;
}
const char *raft_name(const struct raft *r) {
  return r->name;
}
uint64_t raft_commit_index(const struct raft *r) {
  return r->commit;
}
uint64_t raft_last_index(const struct raft *r) {
  return raft_log_last(&r->log);
}
uint64_t raft_first_index(const struct raft *r) {
  return r->log.base + 1;
}
uint64_t raft_applied_index(const struct raft *r) {
  return r->applied;
}
uint64_t raft_persisted_index(const struct raft *r) {
  return r->persisted;
}
uint64_t raft_snapshot_index(const struct raft *r) {
  return r->snap_index;
}
int raft_match_index(const struct raft *r, const char *name, uint64_t *match) {
  int i = raft_conf_find(&r->conf, name);
  if (r->role != RAFT_LEADER || i < 0 || i == r->self) return RAFT_EINVAL;
  *match = r->pr[i].match;
  return 0;
}
uint64_t raft_term_at(const struct raft *r, uint64_t index) {
  return raft_log_term(&r->log, index);
}
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index) {
  if (index <= r->log.base || index > raft_log_last(&r->log)) return NULL;
  return raft_log_get(&r->log, index);
}
void raft_snapshot_get(const struct raft *r, struct raft_snapshot_meta *out) {
  out->index = r->snap_index;
  out->term = r->snap_term;
  out->conf = r->snap_conf;
}
const struct raft_conf *raft_configuration(const struct raft *r) {
  return &r->conf;
}
uint64_t raft_configuration_index(const struct raft *r) {
  return r->conf_index;
}
int raft_progress(const struct raft *r, unsigned i, uint64_t *match,
                  uint64_t *next) {
  if (r->role != RAFT_LEADER || i >= r->conf.n) return -1;
  *match = r->pr[i].match;
  *next = r->pr[i].next;
  return 0;
}
int raft_snapshot_progress(const struct raft *r, const char *name,
                           uint64_t *index, uint64_t *received) {
  if (r->role != RAFT_LEADER || !name) return RAFT_EINVAL;
  int i = raft_conf_find(&r->conf, name);
  if (i < 0 || i == r->self) return RAFT_EINVAL;
  const struct raft_progress *pr = &r->pr[i];
  if (pr->state != PR_SNAPSHOT) return 0;
  *index = pr->snap_index;
  *received = pr->snap_offset;
  return 1;
}

bool raft_leader_ready(const struct raft *r) {
  return r->role == RAFT_LEADER && r->own_term_committed;
}
