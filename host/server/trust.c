/*
 * trust.c — who may do what on a connection (docs/security.md).
 *
 * Raft messages: the sender named in a message must be the member the
 * connection authenticated as (its hello name, which under TLS equals the
 * name in its member certificate, peers.c) and must be a member of the
 * configuration this server knows (which, on a leader, includes a server
 * it is adding). A server that knows no configuration yet (a new server
 * waiting to be joined) takes messages from any authenticated member.
 * Anything else is dropped, counted (copycat_raft_messages_dropped_total)
 * and logged once per connection.
 */
#include <stdio.h>
#include <string.h>

#include "server/server_int.h"

static const char *const drop_reasons[TRUST_DROP_REASONS] = {"sender",
                                                             "not_member"};

int trust__raft_sender(struct inconn *ic, const struct raft_msg *m) {
  struct server *s = ic->s;
  int reason = -1;
  const struct raft_conf *c = raft_configuration(s->raft);
  if (strcmp(m->from, ic->name) != 0)
    reason = TRUST_DROP_SENDER;
  else if (c->n > 0 && raft_conf_find(c, m->from) < 0)
    reason = TRUST_DROP_NOT_MEMBER;
  if (reason < 0) return 0;
  s->metrics.raft_dropped[reason]++;
  if (!ic->drop_logged) {
    ic->drop_logged = 1;
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_WARN, "raft_message_dropped");
    logger_str(&l, "peer", net_conn_peer(ic->conn));
    logger_str(&l, "member", ic->name);
    logger_str(&l, "from", m->from);
    logger_str(&l, "reason",
               reason == TRUST_DROP_SENDER
                   ? "the message names another sender than the member "
                     "this connection authenticated as"
                   : "the sender is not a member of the configuration");
    logger_str(&l, "note", "further drops on this connection are counted only");
    logger_end(&l);
  }
  return -1;
}

void trust__metrics(struct server *s, struct prom_buf *b) {
  const char *name = "copycat_raft_messages_dropped_total";
  prom_family(b, name, "counter",
              "Raft messages dropped because of their sender: sender (not "
              "the member the connection authenticated as), not_member "
              "(not in the configuration).");
  for (int i = 0; i < TRUST_DROP_REASONS; i++) {
    const char *l[] = {"reason", drop_reasons[i], NULL};
    prom_u64(b, name, l, s->metrics.raft_dropped[i]);
  }
}
