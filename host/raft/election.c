/*
 * election.c — roles, time and elections: randomized timeouts, pre-vote
 * polls, votes (one per term, up-to-date logs only), stickiness to a live
 * leader, check-quorum, heartbeats.
 */
#include "raft/internal.h"

bool raft_self_voter(const struct raft *r) {
  return raft_is_voter(r, r->self);
}

/* ---- roles -------------------------------------------------------------- */

void raft_become_follower(struct raft *r, uint64_t term, const char *leader) {
  if (term > r->term) {
    r->term = term;
    r->vote[0] = 0;
    raft_set_hs_dirty(r);
    r->match_hint = 0;
    r->acked = 0;
  }
  if (r->role == RAFT_LEADER) {
    raft_reads_fail(r, RAFT_ENOTLEADER);
    r->lease_until = 0;
  }
  r->role = RAFT_FOLLOWER;
  r->transferee[0] = 0;
  r->transfer_campaign = false;
  strcpy(r->leader, leader ? leader : "");
  raft_reset_timeout(r);
}

static void become_leader(struct raft *r) {
  assert(r->role == RAFT_CANDIDATE);
  r->role = RAFT_LEADER;
  strcpy(r->leader, r->name);
  r->own_term_committed = false;
  r->uncommitted_bytes = 0;
  r->heartbeat_elapsed = 0;
  r->quorum_elapsed = 0;
  r->lease_until = 0;
  r->lease_off = false;
  r->transferee[0] = 0;
  r->transfer_campaign = false;
  for (unsigned i = 0; i < r->conf.n; i++)
    raft_pr_reset(r, (int)i);
  /* A no-op of the new term lets the leader commit (and learn the commit
   * index) without waiting for a client. */
  raft_append_local(r, RAFT_NOOP, NULL);
  raft_bcast_append(r);
}

/* Ask every voter that has not answered yet. */
static void send_votes(struct raft *r, bool prevote, bool transfer) {
  for (unsigned i = 0; i < r->conf.n; i++) {
    if ((int)i == r->self || !raft_is_voter(r, (int)i) || r->responded[i])
      continue;
    struct raft_msg *m = raft_new_msg(r, RAFT_MSG_VOTE, r->conf.m[i].name);
    if (!m) return;
    m->term = prevote ? r->term + 1 : r->term;
    m->u.vote.last_index = raft_log_last(&r->log);
    m->u.vote.last_term = raft_log_last_term(&r->log);
    m->u.vote.prevote = prevote;
    m->u.vote.transfer = transfer;
  }
}

static int count_granted(const struct raft *r, bool granted) {
  int n = 0;
  for (unsigned i = 0; i < r->conf.n; i++)
    if (raft_is_voter(r, (int)i) && r->responded[i] && r->granted[i] == granted)
      n++;
  return n;
}

void raft_campaign(struct raft *r, bool prevote, bool transfer) {
  if (!raft_self_voter(r) || r->no_campaign) return;
  memset(r->granted, 0, sizeof r->granted);
  memset(r->responded, 0, sizeof r->responded);
  r->granted[r->self] = r->responded[r->self] = true;
  r->leader[0] = 0;
  r->have_leader_contact = false;
  r->transfer_campaign = transfer;
  raft_reset_timeout(r);
  if (prevote) {
    r->role = RAFT_PRECANDIDATE;
  } else {
    r->role = RAFT_CANDIDATE;
    r->term++;
    strcpy(r->vote, r->name);
    raft_set_hs_dirty(r);
    r->match_hint = r->acked = 0;
  }
  if (count_granted(r, true) >= raft_quorum(r)) {
    if (prevote)
      raft_campaign(r, false, transfer);
    else
      become_leader(r);
    return;
  }
  send_votes(r, prevote, transfer);
}

void raft_set_campaign(struct raft *r, bool allowed) {
  assert(!r->in_ready);
  r->no_campaign = !allowed;
  if (!allowed && (r->role == RAFT_PRECANDIDATE || r->role == RAFT_CANDIDATE))
    raft_become_follower(r, r->term, "");
}

/* ---- time --------------------------------------------------------------- */

static bool quorum_active(struct raft *r) {
  int n = 0;
  for (unsigned i = 0; i < r->conf.n; i++) {
    if (!raft_is_voter(r, (int)i)) continue;
    if ((int)i == r->self || r->pr[i].active) n++;
    r->pr[i].active = false;
  }
  return n >= raft_quorum(r);
}

