/*
 * upstream.c — the gateway's native client connections (docs/protocol.md).
 *
 * A call is one native request. It goes to the member the gateway
 * believes leads (this server's own address at first); a redirect names
 * the leader and the call is resent there at once; a lost connection, a
 * redirect without a leader, or an error whose code is transient
 * (cproto_code_transient, never its message) resends it after
 * GW_RETRY_MS, until its deadline. Commands carry a session and a
 * sequence number, so resending one is exactly-once; queries and
 * keep-alives are idempotent. A call's callback runs exactly once.
 *
 * Connections are shared by all calls and multiplex them by request id,
 * except the ones made for an event stream (the server pushes a session's
 * events to the connection that last named it).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "http/gw_int.h"
#include "protocol/protocol.h"
#include "server/server.h"

static void send_call(struct gw_call *c, struct gw_up *u);
static void retry_later(struct gw_call *c);
static void lost(struct gw_up *u, const char *reason);

static void connect_failed(struct gw_up *u, const char *reason) {
  lost(u, reason);
}

uint64_t gw_now(const struct gw *g) {
  return uv_now(g->loop);
}

/* ---- calls ---- */

struct gw_call *gw_call_new(struct gw *g, const char *verb, uint32_t nfields,
                            msgpack_packer *pk) {
  struct gw_call *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->g = g;
  c->to_leader = 1;
  c->deadline = gw_now(g) + 4 * g->o.election_ms + 2000;
  msgpack_sbuffer_init(&c->req);
  msgpack_packer_init(pk, &c->req, msgpack_sbuffer_write);
  msgpack_pack_array(pk, 2 + nfields);
  msgpack_pack_str(pk, strlen(verb));
  msgpack_pack_str_body(pk, verb, strlen(verb));
  /* The id as a fixed 9-byte uint64, patched before each send. */
  c->id_at = c->req.size;
  c->id_len = 9;
  msgpack_sbuffer_write(&c->req, "\xcf\0\0\0\0\0\0\0\0", 9);
  return c;
}

