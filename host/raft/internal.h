/*
 * internal.h — state shared by the files of the Raft core. Not for hosts.
 */
#ifndef RAFT_INTERNAL_H
#define RAFT_INTERNAL_H

#include <assert.h>
#include <string.h>

#include "raft/raft.h"

#ifdef RAFT_BUGS
#define BUG(r, b) (((r)->opt.bugs & RAFT_BUG_##b) != 0)
#else
#define BUG(r, b) 0
#endif

/* ---- the in-memory log: a ring buffer, O(1) access by index ---------- */

struct raft_log {
  struct raft_entry *ring;
  size_t cap;               /* power of two */
  size_t head;              /* slot of the first entry */
  size_t n;                 /* entries held */
  uint64_t base, base_term; /* index/term just before the first entry */
};

void raft_log_init(struct raft_log *l);
void raft_log_free(struct raft_log *l);
static inline uint64_t raft_log_last(const struct raft_log *l) {
  return l->base + l->n;
}
static inline struct raft_entry *raft_log_get(const struct raft_log *l,
                                              uint64_t index) {
  assert(index > l->base && index <= l->base + l->n);
  return &l->ring[(l->head + (index - l->base - 1)) & (l->cap - 1)];
}
/* Term of `index`; 0 if unknown (before base or after the last entry). */
static inline uint64_t raft_log_term(const struct raft_log *l, uint64_t index) {
  if (index == l->base) return l->base_term;
  if (index < l->base || index > raft_log_last(l)) return 0;
  return raft_log_get(l, index)->term;
}
uint64_t raft_log_last_term(const struct raft_log *l);
/* Append one entry, taking a new reference on its buffer. */
int raft_log_append(struct raft_log *l, const struct raft_entry *e);
/* Drop entries >= index. */
void raft_log_truncate(struct raft_log *l, uint64_t index);
/* Drop entries <= index (index within the log). */
void raft_log_compact(struct raft_log *l, uint64_t index);
/* Drop everything; the log restarts after (base, base_term). */
void raft_log_reset(struct raft_log *l, uint64_t base, uint64_t base_term);

/* ---- per-follower replication progress (leader only) ------------------- */

enum { PR_PROBE = 0, PR_REPLICATE = 1, PR_SNAPSHOT = 2 };

#define RAFT_INFLIGHT_MAX 64

struct raft_progress {
  uint64_t match, next;
  int state;
  bool probe_sent;     /* PROBE: an append is outstanding */
  bool active;         /* heard from since the last check-quorum round */
  unsigned since_send; /* ticks since the last probe or chunk went out */
  unsigned stall;      /* ticks since match last advanced */
  uint64_t ack_seq;    /* highest heartbeat seq acknowledged */
  /* REPLICATE window: last index and payload bytes of each in flight. */
  uint64_t infl_index[RAFT_INFLIGHT_MAX];
  size_t infl_bytes[RAFT_INFLIGHT_MAX];
  unsigned infl_head, infl_n;
  size_t infl_total;
  /* SNAPSHOT: what is being sent. */
  uint64_t snap_index, snap_offset;
  bool chunk_pending; /* asked host for bytes / chunk in flight */
};

/* ---- pending reads ----------------------------------------------------- */

struct raft_pending_read {
  uint64_t ctx, index, seq;
};

/* ---- the core ---------------------------------------------------------- */

struct raft {
  struct raft_options opt;
  char name[RAFT_NAME_MAX];

  /* persistent */
  uint64_t term;
  char vote[RAFT_NAME_MAX];
  struct raft_log log;

  /* volatile */
  int role;
  char leader[RAFT_NAME_MAX];
  uint64_t commit;     /* highest index known committed */
  uint64_t applied;    /* highest index handed out for applying */
  uint64_t persisted;  /* highest index known durable locally */
  uint64_t match_hint; /* follower: highest index known to match leader */
  uint64_t acked;      /* follower: highest index acknowledged */
  uint64_t unstable;   /* first index not yet handed out for persisting */
  uint64_t now;        /* ticks since creation */
  uint64_t rng;

  unsigned election_elapsed;   /* ticks since leader contact / campaign */
  unsigned randomized_timeout; /* current election timeout */
  unsigned heartbeat_elapsed;  /* leader */
  unsigned quorum_elapsed;     /* leader: ticks into check-quorum round */
  bool have_leader_contact;    /* election_elapsed counts from contact */

  /* configuration: latest in the log, and the one before it */
  struct raft_conf conf;
  uint64_t conf_index;
  struct raft_conf conf_prev;
  uint64_t conf_prev_index;
  struct raft_progress pr[RAFT_MAX_MEMBERS]; /* parallel to conf.m */
  int self; /* own index in conf, -1 if not a member */