static void tick_leader(struct raft *r) {
  if (++r->heartbeat_elapsed >= r->opt.heartbeat_interval) {
    r->heartbeat_elapsed = 0;
    raft_bcast_heartbeat(r, ++r->hb_seq);
  }
  if (++r->quorum_elapsed >= r->opt.election_timeout) {
    r->quorum_elapsed = 0;
    if (r->opt.check_quorum && !quorum_active(r) && !BUG(r, LEASE_NO_CLOCK)) {
      raft_become_follower(r, r->term, "");
      return;
    }
  }
  if (r->transferee[0] && ++r->transfer_elapsed >= r->opt.election_timeout)
    r->transferee[0] = 0; /* gave up: accept proposals again */
  for (unsigned i = 0; i < r->conf.n; i++) {
    struct raft_progress *pr = &r->pr[i];
    if ((int)i == r->self) continue;
    pr->since_send++;
    pr->stall++;
    if (pr->state == PR_PROBE && pr->probe_sent &&
        pr->since_send >= r->opt.heartbeat_interval)
      pr->probe_sent = false; /* the next heartbeat reply re-probes */
    if (pr->state == PR_SNAPSHOT && pr->chunk_pending &&
        pr->since_send >= 2 * r->opt.heartbeat_interval) {
      pr->chunk_pending = false; /* chunk or its reply lost: resend */
      raft_send_snapshot(r, (int)i);
    }
  }
}

void raft_tick(struct raft *r) {
  assert(!r->in_ready);
  r->now++;
  if (r->role == RAFT_LEADER) {
    tick_leader(r);
    return;
  }
  r->election_elapsed++;
  if (r->election_elapsed >= r->randomized_timeout) {
    if (raft_self_voter(r) && !r->no_campaign)
      raft_campaign(r, r->opt.pre_vote, false);
    else
      raft_reset_timeout(r);
  } else if (r->role != RAFT_FOLLOWER &&
             r->election_elapsed % r->opt.heartbeat_interval == 0) {
    /* Requests or answers may have been lost: ask the silent again. */
    send_votes(r, r->role == RAFT_PRECANDIDATE, r->transfer_campaign);
  }
}

/* ---- votes -------------------------------------------------------------- */

/* A follower that heard from a live leader within an election timeout (or
 * a leader) ignores requests to replace it, unless they come from a
 * leadership transfer. This is what makes leases and pre-vote safe. */
static bool in_lease(const struct raft *r) {
  if (r->role == RAFT_LEADER) return true;
  return r->role == RAFT_FOLLOWER && r->have_leader_contact &&
         r->election_elapsed < r->opt.election_timeout;
}

void raft_handle_vote(struct raft *r, const struct raft_msg *m) {
  const struct raft_msg *q = m;
  bool prevote = q->u.vote.prevote;
  bool grant = false;
  if (q->term >= r->term &&
      !(in_lease(r) && !q->u.vote.transfer && q->term > r->term)) {
    if (!prevote && q->term > r->term) raft_become_follower(r, q->term, "");
    uint64_t lt = raft_log_last_term(&r->log);
    bool log_ok = q->u.vote.last_term > lt ||
                  (q->u.vote.last_term == lt &&
                   q->u.vote.last_index >= raft_log_last(&r->log));
    if (BUG(r, VOTE_SHORT_LOG)) log_ok = true;
    /* Whether the vote counts is the candidate's configuration's business:
     * refusing because our own (possibly stale) configuration says we are
     * not a voter can deadlock elections (Raft dissertation §4.2.3). */
    if (prevote) {
      grant = log_ok && q->term > r->term;
    } else if (q->term == r->term && log_ok &&
               (r->vote[0] == 0 || strcmp(r->vote, q->from) == 0)) {
      grant = true;
      if (strcmp(r->vote, q->from) != 0) {
        strcpy(r->vote, q->from);
        raft_set_hs_dirty(r);
      }
      raft_reset_timeout(r);
    }
  }
  struct raft_msg *resp = raft_new_msg(r, RAFT_MSG_VOTE_RESP, q->from);
  if (!resp) return;
  resp->term = grant && prevote ? q->term : r->term;
  resp->u.vote_resp.prevote = prevote;
  resp->u.vote_resp.granted = grant;
}

void raft_handle_vote_resp(struct raft *r, int i, const struct raft_msg *m) {
  bool pre = m->u.vote_resp.prevote;
  if (pre ? (r->role != RAFT_PRECANDIDATE || m->term != r->term + 1)
          : (r->role != RAFT_CANDIDATE || m->term != r->term))
    return;
  if (i < 0) return;
  r->responded[i] = true;
  r->granted[i] = m->u.vote_resp.granted;
  if (count_granted(r, true) >= raft_quorum(r)) {
    if (pre)
      raft_campaign(r, false, r->transfer_campaign);
    else
      become_leader(r);
  } else if (count_granted(r, false) >= raft_quorum(r)) {
    raft_become_follower(r, r->term, "");
  }
}