static void unlink_call(struct gw_call *c) {
  struct gw *g = c->g;
  if (c->prev)
    c->prev->next = c->next;
  else if (g->calls == c)
    g->calls = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

static void finish(struct gw_call *c, const char *kind,
                   const msgpack_object *reply, uint64_t index,
                   const char *message) {
  assert(strcmp(kind, "error") != 0 || message);
  unlink_call(c);
  gw_call_cb cb = c->cb;
  c->cb = NULL;
  if (cb) cb(c, kind, reply, index, message);
  msgpack_sbuffer_destroy(&c->req);
  free(c);
}

void gw_call_abandon(struct gw_call *c) {
  c->cb = NULL;
}

/* ---- connections ---- */

static void on_frame(net_conn *nc, const char *data, size_t len);
static void on_close(net_conn *nc, int status, const char *reason);
static const struct net_conn_cbs up_cbs = {on_frame, on_close};

static void on_connect(void *data, net_conn *nc, int status,
                       const char *reason) {
  struct gw_up *u = data;
  u->connecting = 0;
  if (!nc) {
    (void)status;
    struct logger_line l;
    logger_begin(&l, &u->g->log, LOGGER_DEBUG, "gateway_upstream_failed");
    logger_str(&l, "address", u->address);
    logger_str(&l, "reason", reason);
    logger_end(&l);
    connect_failed(u, reason);
    return;
  }
  u->conn = nc;
  net_conn_set_data(nc, u);
  net_conn_start(nc, &up_cbs);
  struct proto_hello h;
  memset(&h, 0, sizeof h);
  h.version = PROTO_VERSION;
  snprintf(h.cluster, sizeof h.cluster, "%s", u->g->cluster);
  h.role = PROTO_CLIENT;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  proto_encode_hello(&sb, &h);
  net_conn_send(nc, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

static void free_up(struct gw_up *u) {
  struct gw *g = u->g;
  for (struct gw_up **pp = &g->ups; *pp; pp = &(*pp)->next)
    if (*pp == u) {
      *pp = u->next;
      break;
    }
  free(u);
}

/* The connection to u is gone (or never came): its calls are resent. */
static void lost(struct gw_up *u, const char *reason) {
  struct gw *g = u->g;
  if (strcmp(g->leader, u->address) == 0) {
    /* The leader we knew may be down: ask this server who leads now. */
    const char *l = g->server ? server_leader_address(g->server) : "";
    snprintf(g->leader, sizeof g->leader, "%s",
             l[0] && strcmp(l, u->address) != 0 ? l : g->upstream);
  }
  struct gw_call *next;
  for (struct gw_call *c = g->calls; c; c = next) {
    next = c->next; /* retry_later may finish (free) c */
    if (c->up == u) {
      c->up = NULL;
      retry_later(c);
    }
  }
  if (u->stream && u->on_lost) u->on_lost(u->event_data);
  (void)reason;
  free_up(u);
}

static struct gw_up *up_new(struct gw *g, const char *address, int stream) {
  struct gw_up *u = calloc(1, sizeof *u);
  if (!u) return NULL;
  u->g = g;
  u->stream = stream;
  snprintf(u->address, sizeof u->address, "%s", address);
  struct net_conn_opts o = {.tls = g->tls};
  u->connecting = 1;
  u->next = g->ups;
  g->ups = u;
  int rc = net_connect(g->loop, address, &o, on_connect, u);
  if (rc < 0) {
    u->connecting = 0;
    return u; /* no conn: callers see !ready && !connecting */
  }
  return u;
}

static struct gw_up *up_for(struct gw *g, const char *address) {
  for (struct gw_up *u = g->ups; u; u = u->next)
    if (!u->stream && strcmp(u->address, address) == 0) return u;
  return up_new(g, address, 0);
}

struct gw_up *gw_up_stream(struct gw *g) {
  return up_new(g, g->leader, 1);
}

void gw_up_close(struct gw_up *u) {
  u->on_event = NULL;
  u->on_lost = NULL;
  if (u->conn)
    net_conn_close(u->conn, "gateway: stream ended");
  else if (!u->connecting)
    free_up(u);
  else
    u->stream = 2; /* closed as soon as the connect completes */
}

static void on_close(net_conn *nc, int status, const char *reason) {
  if (!nc) return;
  struct gw_up *u = net_conn_data(nc);
  (void)status;
  if (!u) return;
  u->conn = NULL;
  u->ready = 0;
  lost(u, reason);
}

static const msgpack_object *item(const msgpack_object *a, uint32_t i) {
  return i < a->via.array.size ? &a->via.array.ptr[i] : NULL;
}

static int is_str(const msgpack_object *o, const char *s) {
  return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
         memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static void copy_str(const msgpack_object *o, char *out, size_t n) {
  out[0] = 0;
  if (o && o->type == MSGPACK_OBJECT_STR) {
    size_t k = o->via.str.size < n - 1 ? o->via.str.size : n - 1;
    memcpy(out, o->via.str.ptr, k);
    out[k] = 0;
  }
}

/* A reply [ok, value, more_or_code] whose value is nil may arrive as a
 * map {1: ok, 3: more} (a Lua table with a hole): make it an array in
 * *out, whose items are in items[3]. */
static const msgpack_object *norm_reply(const msgpack_object *r,
                                        msgpack_object *out,
                                        msgpack_object items[3]) {
  if (!r || r->type != MSGPACK_OBJECT_MAP) return r;
  uint32_t n = 0;
  for (int i = 0; i < 3; i++)
    items[i].type = MSGPACK_OBJECT_NIL;
  for (uint32_t i = 0; i < r->via.map.size; i++) {
    const msgpack_object *k = &r->via.map.ptr[i].key;
    if (k->type != MSGPACK_OBJECT_POSITIVE_INTEGER || k->via.u64 < 1 ||
        k->via.u64 > 3)
      return r;
    items[k->via.u64 - 1] = r->via.map.ptr[i].val;
    if (k->via.u64 > n) n = (uint32_t)k->via.u64;
  }
  out->type = MSGPACK_OBJECT_ARRAY;
  out->via.array.size = n;
  out->via.array.ptr = items;
  return out;
}

static void handle_reply(struct gw_up *u, const msgpack_object *m) {
  struct gw *g = u->g;
  const msgpack_object *verb = item(m, 0), *id = item(m, 1);
  if (is_str(verb, "event")) {
    if (u->on_event) u->on_event(u->event_data, m);
    return;
  }
  if (!id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return;
  struct gw_call *c = g->calls;
  while (c && !(c->up == u && c->id == id->via.u64))
    c = c->next;
  if (!c) return; /* answered already (resent elsewhere) */
  c->up = NULL;
  if (is_str(verb, "result")) {
    msgpack_object arr, items[3];
    const msgpack_object *reply = norm_reply(item(m, 2), &arr, items);
    const msgpack_object *index = item(m, 3);
    const msgpack_object *code =
        reply && reply->type == MSGPACK_OBJECT_ARRAY ? item(reply, 2) : NULL;
    if (c->retry_busy && reply && reply->type == MSGPACK_OBJECT_ARRAY &&
        reply->via.array.size >= 1 &&
        reply->via.array.ptr[0].type == MSGPACK_OBJECT_BOOLEAN &&
        !reply->via.array.ptr[0].via.boolean && is_str(code, "sequence")) {
      retry_later(c); /* an earlier command of the session is on its way */
      return;
    }
    finish(c, "result", reply,
           index && index->type == MSGPACK_OBJECT_POSITIVE_INTEGER
               ? index->via.u64
               : 0,
           NULL);
  } else if (is_str(verb, "ok")) {
    finish(c, "ok", NULL, 0, NULL);
  } else if (is_str(verb, "redirect")) {
    char to[GW_ADDR_MAX];
    copy_str(item(m, 2), to, sizeof to);
    if (c->stream) {
      if (to[0]) snprintf(g->leader, sizeof g->leader, "%s", to);
      finish(c, "redirect", NULL, 0, to);
    } else if (!c->to_leader) {
      finish(c, "unavailable", NULL, 0, "no leader");
    } else if (to[0] && strcmp(to, u->address) != 0) {
      snprintf(g->leader, sizeof g->leader, "%s", to);
      if (gw_now(g) > c->deadline)
        finish(c, "unavailable", NULL, 0,
               "no leader answered before the deadline");
      else
        send_call(c, up_for(g, to));
    } else {
      retry_later(c); /* an election is going on */
    }
  } else if (is_str(verb, "error")) {
    char msg[512];
    copy_str(item(m, 2), msg, sizeof msg);
    c->code = gw_code_of(item(m, 3));
    if (c->retry_busy && cproto_code_transient(c->code))
      retry_later(c);
    else
      finish(c, "error", NULL, 0, msg);
  }
}

static void on_frame(net_conn *nc, const char *data, size_t len) {
  struct gw_up *u = net_conn_data(nc);
  msgpack_unpacked up;
  msgpack_unpacked_init(&up);
  size_t off = 0;
  if (msgpack_unpack_next(&up, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
      up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size == 0) {
    msgpack_unpacked_destroy(&up);
    net_conn_close(nc, "gateway: malformed frame from the server");
    return;
  }
  const msgpack_object *m = &up.data;
  if (!u->ready) {
    if (is_str(item(m, 0), "ok")) {
      u->ready = 1;
      if (u->stream == 2) {
        net_conn_close(nc, "gateway: stream ended");
      } else {
        struct gw_call *next;
        for (struct gw_call *c = u->g->calls; c; c = next) {
          next = c->next; /* send_call may finish (free) c */
          if (c->up == u && c->id == 0) send_call(c, u);
        }
      }
    } else {
      char msg[256];
      copy_str(item(m, 1), msg, sizeof msg);
      net_conn_close(nc, msg[0] ? msg : "gateway: hello refused");
    }
  } else {
    handle_reply(u, m);
  }
  msgpack_unpacked_destroy(&up);
}

/* Sends (or queues, while u connects) c on u. */
static void send_call(struct gw_call *c, struct gw_up *u) {
  if (!u || (!u->connecting && !u->conn)) {
    if (u && !u->stream) free_up(u);
    c->up = NULL;
    retry_later(c);
    return;
  }
  c->up = u;
  c->id = 0;
  if (!u->ready) return; /* sent when the hello is answered */
  c->id = ++u->next_id;
  unsigned char *p = (unsigned char *)c->req.data + c->id_at + 1;
  for (int i = 7; i >= 0; i--)
    p[7 - i] = (unsigned char)(c->id >> (8 * i));
  if (net_conn_send(u->conn, c->req.data, c->req.size) < 0) {
    c->up = NULL;
    retry_later(c);
  }
}

/* ---- retries: one timer for the calls waiting to be resent ---- */

static void on_retry(uv_timer_t *t) {
  struct gw *g = t->data;
  uint64_t now = gw_now(g);
  struct gw_call *c = g->calls;
  int waiting = 0;
  while (c) {
    struct gw_call *next = c->next;
    if (c->up == NULL && c->retry_at) {
      if (now >= c->deadline) {
        finish(c, "unavailable", NULL, 0,
               "the cluster did not answer before the deadline (no leader, "
               "or no quorum)");
      } else if (now >= c->retry_at) {
        c->retry_at = 0;
        send_call(c, up_for(g, c->to_leader ? g->leader : g->upstream));
      } else {
        waiting = 1;
      }
    }
    c = next;
  }
  for (c = g->calls; c && !waiting; c = c->next)
    if (c->up == NULL && c->retry_at) waiting = 1;
  if (!waiting) uv_timer_stop(t);
}

static void retry_later(struct gw_call *c) {
  struct gw *g = c->g;
  c->up = NULL;
  if (c->stream) {
    finish(c, "unavailable", NULL, 0, "the connection was lost");
    return;
  }
  c->retry_at = gw_now(g) + GW_RETRY_MS;
  if (!uv_is_active((uv_handle_t *)&g->retry))
    uv_timer_start(&g->retry, on_retry, GW_RETRY_MS / 2, GW_RETRY_MS / 2);
}

void gw_call_start(struct gw_call *c, struct gw_up *via) {
  struct gw *g = c->g;
  c->next = g->calls;
  if (g->calls) g->calls->prev = c;
  g->calls = c;
  if (g->closing) {
    c->code = CPROTO_ESTOPPING;
    finish(c, "error", NULL, 0, "server is stopping");
    return;
  }
  send_call(c, via ? via : up_for(g, c->to_leader ? g->leader : g->upstream));
}

void gw_calls_fail_all(struct gw *g, enum cproto_code code, const char *why) {
  while (g->calls) {
    g->calls->code = code;
    finish(g->calls, "error", NULL, 0, why);
  }
}

void gw_ups_close_all(struct gw *g) {
  for (struct gw_up *u = g->ups; u; u = u->next) {
    u->on_event = NULL;
    u->on_lost = NULL;
    if (u->conn) {
      net_conn_set_data(u->conn, NULL);
      net_conn_close(u->conn, "gateway: stopping");
      u->conn = NULL;
    }
  }
  /* Connects still under way find their gw_up gone only if we freed it:
   * keep those (they close on completion, stream == 2). */
  struct gw_up **pp = &g->ups;
  while (*pp) {
    struct gw_up *u = *pp;
    if (u->connecting) {
      u->stream = 2;
      pp = &u->next;
    } else {
      *pp = u->next;
      free(u);
    }
  }
}
