/*
 * faults.c — what happens to the cluster from outside: client proposals
 * and reads sent to whoever leads, network and disk faults, crashes, and
 * an operator changing membership and transferring leadership.
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

/* ---- events ------------------------------------------------------------- */

int sim_pick_leader(struct sim *s) {
  int cand[SIM_MAX_NODES], k = 0;
  for (int i = 0; i < s->n_total; i++)
    if (s->nodes[i].up && raft_role(s->nodes[i].r) == RAFT_LEADER)
      cand[k++] = i;
  return k ? cand[sim_rnd(s, k)] : -1;
}

void sim_propose(struct sim *s) {
  int l = sim_pick_leader(s);
  if (l < 0) return;
  size_t len = 9 + (size_t)sim_rnd(s, 60);
  struct raft_buf *b = raft_buf_new(len);
  uint64_t id = ++s->next_proposal;
  memset(b->data, (int)(id & 0xff), len);
  memcpy(b->data, &id, 8);
  b->data[0] = s->healing ? 0xEE : 0x01;
  int64_t rc = raft_propose(s->nodes[l].r, RAFT_COMMAND, b);
  raft_buf_unref(b);
  sim_log(s, "propose #%llu on %s -> %lld", (unsigned long long)id,
          s->nodes[l].name, (long long)rc);
  sim_drain(s, l);
}

void sim_read(struct sim *s) {
  int l = sim_pick_leader(s);
  if (l < 0) return;
  if (s->nreads == s->capreads) {
    s->capreads = s->capreads ? s->capreads * 2 : 64;
    s->reads = realloc(s->reads, s->capreads * sizeof *s->reads);
    if (!s->reads) abort();
  }
  struct sim_pending_read *p = &s->reads[s->nreads++];
  p->ctx = ++s->next_read;
  p->node = l;
  p->incarnation = s->nodes[l].incarnation;
  p->acked_before = s->max_acked;
  bool lease = sim_rnd(s, 2);
  int rc = raft_read(s->nodes[l].r, p->ctx, lease);
  sim_log(s, "read %llu (%s) on %s -> %d", (unsigned long long)p->ctx,
          lease ? "lease" : "index", s->nodes[l].name, rc);
  if (rc != 0) s->nreads--;
  sim_drain(s, l);
}

void sim_heal_network(struct sim *s) {
  memset(s->blocked, 0, sizeof s->blocked);
}

void sim_fault(struct sim *s) {
  int n = s->n_total, a = sim_rnd(s, n), b = sim_rnd(s, n);
  int kind = sim_rnd(s, 12);
  switch (kind) {
    case 0:
    case 1:
      sim_heal_network(s);
      sim_log(s, "FAULT heal network");
      break;
    case 2: { /* symmetric partition */
      sim_heal_network(s);
      unsigned side = (unsigned)sim_rnd64(s);
      for (int x = 0; x < n; x++)
        for (int y = 0; y < n; y++)
          if (((side >> x) & 1) != ((side >> y) & 1)) s->blocked[x][y] = true;
      sim_log(s, "FAULT partition mask %x", side & ((1u << n) - 1));
      break;
    }
    case 3:
      if (a != b) s->blocked[a][b] = true;
      sim_log(s, "FAULT one-way %s -/-> %s", sim_node_name(a),
              sim_node_name(b));
      break;
    case 4: {
      int l = sim_pick_leader(s);
      if (l < 0) break;
      for (int x = 0; x < n; x++)
        if (x != l) s->blocked[l][x] = s->blocked[x][l] = true;
      sim_log(s, "FAULT isolate leader %s", sim_node_name(l));
      break;
    }
    case 5: { /* bridge: a and b cannot talk, everyone else can */
      sim_heal_network(s);
      if (a != b) s->blocked[a][b] = s->blocked[b][a] = true;
      sim_log(s, "FAULT bridge: %s and %s apart", sim_node_name(a),
              sim_node_name(b));
      break;
    }
    case 6:
    case 7:
      if (s->nodes[a].up) {
        sim_node_crash(s, a);
        sim_push(s, s->now + 50 + sim_rnd(s, 600), EV_RESTART, a);
      }
      break;
    case 8: /* power failure of several nodes at once */
      for (int x = 0; x < n; x++)
        if (s->nodes[x].up && sim_rnd(s, 2)) {
          sim_node_crash(s, x);
          sim_push(s, s->now + 20 + sim_rnd(s, 300), EV_RESTART, x);
        }
      break;
    case 9:
      s->nodes[a].slow_until = s->now + 100 + sim_rnd(s, 1000);
      sim_log(s, "FAULT slow disk on %s", sim_node_name(a));
      break;
    case 10:
      s->loss_pct = sim_rnd(s, 15);
      s->dup_pct = sim_rnd(s, 10);
      s->long_delay_pct = sim_rnd(s, 15);
      sim_log(s, "FAULT network loss %d%% dup %d%% long delay %d%%",
              s->loss_pct, s->dup_pct, s->long_delay_pct);
      break;
    default: {
      int l = sim_pick_leader(s);
      if (l >= 0) {
        sim_node_crash(s, l);
        sim_push(s, s->now + 50 + sim_rnd(s, 400), EV_RESTART, l);
      }
      break;
    }
  }
}

