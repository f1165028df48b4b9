/*
 * progress.c — the operator's view of a server beyond server_status:
 * replication progress of each member (on the leader) and whether the
 * leader serves yet. Read-only; nothing here changes the server.
 */
#include <string.h>

#include "server/server_int.h"

void server_progress(const struct server *s, struct server_progress *p) {
  memset(p, 0, sizeof *p);
  p->commit_term = raft_term_at(s->raft, raft_commit_index(s->raft));
  p->leader_ready = raft_leader_ready(s->raft);
  const struct raft_conf *c = raft_configuration(s->raft);
  p->have_peers = raft_role(s->raft) == RAFT_LEADER;
  for (unsigned i = 0; p->have_peers && i < c->n; i++)
    raft_progress(s->raft, i, &p->peer[i].match, &p->peer[i].next);
}
