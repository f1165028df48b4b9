/*
 * read.c — reads without log writes. ReadIndex: remember the commit index,
 * confirm leadership with a heartbeat round sent after the request, then
 * the read may be served once that index is applied. Lease: with
 * check-quorum and vote stickiness, no other leader can be elected until
 * an election timeout after a majority last heard from us, so within
 * (election timeout - drift margin) of the heartbeat round a majority
 * acknowledged, reads are served at once.
 */
#include <stdlib.h>

#include "raft/internal.h"

void raft_read_out(struct raft *r, uint64_t ctx, uint64_t index, int status) {
  if (r->n_read_out == r->cap_read_out) {
    size_t cap = r->cap_read_out ? r->cap_read_out * 2 : 16;
    struct raft_read_result *p = realloc(r->read_out, cap * sizeof *p);
    if (!p) return;
    r->read_out = p;
    r->cap_read_out = cap;
  }
  struct raft_read_result *o = &r->read_out[r->n_read_out++];
  o->ctx = ctx;
  o->index = index;
  o->status = status;
}

/* The q-th largest of the values of the voters (the leader's own value is
 * `self`): what a quorum has reached. */
static uint64_t quorum_value(const struct raft *r, const uint64_t *vals,
                             uint64_t self) {
  uint64_t m[RAFT_MAX_MEMBERS];
  int n = 0;
  for (unsigned i = 0; i < r->conf.n; i++)
    if (raft_is_voter(r, (int)i)) m[n++] = (int)i == r->self ? self : vals[i];
  int q = raft_quorum(r);
  if (n < q) return 0;
  for (int a = 1; a < n; a++)
    for (int b = a; b > 0 && m[b] > m[b - 1]; b--) {
      uint64_t t = m[b];
      m[b] = m[b - 1];
      m[b - 1] = t;
    }
  return m[q - 1];
}

void raft_reads_on_ack(struct raft *r) {
  if (r->role != RAFT_LEADER || !r->own_term_committed || r->n_reads == 0)
    return;
  uint64_t acks[RAFT_MAX_MEMBERS];
  for (unsigned i = 0; i < r->conf.n; i++)
    acks[i] = r->pr[i].ack_seq;
  uint64_t confirmed = quorum_value(r, acks, r->hb_seq);
  size_t k = 0;
  while (k < r->n_reads && r->reads[k].seq != 0 &&
         r->reads[k].seq <= confirmed) {
    raft_read_out(r, r->reads[k].ctx, r->reads[k].index, 0);
    k++;
  }
  memmove(r->reads, r->reads + k, (r->n_reads - k) * sizeof *r->reads);
  r->n_reads -= k;
}

void raft_reads_fail(struct raft *r, int status) {
  for (size_t k = 0; k < r->n_reads; k++)
    raft_read_out(r, r->reads[k].ctx, 0, status);
  r->n_reads = 0;
  r->read_round_needed = false;
}

void raft_update_lease(struct raft *r) {
  if (!r->opt.check_quorum || r->role != RAFT_LEADER) return;
  uint64_t sent[RAFT_MAX_MEMBERS];
  for (unsigned i = 0; i < r->conf.n; i++) {
    uint64_t s = r->pr[i].ack_seq;
    /* Older than the send-time ring remembers: no lease from it. */
    sent[i] = s && r->hb_seq - s < 64 ? r->hb_sent_at[s % 64] : 0;
  }
  uint64_t start = quorum_value(r, sent, r->now);
  uint64_t until = start + r->opt.election_timeout - r->opt.lease_drift;
  if (start && until > r->lease_until) r->lease_until = until;
}

bool raft_lease_valid(const struct raft *r) {
  if (r->role != RAFT_LEADER || !r->own_term_committed) return false;
  if (BUG(r, LEASE_NO_QUORUM) || BUG(r, LEASE_NO_CLOCK)) return true;
  return r->opt.check_quorum && !r->lease_off && r->now < r->lease_until;
}

int raft_read(struct raft *r, uint64_t ctx, bool lease) {
  assert(!r->in_ready);
  if (r->role != RAFT_LEADER) return RAFT_ENOTLEADER;
  if (!r->own_term_committed) return RAFT_ENOTREADY;
  if (lease && raft_lease_valid(r)) {
    raft_read_out(r, ctx, r->commit, 0);
    return 0;
  }
  if (r->n_reads == r->cap_reads) {
    size_t cap = r->cap_reads ? r->cap_reads * 2 : 16;
    struct raft_pending_read *p = realloc(r->reads, cap * sizeof *p);
    if (!p) return RAFT_ENOMEM;
    r->reads = p;
    r->cap_reads = cap;
  }
  struct raft_pending_read *p = &r->reads[r->n_reads++];
  p->ctx = ctx;
  p->index = r->commit;
  p->seq = 0; /* assigned when the confirming round goes out */
  r->read_round_needed = true;
  return 0;
}