void sim_operator(struct sim *s) {
  int l = sim_pick_leader(s);
  if (l < 0) return;
  struct raft *r = s->nodes[l].r;
  const struct raft_conf *c = raft_configuration(r);
  int voters = 0;
  for (unsigned k = 0; k < c->n; k++)
    voters += c->m[k].type == RAFT_ACTIVE;
  int t = sim_rnd(s, s->n_total);
  struct sim_node *tn = &s->nodes[t];
  int in = raft_conf_find(c, tn->name);
  int rc = 0;
  const char *what = "";
  int action = sim_rnd(s, 6);
  if (action == 0 && t != l) {
    what = "transfer to";
    rc = raft_transfer(r, tn->name);
    if (rc == 0) s->n_transfers++;
  } else if (in < 0) {
    what = sim_rnd(s, 3) ? "add passive" : "add reserve";
    rc = raft_change(r, tn->name, tn->addr,
                     what[4] == 'p' ? RAFT_PASSIVE : RAFT_RESERVE);
  } else if (c->m[in].type == RAFT_PASSIVE) {
    if (sim_rnd(s, 4)) {
      what = "promote";
      rc = raft_change(r, tn->name, tn->addr, RAFT_ACTIVE);
    } else {
      what = "remove";
      rc = raft_remove(r, tn->name);
    }
  } else if (c->m[in].type == RAFT_RESERVE) {
    what = "passive";
    rc = raft_change(r, tn->name, tn->addr, RAFT_PASSIVE);
  } else if (voters > 3) {
    what = sim_rnd(s, 2) ? "demote" : "remove";
    rc = what[0] == 'd' ? raft_change(r, tn->name, tn->addr, RAFT_PASSIVE)
                        : raft_remove(r, tn->name);
  } else {
    return;
  }
  if (rc == 0 && action != 0) {
    s->n_changes++;
    /* A leader failing or cut off right after starting a change leaves
     * it uncommitted for the next leader to deal with. */
    if (sim_rnd(s, 100) < s->crash_new_leader_pct) {
      if (sim_rnd(s, 2)) {
        sim_push(s, s->now + sim_rnd(s, 4), EV_CRASH, l);
      } else {
        for (int x = 0; x < s->n_total; x++)
          if (x != l) s->blocked[l][x] = s->blocked[x][l] = true;
        sim_log(s, "FAULT isolate leader %s", s->nodes[l].name);
      }
    }
  }
  sim_log(s, "OPERATOR on %s: %s %s -> %s", s->nodes[l].name, what, tn->name,
          raft_strerror(rc));
  sim_drain(s, l);
}
