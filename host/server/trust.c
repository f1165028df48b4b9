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
 *
 * Admin rights: membership and leadership requests on the client protocol
 * (change, remove, transfer) need, under TLS, a certificate with the
 * admin or the member role, or the server's admin token in the client's
 * hello (a wrong token refuses the hello); refusals are ["error", id, message,
 * "denied"], counted (copycat_requests_denied_total) and logged. Without TLS
 * nothing is authenticated and every connection holds them (docs/security.md).
 *
 * Before its hello is accepted, a connection to the peer or client
 * address may send frames of at most SERVER_PREAUTH_MAX_FRAME bytes, must
 * complete the hello (and TLS handshake) within hello_timeout_ms, and
 * only max_unauthenticated such connections are kept per listener
 * (host/transport enforces the bounds; these are the server's settings,
 * counters and log lines).
 */
#include <openssl/crypto.h>
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
  s->trust.raft_dropped[reason]++;
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
    prom_u64(b, name, l, s->trust.raft_dropped[i]);
  }
  prom_family(b, "copycat_requests_denied_total", "counter",
              "Membership and leadership requests refused for want of "
              "admin rights.");
  prom_u64(b, "copycat_requests_denied_total", NULL, s->trust.admin_denied);
  name = "copycat_unauthenticated_closed_total";
  prom_family(b, name, "counter",
              "Connections closed before their hello was accepted: timeout "
              "(no hello in time), oversized (a frame over the limit before "
              "the hello), limit (too many such connections at once).");
  static const char *const kinds[] = {"timeout", "oversized"};
  for (int i = 0; i < TRUST_PREAUTH_REASONS; i++) {
    const char *l[] = {"reason", kinds[i], NULL};
    prom_u64(b, name, l, s->trust.preauth_closed[i]);
  }
  uint64_t refused = net_listener_refused(s->listener);
  if (s->client_listener) refused += net_listener_refused(s->client_listener);
  const char *l[] = {"reason", "limit", NULL};
  prom_u64(b, name, l, refused);
}

/* ---- admin rights on the client protocol ---- */

int trust__hello_token(struct inconn *ic, const char *token, char *why,
                       size_t whylen) {
  const char *mine = ic->s->trust.admin_token;
  if (!token[0]) return 0;
  size_t n = strlen(token);
  if (!mine[0] || n != strlen(mine) || CRYPTO_memcmp(token, mine, n) != 0) {
    snprintf(why, whylen, "%s",
             mine[0] ? "wrong admin token"
                     : "this server takes no admin token (give it "
                       "admin_token_file or COPYCAT_ADMIN_TOKEN)");
    return -1;
  }
  ic->token_admin = 1;
  return 0;
}

int trust__may_admin(const struct inconn *ic) {
  /* A request a member forwarded: the rights it vouches the client held
   * (forward.c; only members of the configuration may forward). */
  if (ic->forwarding) return ic->forward_admin;
  if (ic->token_admin) return 1;
  /* Plain TCP authenticates nobody: a server without TLS listens where
   * only trusted parties reach it (loopback, or --insecure). */
  if (!net_conn_is_tls(ic->conn)) return 1;
  /* A member's certificate: members join, leave and run operator scripts
   * through the client protocol, and a member can lead anyway. */
  return ic->cert_role == TLS_ROLE_ADMIN || ic->cert_role == TLS_ROLE_MEMBER;
}

int trust__admin_check(struct inconn *ic, uint64_t id, const char *verb) {
  if (trust__may_admin(ic)) return 0;
  struct server *s = ic->s;
  s->trust.admin_denied++;
  char msg[300];
  snprintf(msg, sizeof msg,
           "denied: %s needs admin rights: connect with a certificate that "
           "has the admin role (ctl certs writes admin.crt) or the admin "
           "token, or use the admin channel (copycat-lua ctl)",
           verb);
  clients__reply_error(ic->conn, id, CPROTO_EDENIED, msg);
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_WARN, "request_denied");
  logger_str(&l, "peer", net_conn_peer(ic->conn));
  logger_str(&l, "verb", verb);
  logger_str(&l, "certificate", ic->cert_name[0] ? ic->cert_name : "none");
  logger_str(&l, "role", tls_role_name(ic->cert_role));
  logger_end(&l);
  return -1;
}

/* ---- before the hello ---- */

void trust__listen_opts(const struct server *s, struct net_conn_opts *o) {
  o->preauth_max_frame = SERVER_PREAUTH_MAX_FRAME;
  o->preauth_ms = s->o.hello_timeout_ms;
  o->preauth_max = s->o.max_unauthenticated;
}

void trust__preauth_closed(struct server *s, net_conn *c, int status,
                           const char *reason) {
  int k;
  if (status == NET_ETIMEDOUT)
    k = TRUST_PREAUTH_TIMEOUT;
  else if (status == NET_ETOOBIG)
    k = TRUST_PREAUTH_OVERSIZED;
  else
    return;
  s->trust.preauth_closed[k]++;
  /* An attacker can open connections faster than anyone reads lines:
   * at most one line a second, with how many were not logged. */
  uint64_t now = uv_now(s->loop);
  if (s->trust.preauth_logged_ms && now - s->trust.preauth_logged_ms < 1000) {
    s->trust.preauth_unlogged++;
    return;
  }
  s->trust.preauth_logged_ms = now;
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_WARN, "unauthenticated_closed");
  logger_str(&l, "peer", net_conn_peer(c));
  logger_str(&l, "reason", reason);
  logger_u64(&l, "not_logged", s->trust.preauth_unlogged);
  logger_end(&l);
  s->trust.preauth_unlogged = 0;
}

int trust__init(struct server *s, const char *admin_token, char *err,
                size_t errlen) {
  if (admin_token && strlen(admin_token) >= sizeof s->trust.admin_token) {
    snprintf(err, errlen, "the admin token is longer than %zu bytes",
             sizeof s->trust.admin_token - 1);
    return -1;
  }
  snprintf(s->trust.admin_token, sizeof s->trust.admin_token, "%s",
           admin_token ? admin_token : "");
  return 0;
}
