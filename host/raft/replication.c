/*
 * replication.c — the leader's side of log replication (batching,
 * pipelining within a bounded window, probing, fast backtracking), the
 * follower's side (appending, truncating conflicts, acknowledging only
 * what is durable) and the commit rule.
 */
#include <stdlib.h>

#include "raft/internal.h"

static size_t entry_bytes(const struct raft_entry *e) {
  return e->buf ? e->buf->len : 0;
}

void raft_pr_reset(struct raft *r, int i) {
  struct raft_progress *pr = &r->pr[i];
  memset(pr, 0, sizeof *pr);
  pr->next = raft_log_last(&r->log) + 1;
  pr->state = PR_PROBE;
  if (i == r->self) pr->match = r->persisted;
}

int raft_append_local(struct raft *r, uint8_t type, struct raft_buf *buf) {
  struct raft_entry e = {.term = r->term, .type = type, .buf = buf};
  int rc = raft_log_append(&r->log, &e);
  if (rc) return rc;
  uint64_t index = raft_log_last(&r->log);
  raft_conf_on_append(r, index, &e);
  r->uncommitted_bytes += entry_bytes(&e);
  if (r->self >= 0) r->pr[r->self].next = index + 1;
  return 0;
}

static void infl_reset(struct raft_progress *pr) {
  pr->infl_head = pr->infl_n = 0;
  pr->infl_total = 0;
}

static void infl_free_to(struct raft_progress *pr, uint64_t index) {
  while (pr->infl_n && pr->infl_index[pr->infl_head] <= index) {
    pr->infl_total -= pr->infl_bytes[pr->infl_head];
    pr->infl_head = (pr->infl_head + 1) % RAFT_INFLIGHT_MAX;
    pr->infl_n--;
  }
}

static void become_probe(struct raft_progress *pr, uint64_t next) {
  pr->state = PR_PROBE;
  pr->probe_sent = false;
  pr->next = next > pr->match + 1 ? next : pr->match + 1;
  pr->stall = 0;
  infl_reset(pr);
}

/* Send one AppendEntries to member i if its state and window allow;
 * returns whether something was sent. */
static bool send_one(struct raft *r, int i) {
  struct raft_progress *pr = &r->pr[i];
  uint64_t last = raft_log_last(&r->log);
  if (pr->state == PR_SNAPSHOT) return false;
  if (pr->state == PR_PROBE && pr->probe_sent) return false;
  if (pr->state == PR_REPLICATE &&
      (pr->next > last || pr->infl_n >= r->opt.max_inflight_msgs ||
       pr->infl_total >= r->opt.max_inflight_bytes))
    return false;
  uint64_t prev = pr->next - 1;
  if (prev < r->log.base) {
    /* The entries it needs are compacted: it needs the snapshot. */
    pr->state = PR_SNAPSHOT;
    pr->snap_index = r->snap_index;
    pr->snap_offset = 0;
    pr->chunk_pending = false;
    infl_reset(pr);
    raft_send_snapshot(r, i);
    return false;
  }
  size_t budget = r->opt.max_append_bytes;
  if (pr->state == PR_REPLICATE &&
      r->opt.max_inflight_bytes - pr->infl_total < budget)
    budget = r->opt.max_inflight_bytes - pr->infl_total;
  size_t n = 0, bytes = 0;
  while (prev + n < last) {
    size_t b = entry_bytes(raft_log_get(&r->log, prev + n + 1));
    if (n > 0 && bytes + b > budget) break;
    bytes += b;
    n++;
  }
  struct raft_msg *m = raft_new_msg(r, RAFT_MSG_APPEND, r->conf.m[i].name);
  if (!m) return false;
  m->u.append.prev_index = prev;
  m->u.append.prev_term = raft_log_term(&r->log, prev);
  m->u.append.commit = r->commit;
  if (n) {
    m->u.append.entries = malloc(n * sizeof(struct raft_entry));
    if (!m->u.append.entries) {
      r->n_msgs--;
      return false;
    }
    for (size_t k = 0; k < n; k++) {
      m->u.append.entries[k] = *raft_log_get(&r->log, prev + k + 1);
      raft_buf_ref(m->u.append.entries[k].buf);
    }
    m->u.append.n = n;
  }
  pr->since_send = 0;
  if (pr->state == PR_PROBE) {
    pr->probe_sent = true;
    return false; /* one probe at a time */
  }
  assert(n > 0);
  if (pr->infl_n == 0) pr->stall = 0; /* idle until now: not stalled */
  pr->next = prev + n + 1;
  unsigned slot = (pr->infl_head + pr->infl_n) % RAFT_INFLIGHT_MAX;
  pr->infl_index[slot] = prev + n;
  pr->infl_bytes[slot] = bytes;
  pr->infl_n++;
  pr->infl_total += bytes;
  return true;
}

