/*
 * raft.h — the Raft protocol core: a pure, deterministic state machine.
 *
 * The core never reads a clock, a socket or a file. The host feeds it
 * events (ticks, received messages, "entries durable up to N", proposals,
 * read requests) and drains its outputs through raft_ready_get() /
 * raft_ready_done(). See docs/raft.md for the full contract; the short form:
 *
 *   1. If ready.hs_changed, make (term, vote) durable BEFORE sending any of
 *      the ready's messages.
 *   2. If ready.snap_refused.index, drop what was written of that
 *      snapshot; then write ready.chunks (received snapshot bytes) in
 *      order.
 *   3. If ready.snap_install is set, make that snapshot durable (its last
 *      chunk is in this ready), load it into the state machine, and drop
 *      the durable log up to its index (all of it if snap_drop_log).
 *   4. Truncate the durable log from ready.persist_first, then append
 *      ready.persist[] (asynchronously is fine); when durable call
 *      raft_persisted(r, last_index, last_term).
 *   5. Send ready.msgs (in any order, any may be lost).
 *   6. Apply ready.committed[] in order, then serve ready.reads[]
 *      (5 and 6 in either order).
 *   7. raft_ready_done().
 *   8. Answer each ready.chunk_reqs[] (copied before step 7) with
 *      raft_snapshot_chunk(), now or later.
 *
 * Payloads are reference counted (struct raft_buf): the core never copies
 * entry bytes; anything handed out in a ready stays valid until
 * raft_ready_done() unless the host takes its own reference.
 */
#ifndef RAFT_H
#define RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAFT_NAME_MAX 64    /* member name, including the NUL */
#define RAFT_ADDR_MAX 128   /* member address, including the NUL */
#define RAFT_MAX_MEMBERS 16 /* members in one configuration */

/* Error codes (negative return values). */
enum {
  RAFT_OK = 0,
  RAFT_ENOTLEADER = -1,   /* only the leader can do that */
  RAFT_EBACKLOG = -2,     /* uncommitted data over the cap: no quorum? */
  RAFT_ETRANSFER = -3,    /* a leadership transfer is in progress */
  RAFT_ECHANGE = -4,      /* a membership change is already in progress */
  RAFT_ENOTCAUGHTUP = -5, /* member too far behind to be promoted */
  RAFT_EINVAL = -6,       /* bad argument */
  RAFT_ENOMEM = -7,       /* out of memory */
  RAFT_ENOTFOUND = -8,    /* no such member */
  RAFT_ENOTREADY = -9,    /* leader has not committed an entry of its term */
  RAFT_ESTALE = -10       /* request no longer applies (e.g. lost leadership) */
};
const char *raft_strerror(int code);

/* ---- payloads ---------------------------------------------------------- */

/* A reference-counted byte buffer. raft_buf_new() allocates the bytes
 * inline; a host may wrap its own memory by filling the struct itself and
 * setting release (called when the count drops to zero). */
struct raft_buf {
  int refs;
  size_t len;
  unsigned char *data;
  void (*release)(struct raft_buf *b); /* NULL: free(b) */
};
struct raft_buf *raft_buf_new(size_t len); /* refs = 1, or NULL */
struct raft_buf *raft_buf_from(const void *data, size_t len);
struct raft_buf *raft_buf_ref(struct raft_buf *b); /* NULL-safe */
void raft_buf_unref(struct raft_buf *b);           /* NULL-safe */

/* ---- log entries ------------------------------------------------------- */

/* Entry types. The core interprets only RAFT_NOOP and RAFT_CONFIG; every
 * other value (>= RAFT_COMMAND) is passed through to the state machine. */
enum { RAFT_NOOP = 1, RAFT_CONFIG = 2, RAFT_COMMAND = 3 };

struct raft_entry {
  uint64_t term;
  uint8_t type;
  struct raft_buf *buf; /* may be NULL (empty payload) */
};

/* ---- membership -------------------------------------------------------- */

