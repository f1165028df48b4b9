/*
 * clients.h — client requests: waiting commands and reads, replies (clients.c).
 *
 * clients.c owns struct clients; other files use the functions below.
 */
#ifndef COPYCAT_SERVER_CLIENTS_H
#define COPYCAT_SERVER_CLIENTS_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#include "protocol/client.h"
#include "raft/raft.h"
#include "transport/net.h"

/* A client request waiting for its entry to be applied. */
struct pending {
  uint64_t index, term;
  int admin;      /* a membership change: reply ["ok", id] once committed */
  int command;    /* a client's command (counted in the metrics) */
  net_conn *conn; /* NULL once the client went away */
  uint64_t id;
  struct pending *next;
};

/* A query waiting for its read index (linearizable, lease) or for this
 * server to apply what its client has already seen (min_index). */
struct pending_read {
  uint64_t ctx;       /* the core's read context; 0 for sequential */
  uint64_t index;     /* read index, once the core confirmed it */
  uint64_t min_index; /* the client has seen this index */
  uint64_t session;
  int ready;    /* the read index is known (or not needed) */
  int redirect; /* the core refused: tell the client to go elsewhere */
  net_conn *conn;
  uint64_t id;
  struct raft_buf *req; /* msgpack [op, args] */
  struct pending_read *next;
};

/* What clients.c keeps in struct server (s->clients). */
struct clients {
  struct pending *pending, *pending_tail; /* by index, ascending */
  struct pending_read *reads;
  uint64_t next_read_ctx;
  /* Reply before events: the index being applied, and the last index
   * whose waiting clients were answered (clients__applied). */
  uint64_t applying, replied;
};

struct server;
struct inconn;

/* clients.c */
void clients__request(struct inconn *ic, const char *data, size_t len);
void clients__applied(struct server *s, uint64_t index, uint64_t term,
                      const char *reply, size_t len);
void clients__reads_ready(struct server *s, const struct raft_read_result *r,
                          size_t n);
void clients__serve_reads(struct server *s);
void clients__conn_gone(struct server *s, net_conn *c);
void clients__fail_all(struct server *s, enum cproto_code code,
                       const char *why);
/* ["error", id, msg, code] to c (nothing when c is NULL). */
void clients__reply_error(net_conn *c, uint64_t id, enum cproto_code code,
                          const char *msg);
/* The error for a core's refusal rc (not RAFT_ENOTLEADER: redirect). */
void clients__reply_raft_error(net_conn *c, uint64_t id, int rc);
void clients__redirect(struct server *s, net_conn *c, uint64_t id);
void clients__add_pending(struct server *s, net_conn *c, uint64_t id,
                          uint64_t index, int admin);
/* The index being applied (set by clients__applying) and the last one
 * whose clients were answered: equal once an entry's reply went out. */
void clients__applying(struct server *s, uint64_t index);
uint64_t clients__replied_index(const struct server *s);
uint64_t clients__applying_index(const struct server *s);

#endif
