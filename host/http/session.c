/*
 * session.c — the gateway's own session, and event streams.
 *
 * A command sent without Copycat-Session runs in the gateway's own
 * session: opened on first use, kept alive every GW_SESSION_TIMEOUT/4 ms,
 * numbered in arrival order, resent with the same number until answered.
 * So each such request is applied once; a caller that resends the HTTP
 * request after a lost answer sends a new command (docs/http.md: use a
 * session of your own for exactly-once across your retries). When a
 * command of that session gives up (no leader before its deadline), the
 * gateway cannot know whether it was logged, so later commands go to a
 * new session and the old one is left to expire.
 *
 * An event stream (GET /v1/sessions/ID/events) has its own upstream
 * connection to the leader, names its session there with a keep-alive
 * every GW_STREAM_KEEPALIVE ms (so an open stream keeps its session
 * alive), and writes each event once, in order, as a Server-Sent Event
 * whose id is the event's number. Keep-alives carry the Last-Event-ID the
 * caller gave as its event acknowledgement: events after it are kept by
 * the cluster, so a caller that reconnects with Last-Event-ID gets every
 * later event (once it acknowledges with POST .../keepalive
 * {"event_ack": N} or by reconnecting, the cluster drops them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/gw_int.h"

/* ---- the gateway's own session ---- */

struct own_wait {
  struct gw *g;
  char *op;
  size_t oplen;
  char *args;
  size_t alen;
  gw_call_cb cb;
  void *data;
  uint64_t session, seq;
  struct own_wait *next;
};

static void own_send(struct gw *g, struct own_wait *w);
static void own_open(struct gw *g);

static void own_free(struct own_wait *w) {
  free(w->op);
  free(w->args);
  free(w);
}

static void own_queue(struct gw *g, struct own_wait *w) {
  w->next = g->own.waiting;
  g->own.waiting = w;
  if (!g->own.session) own_open(g);
}

/* Marks seq's result received and moves acked over the done ones. */
static void own_done_seq(struct gw_own *o, uint64_t seq) {
  if (seq <= o->acked) return;
  size_t i = (size_t)(seq - o->acked - 1);
  if (i >= o->done_cap) {
    size_t cap = o->done_cap ? o->done_cap : 64;
    while (cap <= i)
      cap *= 2;
    unsigned char *d = realloc(o->done, cap);
    if (!d) return; /* acked lags: cached results wait for a later ack */
    memset(d + o->done_cap, 0, cap - o->done_cap);
    o->done = d;
    o->done_cap = cap;
  }
  o->done[i] = 1;
  size_t k = 0;
  while (k < o->done_cap && o->done[k])
    k++;
  if (k) {
    memmove(o->done, o->done + k, o->done_cap - k);
    memset(o->done + o->done_cap - k, 0, k);
    o->acked += k;
  }
}

static void own_reset(struct gw *g) {
  g->own.session = 0;
  g->own.next_seq = 0;
  g->own.acked = 0;
  if (g->own.done) memset(g->own.done, 0, g->own.done_cap);
  uv_timer_stop(&g->own.keepalive);
}

static int reply_code_is(const msgpack_object *r, const char *code) {
  if (!r || r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size < 3) return 0;
  const msgpack_object *c = &r->via.array.ptr[2];
  return c->type == MSGPACK_OBJECT_STR && c->via.str.size == strlen(code) &&
         memcmp(c->via.str.ptr, code, c->via.str.size) == 0;
}

static void own_answer(struct gw_call *c, const char *kind,
                       const msgpack_object *reply, uint64_t index,
                       const char *message) {
  struct own_wait *w = c->data;
  struct gw *g = w->g;
  int current = w->session == g->own.session && w->session != 0;
  if (strcmp(kind, "result") == 0 && reply_code_is(reply, "expired") &&
      !g->closing) {
    /* Not applied: the session is gone. Run it in a new one. */
    if (current) own_reset(g);
    w->session = w->seq = 0;
    own_queue(g, w);
    return;
  }
  if (strcmp(kind, "result") == 0 || strcmp(kind, "ok") == 0) {
    if (current) own_done_seq(&g->own, w->seq);
  } else if (current) {
    own_reset(g); /* may or may not be logged: later ones go elsewhere */
  }
  c->data = w->data;
  w->cb(c, kind, reply, index, message);
  own_free(w);
}