enum {
  RAFT_ACTIVE = 1,  /* votes, counts toward quorum, may lead */
  RAFT_PASSIVE = 2, /* receives the log; never votes or campaigns */
  RAFT_RESERVE = 3  /* in the configuration; receives nothing */
};

struct raft_member {
  char name[RAFT_NAME_MAX]; /* unique identity in the cluster */
  char address[RAFT_ADDR_MAX];
  uint8_t type;
};

struct raft_conf {
  unsigned n;
  struct raft_member m[RAFT_MAX_MEMBERS];
};

/* Add a member (fails with RAFT_EINVAL on a bad/duplicate name or when
 * full). */
int raft_conf_add(struct raft_conf *c, const char *name, const char *address,
                  int type);
int raft_conf_find(const struct raft_conf *c, const char *name); /* -1 */
/* Encode for a RAFT_CONFIG entry / decode one (RAFT_EINVAL if malformed). */
struct raft_buf *raft_conf_encode(const struct raft_conf *c);
int raft_conf_decode(struct raft_conf *c, const void *data, size_t len);

/* ---- messages ---------------------------------------------------------- */

enum raft_msg_type {
  RAFT_MSG_VOTE = 1,        /* RequestVote (or pre-vote poll) */
  RAFT_MSG_VOTE_RESP = 2,   /* its answer */
  RAFT_MSG_APPEND = 3,      /* AppendEntries */
  RAFT_MSG_APPEND_RESP = 4, /* its answer */
  RAFT_MSG_HEARTBEAT = 5,   /* leadership beacon, carries commit + seq */
  RAFT_MSG_HEARTBEAT_RESP = 6,
  RAFT_MSG_SNAPSHOT = 7, /* InstallSnapshot: one chunk */
  RAFT_MSG_SNAPSHOT_RESP = 8,
  RAFT_MSG_TIMEOUT_NOW = 9 /* leadership transfer: campaign at once */
};

/* One message. Only the fields listed for its type are meaningful; the
 * rest are zero. Entries/payloads are referenced, not copied. */
struct raft_msg {
  uint8_t type;
  uint64_t term;
  char from[RAFT_NAME_MAX];
  char to[RAFT_NAME_MAX];
  union {
    struct { /* RAFT_MSG_VOTE */
      uint64_t last_index, last_term;
      bool prevote;  /* a poll: does not change anyone's term */
      bool transfer; /* from a leadership transfer: ignore stickiness */
    } vote;
    struct { /* RAFT_MSG_VOTE_RESP */
      bool prevote, granted;
    } vote_resp;
    struct { /* RAFT_MSG_APPEND */
      uint64_t prev_index, prev_term, commit;
      size_t n;
      struct raft_entry *entries; /* entries prev_index+1 .. prev_index+n */
    } append;
    struct { /* RAFT_MSG_APPEND_RESP */
      bool success;
      uint64_t index;          /* success: follower holds the leader's log up to
                                  here durably; failure: the prev_index rejected */
      uint64_t conflict_term;  /* failure: term at prev_index, 0 if none */
      uint64_t conflict_index; /* failure: first index of conflict_term,
                                  or follower's last index + 1 */
    } append_resp;
    struct {               /* RAFT_MSG_HEARTBEAT / RAFT_MSG_HEARTBEAT_RESP */
      uint64_t commit;     /* heartbeat only */
      uint64_t seq;        /* echoed by the response (reads, leases) */
      uint64_t last_index; /* response only: follower's last log index */
    } heartbeat;
    struct {                 /* RAFT_MSG_SNAPSHOT */
      uint64_t index, term;  /* last index/term the snapshot covers */
      struct raft_buf *conf; /* encoded configuration at index */
      uint64_t offset;       /* byte offset of this chunk */
      struct raft_buf *data; /* chunk bytes */
      bool last;             /* final chunk */
      bool has_crc;          /* last chunk only: crc is known */
      uint32_t crc; /* raft_options.checksum of all the snapshot's data */
    } snapshot;
    struct {           /* RAFT_MSG_SNAPSHOT_RESP */
      uint64_t index;  /* snapshot index being acknowledged */
      uint64_t offset; /* next byte offset wanted */
      bool done;       /* installed */
    } snapshot_resp;
  } u;
};

