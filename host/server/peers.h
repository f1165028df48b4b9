/*
 * peers.h — connections: ours to the other members, and every incoming one
 * (peers.c).
 *
 * peers.c owns struct peers; other files use the functions below.
 */
#ifndef COPYCAT_SERVER_PEERS_H
#define COPYCAT_SERVER_PEERS_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"
#include "server/transfer.h"
#include "tls/tls.h"
#include "transport/net.h"

#define SERVER_MAX_PEERS RAFT_MAX_MEMBERS

/* Our connection to one other member, used to send it messages. */
struct peer {
  char name[RAFT_NAME_MAX];
  char address[RAFT_ADDR_MAX];
  net_conn *conn;      /* NULL while disconnected */
  int connecting;      /* a connect is under way */
  int ready;           /* hello accepted by the peer */
  unsigned backoff_ms; /* next reconnect delay */
  uint64_t retry_at;   /* loop time (ms) before which we do not redial */
  int in_use;
  int learned; /* from a hello, not (yet) in our configuration */
  struct server *conn_owner;
  /* Contact, for the operator (progress.c): loop time (ms) of the last
   * Raft message received from this member, valid once heard is set;
   * until then, the time it was added is the baseline. */
  int heard;
  uint64_t heard_ms, added_ms;
  struct transfer_log snap_out; /* a snapshot we send it */
};

/* Per incoming connection state. */
struct inconn {
  struct server *s;
  net_conn *conn;
  int role; /* 0 until the hello arrived */
  char name[RAFT_NAME_MAX];
  uint64_t session; /* the client session last named here; events go here */
  /* Who the peer proved to be with its TLS certificate (at the hello):
   * "" and TLS_ROLE_NONE without TLS or without a certificate. For a
   * server (role PROTO_SERVER) under TLS, name equals cert_name. */
  char cert_name[TLS_NAME_MAX];
  int cert_role;
  /* While serving a request a member forwarded (forward.c): the rights
   * it vouches the original client held. */
  int forwarding, forward_admin;
  int drop_logged; /* a dropped Raft message was logged (trust.c) */
  int token_admin; /* the hello carried the server's admin token */
  struct inconn *next, *prev;
};

/* What peers.c keeps in struct server (s->peers). */
struct peers {
  struct peer list[SERVER_MAX_PEERS];
  struct inconn *inconns; /* every accepted connection */
};

struct server;

/* peers.c */
void peers__sync(struct server *s);
void peers__send(struct server *s, const struct raft_msg *m);
/* Sends an encoded frame (a notice) to member `to`, if connected. */
void peers__send_frame(struct server *s, const char *to, const char *data,
                       size_t len);
void peers__close_all(struct server *s);
int peers__accept(struct server *s, net_conn *c);
/* Milliseconds since member `name` last sent us a Raft message (or, when
 * it never did, since it was added: *heard = 0), counted from no earlier
 * than loop time `floor_ms`. -1 for no such peer. */
int peers__silence(const struct server *s, const char *name, uint64_t floor_ms,
                   uint64_t *ms, int *heard);

/* peers.c, for transfer.c: member name's transfer log, NULL if none. */
struct transfer_log *peers__snap_log(struct server *s, const char *name);
/* peers.c: whether our connection to member name is up. */
int peers__ready(const struct server *s, const char *name);
/* Sends frame data to every client connection that last named session
 * `session` (its events go there). */
void peers__send_session(struct server *s, uint64_t session, const void *data,
                         size_t len);
/* copycat_peer_connected for each member of configuration c. */
struct prom_buf;
void peers__metrics(const struct server *s, const struct raft_conf *c,
                    struct prom_buf *b);

#endif