void raft_send_append(struct raft *r, int i) {
  if (i == r->self || r->conf.m[i].type == RAFT_RESERVE) return;
  while (send_one(r, i)) {
  }
}

void raft_bcast_append(struct raft *r) {
  for (unsigned i = 0; i < r->conf.n; i++)
    raft_send_append(r, (int)i);
}

void raft_bcast_heartbeat(struct raft *r, uint64_t seq) {
  r->hb_sent_at[seq % 64] = r->now;
  for (unsigned i = 0; i < r->conf.n; i++) {
    if ((int)i == r->self || r->conf.m[i].type == RAFT_RESERVE) continue;
    struct raft_msg *m = raft_new_msg(r, RAFT_MSG_HEARTBEAT, r->conf.m[i].name);
    if (!m) return;
    /* Never more than it is known to hold: its log may differ beyond. */
    m->u.heartbeat.commit =
        r->pr[i].match < r->commit ? r->pr[i].match : r->commit;
    m->u.heartbeat.seq = seq;
  }
}

/* ---- commit ------------------------------------------------------------- */

void raft_commit_to(struct raft *r, uint64_t index) {
  if (index <= r->commit) return;
  assert(index <= raft_log_last(&r->log));
  for (uint64_t k = r->commit + 1; k <= index; k++) {
    const struct raft_entry *e = raft_log_get(&r->log, k);
    if (r->role == RAFT_LEADER && e->term == r->term) {
      size_t b = entry_bytes(e);
      r->uncommitted_bytes -=
          b < r->uncommitted_bytes ? b : r->uncommitted_bytes;
    }
    if (BUG(r, CONFIG_ON_COMMIT) && e->type == RAFT_CONFIG && e->buf) {
      struct raft_conf c;
      if (raft_conf_decode(&c, e->buf->data, e->buf->len) == 0) {
        r->conf_prev = r->conf;
        r->conf_prev_index = r->conf_index;
        raft_conf_adopt(r, &c, k);
      }
    }
  }
  r->commit = index;
  if (r->role == RAFT_LEADER && raft_log_term(&r->log, index) == r->term &&
      !r->own_term_committed) {
    r->own_term_committed = true;
    raft_reads_on_ack(r); /* reads waiting for this */
  }
  raft_conf_on_commit(r);
}

void raft_maybe_commit(struct raft *r) {
  uint64_t m[RAFT_MAX_MEMBERS];
  int n = 0;
  if (r->role != RAFT_LEADER) return;
  if (r->self >= 0)
    r->pr[r->self].match =
        BUG(r, ACK_UNDURABLE) ? raft_log_last(&r->log) : r->persisted;
  for (unsigned i = 0; i < r->conf.n; i++)
    if (raft_is_voter(r, (int)i)) m[n++] = r->pr[i].match;
  int q = raft_quorum(r);
  if (n < q) return;
  /* q-th largest match: insertion sort of at most 16 values. */
  for (int a = 1; a < n; a++)
    for (int b = a; b > 0 && m[b] > m[b - 1]; b--) {
      uint64_t t = m[b];
      m[b] = m[b - 1];
      m[b - 1] = t;
    }
  uint64_t idx = m[q - 1];
  if (idx <= r->commit) return;
  /* Only entries of the current term are committed by counting; earlier
   * ones follow implicitly (Raft §5.4.2). */
  if (raft_log_term(&r->log, idx) != r->term && !BUG(r, COMMIT_OLD_TERM))
    return;
  raft_commit_to(r, idx);
}

/* ---- leader: responses -------------------------------------------------- */