/* Release the references a message holds (entries, buffers) and its entry
 * array. For messages the host built or copied itself. */
void raft_msg_clear(struct raft_msg *m);
/* Deep copy with new references (entry array duplicated, bufs ref'd). */
int raft_msg_copy(struct raft_msg *dst, const struct raft_msg *src);
const char *raft_msg_name(int type);

/* ---- configuration of a core -------------------------------------------- */

struct raft_options {
  const char *name;            /* own member name */
  unsigned election_timeout;   /* ticks; actual is random in [t, 2t) */
  unsigned heartbeat_interval; /* ticks, < election_timeout */
  uint64_t seed;               /* random source for timeouts */
  bool pre_vote;
  bool check_quorum;            /* needed for lease reads and vote stickiness */
  unsigned lease_drift;         /* ticks: lease = election_timeout - this */
  size_t max_append_bytes;      /* payload bytes per AppendEntries */
  unsigned max_inflight_msgs;   /* AppendEntries in flight per follower */
  size_t max_inflight_bytes;    /* payload bytes in flight per follower */
  size_t max_uncommitted_bytes; /* leader's uncommitted payload cap */
  uint64_t catchup_margin;      /* promote only within this many entries */
  uint64_t snapshot_trailing;   /* entries kept behind a snapshot */
  size_t snapshot_chunk;        /* bytes per snapshot chunk */
  unsigned bugs; /* RAFT_BUG_* bits; ignored unless built with RAFT_BUGS */
  /* Checksum of snapshot data, computed in pieces (c = checksum(c, piece),
   * from 0), e.g. CRC-32C. A follower computes it over the chunks it
   * receives and refuses a snapshot whose sum differs from the one the
   * leader sends with the last chunk (the transfer starts over). NULL:
   * received snapshots are not checked. */
  uint32_t (*checksum)(uint32_t c, const void *data, size_t len);
};
void raft_options_default(struct raft_options *o, const char *name);

/* Deliberate protocol bugs, compiled in only with -DRAFT_BUGS=1 (the
 * simulator build) so that it can prove it catches them. */
enum {
  RAFT_BUG_COMMIT_OLD_TERM = 1 << 0, /* commit earlier-term entries by count */
  RAFT_BUG_FORGET_VOTE = 1 << 1,     /* vote not in the durable hard state */
  RAFT_BUG_VOTE_SHORT_LOG = 1 << 2,  /* grant votes to out-of-date logs */
  RAFT_BUG_LEASE_NO_QUORUM = 1 << 3, /* lease valid without quorum contact */
  RAFT_BUG_CONFIG_ON_COMMIT = 1
                              << 4, /* configuration used only once committed */
  RAFT_BUG_EARLY_CHANGE = 1 << 5,   /* change before own-term entry committed */
  RAFT_BUG_ACK_UNDURABLE = 1 << 6,  /* acknowledge entries before durable */
  RAFT_BUG_LEASE_NO_CLOCK = 1 << 7  /* Copycat's old lease: served while the
                                       leader believes it leads, which only a
                                       higher term ends (no check-quorum) */
};
int raft_bug_by_name(const char *name); /* bit, or 0 if unknown */
const char *raft_bug_name(int bit);
/* Whether this build of the core honours raft_options.bugs (built with
 * -DRAFT_BUGS=1: the simulator and the fault suite's `copycat-lua-bugs`). */
int raft_bugs_built(void);

/* ---- lifecycle ----------------------------------------------------------- */

struct raft;

/* Durable state found at start (all optional for a brand new server). */
struct raft_hard_state {
  uint64_t term;
  char vote[RAFT_NAME_MAX]; /* "" if none */
};
struct raft_snapshot_meta {
  uint64_t index, term;
  struct raft_conf conf;
};

