/*
 * snapshot.h — this server's snapshots: taken (snapshot_take.c) in a forked
 * child (snapshot.c) or in process, received from the leader
 * (snapshot_install.c).
 *
 * Those files own struct snapshots; other files use the functions below.
 */
#ifndef COPYCAT_SERVER_SNAPSHOT_H
#define COPYCAT_SERVER_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "server/transfer.h"
#include "storage/store.h"

/* A snapshot being written by a forked child (snapshot.c). */
struct snap_child {
  int pid;        /* 0: none */
  uv_pipe_t pipe; /* the child's report ("ok" or an error), then EOF */
  uint64_t index, term;
  uint64_t t0;   /* uv_hrtime() at the fork */
  int closing;   /* the pipe of a child that failed to start */
  int loading;   /* the written file is being read back (thread pool) */
  int with_hash; /* the child also reports the state hash of index */
  uv_work_t load_req;
  struct store_snapshot loaded;
  int load_rc;
  char load_err[STORE_ERR_MAX];
  char msg[512];
  size_t msglen;
};

/* What the snapshot files keep in struct server (s->snaps). */
struct snapshots {
  struct snap_child child;
  uint64_t last;        /* index of the newest snapshot taken or installed */
  uint64_t attempt;     /* index of the last snapshot tried (or taken) */
  uint64_t failed;      /* index of the last snapshot that failed */
  uint64_t bytes_since; /* payload bytes applied since the last attempt */
  /* The snapshot being received from the leader: chunks go straight to
   * its temporary file (storage/snap.h); NULL when none is. */
  struct snap_writer *in;
  struct transfer_log in_log;
  /* The received snapshot being sealed on the thread pool: index, term,
   * uv_hrtime() when its install began (snapshot_install.c). */
  int installing;
  uint64_t inst_index, inst_term, inst_t0;
  uint64_t refused; /* received snapshots refused (bad checksum) */
  /* The fault suite's copycat-lua-bugs only (snapshot__test_hooks):
   * received chunks still to be damaged on purpose, the received chunk at
   * which to stop, and chunks received so far. */
  unsigned corrupt_chunks, stop_at_chunk, chunks_seen;
};

struct server;

/* The bookkeeping once a snapshot of index/term (bytes of state) is
 * durable and installed in the store; `secs` it took. */
void server__snapshot_taken(struct server *s, uint64_t index, uint64_t term,
                            size_t bytes, double secs, int forked);
/* Logs a failed snapshot. */
void server__snapshot_failed(struct server *s, uint64_t index, uint64_t term,
                             const char *msg);

/* snapshot_take.c */
/* Takes a snapshot at s->applied: in a forked child when may_fork and the
 * store has files, in process otherwise. 0 (taken, started, nothing to
 * take, or a child still busy) or -1 (it failed). */
int snapshot__take(struct server *s, int may_fork);

/* snapshot_install.c */
/* Restores the state machine from snapshot ss, mapped from its file for
 * the time of the call. 0 or -1. */
int snapshot__restore(struct server *s, const struct store_snapshot *ss);
/* One chunk of the snapshot the leader sends, written as it arrives. */
void snapshot__receive_chunk(struct server *s, const struct raft_chunk_recv *c);
/* The core says the received snapshot is complete: finish, check and
 * restore it; sets s->failed when it cannot. The file's checksum pass,
 * fsync and rename run on libuv's thread pool when the ready holds nothing
 * else to persist, apply or serve; until the restore is done
 * snapshot__installing() is 1, the ready loop waits and the messages are
 * held (held.c). */
void snapshot__install(struct server *s, const struct raft_ready *rd);
int snapshot__installing(const struct server *s);
/* The core refused the snapshot being received (rd->snap_refused: its
 * bytes do not match the leader's checksum): drops what was written of it
 * and logs snapshot_refused; the leader sends it again from the start. */
void snapshot__refused(struct server *s, const struct raft_ready *rd);
/* Test-only switches, which only a build with the deliberately breakable
 * core (copycat-lua-bugs) accepts; any other refuses to start with them:
 *   COPYCAT_TEST_CORRUPT_SNAPSHOT_CHUNKS=N: the first N snapshot chunks
 *   received are damaged (one byte flipped) before the core sees them;
 *   COPYCAT_TEST_STOP_AT_SNAPSHOT_CHUNK=K: the server stops itself
 *   (SIGSTOP) when the K-th snapshot chunk arrives, before handling it,
 *   so that a transfer can be watched half done.
 * 0 or -1 (err filled). */
int snapshot__test_hooks(struct server *s, char *err, size_t errlen);
/* A Raft message received from a peer, before it is stepped: what
 * snapshot__test_hooks asked for (else nothing). */
void snapshot__test_chunk(struct server *s, struct raft_msg *m);

/* snapshot.c */
/* with_hash: the child also computes the state hash of `index` (one
 * encoding for both; sm->snapshot_hash) and hands it to agree__hashed. */
int snapshot__fork(struct server *s, uint64_t index, uint64_t term,
                   int with_hash);
/* At hash index `index` (s->applied == index): when a snapshot is due
 * within half a threshold anyway, starts it now in a child that also
 * computes the hash, so one fork serves both. 0: started; -1: not now
 * (the caller forks for the hash alone). */
int server__snapshot_with_hash(struct server *s, uint64_t index);
int snapshot__busy(const struct server *s);
/* Ends a running child; returns 1 when the store must stay open until the
 * snapshot being read back is done (snapshot.c then closes it). */
int snapshot__stop(struct server *s);
/* An entry of `bytes` payload bytes was applied; whether a snapshot is due
 * by the entry and byte thresholds. */
void snapshot__applied(struct server *s, size_t bytes);
int snapshot__due(const struct server *s);
/* The state machine was restored to index (at start, or installed). */
void snapshot__restored(struct server *s, uint64_t index);
/* Index of the last snapshot that failed (0: none). */
uint64_t snapshot__failed_index(const struct server *s);

#endif
