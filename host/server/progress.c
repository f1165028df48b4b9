/*
 * progress.c — the operator's view of a server beyond server_status:
 * replication progress of each member (on the leader), whether the leader
 * serves yet, and when each member was last heard from. Read-only;
 * nothing here changes the server.
 */
#include <string.h>

#include "server/server_int.h"

/* Whether this server expects member m to send it messages, so that its
 * silence means something: a leader hears from every member it sends the
 * log to (not RESERVE ones), a follower only from its leader. */
static int expects_contact(const struct server *s,
                           const struct raft_member *m) {
  if (strcmp(m->name, s->name) == 0) return 0;
  if (raft_role(s->raft) == RAFT_LEADER) return m->type != RAFT_RESERVE;
  return raft_role(s->raft) == RAFT_FOLLOWER &&
         strcmp(m->name, raft_leader(s->raft)) == 0;
}

void server_progress(const struct server *s, struct server_progress *p) {
  memset(p, 0, sizeof *p);
  p->commit_term = raft_term_at(s->raft, raft_commit_index(s->raft));
  p->leader_ready = raft_leader_ready(s->raft);
  p->election_ms = s->o.election_ms;
  const struct raft_conf *c = raft_configuration(s->raft);
  p->have_peers = raft_role(s->raft) == RAFT_LEADER;
  for (unsigned i = 0; i < c->n; i++) {
    if (p->have_peers)
      raft_progress(s->raft, i, &p->peer[i].match, &p->peer[i].next);
    if (!expects_contact(s, &c->m[i])) continue;
    if (peers__silence(s, c->m[i].name, s->view_since_ms, &p->peer[i].silent_ms,
                       &p->peer[i].heard) < 0)
      continue;
    p->peer[i].contact_known = 1;
    p->peer[i].unreachable = p->peer[i].silent_ms >= p->election_ms;
  }
}