static void own_send(struct gw *g, struct own_wait *w) {
  msgpack_packer pk;
  struct gw_call *c = gw_call_new(g, "submit", 5, &pk);
  if (!c) {
    struct gw_call fake = {.g = g, .data = w->data};
    w->cb(&fake, "unavailable", NULL, 0, "out of memory");
    own_free(w);
    return;
  }
  w->session = g->own.session;
  w->seq = ++g->own.next_seq;
  c->retry_busy = 1;
  msgpack_pack_uint64(&pk, w->session);
  msgpack_pack_uint64(&pk, w->seq);
  msgpack_pack_uint64(&pk, g->own.acked);
  msgpack_pack_str(&pk, w->oplen);
  msgpack_pack_str_body(&pk, w->op, w->oplen);
  msgpack_sbuffer_write(&c->req, w->args, w->alen);
  c->cb = own_answer;
  c->data = w;
  gw_call_start(c, NULL);
}

static void own_flush(struct gw *g) {
  /* waiting is newest first: reverse, so commands keep their order */
  struct own_wait *rev = NULL;
  while (g->own.waiting) {
    struct own_wait *w = g->own.waiting;
    g->own.waiting = w->next;
    w->next = rev;
    rev = w;
  }
  while (rev) {
    struct own_wait *w = rev;
    rev = w->next;
    own_send(g, w);
  }
}

/* Finishes the waiting commands with kind ("error": of code). */
static void own_fail_waiting(struct gw *g, const char *kind,
                             enum cproto_code code, const char *msg) {
  while (g->own.waiting) {
    struct own_wait *w = g->own.waiting;
    g->own.waiting = w->next;
    struct gw_call fake = {.g = g, .data = w->data, .code = code};
    w->cb(&fake, kind, NULL, 0, msg);
    own_free(w);
  }
}

static void on_own_keepalive(uv_timer_t *t);

static void own_opened(struct gw_call *c, const char *kind,
                       const msgpack_object *reply, uint64_t index,
                       const char *message) {
  struct gw *g = c->g;
  (void)index;
  g->own.opening = 0;
  if (g->closing) return;
  const msgpack_object *v =
      reply && reply->type == MSGPACK_OBJECT_ARRAY && reply->via.array.size >= 2
          ? &reply->via.array.ptr[1]
          : NULL;
  if (strcmp(kind, "result") != 0 || !v ||
      reply->via.array.ptr[0].type != MSGPACK_OBJECT_BOOLEAN ||
      !reply->via.array.ptr[0].via.boolean ||
      v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
    own_fail_waiting(
        g, "unavailable", 0,
        message ? message : "the gateway could not open its session");
    return;
  }
  own_reset(g);
  g->own.session = v->via.u64;
  uv_timer_start(&g->own.keepalive, on_own_keepalive, GW_SESSION_TIMEOUT / 4,
                 GW_SESSION_TIMEOUT / 4);
  own_flush(g);
}

static void own_open(struct gw *g) {
  if (g->own.opening || g->closing) return;
  msgpack_packer pk;
  struct gw_call *c = gw_call_new(g, "open", 1, &pk);
  if (!c) {
    own_fail_waiting(g, "unavailable", 0, "out of memory");
    return;
  }
  g->own.opening = 1;
  c->retry_busy = 1;
  msgpack_pack_uint64(&pk, GW_SESSION_TIMEOUT);
  c->cb = own_opened;
  gw_call_start(c, NULL);
}