  /* elections */
  bool granted[RAFT_MAX_MEMBERS];
  bool responded[RAFT_MAX_MEMBERS];
  bool transfer_campaign; /* campaign started by TimeoutNow */
  bool no_campaign;       /* the host forbids campaigns (raft_set_campaign) */

  /* leader */
  bool own_term_committed;
  size_t uncommitted_bytes;
  uint64_t hb_seq;         /* seq of the last heartbeat round sent */
  uint64_t hb_sent_at[64]; /* tick at which seq % 64 was sent */
  bool read_round_needed;
  struct raft_pending_read *reads;
  size_t n_reads, cap_reads;
  uint64_t lease_until; /* tick until which the lease holds */
  bool lease_off;       /* a transfer was started: no lease for this term */
  char transferee[RAFT_NAME_MAX];
  unsigned transfer_elapsed;
  bool transfer_sent;        /* TimeoutNow went out for this transfer */
  bool removed_self_pending; /* leader removed itself; leave once committed */

  /* snapshot */
  uint64_t snap_index, snap_term;
  struct raft_conf snap_conf;
  /* receiving a snapshot */
  uint64_t recv_index, recv_term, recv_offset;
  uint32_t recv_crc; /* opt.checksum of the data received so far */
  struct raft_conf recv_conf;
  bool receiving;

  /* ready under construction */
  bool hs_dirty;
  uint64_t persist_from; /* truncation point pending for the host */
  bool in_ready;
  struct raft_msg *msgs;
  size_t n_msgs, cap_msgs;
  struct raft_read_result *read_out;
  size_t n_read_out, cap_read_out;
  struct raft_chunk_req *creq;
  size_t n_creq, cap_creq;
  struct raft_chunk_recv *crecv;
  size_t n_crecv, cap_crecv;
  bool install_pending, install_drop;
  struct raft_snapshot_meta install;
  uint64_t refused_index, refused_term; /* a snapshot refused (0: none) */
  uint32_t refused_got, refused_want;
};

/* election.c */
void raft_become_follower(struct raft *r, uint64_t term, const char *leader);
bool raft_self_voter(const struct raft *r);
void raft_campaign(struct raft *r, bool prevote, bool transfer);
void raft_handle_vote(struct raft *r, const struct raft_msg *m);
void raft_handle_vote_resp(struct raft *r, int i, const struct raft_msg *m);

/* raft.c */
struct raft_msg *raft_new_msg(struct raft *r, int type, const char *to);
void raft_set_hs_dirty(struct raft *r);
int raft_quorum(const struct raft *r); /* ACTIVE members / 2 + 1 */
bool raft_is_voter(const struct raft *r, int i);
void raft_reset_timeout(struct raft *r);

/* conf.c (internal) */
void raft_conf_adopt(struct raft *r, const struct raft_conf *c, uint64_t index);
void raft_conf_on_truncate(struct raft *r, uint64_t index);
void raft_conf_on_append(struct raft *r, uint64_t index,
                         const struct raft_entry *e);
void raft_conf_on_commit(struct raft *r);
void raft_conf_at(const struct raft *r, uint64_t index, struct raft_conf *out,
                  uint64_t *at);

/* replication.c */
void raft_bcast_append(struct raft *r);
void raft_bcast_heartbeat(struct raft *r, uint64_t seq);
void raft_send_append(struct raft *r, int i);
void raft_maybe_commit(struct raft *r);
int raft_handle_append(struct raft *r, const struct raft_msg *m);
void raft_handle_append_resp(struct raft *r, int i, const struct raft_msg *m);
void raft_handle_heartbeat(struct raft *r, const struct raft_msg *m);
void raft_handle_heartbeat_resp(struct raft *r, int i,
                                const struct raft_msg *m);
void raft_follower_ack(struct raft *r);
void raft_pr_reset(struct raft *r, int i);
int raft_append_local(struct raft *r, uint8_t type, struct raft_buf *buf);
void raft_commit_to(struct raft *r, uint64_t index);

/* read.c */
void raft_reads_on_ack(struct raft *r);
void raft_reads_fail(struct raft *r, int status);
void raft_read_out(struct raft *r, uint64_t ctx, uint64_t index, int status);
void raft_update_lease(struct raft *r);

/* snapshot.c */
void raft_send_snapshot(struct raft *r, int i);
void raft_handle_snapshot(struct raft *r, const struct raft_msg *m);
void raft_handle_snapshot_resp(struct raft *r, int i, const struct raft_msg *m);

#endif
