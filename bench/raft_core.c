/*
 * raft_core.c — entries per second committed through the Raft core alone:
 * a 3-node cluster in memory (messages handed over directly, disk writes
 * durable at once), no faults. Reports the median of several runs for
 * one proposal per ready and for batches of 64, and the ratio between
 * them (the batching gain).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft/raft.h"

#define NODES 3
#define RUNS 5

struct node {
  struct raft *r;
  uint64_t applied;
};

struct queue {
  struct raft_msg *m;
  size_t head, n, cap;
};

static void push(struct queue *q, const struct raft_msg *m) {
  if (q->head + q->n == q->cap) {
    if (q->head) {
      memmove(q->m, q->m + q->head, q->n * sizeof *q->m);
      q->head = 0;
    } else {
      q->cap = q->cap ? q->cap * 2 : 1024;
      q->m = realloc(q->m, q->cap * sizeof *q->m);
      if (!q->m) abort();
    }
  }
  raft_msg_copy(&q->m[q->head + q->n++], m);
}

static void drain(struct node *n, struct queue *q) {
  while (raft_has_ready(n->r)) {
    struct raft_ready rd;
    raft_ready_get(n->r, &rd);
    uint64_t last = 0, term = 0;
    if (rd.n_persist) {
      last = rd.persist_first + rd.n_persist - 1;
      term = rd.persist[rd.n_persist - 1].term;
    }
    for (size_t k = 0; k < rd.n_msgs; k++)
      push(q, &rd.msgs[k]);
    n->applied += rd.n_committed;
    raft_ready_done(n->r, &rd);
    if (last) raft_persisted(n->r, last, term);
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Commit `total` entries of 100 bytes, proposing `batch` per ready;
 * returns entries per second. */
static double run(long total, int batch) {
  struct node nodes[NODES];
  struct queue q = {0};
  struct raft_conf c = {0};
  const char *names[NODES] = {"n1", "n2", "n3"};
  for (int i = 0; i < NODES; i++)
    raft_conf_add(&c, names[i], "127.0.0.1:1", RAFT_ACTIVE);
  for (int i = 0; i < NODES; i++) {
    struct raft_options o;
    raft_options_default(&o, names[i]);
    o.seed = (uint64_t)i + 1;
    o.max_inflight_msgs = 64;
    nodes[i].r = raft_new(&o);
    nodes[i].applied = 0;
    raft_bootstrap(nodes[i].r, &c);
    drain(&nodes[i], &q);
  }
  while (raft_role(nodes[0].r) != RAFT_LEADER) {
    raft_tick(nodes[0].r);
    drain(&nodes[0], &q);
    while (q.n) {
      struct raft_msg m = q.m[q.head++];
      q.n--;
      int to = m.to[1] - '1';
      raft_step(nodes[to].r, &m);
      raft_msg_clear(&m);
      drain(&nodes[to], &q);
    }
  }
  uint64_t start_commit = raft_commit_index(nodes[0].r);
  unsigned char payload[100];
  memset(payload, 'p', sizeof payload);
  double t0 = now();
  long proposed = 0;
  while (raft_commit_index(nodes[0].r) < start_commit + (uint64_t)total) {
    for (int k = 0; k < batch && proposed < total; k++, proposed++) {
      struct raft_buf *b = raft_buf_from(payload, sizeof payload);
      if (raft_propose(nodes[0].r, RAFT_COMMAND, b) < 0) abort();
      raft_buf_unref(b);
    }
    drain(&nodes[0], &q);
    while (q.n) {
      struct raft_msg m = q.m[q.head++];
      q.n--;
      int to = m.to[1] - '1';
      raft_step(nodes[to].r, &m);
      raft_msg_clear(&m);
      drain(&nodes[to], &q);
    }
  }
  double dt = now() - t0;
  for (int i = 0; i < NODES; i++)
    raft_free(nodes[i].r);
  free(q.m);
  return (double)total / dt;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(long total, int batch) {
  double v[RUNS];
  for (int i = 0; i < RUNS; i++)
    v[i] = run(total, batch);
  qsort(v, RUNS, sizeof v[0], cmp);
  return v[RUNS / 2];
}

int main(void) {
  double one = median(200000, 1);
  double many = median(1000000, 64);
  printf("raft core, 3 nodes in memory, 100-byte entries, median of %d:\n",
         RUNS);
  printf("  1 proposal per ready:   %10.0f entries/s committed\n", one);
  printf("  64 proposals per ready: %10.0f entries/s committed\n", many);
  printf("  batching gain: %.1fx\n", many / one);
  return 0;
}
