/*
 * msg.c — payload buffers, message copying, names for codes and bugs.
 */
#include <stdlib.h>

#include "raft/internal.h"

struct raft_buf *raft_buf_new(size_t len) {
  struct raft_buf *b = malloc(sizeof *b + (len ? len : 1));
  if (!b) return NULL;
  b->refs = 1;
  b->len = len;
  b->data = (unsigned char *)(b + 1);
  b->release = NULL;
  return b;
}

struct raft_buf *raft_buf_from(const void *data, size_t len) {
  struct raft_buf *b = raft_buf_new(len);
  if (b && len) memcpy(b->data, data, len);
  return b;
}

struct raft_buf *raft_buf_ref(struct raft_buf *b) {
  if (b) {
    assert(b->refs > 0);
    b->refs++;
  }
  return b;
}

void raft_buf_unref(struct raft_buf *b) {
  if (!b) return;
  assert(b->refs > 0);
  if (--b->refs == 0) {
    if (b->release)
      b->release(b);
    else
      free(b);
  }
}

void raft_msg_clear(struct raft_msg *m) {
  switch (m->type) {
    case RAFT_MSG_APPEND:
      for (size_t i = 0; i < m->u.append.n; i++)
        raft_buf_unref(m->u.append.entries[i].buf);
      free(m->u.append.entries);
      m->u.append.entries = NULL;
      m->u.append.n = 0;
      break;
    case RAFT_MSG_SNAPSHOT:
      raft_buf_unref(m->u.snapshot.conf);
      raft_buf_unref(m->u.snapshot.data);
      m->u.snapshot.conf = m->u.snapshot.data = NULL;
      break;
    default:
      break;
  }
}

int raft_msg_copy(struct raft_msg *dst, const struct raft_msg *src) {
  *dst = *src;
  switch (src->type) {
    case RAFT_MSG_APPEND: {
      size_t n = src->u.append.n;
      dst->u.append.entries = NULL;
      if (n == 0) break;
      dst->u.append.entries = malloc(n * sizeof(struct raft_entry));
      if (!dst->u.append.entries) {
        dst->u.append.n = 0;
        return RAFT_ENOMEM;
      }
      for (size_t i = 0; i < n; i++) {
        dst->u.append.entries[i] = src->u.append.entries[i];
        raft_buf_ref(dst->u.append.entries[i].buf);
      }
      break;
    }
    case RAFT_MSG_SNAPSHOT:
      raft_buf_ref(dst->u.snapshot.conf);
      raft_buf_ref(dst->u.snapshot.data);
      break;
    default:
      break;
  }
  return 0;
}

const char *raft_msg_name(int type) {
  switch (type) {
    case RAFT_MSG_VOTE:
      return "Vote";
    case RAFT_MSG_VOTE_RESP:
      return "VoteResp";
    case RAFT_MSG_APPEND:
      return "Append";
    case RAFT_MSG_APPEND_RESP:
      return "AppendResp";
    case RAFT_MSG_HEARTBEAT:
      return "Heartbeat";
    case RAFT_MSG_HEARTBEAT_RESP:
      return "HeartbeatResp";
    case RAFT_MSG_SNAPSHOT:
      return "Snapshot";
    case RAFT_MSG_SNAPSHOT_RESP:
      return "SnapshotResp";
    case RAFT_MSG_TIMEOUT_NOW:
      return "TimeoutNow";
    default:
      return "?";
  }
}

const char *raft_strerror(int code) {
  switch (code) {
    case RAFT_OK:
      return "ok";
    case RAFT_ENOTLEADER:
      return "not the leader";
    case RAFT_EBACKLOG:
      return "too much uncommitted data (is a quorum reachable?)";
    case RAFT_ETRANSFER:
      return "leadership transfer in progress";
    case RAFT_ECHANGE:
      return "a membership change is already in progress";
    case RAFT_ENOTCAUGHTUP:
      return "member has not caught up with the log";
    case RAFT_EINVAL:
      return "invalid argument";
    case RAFT_ENOMEM:
      return "out of memory";
    case RAFT_ENOTFOUND:
      return "no such member";
    case RAFT_ENOTREADY:
      return "leader has not yet committed an entry of its term";
    case RAFT_ESTALE:
      return "request overtaken by a leadership change";
    default:
      return "unknown error";
  }
}

static const struct {
  int bit;
  const char *name;
} bugs[] = {
    {RAFT_BUG_COMMIT_OLD_TERM, "commit-old-term"},
    {RAFT_BUG_FORGET_VOTE, "forget-vote"},
    {RAFT_BUG_VOTE_SHORT_LOG, "vote-short-log"},
    {RAFT_BUG_LEASE_NO_QUORUM, "lease-no-quorum"},
    {RAFT_BUG_CONFIG_ON_COMMIT, "config-on-commit"},
    {RAFT_BUG_EARLY_CHANGE, "early-change"},
    {RAFT_BUG_ACK_UNDURABLE, "ack-undurable"},
    {RAFT_BUG_LEASE_NO_CLOCK, "lease-no-clock"},
};

int raft_bugs_built(void) {
#ifdef RAFT_BUGS
  return 1;
#else
  return 0;
#endif
}

int raft_bug_by_name(const char *name) {
  for (size_t i = 0; i < sizeof bugs / sizeof bugs[0]; i++)
    if (strcmp(bugs[i].name, name) == 0) return bugs[i].bit;
  return 0;
}

const char *raft_bug_name(int bit) {
  for (size_t i = 0; i < sizeof bugs / sizeof bugs[0]; i++)
    if (bugs[i].bit == bit) return bugs[i].name;
  return NULL;
}

const char *raft_role_name(int role) {
  switch (role) {
    case RAFT_FOLLOWER:
      return "follower";
    case RAFT_PRECANDIDATE:
      return "precandidate";
    case RAFT_CANDIDATE:
      return "candidate";
    case RAFT_LEADER:
      return "leader";
    default:
      return "?";
  }
}