static void own_ka_done(struct gw_call *c, const char *kind,
                        const msgpack_object *reply, uint64_t index,
                        const char *message) {
  struct gw *g = c->g;
  uint64_t session = (uint64_t)(uintptr_t)c->data;
  (void)index;
  (void)message;
  g->own.ka_inflight = 0;
  if (strcmp(kind, "result") != 0 || !reply ||
      reply->type != MSGPACK_OBJECT_ARRAY || reply->via.array.size < 2)
    return;
  const msgpack_object *gone = &reply->via.array.ptr[1];
  if (gone->type != MSGPACK_OBJECT_ARRAY) return;
  for (uint32_t i = 0; i < gone->via.array.size; i++)
    if (gone->via.array.ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        gone->via.array.ptr[i].via.u64 == session && session == g->own.session)
      own_reset(g); /* expired: the next command opens a new one */
}

static void on_own_keepalive(uv_timer_t *t) {
  struct gw *g = t->data;
  if (!g->own.session || g->own.ka_inflight || g->closing) return;
  msgpack_packer pk;
  struct gw_call *c = gw_call_new(g, "keepalive", 3, &pk);
  if (!c) return;
  msgpack_pack_uint64(&pk, g->own.session);
  msgpack_pack_uint64(&pk, g->own.acked);
  msgpack_pack_uint64(&pk, 1ull << 53); /* events to it are not read */
  c->cb = own_ka_done;
  c->data = (void *)(uintptr_t)g->own.session;
  g->own.ka_inflight = 1;
  gw_call_start(c, NULL);
}

void gw_own_submit(struct gw *g, const char *op, size_t oplen, const char *args,
                   size_t alen, gw_call_cb cb, void *data) {
  struct own_wait *w = calloc(1, sizeof *w);
  if (w) {
    w->op = malloc(oplen ? oplen : 1);
    w->args = malloc(alen ? alen : 1);
  }
  if (!w || !w->op || !w->args) {
    if (w) own_free(w);
    struct gw_call fake = {.g = g, .data = data};
    cb(&fake, "unavailable", NULL, 0, "out of memory");
    return;
  }
  memcpy(w->op, op, oplen);
  memcpy(w->args, args, alen);
  w->g = g;
  w->oplen = oplen;
  w->alen = alen;
  w->cb = cb;
  w->data = data;
  if (g->own.session)
    own_send(g, w);
  else
    own_queue(g, w);
}

void gw_own_close(struct gw *g) {
  own_fail_waiting(g, "error", CPROTO_ESTOPPING, "server is stopping");
  uv_timer_stop(&g->own.keepalive);
  free(g->own.done);
  g->own.done = NULL;
  g->own.done_cap = 0;
}

/* ---- event streams ---- */

struct gw_stream {
  h2o_generator_t gen; /* first: H2O hands it back */
  struct gw *g;
  h2o_req_t *req; /* NULL once the caller went away */
  uint64_t session;
  uint64_t last_sent; /* event number last written */
  uint64_t event_ack; /* the caller's Last-Event-ID */
  struct gw_up *up;
  int ka_inflight;
  struct gw_call *ka_call; /* the keep-alive in flight */
  uv_timer_t timer;
  char *out; /* bytes waiting to be written */
  size_t outlen, outcap;
  char *inflight; /* bytes H2O is writing */
  int ended;      /* closed: the stream is finishing */
  int finishing;  /* the session is gone: the last bytes, then the end */
  struct gw_stream *next;
};

