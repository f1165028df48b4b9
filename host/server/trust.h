/*
 * trust.h — who may do what: Raft senders, admin rights, bounds before the
 * hello (trust.c).
 *
 * trust.c owns struct trust; other files use the functions below.
 */
#ifndef COPYCAT_SERVER_TRUST_H
#define COPYCAT_SERVER_TRUST_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/prom.h"
#include "protocol/protocol.h"
#include "raft/raft.h"
#include "transport/net.h"

/* Why a Raft message was dropped (trust.c). */
enum { TRUST_DROP_SENDER = 0, TRUST_DROP_NOT_MEMBER, TRUST_DROP_REASONS };
/* Why a connection was closed before its hello (trust.c). */
enum {
  TRUST_PREAUTH_TIMEOUT = 0,
  TRUST_PREAUTH_OVERSIZED,
  TRUST_PREAUTH_REASONS
};
#define SERVER_PREAUTH_MAX_FRAME (64u << 10) /* before the hello */

/* What trust.c keeps in struct server (s->trust). */
struct trust {
  char admin_token[PROTO_TOKEN_MAX]; /* "": none */
  uint64_t raft_dropped[TRUST_DROP_REASONS];
  uint64_t admin_denied;
  uint64_t preauth_closed[TRUST_PREAUTH_REASONS];
  uint64_t preauth_logged_ms, preauth_unlogged;
};

struct server;
struct inconn;

/* trust.c */
/* 0 if the Raft message m may be stepped: its sender is the member ic
 * authenticated as and a member of the configuration (or this server
 * knows none yet); else -1, counted and logged once per connection. */
int trust__raft_sender(struct inconn *ic, const struct raft_msg *m);
void trust__metrics(struct server *s, struct prom_buf *b);
/* Whether ic holds admin rights (membership and leadership requests). */
int trust__may_admin(const struct inconn *ic);
/* 0 if ic may send the admin request `verb`; else -1 after answering
 * request id with the error code "denied" (counted and logged). */
int trust__admin_check(struct inconn *ic, uint64_t id, const char *verb);
/* A client's hello token: 0 (none, or the server's: ic->token_admin set)
 * or -1 with why (a wrong token refuses the hello). */
int trust__hello_token(struct inconn *ic, const char *token, char *why,
                       size_t whylen);
/* The preauth bounds of the server's listeners, into o. */
void trust__listen_opts(const struct server *s, struct net_conn_opts *o);
/* A connection without an accepted hello closed (status, reason): counts
 * and logs (at most a line a second) the ones the bounds closed. */
void trust__preauth_closed(struct server *s, net_conn *c, int status,
                           const char *reason);
/* Keeps a copy of the admin token (NULL: none). 0, or -1 with why when
 * it is too long. */
int trust__init(struct server *s, const char *admin_token, char *err,
                size_t errlen);

#endif