struct raft *raft_new(const struct raft_options *o); /* NULL: bad options */
void raft_free(struct raft *r);

/* Load what is durable: hard state, snapshot (may be NULL), then the log
 * entries that follow the snapshot (first index = snapshot index + 1, or
 * `first` if no snapshot). Entries' buffers are ref'd, not stolen. Call
 * once, before anything else. */
int raft_load(struct raft *r, const struct raft_hard_state *hs,
              const struct raft_snapshot_meta *snap, uint64_t first,
              const struct raft_entry *entries, size_t n);

/* Bootstrap a brand new cluster: writes the configuration as entry 1 of
 * term 1 (to be persisted through the ready). Every initial member calls
 * it with the same configuration. RAFT_EINVAL if the log is not empty. */
int raft_bootstrap(struct raft *r, const struct raft_conf *conf);

/* ---- inputs -------------------------------------------------------------- */

void raft_tick(struct raft *r);
/* A message received from the network (any order, duplicates, stale). The
 * message is borrowed; payload references are taken where kept. */
int raft_step(struct raft *r, const struct raft_msg *m);
/* Entries up to (index, term) are durable. */
void raft_persisted(struct raft *r, uint64_t index, uint64_t term);
/* Propose an entry; returns its log index (> 0) or an error. The buffer
 * reference is taken by the core (the caller keeps its own). */
int64_t raft_propose(struct raft *r, uint8_t type, struct raft_buf *buf);
/* Linearizable read: ctx comes back in ready.reads once the read can be
 * served. lease=true serves at once if the leader lease holds. */
int raft_read(struct raft *r, uint64_t ctx, bool lease);
/* Membership: set `name` to `type` (adding it if absent), or remove it. */
int raft_change(struct raft *r, const char *name, const char *address,
                int type);
int raft_remove(struct raft *r, const char *name);
/* Whether this server may campaign (default: yes). A host forbids it for
 * a server that must not lead: one removed from the configuration without
 * having received that configuration, or one whose state machine diverged.
 * It still votes and acknowledges entries. A pre-candidate or candidate
 * becomes a follower; a leader stays one (the host transfers leadership). */
void raft_set_campaign(struct raft *r, bool allowed);
/* Transfer leadership to the named ACTIVE member. */
int raft_transfer(struct raft *r, const char *name);
/* The state machine has a durable snapshot up to `index` (<= applied and
 * <= persisted: a host snapshots only once its log is durable that far). */
int raft_snapshot_taken(struct raft *r, uint64_t index);
/* Answer to a chunk request: bytes of snapshot `index` at `offset`.
 * data == NULL means the snapshot is gone (the core starts over). With the
 * last chunk, crc (if not NULL) is the checksum (raft_options.checksum) of
 * all the snapshot's data, which the follower checks before installing. */
int raft_snapshot_chunk(struct raft *r, const char *to, uint64_t index,
                        uint64_t offset, struct raft_buf *data, bool last,
                        const uint32_t *crc);

/* ---- outputs ------------------------------------------------------------- */

struct raft_read_result {
  uint64_t ctx;
  uint64_t index; /* serve once applied >= index (it is, after this ready) */
  int status;     /* 0 or RAFT_ENOTLEADER / RAFT_ESTALE: retry elsewhere */
};

struct raft_chunk_req { /* leader: please read snapshot bytes */
  char to[RAFT_NAME_MAX];
  uint64_t index, offset;
  size_t max_len;
};

struct raft_chunk_recv { /* follower: snapshot bytes to store */
  uint64_t index, term, offset;
  struct raft_buf *data;
  /* offset 0 only (else NULL): the snapshot's configuration, encoded
   * (raft_conf_encode), so that a host can start the snapshot file before
   * the last chunk arrives. */
  struct raft_buf *conf;
  bool last;
};

struct raft_ready {
  bool hs_changed;
  struct raft_hard_state hs;

