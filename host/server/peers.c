/*
 * peers.c — connections between servers, and the hello on every incoming
 * connection.
 *
 * Each server sends to a member over its own outgoing connection and
 * receives on the connections members open to it, so no connection is
 * shared by two writers. A message for a member that is not connected is
 * dropped (Raft retransmits) and a redial is scheduled with exponential
 * backoff, so an unreachable member costs a connect attempt now and then.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

#define BACKOFF_MIN_MS 20
#define BACKOFF_MAX_MS 2000

static void pack_reply(msgpack_sbuffer *sb, const char *status,
                       const char *msg) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_str(&pk, strlen(status));
  msgpack_pack_str_body(&pk, status, strlen(status));
  msgpack_pack_str(&pk, strlen(msg));
  msgpack_pack_str_body(&pk, msg, strlen(msg));
}

/* ---- outgoing ---- */

static int peer_slot(const struct server *s, const char *name) {
  for (int i = 0; i < SERVER_MAX_PEERS; i++)
    if (s->peers.list[i].in_use && strcmp(s->peers.list[i].name, name) == 0)
      return i;
  return -1;
}

static struct peer *find_peer(struct server *s, const char *name) {
  int i = peer_slot(s, name);
  return i < 0 ? NULL : &s->peers.list[i];
}

struct transfer_log *peers__snap_log(struct server *s, const char *name) {
  struct peer *p = find_peer(s, name);
  return p ? &p->snap_out : NULL;
}

int peers__silence(const struct server *s, const char *name, uint64_t floor_ms,
                   uint64_t *ms, int *heard) {
  int i = peer_slot(s, name);
  if (i < 0) return -1;
  const struct peer *p = &s->peers.list[i];
  uint64_t now = uv_now(s->loop), since = p->heard ? p->heard_ms : p->added_ms;
  if (since < floor_ms) since = floor_ms;
  *ms = now > since ? now - since : 0;
  *heard = p->heard;
  return 0;
}

static void out_frame(net_conn *c, const char *data, size_t len) {
  struct peer *p = net_conn_data(c);
  if (!p) return;
  /* A peer sends back on our connection its answer to our hello, ["ok",
   * its_name] or ["error", why], and notices (a removal). */
  if (proto_is_notice(data, len)) {
    agree__notice(p->conn_owner, p->name, data, len);
    return;
  }
  /* and the answers to client requests we forwarded to it */
  if (forward__reply(p->conn_owner, data, len)) return;
  struct mp_reader r;
  uint32_t n;
  char status[16], why[256] = "malformed answer to our hello";
  mp_reader_init(&r, data, len);
  if (mp_read_array(&r, &n) == 0 && n == 2 &&
      mp_read_name(&r, status, sizeof status) == 0) {
    if (strcmp(status, "ok") == 0) {
      p->backoff_ms = BACKOFF_MIN_MS;
      return;
    }
    mp_read_name(&r, why, sizeof why);
  }
  net_conn_close(c, why);
}

static void out_close(net_conn *c, int status, const char *reason) {
  struct peer *p = net_conn_data(c);
  if (!p) return;
  if (p->ready && status != 0) {
    struct logger_line l;
    logger_begin(&l, &p->conn_owner->log, LOGGER_WARN, "peer_down");
    logger_str(&l, "peer", p->name);
    logger_str(&l, "address", p->address);
    logger_str(&l, "reason", reason);
    logger_end(&l);
  }
  p->conn = NULL;
  p->ready = 0;
  forward__peer_lost(p->conn_owner, p->name);
}

