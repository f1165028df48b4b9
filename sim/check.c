/*
 * check.c — the safety invariants the simulator checks after every step:
 * election safety, log matching, leader completeness, state machine
 * safety, durability of committed entries, monotonic commit/apply, and
 * fresh reads.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static void grow_u64(uint64_t **p, size_t *cap, size_t need) {
  if (need < *cap) return;
  size_t ncap = *cap ? *cap : 1024;
  while (ncap <= need)
    ncap *= 2;
  uint64_t *q = realloc(*p, ncap * sizeof *q);
  if (!q) abort();
  memset(q + *cap, 0, (ncap - *cap) * sizeof *q);
  *p = q;
  *cap = ncap;
}

/* Election safety: at most one leader per term. */
static void check_leaders(struct sim *s) {
  for (int i = 0; i < s->n_total; i++) {
    struct sim_node *n = &s->nodes[i];
    if (!n->up || raft_role(n->r) != RAFT_LEADER) continue;
    uint64_t t = raft_term(n->r);
    size_t cap = s->n_terms;
    grow_u64(&s->leader_of_term, &cap, t);
    s->n_terms = cap;
    uint64_t who = s->leader_of_term[t];
    if (who == 0) {
      s->leader_of_term[t] = (uint64_t)i + 1;
      s->n_elections++;
      s->new_leader = i;
      sim_log(s, "%s is leader of term %llu (last %llu commit %llu)", n->name,
              (unsigned long long)t, (unsigned long long)raft_last_index(n->r),
              (unsigned long long)raft_commit_index(n->r));
      /* Leader completeness: it holds every committed entry. */
      uint64_t c = s->max_committed;
      if (c > raft_snapshot_index(n->r) && c >= raft_first_index(n->r) - 1) {
        if (c > raft_last_index(n->r) ||
            raft_term_at(n->r, c) != s->committed_term[c])
          sim_fail(s,
                   "leader completeness: %s leads term %llu without "
                   "committed entry %llu (term %llu; it has term %llu, "
                   "last %llu)",
                   n->name, (unsigned long long)t, (unsigned long long)c,
                   (unsigned long long)s->committed_term[c],
                   (unsigned long long)raft_term_at(n->r, c),
                   (unsigned long long)raft_last_index(n->r));
      } else if (c > raft_snapshot_index(n->r)) {
        sim_fail(s, "leader completeness: %s lacks entry %llu", n->name,
                 (unsigned long long)c);
      }
    } else if (who != (uint64_t)i + 1) {
      sim_fail(s, "election safety: %s and %s both lead term %llu",
               s->nodes[who - 1].name, n->name, (unsigned long long)t);
    }
  }
}

void check_step(struct sim *s) {
  check_leaders(s);
  for (int i = 0; i < s->n_total; i++) {
    struct sim_node *n = &s->nodes[i];
    if (!n->up) continue;
    uint64_t c = raft_commit_index(n->r);
    if (c < n->seen_commit)
      sim_fail(s, "%s: commit index went back from %llu to %llu", n->name,
               (unsigned long long)n->seen_commit, (unsigned long long)c);
    if (n->applied < n->seen_applied)
      sim_fail(s, "%s: applied index went back from %llu to %llu", n->name,
               (unsigned long long)n->seen_applied,
               (unsigned long long)n->applied);
    if (c > n->seen_commit && raft_role(n->r) == RAFT_LEADER &&
        n->first_commit_term != raft_term(n->r)) {
      n->first_commit_term = raft_term(n->r);
      s->first_commit = i; /* a leader's first commit of its term */
    }
    n->seen_commit = c;
    n->seen_applied = n->applied;
  }
}

/* ---- log matching ------------------------------------------------------ */

static uint64_t slot_hash(uint64_t index, uint64_t term) {
  uint64_t h = index * 0x9E3779B97F4A7C15ULL ^ (term + 0x632BE59BD9B4E019ULL);
  h ^= h >> 31;
  return h * 0xBF58476D1CE4E5B9ULL;
}

