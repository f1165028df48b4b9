/*
 * server_int.h — struct server and what the server's files share; not for
 * other modules.
 *
 * Each file of host/server owns one part of struct server, declared in its
 * own header (clients.h, sessions.h, peers.h, snapshot.h, trust.h,
 * metrics.h, forward.h, agree.h): only that file writes it; the others call
 * the functions of that header.
 */
#ifndef COPYCAT_SERVER_INT_H
#define COPYCAT_SERVER_INT_H

#include "logger.h"
#include "http/gateway.h"
#include "metrics/prom.h"
#include "protocol/client.h"
#include "protocol/mp.h"
#include "protocol/protocol.h"
#include "server/agree.h"
#include "server/clients.h"
#include "server/forward.h"
#include "server/held.h"
#include "server/metrics.h"
#include "server/peers.h"
#include "server/server.h"
#include "server/sessions.h"
#include "server/snapshot.h"
#include "server/transfer.h"
#include "server/trust.h"
#include "storage/store.h"
#include "tls/tls.h"
#include "transport/net.h"

/* The parts each file owns (its header says which); the rest is the
 * server's own, kept by server.c and ready.c. */
struct server {
  uv_loop_t *loop;
  struct logger log; /* this server's log configuration */
  struct server_opts o;
  char name[RAFT_NAME_MAX];
  char address[RAFT_ADDR_MAX];
  char cluster[PROTO_CLUSTER_MAX];
  struct raft *raft;
  struct store *store;
  net_listener *listener, *client_listener;
  struct tls_ctx *tls;   /* NULL: plain TCP; a reference */
  struct gw *http;       /* the HTTP API and metrics page, or NULL */
  int http_metrics_only; /* its first listener serves metrics only */
  uv_timer_t tick;
  uint64_t tick_start_ms; /* monotonic ms when ticking started */
  uint64_t ticks;         /* ticks given to the core since then */
  /* Runs server__process once the loop turn's I/O callbacks are done
   * (server__process_soon): requests and messages that arrived together
   * become one batch of entries, one store write, one message per peer. */
  uv_check_t soon;
  uint64_t applied; /* the state machine's index */
  char leader[RAFT_NAME_MAX];
  int role;
  uint64_t config_index; /* configuration last reported */
  /* Loop time (ms) of the last change of role or leader: the silence of a
   * member is counted from no earlier (progress.c), since before that
   * this server did not expect to hear from it. */
  uint64_t view_since_ms;
  int in_ready; /* re-entrancy guard for server__process */
  int stopping, failed;
  void (*stop_cb)(void *);
  void *stop_data;
  int closing_handles;
  msgpack_sbuffer scratch;
  msgpack_sbuffer events; /* events produced by the entry being applied */

  struct server_metrics metrics; /* metrics.c */
  struct trust trust;            /* trust.c */
  struct peers peers;            /* peers.c */
  struct clients clients;        /* clients.c */
  struct sessions sessions;      /* sessions.c */
  struct snapshots snaps;        /* snapshot*.c */
  struct agree agree;            /* agree.c, hash.c */
  struct forwards forwards;      /* forward.c */
  struct held held;              /* held.c */
};

/* Seconds since uv_hrtime() read t0. */
static inline double server__seconds_since(uint64_t t0) {
  return (double)(uv_hrtime() - t0) / 1e9;
}

/* server.c */
/* Logs a storage failure (op, msg) with what the operator must do, and
 * tells the state machine's notify hook. The caller sets s->failed. */
void server__storage_failed(struct server *s, const char *op, const char *msg);
/* "active", "passive" or "reserve". */
const char *server__type_name(int type);

/* store_close, counted as one of the closing handles. */
void server__close_store(struct server *s);
/* One of the handles closed while stopping; the last one frees s. */
void server__closed_one(struct server *s);

/* ready.c */
void server__process(struct server *s);
/* The tick timer's callback: ticks due are given to the core, then the
 * sessions' keep-alives, then server__process. */
void server__on_tick(uv_timer_t *t);
/* server__process later in this loop turn, after every I/O callback of
 * the turn (so what they fed the core is handled together). */
void server__process_soon(struct server *s);
/* An info line with the formatted text as its msg field, and the same
 * (event, text) to the state machine's notify hook. Prefer structured
 * lines (logger_begin ... logger_end on s->log). */
void server__log(struct server *s, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Logs a membership or leadership request (verb "change", "remove",
 * "transfer") and the core's answer rc; nothing when rc says another
 * member leads. address may be NULL, type 0. */
void server__log_request(struct server *s, const char *verb, const char *name,
                         const char *address, int type, int rc);
/* The state machine's notify hook, if any (event, human detail). */
void server__notify(struct server *s, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void server__catch_up(struct server *s);

#endif