static void on_connected(void *data, net_conn *c, int status,
                         const char *reason) {
  struct peer *p = data;
  p->connecting = 0;
  if (!p->in_use) { /* removed while connecting */
    if (c) {
      net_conn_set_data(c, NULL);
      net_conn_close(c, "member removed");
    }
    return;
  }
  struct server *s = p->conn_owner;
  struct logger_line l;
  if (!c) {
    /* Debug only: an unreachable member would repeat this at every
     * redial. peer_down (warn) says when a working link breaks. */
    logger_begin(&l, &s->log, LOGGER_DEBUG, "peer_connect_failed");
    logger_str(&l, "peer", p->name);
    logger_str(&l, "address", p->address);
    logger_str(&l, "reason", reason ? reason : uv_strerror(status));
    logger_u64(&l, "retry_ms", p->backoff_ms);
    logger_end(&l);
    return; /* retry_at already set: the next send redials */
  }
  logger_begin(&l, &s->log, LOGGER_DEBUG, "peer_connected");
  logger_str(&l, "peer", p->name);
  logger_str(&l, "address", p->address);
  logger_end(&l);
  static const struct net_conn_cbs cbs = {out_frame, out_close};
  net_conn_set_data(c, p);
  net_conn_start(c, &cbs);
  struct proto_hello h;
  memset(&h, 0, sizeof h);
  h.version = PROTO_VERSION;
  h.role = PROTO_SERVER;
  snprintf(h.cluster, sizeof h.cluster, "%s", s->cluster);
  snprintf(h.name, sizeof h.name, "%s", s->name);
  snprintf(h.address, sizeof h.address, "%s", s->address);
  msgpack_sbuffer *sb = &s->scratch;
  size_t mark = sb->size;
  proto_encode_hello(sb, &h);
  net_conn_send(c, sb->data + mark, sb->size - mark);
  sb->size = mark;
  p->conn = c;
  p->ready = 1;
}

static void dial(struct server *s, struct peer *p) {
  uint64_t now = uv_now(s->loop);
  if (p->conn || p->connecting || now < p->retry_at || s->stopping) return;
  p->connecting = 1;
  p->conn_owner = s;
  p->retry_at = now + p->backoff_ms;
  p->backoff_ms =
      p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
  /* Under TLS the member we dial must prove it is p->name. */
  struct net_conn_opts o = {.tls = s->tls, .tls_expect = p->name};
  if (net_connect(s->loop, p->address, &o, on_connected, p) < 0)
    p->connecting = 0;
}

void peers__send(struct server *s, const struct raft_msg *m) {
  struct peer *p = find_peer(s, m->to);
  if (!p) return;
  if (!p->ready) {
    dial(s, p);
    return;
  }
  msgpack_sbuffer *sb = &s->scratch;
  size_t mark = sb->size;
  if (proto_encode_msg(sb, m) == 0)
    net_conn_send(p->conn, sb->data + mark, sb->size - mark);
  sb->size = mark;
}

void peers__send_frame(struct server *s, const char *to, const char *data,
                       size_t len) {
  struct peer *p = find_peer(s, to);
  if (!p) return;
  if (!p->ready) {
    dial(s, p);
    return;
  }
  net_conn_send(p->conn, data, len);
}

static void drop_peer(struct peer *p);

/* A free slot; for a member of the configuration (evict = 1), the slot
 * of a server only learned from a hello when none is free, so that hellos
 * cannot crowd out the configuration. */
static struct peer *add_peer(struct server *s, const char *name,
                             const char *address, int evict) {
  for (int pass = 0; pass < 1 + evict; pass++) {
    for (int i = 0; i < SERVER_MAX_PEERS; i++) {
      struct peer *p = &s->peers.list[i];
      if (pass == 1 && p->in_use && p->learned && !p->connecting) drop_peer(p);
      if (p->in_use || p->connecting) continue;
      memset(p, 0, sizeof *p);
      p->in_use = 1;
      snprintf(p->name, sizeof p->name, "%s", name);
      snprintf(p->address, sizeof p->address, "%s", address);
      p->backoff_ms = BACKOFF_MIN_MS;
      p->added_ms = uv_now(s->loop);
      return p;
    }
  }
  return NULL;
}

/* A server that said hello can be answered even before it is in our
 * configuration (a joining member, or a leader we have not heard of yet):
 * remember where it listens. The address of a member of the configuration
 * comes from the configuration, never from a hello. */
static void learn(struct server *s, const char *name, const char *address) {
  if (strcmp(name, s->name) == 0) return;
  struct peer *p = find_peer(s, name);
  if (p && (!p->learned || strcmp(p->address, address) == 0)) return;
  if (p) drop_peer(p);
  p = add_peer(s, name, address, 0);
  if (p) p->learned = 1;
}

