/*
 * sim.h — the deterministic cluster simulator: N Raft cores on a simulated
 * network and disk, driven by one seeded random source, with faults and
 * invariant checks after every step.
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "raft/raft.h"

#define SIM_MAX_NODES 8
#define TICK_UNITS 10 /* time units per tick (before skew) */

enum {
  EV_TICK,
  EV_DELIVER,
  EV_DISK,
  EV_PROPOSE,
  EV_READ,
  EV_FAULT,
  EV_RESTART,
  EV_OPERATOR,
  EV_OPERATOR_ONCE,
  EV_CRASH
};

struct sim_event {
  int64_t at;
  uint64_t seq;
  uint64_t opid; /* EV_DISK: which write completes */
  int kind, node, inc, from;
  struct raft_msg msg;
};

/* A pending write of log entries on a simulated disk. */
struct sim_diskop {
  uint64_t id;
  uint64_t first; /* truncate from here, then append */
  size_t n;
  struct raft_entry *entries;
  int64_t done_at;
};

struct sim_node {
  int id;
  char name[16], addr[32];
  bool up;
  int incarnation;
  struct raft *r;
  int tick_period; /* time units per tick: clock skew */
  /* durable state */
  struct raft_hard_state hs;
  struct raft_entry *dlog; /* entries dbase+1 .. dbase+dn */
  uint64_t dbase;
  size_t dn, dcap;
  bool has_snap;
  struct raft_snapshot_meta snap;
  uint64_t snap_digest;
  unsigned char rbuf[256]; /* snapshot being received */
  size_t rlen;
  /* disk queue (FIFO) */
  struct sim_diskop *ops;
  size_t nops, capops;
  uint64_t opseq;
  int64_t slow_until;
  /* state machine */
  uint64_t applied, digest;
  uint64_t snap_every;
  /* monotonicity checks, per incarnation */
  uint64_t seen_commit, seen_applied;
  uint64_t first_commit_term; /* term of this node's last first-commit */
};

struct sim_event;

struct sim_pending_read {
  uint64_t ctx;
  int node;
  int incarnation;
  uint64_t acked_before; /* newest acknowledged write when it began */
};

/* Per-(index, term) record for log matching. */
struct sim_slot {
  uint64_t index, term;
  uint64_t id, prev_term;
};

struct sim {
  uint64_t seed, rng;
  int n_nodes; /* initial voters */
  int n_total; /* including spares that may join */
  struct sim_node nodes[SIM_MAX_NODES];
  unsigned bugs;
  bool trace;
  int64_t now;
  long steps;
  /* event heap */
  struct sim_event **heap;
  size_t nheap, capheap;
  uint64_t evseq;
  /* network faults */
  bool blocked[SIM_MAX_NODES][SIM_MAX_NODES];
  int loss_pct, dup_pct, long_delay_pct;
  int crash_after_vote_pct, crash_new_leader_pct; /* targeted crashes */
  int new_leader;   /* node that just became leader (set by the checks) */
  int first_commit; /* leader that just committed for the first time */
  bool healing, heal_done;
  int64_t heal_time; /* from healing to a new commit, time units */
  /* checks */
  uint64_t *leader_of_term; /* node id + 1 per term, 0 = none */
  size_t n_terms;
  struct sim_slot *slots; /* open addressing */
  size_t nslots, capslots;
  uint64_t *committed_id; /* identity of entry i (0 = not yet) */
  uint64_t *committed_digest;
  uint64_t *committed_term;
  size_t cap_committed;
  uint64_t max_committed;
  uint64_t max_acked; /* newest acknowledged write */
  uint64_t next_proposal;
  struct sim_pending_read *reads;
  size_t nreads, capreads;
  uint64_t next_read;
  /* counters */
  long n_applied_writes, n_reads_ok, n_reads_failed, n_crashes, n_elections,
      n_changes, n_transfers, n_snap_installs;
  /* failure */
  bool failed;
  char why[512];
  /* trace ring */
  char (*ring)[200];
  size_t ring_n, ring_head;
};

/* sim.c */
void sim_init(struct sim *s, uint64_t seed, int nodes, unsigned bugs,
              bool trace);
void sim_free(struct sim *s);
bool sim_run(struct sim *s, long steps); /* false on a violation */
void sim_dump_trace(struct sim *s, FILE *f, size_t lines);
void sim_dump_nodes(struct sim *s, FILE *f);
void sim_log(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sim_fail(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
uint64_t sim_entry_id(const struct raft_entry *e);

/* sim.c: randomness and events */
uint64_t sim_rnd64(struct sim *s);
int sim_rnd(struct sim *s, int n); /* uniform in [0, n) */
struct sim_event *sim_push(struct sim *s, int64_t at, int kind, int node);
const char *sim_node_name(int i);
int sim_node_by_name(struct sim *s, const char *name);

/* node.c: one server's host */
void sim_node_start(struct sim *s, int i, bool bootstrap);
void sim_node_crash(struct sim *s, int i);
void sim_drain(struct sim *s, int i); /* carry out every ready */
void sim_disk_done(struct sim *s, int i, uint64_t opid);
void sim_drop_ops(struct sim_node *n);
void sim_dlog_truncate(struct sim_node *n, uint64_t from);

/* faults.c: clients, faults, operator */
int sim_pick_leader(struct sim *s); /* a node that thinks it leads, or -1 */
void sim_propose(struct sim *s);
void sim_read(struct sim *s);
void sim_heal_network(struct sim *s);
void sim_fault(struct sim *s);
void sim_operator(struct sim *s);

/* check.c */
void check_step(struct sim *s);
void check_persist(struct sim *s, struct sim_node *n, uint64_t first,
                   const struct raft_entry *es, size_t count);
void check_apply(struct sim *s, struct sim_node *n, uint64_t index,
                 const struct raft_entry *e);
void check_snapshot_install(struct sim *s, struct sim_node *n, uint64_t index,
                            uint64_t digest);
void check_read(struct sim *s, struct sim_node *n,
                const struct sim_pending_read *rd, uint64_t index);
void check_free(struct sim *s);

#endif