static void maybe_send_timeout_now(struct raft *r, int i) {
  if (r->transferee[0] && !r->transfer_sent &&
      strcmp(r->transferee, r->conf.m[i].name) == 0 &&
      r->pr[i].match == raft_log_last(&r->log)) {
    raft_new_msg(r, RAFT_MSG_TIMEOUT_NOW, r->transferee);
    r->transfer_sent = true;
    r->lease_off = true; /* it may be elected before our lease ends */
  }
}

/* Where to resume after a rejection: just past the leader's last entry of
 * the follower's conflicting term, or the start of that term on the
 * follower if the leader has none of it. */
static uint64_t backtrack(const struct raft *r, const struct raft_msg *m) {
  uint64_t ct = m->u.append_resp.conflict_term;
  uint64_t next = m->u.append_resp.conflict_index;
  if (ct > 0) {
    uint64_t j = m->u.append_resp.index;
    if (j > raft_log_last(&r->log)) j = raft_log_last(&r->log);
    while (j > r->log.base && raft_log_term(&r->log, j) > ct)
      j--;
    if (j > r->log.base && raft_log_term(&r->log, j) == ct) next = j + 1;
  }
  if (next > m->u.append_resp.index) next = m->u.append_resp.index;
  if (next < 1) next = 1;
  return next;
}

void raft_handle_append_resp(struct raft *r, int i, const struct raft_msg *m) {
  struct raft_progress *pr = &r->pr[i];
  pr->active = true;
  if (m->u.append_resp.success) {
    uint64_t idx = m->u.append_resp.index;
    if (idx > raft_log_last(&r->log)) return; /* cannot be: ignore */
    if (idx > pr->match) {
      pr->match = idx;
      pr->stall = 0;
      infl_free_to(pr, idx);
      if (r->conf.m[i].type == RAFT_ACTIVE) raft_maybe_commit(r);
      if (r->role != RAFT_LEADER) return;
    }
    if (pr->next < pr->match + 1) pr->next = pr->match + 1;
    if (pr->state == PR_PROBE) {
      pr->state = PR_REPLICATE;
      infl_reset(pr);
    } else if (pr->state == PR_SNAPSHOT && pr->match >= pr->snap_index) {
      become_probe(pr, pr->match + 1);
    }
    maybe_send_timeout_now(r, i);
  } else {
    uint64_t rejected = m->u.append_resp.index;
    if (pr->state == PR_REPLICATE) {
      if (rejected <= pr->match) return; /* stale */
      become_probe(pr, backtrack(r, m));
    } else if (pr->state == PR_PROBE) {
      if (rejected != pr->next - 1) return; /* stale */
      become_probe(pr, backtrack(r, m));
    } else {
      return;
    }
  }
  raft_send_append(r, i);
}

void raft_handle_heartbeat_resp(struct raft *r, int i,
                                const struct raft_msg *m) {
  struct raft_progress *pr = &r->pr[i];
  pr->active = true;
  if (m->u.heartbeat.seq > pr->ack_seq) {
    pr->ack_seq = m->u.heartbeat.seq;
    raft_update_lease(r);
    raft_reads_on_ack(r);
  }
  /* Appends lost in the network: the follower has less than we sent and
   * nothing was acknowledged for a while. Resend from what it has. */
  if (pr->state == PR_REPLICATE && pr->match < raft_log_last(&r->log) &&
      ((m->u.heartbeat.last_index + 1 < pr->next &&
        pr->stall >= 2 * r->opt.heartbeat_interval) ||
       pr->stall >= r->opt.election_timeout))
    become_probe(pr, pr->match + 1);
  if (pr->match < raft_log_last(&r->log)) raft_send_append(r, i);
}

/* ---- follower ----------------------------------------------------------- */

void raft_follower_ack(struct raft *r) {
  uint64_t ack = r->persisted < r->match_hint ? r->persisted : r->match_hint;
  if (BUG(r, ACK_UNDURABLE)) ack = r->match_hint;
  if (ack <= r->acked || !r->leader[0]) return;
  r->acked = ack;
  struct raft_msg *m = raft_new_msg(r, RAFT_MSG_APPEND_RESP, r->leader);
  if (!m) return;
  m->u.append_resp.success = true;
  m->u.append_resp.index = ack;
}

/* Answer an accepted append even if nothing new is durable, so that the
 * leader knows we are alive and leaves PROBE. */
