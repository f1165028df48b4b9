/*
 * forward.h — client requests a follower relays to the leader (forward.c).
 *
 * forward.c owns struct forwards.
 */
#ifndef COPYCAT_SERVER_FORWARD_H
#define COPYCAT_SERVER_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "transport/net.h"

/* What forward.c keeps in struct server (s->forwards). */
struct forwards {
  struct fwd *list; /* requests forwarded to the leader */
  uint64_t next_id;
};

struct server;
struct inconn;

/* forward.c: client requests a follower relays to the leader. */
/* Forwards the request (or redirects when the leader cannot be reached)
 * and returns 1, or returns 0 when this server serves it itself. id_at
 * and rest: offsets of the id and of what follows it in data. */
int forward__request(struct inconn *ic, const char *verb, uint64_t id,
                     const char *data, size_t len, size_t id_at, size_t rest);
/* A ["forward", admin, request] frame from a member (leader side). */
int forward__is(const char *data, size_t len);
void forward__serve(struct inconn *ic, const char *data, size_t len);
/* An answer on our connection to the leader: 1 if it was one (relayed). */
int forward__reply(struct server *s, const char *data, size_t len);
void forward__peer_lost(struct server *s, const char *name);
void forward__conn_gone(struct server *s, net_conn *c);
void forward__free(struct server *s);

#endif
