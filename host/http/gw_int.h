/* gw_int.h — what the gateway's files share; not for other modules. */
#ifndef COPYCAT_HTTP_GW_INT_H
#define COPYCAT_HTTP_GW_INT_H

#include <h2o.h>
#include <jansson.h>
#include <msgpack.h>

#include "http/gateway.h"
#include "logger.h"
#include "protocol/client.h"
#include "transport/net.h"

#define GW_ADDR_MAX 128
#define GW_MAX_CONNS 4096        /* open HTTP connections */
#define GW_SESSION_TIMEOUT 30000 /* ms, the gateway's own session */
#define GW_STREAM_KEEPALIVE                                        \
  1000                 /* ms between an event stream's keep-alives \
                        */
#define GW_RETRY_MS 50 /* pause before a request is resent */

struct gw;
struct gw_call;
struct gw_up;

/* ---- convert.c: JSON <-> msgpack (pure) ---- */

/* Packs JSON value j as msgpack (objects as maps, integers as ints, reals
 * as doubles, null as nil). */
void gw_pack_json(msgpack_packer *pk, const json_t *j);
/* The JSON for msgpack object o (a new reference), or NULL when it cannot
 * be expressed (nesting too deep). Map keys that are not strings become
 * their JSON text; strings and binaries that are not UTF-8 become
 * {"base64": "..."}. */
json_t *gw_json_of(const msgpack_object *o);

/* ---- status.c: a server's answer as an HTTP status, by code (pure) ---- */

/* The code of a refusal's code field (a str); 0 when it names none. */
enum cproto_code gw_code_of(const msgpack_object *o);
/* The HTTP status and error code (*name) for a refusal with code: 503
 * "unavailable" for a transient one (cproto_code_transient), 500
 * "internal" for none. */
int gw_refusal_status(enum cproto_code code, const char **name);
/* The HTTP status and error code (*name) for a failed session reply
 * [false, message, code]: "unknown_op" is 404 "unknown_command",
 * "application" 422, ...; an unknown code is 500 under its own name. */
int gw_failure_status(const char *code, const char **name);

/* ---- upstream.c: native client requests with failover ---- */

/* A finished call: kind is "result" (reply = [ok, value, code?], index),
 * "ok" (reply NULL), "error" (message, with the refusal's code in
 * c->code: retries exhausted or a refusal that cannot be retried) or
 * "unavailable" (no leader before the deadline, message says why). */
typedef void (*gw_call_cb)(struct gw_call *c, const char *kind,
                           const msgpack_object *reply, uint64_t index,
                           const char *message);

struct gw_call {
  struct gw *g;
  uint64_t id;           /* request id on the current connection */
  msgpack_sbuffer req;   /* [verb, 0, fields...] with the id patched in */
  size_t id_at, id_len;  /* where the id sits in req */
  uint64_t deadline;     /* loop ms */
  int to_leader;         /* follows redirects (everything but sequential) */
  int retry_busy;        /* resend on a transient error or "sequence" */
  enum cproto_code code; /* "error": the refusal's code (0: none) */
  gw_call_cb cb;
  void *data;
  struct gw_up *up;     /* where it was sent, NULL while waiting */
  uint64_t retry_at;    /* loop ms; 0 unless waiting to be resent */
  struct gw_call *next; /* in g->calls */
  struct gw_call *prev;
  int stream; /* an event stream's: never moves to another connection;
                a redirect or a lost connection ends it ("redirect",
                "unavailable") */
};

/* A native client connection to one member. */
struct gw_up {
  struct gw *g;
  char address[GW_ADDR_MAX];
  net_conn *conn;
  int connecting, ready;
  int stream; /* dedicated to one event stream (not shared) */
  void (*on_event)(void *data, const msgpack_object *ev);
  void (*on_lost)(void *data);
  void *event_data;
  uint64_t next_id;
  struct gw_up *next;
};

/* Starts call c (filled by gw_call_new + packing into c->req). */
struct gw_call *gw_call_new(struct gw *g, const char *verb, uint32_t nfields,
                            msgpack_packer *pk);
void gw_call_start(struct gw_call *c, struct gw_up *via);
/* Forgets the callback of a call whose HTTP request went away. */
void gw_call_abandon(struct gw_call *c);
/* Finishes every call with an "error" of code. */
void gw_calls_fail_all(struct gw *g, enum cproto_code code, const char *why);
/* A dedicated connection for an event stream, to the leader. */
struct gw_up *gw_up_stream(struct gw *g);
void gw_up_close(struct gw_up *u);
void gw_ups_close_all(struct gw *g);
uint64_t gw_now(const struct gw *g);

/* ---- session.c: the gateway's own session, event streams ---- */

/* Submits op with args (msgpack bytes) in the gateway's own session,
 * exactly once, resending on failure; cb as for a call. */
void gw_own_submit(struct gw *g, const char *op, size_t oplen, const char *args,
                   size_t alen, gw_call_cb cb, void *data);
void gw_own_close(struct gw *g);
/* GET /v1/sessions/ID/events */
int gw_stream_start(struct gw *g, h2o_req_t *req, uint64_t session,
                    uint64_t last_id);
void gw_streams_close_all(struct gw *g);

/* ---- routes.c ---- */

int gw_route(struct gw *g, h2o_req_t *req);
/* JSON body with status; takes the reference of j. */
void gw_send_json(h2o_req_t *req, int status, json_t *j);
/* {"error": {"code": code, "message": msg}} */
void gw_send_error(h2o_req_t *req, int status, const char *code,
                   const char *msg);

/* ---- the gateway ---- */

struct gw_listener {
  uv_tcp_t tcp;
  struct gw *g;
  int metrics_only;
  int open;
  char address[GW_ADDR_MAX];
  h2o_accept_ctx_t accept;
};

struct gw_stream;
struct gw_sock;

struct gw_own {
  uint64_t session;    /* 0: none open */
  int opening;         /* an open is in flight */
  uint64_t next_seq;   /* next sequence number to hand out */
  uint64_t acked;      /* results received for every seq up to here */
  unsigned char *done; /* done[i]: result for seq acked+1+i received */
  size_t done_cap;
  struct own_wait *waiting; /* commands waiting for the session */
  uv_timer_t keepalive;
  int ka_inflight;
};

struct gw {
  uv_loop_t *loop;
  struct gw_opts o;
  char upstream[GW_ADDR_MAX];
  char leader[GW_ADDR_MAX]; /* where commands go; the upstream first */
  char cluster[64];
  struct logger log;
  struct server *server;
  struct tls_ctx *tls;
  h2o_globalconf_t config;
  h2o_context_t ctx;
  h2o_hostconf_t *metrics_hosts[2]; /* the metrics-only listeners' hosts */
  struct gw_listener lis[GW_MAX_LISTENERS];
  int nlis;
  unsigned conns;
  struct gw_sock *socks; /* the open HTTP connections (gateway.c) */
  struct gw_up *ups;
  struct gw_call *calls;
  uv_timer_t retry; /* resends waiting calls (upstream.c) */
  struct gw_own own;
  struct gw_stream *streams;
  int closing, closing_handles;
  void (*close_cb)(void *);
  void *close_data;
};

void gw__closed_one(struct gw *g);

#endif
