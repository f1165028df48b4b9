/*
 * requests.c — what a host asks of a leader: proposals, membership
 * changes, leadership transfer.
 */
#include "raft/internal.h"

int64_t raft_propose(struct raft *r, uint8_t type, struct raft_buf *buf) {
  assert(!r->in_ready);
  if (type < RAFT_COMMAND) return RAFT_EINVAL;
  if (r->role != RAFT_LEADER) return RAFT_ENOTLEADER;
  if (r->transferee[0]) return RAFT_ETRANSFER;
  size_t len = buf ? buf->len : 0;
  /* Without a quorum nothing commits: refuse to grow the log without
   * bound (one proposal is always allowed so a huge entry can pass). */
  if (r->uncommitted_bytes > 0 &&
      r->uncommitted_bytes + len > r->opt.max_uncommitted_bytes)
    return RAFT_EBACKLOG;
  int rc = raft_append_local(r, type, buf);
  if (rc) return rc;
  return (int64_t)raft_log_last(&r->log);
}

/* Common preconditions of a membership change. */
static int can_change(const struct raft *r) {
  if (r->role != RAFT_LEADER) return RAFT_ENOTLEADER;
  if (r->transferee[0]) return RAFT_ETRANSFER;
  /* Until an entry of its term commits, the leader may not know of a
   * change committed by its predecessor (the single-server change bug). */
  if (!r->own_term_committed && !BUG(r, EARLY_CHANGE)) return RAFT_ENOTREADY;
  if (r->conf_index > r->commit) return RAFT_ECHANGE;
  return 0;
}

static int has_voter(const struct raft_conf *c) {
  for (unsigned i = 0; i < c->n; i++)
    if (c->m[i].type == RAFT_ACTIVE) return 1;
  return 0;
}

static int append_conf(struct raft *r, const struct raft_conf *c) {
  if (!has_voter(c)) return RAFT_EINVAL;
  struct raft_buf *b = raft_conf_encode(c);
  if (!b) return RAFT_ENOMEM;
  int rc = raft_append_local(r, RAFT_CONFIG, b);
  raft_buf_unref(b);
  return rc;
}

int raft_change(struct raft *r, const char *name, const char *address,
                int type) {
  assert(!r->in_ready);
  if (!name || !address || strlen(name) >= RAFT_NAME_MAX || !*name ||
      strlen(address) >= RAFT_ADDR_MAX)
    return RAFT_EINVAL;
  if (type != RAFT_ACTIVE && type != RAFT_PASSIVE && type != RAFT_RESERVE)
    return RAFT_EINVAL;
  int rc = can_change(r);
  if (rc) return rc;
  struct raft_conf c = r->conf;
  int i = raft_conf_find(&c, name);
  if (i < 0) {
    /* A new voter would count toward the quorum with an empty log. */
    if (type == RAFT_ACTIVE) return RAFT_ENOTCAUGHTUP;
    rc = raft_conf_add(&c, name, address, type);
    if (rc) return rc;
  } else {
    if (c.m[i].type == type && strcmp(c.m[i].address, address) == 0)
      return RAFT_EINVAL; /* nothing to change */
    /* Caught up: within the margin of our log; and a PASSIVE member, which
     * is sent the log, must have answered at all (on a log shorter than
     * the margin, one that never did would pass, and a dead voter could
     * cost the quorum). */
    if (type == RAFT_ACTIVE && c.m[i].type != RAFT_ACTIVE &&
        ((c.m[i].type == RAFT_PASSIVE && r->pr[i].match == 0) ||
         r->pr[i].match + r->opt.catchup_margin < raft_log_last(&r->log)))
      return RAFT_ENOTCAUGHTUP;
    c.m[i].type = (uint8_t)type;
    strcpy(c.m[i].address, address);
  }
  return append_conf(r, &c);
}

int raft_remove(struct raft *r, const char *name) {
  assert(!r->in_ready);
  if (!name) return RAFT_EINVAL;
  int rc = can_change(r);
  if (rc) return rc;
  struct raft_conf c = r->conf;
  int i = raft_conf_find(&c, name);
  if (i < 0) return RAFT_ENOTFOUND;
  c.m[i] = c.m[c.n - 1];
  c.n--;
  return append_conf(r, &c);
}

int raft_transfer(struct raft *r, const char *name) {
  assert(!r->in_ready);
  if (r->role != RAFT_LEADER) return RAFT_ENOTLEADER;
  if (!name) return RAFT_EINVAL;
  if (r->transferee[0]) return RAFT_ETRANSFER;
  int i = raft_conf_find(&r->conf, name);
  if (i < 0) return RAFT_ENOTFOUND;
  if (i == r->self || r->conf.m[i].type != RAFT_ACTIVE) return RAFT_EINVAL;
  strcpy(r->transferee, name);
  r->transfer_elapsed = 0;
  r->transfer_sent = false;
  r->lease_off = true;
  if (r->pr[i].match == raft_log_last(&r->log)) {
    raft_new_msg(r, RAFT_MSG_TIMEOUT_NOW, name);
    r->transfer_sent = true;
  } else {
    raft_send_append(r, i); /* TimeoutNow follows once it is caught up */
  }
  return 0;
}
