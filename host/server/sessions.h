/*
 * sessions.h — client sessions: proposals, keep-alives, events (sessions.c).
 *
 * sessions.c owns struct sessions; other files use the functions below.
 */
#ifndef COPYCAT_SERVER_SESSIONS_H
#define COPYCAT_SERVER_SESSIONS_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#include "protocol/client.h"
#include "transport/net.h"

/* A keep-alive waiting for the next batch to be proposed. */
struct ka_wait {
  net_conn *conn;
  uint64_t id;
};

/* What sessions.c keeps in struct server (s->sessions). */
struct sessions {
  /* Keep-alives gathered since the last batch. */
  msgpack_sbuffer ka;
  uint32_t ka_n;
  struct ka_wait *ka_waits;
  size_t ka_cap;
  uint64_t last_propose_ms; /* loop time of our last proposal */
  uint64_t last_time;       /* leader's command timestamps never go back */
};

struct server;
struct inconn;

/* sessions.c */
/* Proposes [time, kind, <tail>] where tail holds n msgpack values already
 * encoded. Returns the index or a negative RAFT_E* code. */
int64_t sessions__propose(struct server *s, enum cproto_kind kind,
                          const void *tail, size_t len, uint32_t n);
/* Decoded open, keepalive and close requests (clients.c decodes). */
void sessions__open(struct inconn *ic, const struct cproto_request *q);
void sessions__keepalive(struct inconn *ic, const struct cproto_request *q);
void sessions__close(struct inconn *ic, const struct cproto_request *q);
void sessions__tick(struct server *s);
void sessions__push(struct server *s, const char *events, size_t len);
void sessions__free(struct server *s);
void sessions__init(struct server *s);
/* A committed command entry stamped with time t (ms) was applied. */
void sessions__saw_time(struct server *s, uint64_t t);
/* Answers every waiting keep-alive with code (stopping). */
void sessions__fail_all(struct server *s, enum cproto_code code,
                        const char *why);
/* Connection c went away: its waiting keep-alives are forgotten. */
void sessions__conn_gone(struct server *s, net_conn *c);

#endif