static void stream_flush(struct gw_stream *st) {
  if (!st->req || st->inflight || st->outlen == 0 || st->finishing) return;
  st->inflight = st->out;
  h2o_iovec_t buf = h2o_iovec_init(st->out, st->outlen);
  st->out = NULL;
  st->outlen = st->outcap = 0;
  h2o_send(st->req, &buf, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void stream_write(struct gw_stream *st, const char *s, size_t n) {
  if (st->outlen + n > st->outcap) {
    size_t cap = st->outcap ? st->outcap : 256;
    while (cap < st->outlen + n)
      cap *= 2;
    char *p = realloc(st->out, cap);
    if (!p) return;
    st->out = p;
    st->outcap = cap;
  }
  memcpy(st->out + st->outlen, s, n);
  st->outlen += n;
  stream_flush(st);
}

static void on_timer_closed(uv_handle_t *h) {
  struct gw_stream *st = h->data;
  free(st->out);
  free(st->inflight);
  free(st);
}

static void stream_end(struct gw_stream *st) {
  if (st->ended) return;
  st->ended = 1;
  struct gw *g = st->g;
  for (struct gw_stream **pp = &g->streams; *pp; pp = &(*pp)->next)
    if (*pp == st) {
      *pp = st->next;
      break;
    }
  if (st->ka_call) gw_call_abandon(st->ka_call);
  st->ka_call = NULL;
  if (st->up) gw_up_close(st->up);
  st->up = NULL;
  uv_timer_stop(&st->timer);
  uv_close((uv_handle_t *)&st->timer, on_timer_closed);
}

/* Sends what is left with the end of the stream (once nothing is in
 * flight: on_proceed calls it again) and forgets the request. The bytes
 * go into the request's pool, which H2O frees when it is done. */
static void stream_final(struct gw_stream *st) {
  if (!st->req || st->inflight) return;
  h2o_req_t *req = st->req;
  h2o_iovec_t buf = h2o_iovec_init(
      h2o_mem_alloc_pool(&req->pool, st->outlen + 1), st->outlen);
  memcpy(buf.base, st->out ? st->out : "", st->outlen);
  st->req = NULL;
  stream_end(st);
  h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req) {
  struct gw_stream *st = (struct gw_stream *)gen;
  (void)req;
  free(st->inflight);
  st->inflight = NULL;
  if (st->finishing)
    stream_final(st);
  else
    stream_flush(st);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req) {
  struct gw_stream *st = (struct gw_stream *)gen;
  (void)req;
  st->req = NULL;
  stream_end(st);
}

static void stream_keepalive(struct gw_stream *st);
static void stream_lost(void *data);
static void stream_final(struct gw_stream *st);

static void stream_event(void *data, const msgpack_object *ev) {
  struct gw_stream *st = data;
  /* ["event", session, seq, name, data] */
  if (ev->via.array.size != 5) return;
  const msgpack_object *s = &ev->via.array.ptr[1], *q = &ev->via.array.ptr[2],
                       *name = &ev->via.array.ptr[3];
  if (s->type != MSGPACK_OBJECT_POSITIVE_INTEGER || s->via.u64 != st->session ||
      q->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return;
  uint64_t seq = q->via.u64;
  if (seq <= st->last_sent || st->finishing) return; /* a resend */
  if (seq > st->last_sent + 1) {
    stream_keepalive(st); /* a gap: the cluster resends what we lack */
    return;
  }
  json_t *j = gw_json_of(&ev->via.array.ptr[4]);
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  /* The name on one line (a newline would break the framing). */
  char ev_name[100] = "message";
  if (name->type == MSGPACK_OBJECT_STR && name->via.str.size > 0 &&
      name->via.str.size < sizeof ev_name) {
    memcpy(ev_name, name->via.str.ptr, name->via.str.size);
    ev_name[name->via.str.size] = 0;
    for (char *p = ev_name; *p; p++)
      if (*p == '\r' || *p == '\n') *p = ' ';
  }
  char head[160];
  int n =
      snprintf(head, sizeof head,
               "id: %llu\nevent: %s\ndata: ", (unsigned long long)seq, ev_name);
  stream_write(st, head, (size_t)n);
  stream_write(st, text ? text : "null", text ? strlen(text) : 4);
  stream_write(st, "\n\n", 2);
  free(text);
  st->last_sent = seq;
}

static void stream_reconnect(struct gw_stream *st) {
  if (st->up) gw_up_close(st->up);
  st->up = gw_up_stream(st->g);
  if (st->up) {
    st->up->on_event = stream_event;
    st->up->on_lost = stream_lost;
    st->up->event_data = st;
  }
}

static void stream_lost(void *data) {
  struct gw_stream *st = data;
  st->up = NULL; /* freed by upstream.c; the timer reconnects */
}

static void stream_ka_done(struct gw_call *c, const char *kind,
                           const msgpack_object *reply, uint64_t index,
                           const char *message) {
  struct gw_stream *st = c->data;
  (void)index;
  (void)message;
  if (!st) return;
  st->ka_inflight = 0;
  st->ka_call = NULL;
  if (strcmp(kind, "redirect") == 0) {
    stream_reconnect(st); /* g->leader was updated: go there */
    return;
  }
  if (strcmp(kind, "result") != 0 || !reply ||
      reply->type != MSGPACK_OBJECT_ARRAY || reply->via.array.size < 2)
    return;
  const msgpack_object *gone = &reply->via.array.ptr[1];
  if (gone->type != MSGPACK_OBJECT_ARRAY) return;
  for (uint32_t i = 0; i < gone->via.array.size; i++)
    if (gone->via.array.ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        gone->via.array.ptr[i].via.u64 == st->session) {
      static const char msg[] =
          "event: session_closed\ndata: {\"code\":\"session_not_found\","
          "\"message\":\"the session is not open: it expired or was "
          "closed\"}\n\n";
      st->finishing = 1;
      stream_write(st, msg, sizeof msg - 1);
      stream_final(st);
      return;
    }
}

static void stream_keepalive(struct gw_stream *st) {
  if (st->ka_inflight || st->ended || st->finishing) return;
  if (!st->up) stream_reconnect(st);
  if (!st->up) return;
  msgpack_packer pk;
  struct gw_call *c = gw_call_new(st->g, "keepalive", 3, &pk);
  if (!c) return;
  msgpack_pack_uint64(&pk, st->session);
  msgpack_pack_uint64(&pk, 0);
  msgpack_pack_uint64(&pk, st->event_ack);
  c->cb = stream_ka_done;
  c->data = st;
  c->stream = 1; /* a redirect ends the call: the stream moves */
  c->deadline = gw_now(st->g) + GW_STREAM_KEEPALIVE * 2;
  st->ka_inflight = 1;
  st->ka_call = c;
  gw_call_start(c, st->up);
}

static void on_stream_timer(uv_timer_t *t) {
  struct gw_stream *st = t->data;
  if (st->finishing) return;
  stream_keepalive(st);
  if (!st->inflight && st->outlen == 0) stream_write(st, ":\n\n", 3);
}

int gw_stream_start(struct gw *g, h2o_req_t *req, uint64_t session,
                    uint64_t last_id) {
  struct gw_stream *st = calloc(1, sizeof *st);
  if (!st) return -1;
  st->gen.proceed = on_proceed;
  st->gen.stop = on_stop;
  st->g = g;
  st->req = req;
  st->session = session;
  st->last_sent = last_id;
  st->event_ack = last_id;
  uv_timer_init(g->loop, &st->timer);
  st->timer.data = st;
  st->next = g->streams;
  g->streams = st;
  req->res.status = 200;
  req->res.reason = "OK";
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                 H2O_STRLIT("text/event-stream"));
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                 H2O_STRLIT("no-cache"));
  h2o_start_response(req, &st->gen);
  char hello[64];
  int n = snprintf(hello, sizeof hello, ": events of session %llu\n\n",
                   (unsigned long long)session);
  stream_write(st, hello, (size_t)n);
  stream_keepalive(st);
  uv_timer_start(&st->timer, on_stream_timer, GW_STREAM_KEEPALIVE,
                 GW_STREAM_KEEPALIVE);
  return 0;
}

void gw_streams_close_all(struct gw *g) {
  while (g->streams) {
    struct gw_stream *st = g->streams;
    st->req = NULL; /* H2O's connections are left to the process's exit */
    stream_end(st);
  }
}