static void drop_peer(struct peer *p) {
  if (p->conn) {
    net_conn_set_data(p->conn, NULL);
    net_conn_close(p->conn, "member left the configuration");
  }
  p->conn = NULL;
  p->ready = 0;
  p->in_use = 0;
}

void peers__sync(struct server *s) {
  const struct raft_conf *c = raft_configuration(s->raft);
  for (int i = 0; i < SERVER_MAX_PEERS; i++) {
    struct peer *p = &s->peers.list[i];
    if (!p->in_use) continue;
    int k = raft_conf_find(c, p->name);
    if (k < 0 && p->learned) continue; /* kept: it may be joining */
    if (k < 0 || strcmp(c->m[k].address, p->address) != 0)
      drop_peer(p);
    else
      p->learned = 0;
  }
  for (unsigned k = 0; k < c->n; k++) {
    if (strcmp(c->m[k].name, s->name) == 0 || find_peer(s, c->m[k].name))
      continue;
    add_peer(s, c->m[k].name, c->m[k].address, 1);
  }
}

void peers__close_all(struct server *s) {
  for (int i = 0; i < SERVER_MAX_PEERS; i++)
    if (s->peers.list[i].in_use) drop_peer(&s->peers.list[i]);
  struct inconn *ic = s->peers.inconns;
  while (ic) {
    struct inconn *next = ic->next;
    net_conn_close(ic->conn, "server is stopping");
    ic = next;
  }
}

/* ---- incoming ---- */

static void refuse(struct inconn *ic, const char *why) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  pack_reply(&sb, "error", why);
  net_conn_send(ic->conn, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  struct logger_line l;
  logger_begin(&l, &ic->s->log, LOGGER_WARN, "connection_refused");
  logger_str(&l, "peer", net_conn_peer(ic->conn));
  logger_str(&l, "reason", why);
  logger_end(&l);
  net_conn_close_after_flush(ic->conn, why);
}

/* What the TLS certificate proves, kept on ic; under TLS a server's hello
 * must name the member its certificate names. 0, or -1 and why. */
static int cert_check(struct inconn *ic, const struct proto_hello *h, char *why,
                      size_t whylen) {
  snprintf(ic->cert_name, sizeof ic->cert_name, "%s",
           net_conn_tls_name(ic->conn));
  ic->cert_role = net_conn_tls_role(ic->conn);
  if (h->role != PROTO_SERVER || !net_conn_is_tls(ic->conn)) return 0;
  if (ic->cert_role != TLS_ROLE_MEMBER) {
    snprintf(why, whylen,
             "a server must present its member certificate (this one: %s)",
             ic->cert_role == TLS_ROLE_NONE ? "none" : "a client's");
    return -1;
  }
  if (strcmp(ic->cert_name, h->name) != 0) {
    snprintf(why, whylen,
             "hello names member '%s' but the certificate names '%s'", h->name,
             ic->cert_name);
    return -1;
  }
  return 0;
}