  uint64_t persist_first; /* truncate the durable log from here, then */
  size_t n_persist;       /* append these (indexes persist_first...) */
  struct raft_entry *persist;

  size_t n_msgs;
  struct raft_msg *msgs;

  uint64_t commit_first; /* index of committed[0] */
  size_t n_committed;
  struct raft_entry *committed;

  size_t n_reads;
  struct raft_read_result *reads;

  size_t n_chunk_reqs;
  struct raft_chunk_req *chunk_reqs;

  size_t n_chunks;
  struct raft_chunk_recv *chunks;

  bool snap_install;  /* install the received snapshot (meta below) */
  bool snap_drop_log; /* ...and discard the whole durable log (else only
                         the entries up to snap.index) */
  struct raft_snapshot_meta snap;

  /* A received snapshot whose data did not match the leader's checksum:
   * refused (never installed; none of its chunks is in this ready) and
   * asked for again from offset 0. index 0: none. The host drops what it
   * wrote of it BEFORE it writes this ready's chunks (they may start that
   * snapshot again). */
  struct {
    uint64_t index, term;
    uint32_t got, want; /* checksum of the bytes received, the leader's */
  } snap_refused;
};

bool raft_has_ready(const struct raft *r);
/* Fill *rd with everything pending. The core may not be called with other
 * inputs until raft_ready_done(). */
void raft_ready_get(struct raft *r, struct raft_ready *rd);
void raft_ready_done(struct raft *r, struct raft_ready *rd);

/* ---- queries ------------------------------------------------------------- */

enum { RAFT_FOLLOWER = 1, RAFT_PRECANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };

int raft_role(const struct raft *r);
uint64_t raft_term(const struct raft *r);
const char *raft_leader(const struct raft *r); /* "" if unknown */
const char *raft_name(const struct raft *r);
uint64_t raft_commit_index(const struct raft *r);
uint64_t raft_last_index(const struct raft *r);
uint64_t raft_first_index(const struct raft *r);   /* first entry in memory */
uint64_t raft_applied_index(const struct raft *r); /* handed out */
uint64_t raft_persisted_index(const struct raft *r);
uint64_t raft_snapshot_index(const struct raft *r);
/* Leader only: the highest index known replicated on member `name` (its
 * match index), in *match. RAFT_EINVAL when this server does not lead or
 * `name` is not another member of the configuration. For metrics. */
int raft_match_index(const struct raft *r, const char *name, uint64_t *match);
/* Term of entry `index`, 0 if not known (compacted or beyond the end). */
uint64_t raft_term_at(const struct raft *r, uint64_t index);
/* Entry `index` if in memory (borrowed), else NULL. */
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index);
/* The snapshot the core currently knows of (index 0 if none): what a host
 * records as the snapshot's metadata after raft_snapshot_taken(). */
void raft_snapshot_get(const struct raft *r, struct raft_snapshot_meta *out);
const struct raft_conf *raft_configuration(const struct raft *r);
uint64_t raft_configuration_index(const struct raft *r);
bool raft_lease_valid(const struct raft *r);
const char *raft_role_name(int role);
/* Leader only: what it knows of member i of raft_configuration(): the
 * highest index known to match its log and the next index to send (its
 * own entry: what is durable here). 0, or -1 if this core does not lead or
 * i is out of range. */
int raft_progress(const struct raft *r, unsigned i, uint64_t *match,
                  uint64_t *next);
/* Leader only: whether it is sending its snapshot to member `name`: 1
 * with the snapshot's index and the bytes of it the member has
 * acknowledged (the offset it asked for next) in *index and *received; 0
 * when it is not (the member gets entries, or is not known to need
 * anything); RAFT_EINVAL when this core does not lead or `name` is not
 * another member. */
int raft_snapshot_progress(const struct raft *r, const char *name,
                           uint64_t *index, uint64_t *received);
/* True when this core leads and an entry of its term has committed: only
 * then does it serve reads and membership changes. */
bool raft_leader_ready(const struct raft *r);

#endif
