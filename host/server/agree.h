/*
 * agree.h — replicas that prove they agree (host/server/agree.c).
 *
 * Every hash_interval applied entries each replica hashes its state
 * machine's canonical encoding (with the session layer's state) and the
 * leader compares the hashes of one index. A replica whose hash is not the
 * majority's is diverged: it stops applying and serving and never leads
 * again in this process, while its log keeps being written and
 * acknowledged (the log is not what differs). A member that learns that
 * it was removed from the configuration stops campaigning.
 */
#ifndef COPYCAT_AGREE_H
#define COPYCAT_AGREE_H

#include <stdint.h>
#include <uv.h>

#include "protocol/protocol.h"
#include "raft/raft.h"

#define AGREE_SLOTS 4 /* check indexes the leader keeps collecting */
#define AGREE_DEFAULT_INTERVAL 100000

struct agree_slot {
  uint64_t index; /* 0: free */
  unsigned n;
  int decided;
  uint64_t majority;
  struct {
    char name[RAFT_NAME_MAX];
    uint64_t hash;
    int told; /* found diverged and told (or handled, for this server) */
  } m[RAFT_MAX_MEMBERS];
};

/* The child process computing a hash (hash.c). */
struct hash_child {
  int pid;        /* 0: none */
  int closing;    /* its pipe is being closed */
  uv_pipe_t pipe; /* its report: "HASH SECONDS", then EOF */
  uint64_t index;
  char msg[64];
  size_t msglen;
};

struct agree {
  uint64_t interval; /* 0: hashing is off */
  struct agree_slot slots[AGREE_SLOTS];
  struct {
    uint64_t index, hash;
  } own[AGREE_SLOTS]; /* this server's latest hashes (a ring) */
  unsigned own_next;
  uint64_t hashes, last_index; /* computed here, and the latest index */
  uint64_t skipped;            /* check indexes skipped: a child was busy */
  double seconds;              /* spent hashing, in total */
  double loop_seconds;         /* of which the loop spent (fork, fallback) */
  struct hash_child child;
  int snap_hash; /* the hash of a check index comes with a snapshot child */
  /* Diverged: the check that found it. */
  int diverged;
  int act; /* a decision waits for the core to take inputs */
  uint64_t div_index, div_hash, div_majority;
  char div_names[PROTO_NAMES_MAX];
  /* Removed: a member's committed configuration at removed_at omits us. */
  int removed;
  uint64_t removed_at;
  int was_member; /* some configuration in effect here listed us */
};

struct server;
struct inconn;
struct raft_msg;
struct prom_buf;

void agree__init(struct server *s);
/* Entry `index` was applied (or skipped while diverged). */
void agree__applied(struct server *s, uint64_t index);
/* This server's hash of index (computed in secs): recorded by the leader,
 * sent to it by the others. */
void agree__hashed(struct server *s, uint64_t index, uint64_t hash,
                   double secs);
/* hash.c: hashes the state as of now in a forked child, which reports to
 * agree__hashed later; 0, or -1 when it cannot fork (hash in-process). */
int hash__fork(struct server *s, uint64_t index);
/* The server stops: ends the child; 1 if its pipe's close is one more of
 * the server's closing handles. */
int hash__stop(struct server *s);
/* Outside a ready: carries out what a check decided. */
void agree__act(struct server *s);
/* A notice frame from member `peer` (the name its connection gave). */
void agree__notice(struct server *s, const char *peer, const char *data,
                   size_t len);
/* A vote request arrived on ic: a sender we removed is told so. */
void agree__vote_from(struct server *s, struct inconn *ic,
                      const struct raft_msg *m);
/* The configuration changed (note_changes). */
void agree__config_changed(struct server *s);
/* Every tick: a diverged leader keeps handing leadership over. */
void agree__tick(struct server *s);
/* The error a client request gets while diverged, or NULL. */
const char *agree__refusal(struct server *s);
void agree__metrics(struct server *s, struct prom_buf *b);

#endif