static void ack_always(struct raft *r, const struct raft_msg *m) {
  uint64_t before = r->acked;
  raft_follower_ack(r);
  if (r->acked != before) return;
  struct raft_msg *resp = raft_new_msg(r, RAFT_MSG_APPEND_RESP, m->from);
  if (!resp) return;
  resp->u.append_resp.success = true;
  resp->u.append_resp.index = r->acked;
}

static void reject(struct raft *r, const struct raft_msg *m) {
  uint64_t prev = m->u.append.prev_index;
  uint64_t last = raft_log_last(&r->log);
  struct raft_msg *resp = raft_new_msg(r, RAFT_MSG_APPEND_RESP, m->from);
  if (!resp) return;
  resp->u.append_resp.index = prev;
  if (prev > last) {
    resp->u.append_resp.conflict_index = last + 1;
    return;
  }
  uint64_t ct = raft_log_term(&r->log, prev);
  uint64_t j = prev;
  while (j > 1 && j - 1 > r->log.base && j - 1 > r->commit &&
         raft_log_term(&r->log, j - 1) == ct)
    j--;
  resp->u.append_resp.conflict_term = ct;
  resp->u.append_resp.conflict_index = j;
}

int raft_handle_append(struct raft *r, const struct raft_msg *m) {
  uint64_t prev = m->u.append.prev_index;
  uint64_t prev_term = m->u.append.prev_term;
  const struct raft_entry *es = m->u.append.entries;
  size_t n = m->u.append.n;
  if (prev < r->log.base) {
    /* Entries up to base are committed, hence match: skip them. */
    uint64_t skip = r->log.base - prev;
    if (skip >= n) {
      n = 0;
    } else {
      es += skip;
      n -= (size_t)skip;
    }
    prev = r->log.base;
    prev_term = r->log.base_term;
    if (n == 0) {
      if (r->log.base > r->match_hint) r->match_hint = r->log.base;
      ack_always(r, m);
      return 0;
    }
  }
  if (prev > raft_log_last(&r->log) ||
      raft_log_term(&r->log, prev) != prev_term) {
    reject(r, m);
    return 0;
  }
  for (size_t k = 0; k < n; k++) {
    uint64_t index = prev + 1 + k;
    if (index <= raft_log_last(&r->log)) {
      if (raft_log_term(&r->log, index) == es[k].term) continue;
      /* Committed entries never conflict with a legitimate leader. */
      if (index <= r->commit) return RAFT_EINVAL;
      raft_conf_on_truncate(r, index);
      raft_log_truncate(&r->log, index);
      if (r->unstable > index) r->unstable = index;
      if (r->persisted >= index) r->persisted = index - 1;
      if (r->acked >= index) r->acked = index - 1;
    }
    if (raft_log_append(&r->log, &es[k]) != 0) {
      n = k; /* out of memory: keep what fits, the leader resends */
      break;
    }
    raft_conf_on_append(r, index, &es[k]);
  }
  uint64_t matched = prev + n;
  if (matched > r->match_hint) r->match_hint = matched;
  uint64_t c = m->u.append.commit < matched ? m->u.append.commit : matched;
  if (c > r->commit) raft_commit_to(r, c);
  ack_always(r, m);
  return 0;
}

void raft_handle_heartbeat(struct raft *r, const struct raft_msg *m) {
  uint64_t c = m->u.heartbeat.commit;
  if (c > raft_log_last(&r->log)) c = raft_log_last(&r->log);
  if (c > r->commit) raft_commit_to(r, c);
  struct raft_msg *resp = raft_new_msg(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
  if (!resp) return;
  resp->u.heartbeat.seq = m->u.heartbeat.seq;
  resp->u.heartbeat.last_index = raft_log_last(&r->log);
}

void raft_persisted(struct raft *r, uint64_t index, uint64_t term) {
  assert(!r->in_ready);
  if (index <= r->persisted || index >= r->unstable ||
      index > raft_log_last(&r->log) || index < r->log.base ||
      raft_log_term(&r->log, index) != term)
    return; /* stale: those entries were replaced meanwhile */
  r->persisted = index;
  if (r->role == RAFT_LEADER)
    raft_maybe_commit(r);
  else
    raft_follower_ack(r);
}
