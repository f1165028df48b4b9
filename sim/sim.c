/*
 * sim.c — the simulation itself: the seeded random source, the event
 * queue, the trace, and runs (faults, then healing and the liveness
 * check). Servers are in node.c, clients/faults/operator in faults.c.
 */
#include "sim.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define RING_LINES 400

/* ---- randomness and events ---------------------------------------------- */

uint64_t sim_rnd64(struct sim *s) {
  uint64_t z = (s->rng += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
int sim_rnd(struct sim *s, int n) {
  return n <= 0 ? 0 : (int)(sim_rnd64(s) % (uint64_t)n);
}

static bool ev_less(const struct sim_event *a, const struct sim_event *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

struct sim_event *sim_push(struct sim *s, int64_t at, int kind, int node) {
  if (s->nheap == s->capheap) {
    s->capheap = s->capheap ? s->capheap * 2 : 256;
    s->heap = realloc(s->heap, s->capheap * sizeof *s->heap);
    if (!s->heap) abort();
  }
  struct sim_event *e = calloc(1, sizeof *e);
  if (!e) abort();
  e->at = at;
  e->seq = s->evseq++;
  e->kind = kind;
  e->node = node;
  e->inc = node >= 0 ? s->nodes[node].incarnation : 0;
  size_t i = s->nheap++;
  while (i > 0 && ev_less(e, s->heap[(i - 1) / 2])) {
    s->heap[i] = s->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  s->heap[i] = e;
  return e;
}

static struct sim_event *pop(struct sim *s) {
  if (!s->nheap) return NULL;
  struct sim_event *top = s->heap[0], *last = s->heap[--s->nheap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= s->nheap) break;
    if (c + 1 < s->nheap && ev_less(s->heap[c + 1], s->heap[c])) c++;
    if (!ev_less(s->heap[c], last)) break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (s->nheap) s->heap[i] = last;
  return top;
}

static void free_event(struct sim_event *e) {
  if (e->kind == EV_DELIVER) raft_msg_clear(&e->msg);
  free(e);
}

/* ---- trace -------------------------------------------------------------- */

void sim_log(struct sim *s, const char *fmt, ...) {
  char *line = s->ring[s->ring_head];
  int k = snprintf(line, 200, "[%7lld] ", (long long)s->now);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + k, (size_t)(200 - k), fmt, ap);
  va_end(ap);
  s->ring_head = (s->ring_head + 1) % RING_LINES;
  if (s->ring_n < RING_LINES) s->ring_n++;
  if (s->trace) printf("%s\n", line);
}

void sim_fail(struct sim *s, const char *fmt, ...) {
  if (s->failed) return;
  s->failed = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->why, sizeof s->why, fmt, ap);
  va_end(ap);
  sim_log(s, "VIOLATION: %s", s->why);
}

uint64_t sim_entry_id(const struct raft_entry *e) {
  uint64_t h = 1469598103934665603ULL ^ e->term;
  h = (h ^ e->type) * 1099511628211ULL;
  if (e->buf)
    for (size_t i = 0; i < e->buf->len; i++)
      h = (h ^ e->buf->data[i]) * 1099511628211ULL;
  return h ? h : 1;
}

const char *sim_node_name(int i) {
  static const char *names[SIM_MAX_NODES] = {"n0", "n1", "n2", "n3",
                                             "n4", "n5", "n6", "n7"};
  return names[i];
}

int sim_node_by_name(struct sim *s, const char *name) {
  for (int i = 0; i < s->n_total; i++)
    if (strcmp(s->nodes[i].name, name) == 0) return i;
  return -1;
}

static void handle(struct sim *s, struct sim_event *e) {
  struct sim_node *n = e->node >= 0 ? &s->nodes[e->node] : NULL;
  switch (e->kind) {
    case EV_TICK:
      if (!n->up || e->inc != n->incarnation) break;
      raft_tick(n->r);
      sim_drain(s, e->node);
      sim_push(s, s->now + n->tick_period, EV_TICK, e->node);
      break;
    case EV_DELIVER:
      if (!n->up || s->blocked[e->from][e->node]) break;
      raft_step(n->r, &e->msg);
      sim_drain(s, e->node);
      break;
    case EV_DISK:
      if (!n->up || e->inc != n->incarnation) break;
      sim_disk_done(s, e->node, e->opid);
      break;
    case EV_PROPOSE:
      sim_propose(s);
      sim_push(s, s->now + 2 + sim_rnd(s, 20), EV_PROPOSE, -1);
      break;
    case EV_READ:
      sim_read(s);
      sim_push(s, s->now + 5 + sim_rnd(s, 30), EV_READ, -1);
      break;
    case EV_FAULT:
      if (!s->healing) {
        sim_fault(s);
        sim_push(s, s->now + 100 + sim_rnd(s, 400), EV_FAULT, -1);
      }
      break;
    case EV_RESTART:
      if (!n->up && e->inc == n->incarnation) {
        sim_node_start(s, e->node, false);
        sim_log(s, "RESTART %s (term %llu, log %llu, snapshot %llu)", n->name,
                (unsigned long long)raft_term(n->r),
                (unsigned long long)raft_last_index(n->r),
                (unsigned long long)raft_snapshot_index(n->r));
        sim_drain(s, e->node);
      }
      break;
    case EV_OPERATOR:
      if (!s->healing) {
        sim_operator(s);
        sim_push(s, s->now + 50 + sim_rnd(s, 150), EV_OPERATOR, -1);
      }
      break;
    case EV_OPERATOR_ONCE:
      if (!s->healing) sim_operator(s);
      break;
    case EV_CRASH: /* a crash at an interesting moment */
      if (n->up && e->inc == n->incarnation && !s->healing) {
        sim_node_crash(s, e->node);
        sim_push(s, s->now + 10 + sim_rnd(s, 150), EV_RESTART, e->node);
      }
      break;
  }
}

/* ---- runs --------------------------------------------------------------- */

void sim_init(struct sim *s, uint64_t seed, int nodes, unsigned bugs,
              bool trace) {
  memset(s, 0, sizeof *s);
  s->seed = seed;
  s->rng = seed * 0x2545F4914F6CDD1DULL + 1;
  s->n_nodes = nodes;
  s->n_total = nodes + 2 <= SIM_MAX_NODES ? nodes + 2 : SIM_MAX_NODES;
  s->bugs = bugs;
  s->trace = trace;
  s->ring = calloc(RING_LINES, sizeof *s->ring);
  for (int i = 0; i < s->n_total; i++) {
    struct sim_node *n = &s->nodes[i];
    n->id = i;
    snprintf(n->name, sizeof n->name, "%s", sim_node_name(i));
    snprintf(n->addr, sizeof n->addr, "10.0.0.%d:5000", i + 1);
    n->tick_period = TICK_UNITS - 1 + sim_rnd(s, 3); /* skew: 9..11 */
  }
  for (int i = 0; i < s->n_total; i++)
    sim_node_start(s, i, i < nodes);
  s->loss_pct = sim_rnd(s, 5);
  s->dup_pct = sim_rnd(s, 5);
  s->long_delay_pct = sim_rnd(s, 5);
  s->crash_after_vote_pct = sim_rnd(s, 2) ? 0 : 10 + sim_rnd(s, 30);
  s->crash_new_leader_pct = sim_rnd(s, 4) ? 20 + sim_rnd(s, 50) : 0;
  sim_push(s, 5, EV_PROPOSE, -1);
  sim_push(s, 7, EV_READ, -1);
  sim_push(s, 200 + sim_rnd(s, 300), EV_FAULT, -1);
  sim_push(s, 300 + sim_rnd(s, 300), EV_OPERATOR, -1);
}

void sim_free(struct sim *s) {
  while (s->nheap)
    free_event(pop(s));
  free(s->heap);
  for (int i = 0; i < s->n_total; i++) {
    struct sim_node *n = &s->nodes[i];
    raft_free(n->r);
    sim_drop_ops(n);
    free(n->ops);
    sim_dlog_truncate(n, n->dbase + 1);
    free(n->dlog);
  }
  free(s->reads);
  free(s->ring);
  check_free(s);
}

static bool step(struct sim *s) {
  struct sim_event *e = pop(s);
  if (!e) return false;
  s->now = e->at;
  handle(s, e);
  free_event(e);
  long elections = s->n_elections;
  s->first_commit = -1;
  if (!s->failed) check_step(s);
  if (s->first_commit >= 0 && sim_rnd(s, 100) < s->crash_new_leader_pct)
    sim_push(s, s->now, EV_CRASH, s->first_commit);
  /* Membership changes right after an election probe the rule that a new
   * leader first commits an entry of its own term. */
  if (s->n_elections > elections && sim_rnd(s, 3) != 0)
    sim_push(s, s->now + sim_rnd(s, 3), EV_OPERATOR_ONCE, -1);
  /* ...and so does a leader crashing before its first entries spread. */
  if (s->n_elections > elections && sim_rnd(s, 100) < s->crash_new_leader_pct)
    sim_push(s, s->now + (sim_rnd(s, 2) ? sim_rnd(s, 8) : sim_rnd(s, 30)),
             EV_CRASH, s->new_leader);
  return true;
}

bool sim_run(struct sim *s, long steps) {
  for (s->steps = 0; s->steps < steps && !s->failed; s->steps++)
    if (!step(s)) break;
  if (s->failed) return false;
  /* Heal everything; a leader must emerge and new proposals commit. */
  s->healing = true;
  sim_heal_network(s);
  s->loss_pct = s->dup_pct = s->long_delay_pct = 0;
  sim_log(s, "HEAL all faults");
  for (int i = 0; i < s->n_total; i++) {
    s->nodes[i].slow_until = 0;
    if (!s->nodes[i].up) {
      sim_node_start(s, i, false);
      sim_drain(s, i);
    }
  }
  int64_t healed_at = s->now, deadline = s->now + 60 * 10 * TICK_UNITS;
  while (!s->failed && !s->heal_done && s->now < deadline)
    if (!step(s)) break;
  s->heal_time = s->now - healed_at;
  if (!s->failed && !s->heal_done)
    sim_fail(s, "liveness: no proposal committed within %d ticks of healing",
             60 * 10);
  return !s->failed;
}

void sim_dump_nodes(struct sim *s, FILE *f) {
  for (int i = 0; i < s->n_total; i++) {
    struct sim_node *n = &s->nodes[i];
    if (!n->up) {
      fprintf(f, "  %s: down\n", n->name);
      continue;
    }
    struct raft *r = n->r;
    const struct raft_conf *c = raft_configuration(r);
    char conf[200] = "";
    size_t k = 0;
    for (unsigned j = 0; j < c->n && k < sizeof conf - 16; j++)
      k += (size_t)snprintf(conf + k, sizeof conf - k, " %s:%c", c->m[j].name,
                            "?APR"[c->m[j].type & 3]);
    fprintf(f,
            "  %s: %s term %llu vote '%s' leader '%s' last %llu/%llu commit "
            "%llu applied %llu persisted %llu snapshot %llu conf@%llu%s\n",
            n->name, raft_role_name(raft_role(r)),
            (unsigned long long)raft_term(r), n->hs.vote, raft_leader(r),
            (unsigned long long)raft_last_index(r),
            (unsigned long long)raft_term_at(r, raft_last_index(r)),
            (unsigned long long)raft_commit_index(r),
            (unsigned long long)n->applied,
            (unsigned long long)raft_persisted_index(r),
            (unsigned long long)raft_snapshot_index(r),
            (unsigned long long)raft_configuration_index(r), conf);
  }
}

void sim_dump_trace(struct sim *s, FILE *f, size_t lines) {
  size_t n = s->ring_n < lines ? s->ring_n : lines;
  size_t start = (s->ring_head + RING_LINES - n) % RING_LINES;
  for (size_t k = 0; k < n; k++)
    fprintf(f, "  %s\n", s->ring[(start + k) % RING_LINES]);
}