static struct sim_slot *slot_find(struct sim *s, uint64_t index,
                                  uint64_t term) {
  if (s->nslots * 2 >= s->capslots) {
    size_t cap = s->capslots ? s->capslots * 2 : 4096;
    struct sim_slot *ns = calloc(cap, sizeof *ns);
    if (!ns) abort();
    for (size_t i = 0; i < s->capslots; i++) {
      struct sim_slot *o = &s->slots[i];
      if (!o->index) continue;
      size_t k = slot_hash(o->index, o->term) & (cap - 1);
      while (ns[k].index)
        k = (k + 1) & (cap - 1);
      ns[k] = *o;
    }
    free(s->slots);
    s->slots = ns;
    s->capslots = cap;
  }
  size_t k = slot_hash(index, term) & (s->capslots - 1);
  while (s->slots[k].index &&
         (s->slots[k].index != index || s->slots[k].term != term))
    k = (k + 1) & (s->capslots - 1);
  return &s->slots[k];
}

/* Log matching, checked inductively: every (index, term) names one entry
 * and one predecessor term, whichever node holds it. */
void check_persist(struct sim *s, struct sim_node *n, uint64_t first,
                   const struct raft_entry *es, size_t count) {
  uint64_t prev_term = raft_term_at(n->r, first - 1);
  for (size_t k = 0; k < count; k++) {
    uint64_t index = first + k;
    uint64_t id = sim_entry_id(&es[k]);
    struct sim_slot *sl = slot_find(s, index, es[k].term);
    if (!sl->index) {
      sl->index = index;
      sl->term = es[k].term;
      sl->id = id;
      sl->prev_term = prev_term;
      s->nslots++;
    } else if (sl->id != id ||
               (sl->prev_term && prev_term && sl->prev_term != prev_term)) {
      sim_fail(s, "log matching: %s has a different entry at %llu term %llu",
               n->name, (unsigned long long)index,
               (unsigned long long)es[k].term);
      return;
    } else if (!sl->prev_term) {
      sl->prev_term = prev_term;
    }
    prev_term = es[k].term;
  }
}

/* ---- state machine safety ---------------------------------------------- */

void check_apply(struct sim *s, struct sim_node *n, uint64_t index,
                 const struct raft_entry *e) {
  size_t cap = s->cap_committed, cap2 = cap, cap3 = cap;
  grow_u64(&s->committed_id, &cap, index);
  grow_u64(&s->committed_digest, &cap2, index);
  grow_u64(&s->committed_term, &cap3, index);
  s->cap_committed = cap;
  uint64_t id = sim_entry_id(e);
  if (s->committed_id[index] == 0) {
    s->committed_id[index] = id;
    s->committed_term[index] = e->term;
    s->committed_digest[index] = n->digest;
    if (index > s->max_committed) s->max_committed = index;
  } else if (s->committed_id[index] != id) {
    sim_fail(s,
             "state machine safety: %s applied a different entry at %llu "
             "(term %llu, first applied had term %llu)",
             n->name, (unsigned long long)index, (unsigned long long)e->term,
             (unsigned long long)s->committed_term[index]);
  } else if (s->committed_digest[index] != n->digest) {
    sim_fail(s, "state machine safety: %s state differs at %llu", n->name,
             (unsigned long long)index);
  }
}

void check_snapshot_install(struct sim *s, struct sim_node *n, uint64_t index,
                            uint64_t digest) {
  if (index < s->cap_committed && s->committed_digest[index] &&
      s->committed_digest[index] != digest)
    sim_fail(s, "snapshot: %s installed a state differing at %llu", n->name,
             (unsigned long long)index);
}

/* A read must see every write acknowledged before it began. */
void check_read(struct sim *s, struct sim_node *n,
                const struct sim_pending_read *rd, uint64_t index) {
  if (n->applied < index)
    sim_fail(s, "read on %s served at index %llu before applying it", n->name,
             (unsigned long long)index);
  if (n->applied < rd->acked_before)
    sim_fail(s,
             "stale read: %s served read %llu at applied index %llu but "
             "write %llu was acknowledged before the read began",
             n->name, (unsigned long long)rd->ctx,
             (unsigned long long)n->applied,
             (unsigned long long)rd->acked_before);
}

void check_free(struct sim *s) {
  free(s->leader_of_term);
  free(s->slots);
  free(s->committed_id);
  free(s->committed_digest);
  free(s->committed_term);
}