static void hello(struct inconn *ic, const char *data, size_t len) {
  struct server *s = ic->s;
  struct proto_hello h;
  char err[256];
  if (proto_decode_hello(data, len, &h, err, sizeof err) < 0) {
    refuse(ic, err);
    return;
  }
  if (strcmp(h.cluster, s->cluster) != 0) {
    char why[256];
    snprintf(why, sizeof why,
             "wrong cluster: this server belongs to cluster '%s', the peer "
             "to '%s'",
             s->cluster, h.cluster);
    refuse(ic, why);
    return;
  }
  char why[256];
  if (cert_check(ic, &h, why, sizeof why) < 0 ||
      (h.role == PROTO_CLIENT &&
       trust__hello_token(ic, h.token, why, sizeof why) < 0)) {
    refuse(ic, why);
    return;
  }
  ic->role = h.role;
  net_conn_authenticated(ic->conn);
  snprintf(ic->name, sizeof ic->name, "%s", h.name);
  if (h.role == PROTO_SERVER && h.address[0]) learn(s, h.name, h.address);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  pack_reply(&sb, "ok", s->name); /* lets bootstrap learn names */
  net_conn_send(ic->conn, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

static void in_frame(net_conn *c, const char *data, size_t len) {
  struct inconn *ic = net_conn_data(c);
  struct server *s = ic->s;
  if (!ic->role) {
    hello(ic, data, len);
    return;
  }
  if (ic->role == PROTO_CLIENT) {
    clients__request(ic, data, len);
    return;
  }
  if (proto_is_notice(data, len)) {
    agree__notice(s, ic->name, data, len);
    return;
  }
  if (forward__is(data, len)) {
    forward__serve(ic, data, len);
    return;
  }
  struct raft_msg m;
  char err[256];
  if (proto_decode_msg(data, len, &m, err, sizeof err) < 0) {
    char why[400];
    snprintf(why, sizeof why, "malformed message from %s: %s", ic->name, err);
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_WARN, "connection_closed");
    logger_str(&l, "peer", net_conn_peer(c));
    logger_str(&l, "member", ic->name);
    logger_str(&l, "reason", why);
    logger_end(&l);
    net_conn_close(c, why);
    return;
  }
  if (strcmp(m.to, s->name) == 0 && !s->stopping && !s->in_ready) {
    /* A vote request from a member our committed configuration removed
     * is dropped below, but first answered with a Removed notice (so it
     * stops campaigning). */
    if (m.type == RAFT_MSG_VOTE) agree__vote_from(s, ic, &m);
    if (trust__raft_sender(ic, &m) == 0) {
      struct peer *p = find_peer(s, m.from);
      if (p) {
        p->heard = 1;
        p->heard_ms = uv_now(s->loop);
      }
      snapshot__test_chunk(s, &m);
      raft_step(s->raft, &m);
      server__process_soon(s);
    }
  }
  raft_msg_clear(&m);
}

static void in_close(net_conn *c, int status, const char *reason) {
  struct inconn *ic = net_conn_data(c);
  struct server *s = ic->s;
  if (status == NET_ETLS) { /* one line per refused TLS connection */
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_WARN, "tls_refused");
    logger_str(&l, "peer", net_conn_peer(c));
    logger_str(&l, "reason", reason);
    logger_end(&l);
  }
  if (!ic->role) trust__preauth_closed(s, c, status, reason);
  /* A member's connection may carry requests it forwarded: forget them. */
  if (ic->role) clients__conn_gone(s, c);
  if (ic->prev)
    ic->prev->next = ic->next;
  else
    s->peers.inconns = ic->next;
  if (ic->next) ic->next->prev = ic->prev;
  free(ic);
}

int peers__ready(const struct server *s, const char *name) {
  for (int i = 0; i < SERVER_MAX_PEERS; i++) {
    const struct peer *p = &s->peers.list[i];
    if (p->in_use && strcmp(p->name, name) == 0) return p->ready && p->conn;
  }
  return 0;
}

int peers__accept(struct server *s, net_conn *c) {
  struct inconn *ic = calloc(1, sizeof *ic);
  if (!ic) return -1;
  ic->s = s;
  ic->conn = c;
  ic->next = s->peers.inconns;
  if (s->peers.inconns) s->peers.inconns->prev = ic;
  s->peers.inconns = ic;
  net_conn_set_data(c, ic);
  static const struct net_conn_cbs cbs = {in_frame, in_close};
  net_conn_start(c, &cbs);
  return 0;
}

void peers__send_session(struct server *s, uint64_t session, const void *data,
                         size_t len) {
  for (struct inconn *ic = s->peers.inconns; ic; ic = ic->next)
    if (ic->role == PROTO_CLIENT && ic->session == session)
      net_conn_send(ic->conn, data, len);
}

void peers__metrics(const struct server *s, const struct raft_conf *c,
                    struct prom_buf *b) {
  for (int i = 0; i < SERVER_MAX_PEERS; i++) {
    const struct peer *p = &s->peers.list[i];
    if (!p->in_use || raft_conf_find(c, p->name) < 0) continue;
    const char *l[] = {"peer", p->name, NULL};
    prom_u64(b, "copycat_peer_connected", l, p->conn && p->ready ? 1 : 0);
  }
}
