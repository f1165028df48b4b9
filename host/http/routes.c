/*
 * routes.c — the endpoints (docs/http.md): status, health, readiness and
 * metrics from the server; commands, queries and sessions as native
 * requests (upstream.c); event streams (session.c).
 *
 * Every error is JSON, {"error": {"code": CODE, "message": TEXT}}, with a
 * stable CODE (the table in docs/http.md) and its HTTP status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/gw_int.h"
#include "raft/raft.h"
#include "server/server.h"

/* ---- responses ---- */

static void set_ctype(h2o_req_t *req, const char *ctype) {
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                 ctype, strlen(ctype));
}

static const char *reason_of(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "Payload Too Large";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "";
  }
}

void gw_send_json(h2o_req_t *req, int status, json_t *j) {
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  if (!text) {
    static const char oom[] =
        "{\"error\":{\"code\":\"internal\",\"message\":\"the result cannot be "
        "expressed as JSON\"}}\n";
    req->res.status = 500;
    req->res.reason = reason_of(500);
    set_ctype(req, "application/json");
    req->res.content_length = sizeof oom - 1;
    h2o_send_inline(req, oom, sizeof oom - 1);
    return;
  }
  size_t n = strlen(text);
  h2o_iovec_t body = h2o_strdup(&req->pool, text, n + 1);
  body.base[n] = '\n';
  free(text);
  req->res.status = status;
  req->res.reason = reason_of(status);
  set_ctype(req, "application/json");
  req->res.content_length = n + 1;
  h2o_send_inline(req, body.base, n + 1);
}

void gw_send_error(h2o_req_t *req, int status, const char *code,
                   const char *msg) {
  gw_send_json(
      req, status,
      json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

/* ---- a request waiting for the cluster ---- */

/* The HTTP request may go away (the caller hangs up) before the cluster
 * answers: its pool then disposes the slot, which forgets the wait. */
struct wait {
  h2o_req_t *req;
  struct wait **slot; /* in req's pool; NULL once the request is gone */
  int kind;           /* what the answer is for */
  uint64_t session;
};

enum { W_COMMAND, W_QUERY, W_OPEN, W_KEEPALIVE, W_CLOSE };

static void on_slot_dispose(void *p) {
  struct wait **slot = p;
  if (*slot) {
    (*slot)->req = NULL;
    (*slot)->slot = NULL;
  }
}

static struct wait *wait_new(h2o_req_t *req, int kind) {
  struct wait *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->req = req;
  w->kind = kind;
  w->slot = h2o_mem_alloc_shared(&req->pool, sizeof *w->slot, on_slot_dispose);
  *w->slot = w;
  return w;
}

static h2o_req_t *wait_end(struct wait *w) {
  h2o_req_t *req = w->req;
  if (w->slot) *w->slot = NULL;
  free(w);
  return req;
}

/* Maps a failed reply [false, message, code] to an HTTP answer. */
static void send_failure(h2o_req_t *req, const char *code, const char *msg) {
  const char *name;
  int status = gw_failure_status(code, &name);
  gw_send_error(req, status, name, msg);
}

static void str_of(const msgpack_object *o, char *out, size_t n) {
  out[0] = 0;
  if (o && o->type == MSGPACK_OBJECT_STR) {
    size_t k = o->via.str.size < n - 1 ? o->via.str.size : n - 1;
    memcpy(out, o->via.str.ptr, k);
    out[k] = 0;
  }
}

static void on_answer(struct gw_call *c, const char *kind,
                      const msgpack_object *reply, uint64_t index,
                      const char *message) {
  struct wait *w = c->data;
  int wkind = w->kind;
  uint64_t session = w->session;
  h2o_req_t *req = wait_end(w);
  if (!req) return; /* the caller went away */
  if (strcmp(kind, "unavailable") == 0) {
    gw_send_error(req, 503, "unavailable", message);
    return;
  }
  if (strcmp(kind, "error") == 0) {
    const char *name;
    int status = gw_refusal_status(c->code, &name);
    gw_send_error(req, status, name, message);
    return;
  }
  if (!reply || reply->type != MSGPACK_OBJECT_ARRAY ||
      reply->via.array.size < 1 ||
      reply->via.array.ptr[0].type != MSGPACK_OBJECT_BOOLEAN) {
    gw_send_error(req, 500, "internal", "malformed reply from the server");
    return;
  }
  static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
  const msgpack_object *val =
      reply->via.array.size > 1 ? &reply->via.array.ptr[1] : &nil;
  if (!reply->via.array.ptr[0].via.boolean) {
    char msg[1024], code[32];
    str_of(val, msg, sizeof msg);
    str_of(reply->via.array.size > 2 ? &reply->via.array.ptr[2] : NULL, code,
           sizeof code);
    send_failure(req, code[0] ? code : "internal", msg);
    return;
  }
  json_t *j = NULL;
  switch (wkind) {
    case W_OPEN: {
      uint64_t id =
          val->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? val->via.u64 : 0;
      j = json_pack("{s:I,s:I}", "id", (json_int_t)id, "timeout_ms",
                    (json_int_t)session);
      break;
    }
    case W_KEEPALIVE: {
      int gone = 0;
      if (val->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < val->via.array.size; i++)
          if (val->via.array.ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
              val->via.array.ptr[i].via.u64 == session)
            gone = 1;
      if (gone) {
        gw_send_error(req, 404, "session_not_found",
                      "the session is not open: it expired or was closed");
        return;
      }
      j = json_pack("{s:I,s:b}", "id", (json_int_t)session, "open", 1);
      break;
    }
    case W_CLOSE:
      j = json_pack("{s:I,s:b}", "id", (json_int_t)session, "closed", 1);
      break;
    default: {
      json_t *r = gw_json_of(val);
      if (!r) {
        gw_send_error(req, 500, "internal",
                      "the result cannot be expressed as JSON");
        return;
      }
      j = json_pack("{s:o,s:I}", "result", r, "index", (json_int_t)index);
      if (j && reply->via.array.size > 2) {
        json_t *more = gw_json_of(&reply->via.array.ptr[2]);
        if (more) json_object_set_new(j, "more", more);
      }
    }
  }
  gw_send_json(req, 200, j);
}

static void own_answer(struct gw_call *c, const char *kind,
                       const msgpack_object *reply, uint64_t index,
                       const char *message) {
  on_answer(c, kind, reply, index, message);
}

/* ---- parsing ---- */

static int method_is(h2o_req_t *req, const char *m) {
  return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static void not_allowed(h2o_req_t *req, const char *allow) {
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow,
                 strlen(allow));
  char msg[96];
  snprintf(msg, sizeof msg, "method %.*s not allowed here: use %s",
           (int)(req->method.len < 16 ? req->method.len : 16), req->method.base,
           allow);
  gw_send_error(req, 405, "method_not_allowed", msg);
}

/* A header's value as a uint64: 1 and *v when present and valid, 0 when
 * absent, -1 when malformed. */
static int header_u64(h2o_req_t *req, const char *name, uint64_t *v) {
  ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
  if (i < 0) return 0;
  h2o_iovec_t val = req->headers.entries[i].value;
  char buf[32];
  if (val.len == 0 || val.len >= sizeof buf) return -1;
  memcpy(buf, val.base, val.len);
  buf[val.len] = 0;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(buf, &end, 10);
  if (*end || errno || buf[0] == '-') return -1;
  *v = x;
  return 1;
}

/* A path segment as a uint64 (the session id); 0 when malformed. */
static uint64_t seg_u64(const char *p, size_t n) {
  if (n == 0 || n > 19) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return 0;
    v = v * 10 + (uint64_t)(p[i] - '0');
  }
  return v;
}

/* The body as JSON, or NULL after answering 400 / 413. An empty body is
 * `empty` (a new reference, or NULL for JSON null). */
static json_t *body_json(struct gw *g, h2o_req_t *req, int *failed) {
  *failed = 0;
  if (req->entity.len > g->o.max_request) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "request too large: %zu bytes, the server takes at most %u "
             "(max_request_bytes); split large values",
             req->entity.len, (unsigned)g->o.max_request);
    gw_send_error(req, 413, "too_large", msg);
    *failed = 1;
    return NULL;
  }
  if (req->entity.base == NULL || req->entity.len == 0) return json_null();
  json_error_t e;
  json_t *j = json_loadb(req->entity.base, req->entity.len,
                         JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  if (!j) {
    char msg[256];
    snprintf(msg, sizeof msg, "the body is not JSON: %s (line %d, column %d)",
             e.text, e.line, e.column);
    gw_send_error(req, 400, "bad_json", msg);
    *failed = 1;
  }
  return j;
}

static const char *query_param(h2o_req_t *req, const char *name, char *out,
                               size_t n) {
  if (req->query_at == SIZE_MAX) return NULL;
  const char *q = req->path.base + req->query_at + 1;
  const char *end = req->path.base + req->path.len;
  size_t nl = strlen(name);
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    if (!amp) amp = end;
    if ((size_t)(amp - q) > nl && memcmp(q, name, nl) == 0 && q[nl] == '=') {
      size_t k = (size_t)(amp - q) - nl - 1;
      if (k >= n) k = n - 1;
      memcpy(out, q + nl + 1, k);
      out[k] = 0;
      return out;
    }
    q = amp + 1;
  }
  return NULL;
}

/* ---- endpoints ---- */

static const char *role_name(int role) {
  switch (role) {
    case RAFT_LEADER:
      return "leader";
    case RAFT_CANDIDATE:
      return "candidate";
    case RAFT_PRECANDIDATE:
      return "precandidate";
    default:
      return "follower";
  }
}

static const char *type_name(int t) {
  return t == RAFT_ACTIVE    ? "active"
         : t == RAFT_PASSIVE ? "passive"
                             : "reserve";
}

static json_t *members_json(struct gw *g, const struct server_status *st) {
  json_t *a = json_array();
  for (unsigned i = 0; i < st->conf->n; i++) {
    const struct raft_member *m = &st->conf->m[i];
    json_array_append_new(
        a, json_pack("{s:s,s:s,s:s,s:b}", "name", m->name, "address",
                     m->address, "type", type_name(m->type), "leader",
                     strcmp(m->name, st->leader) == 0));
  }
  (void)g;
  return a;
}

static void status(struct gw *g, h2o_req_t *req) {
  struct server_status st;
  server_status(g->server, &st);
  json_t *j = json_pack(
      "{s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "role",
      st.removed ? "removed" : role_name(st.role), "term", (json_int_t)st.term,
      "commit_index", (json_int_t)st.commit, "applied_index",
      (json_int_t)st.applied, "last_index", (json_int_t)st.last_index,
      "snapshot_index", (json_int_t)st.snapshot_index, "config_index",
      (json_int_t)st.config_index);
  if (st.leader[0]) {
    json_object_set_new(j, "leader", json_string(st.leader));
    json_object_set_new(j, "leader_address",
                        json_string(server_leader_address(g->server)));
  }
  if (st.diverged) json_object_set_new(j, "diverged", json_true());
  json_object_set_new(j, "members", members_json(g, &st));
  gw_send_json(req, 200, j);
}

static void ready(struct gw *g, h2o_req_t *req) {
  struct server_status st;
  server_status(g->server, &st);
  const char *why = NULL;
  if (st.removed)
    why = "this server was removed from the cluster";
  else if (st.diverged)
    why = "this server's state diverged from the majority";
  else if (!st.leader[0])
    why = "no leader known";
  else if (st.applied < st.commit)
    why = "applying the log (catching up)";
  if (why) {
    gw_send_json(req, 503, json_pack("{s:b,s:s}", "ready", 0, "reason", why));
    return;
  }
  gw_send_json(req, 200,
               json_pack("{s:b,s:s,s:I}", "ready", 1, "leader", st.leader,
                         "applied_index", (json_int_t)st.applied));
}

static void metrics(struct gw *g, h2o_req_t *req) {
  size_t len = 0;
  char *text = server_metrics_render(g->server, &len);
  if (!text) {
    gw_send_error(req, 503, "unavailable", "out of memory");
    return;
  }
  h2o_iovec_t body = h2o_strdup(&req->pool, text, len);
  free(text);
  req->res.status = 200;
  req->res.reason = "OK";
  set_ctype(req, "text/plain; version=0.0.4; charset=utf-8");
  req->res.content_length = body.len;
  h2o_send_inline(req, body.base, body.len);
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static void start(struct gw *g, h2o_req_t *req, struct gw_call *c,
                  struct wait *w) {
  if (!c || !w) {
    if (c) {
      msgpack_sbuffer_destroy(&c->req);
      free(c);
    }
    if (w) wait_end(w);
    gw_send_error(req, 503, "unavailable", "out of memory");
    return;
  }
  c->cb = on_answer;
  c->data = w;
  gw_call_start(c, NULL);
  (void)g;
}

static void command(struct gw *g, h2o_req_t *req, const char *op,
                    size_t oplen) {
  uint64_t session = 0, seq = 0, ack = 0;
  int hs = header_u64(req, "copycat-session", &session);
  int hq = header_u64(req, "copycat-sequence", &seq);
  int ha = header_u64(req, "copycat-ack", &ack);
  if (hs < 0 || hq < 0 || ha < 0 || hs != hq || (hs && (!session || !seq))) {
    gw_send_error(req, 400, "bad_request",
                  "Copycat-Session and Copycat-Sequence go together, as "
                  "positive integers (and Copycat-Ack, if given, a "
                  "non-negative one)");
    return;
  }
  int failed;
  json_t *args = body_json(g, req, &failed);
  if (failed) return;
  msgpack_sbuffer ab;
  msgpack_sbuffer_init(&ab);
  msgpack_packer apk;
  msgpack_packer_init(&apk, &ab, msgpack_sbuffer_write);
  gw_pack_json(&apk, args);
  json_decref(args);
  if (!hs) {
    struct wait *w = wait_new(req, W_COMMAND);
    if (!w) {
      msgpack_sbuffer_destroy(&ab);
      gw_send_error(req, 503, "unavailable", "out of memory");
      return;
    }
    gw_own_submit(g, op, oplen, ab.data, ab.size, own_answer, w);
    msgpack_sbuffer_destroy(&ab);
    return;
  }
  if (!ha) ack = seq - 1; /* a caller that waits for each reply */
  msgpack_packer pk;
  struct gw_call *c = gw_call_new(g, "submit", 5, &pk);
  if (c) {
    c->retry_busy = 1;
    msgpack_pack_uint64(&pk, session);
    msgpack_pack_uint64(&pk, seq);
    msgpack_pack_uint64(&pk, ack);
    pack_str(&pk, op, oplen);
    msgpack_sbuffer_write(&c->req, ab.data, ab.size);
  }
  msgpack_sbuffer_destroy(&ab);
  start(g, req, c, wait_new(req, W_COMMAND));
}

static void query(struct gw *g, h2o_req_t *req, const char *op, size_t oplen) {
  char level[32];
  if (!query_param(req, "consistency", level, sizeof level))
    snprintf(level, sizeof level, "linearizable");
  int seq = strcmp(level, "sequential") == 0;
  if (!seq && strcmp(level, "linearizable") != 0 &&
      strcmp(level, "lease") != 0) {
    gw_send_error(req, 400, "bad_request",
                  "unknown consistency: use linearizable, lease or "
                  "sequential");
    return;
  }
  uint64_t session = 0, min_index = 0;
  if (header_u64(req, "copycat-session", &session) < 0 ||
      header_u64(req, "copycat-index", &min_index) < 0) {
    gw_send_error(req, 400, "bad_request",
                  "Copycat-Session and Copycat-Index must be non-negative "
                  "integers");
    return;
  }
  int failed;
  json_t *args = body_json(g, req, &failed);
  if (failed) return;
  msgpack_packer pk;
  struct gw_call *c = gw_call_new(g, "query", 5, &pk);
  if (c) {
    c->to_leader = !seq;
    c->retry_busy = 1;
    pack_str(&pk, op, oplen);
    gw_pack_json(&pk, args);
    pack_str(&pk, level, strlen(level));
    msgpack_pack_uint64(&pk, session);
    msgpack_pack_uint64(&pk, min_index);
  }
  json_decref(args);
  start(g, req, c, wait_new(req, W_QUERY));
}

static void open_session(struct gw *g, h2o_req_t *req) {
  int failed;
  json_t *body = body_json(g, req, &failed);
  if (failed) return;
  json_int_t timeout = 30000;
  if (json_is_object(body)) {
    json_t *t = json_object_get(body, "timeout_ms");
    if (t && (!json_is_integer(t) || json_integer_value(t) <= 0)) {
      json_decref(body);
      gw_send_error(req, 400, "bad_request",
                    "timeout_ms must be a positive integer (milliseconds)");
      return;
    }
    if (t) timeout = json_integer_value(t);
  } else if (!json_is_null(body)) {
    json_decref(body);
    gw_send_error(req, 400, "bad_request",
                  "the body must be an object {\"timeout_ms\": N} or empty");
    return;
  }
  json_decref(body);
  /* The session layer clamps the timeout to 200 ms .. 1 day. */
  if (timeout < 200) timeout = 200;
  if (timeout > 86400000) timeout = 86400000;
  msgpack_packer pk;
  struct gw_call *c = gw_call_new(g, "open", 1, &pk);
  if (c) {
    c->retry_busy = 1;
    msgpack_pack_uint64(&pk, (uint64_t)timeout);
  }
  struct wait *w = wait_new(req, W_OPEN);
  if (w) w->session = (uint64_t)timeout;
  start(g, req, c, w);
}

static void keepalive(struct gw *g, h2o_req_t *req, uint64_t session) {
  int failed;
  json_t *body = body_json(g, req, &failed);
  if (failed) return;
  json_int_t cack = 0, eack = 0;
  if (json_is_object(body)) {
    json_t *a = json_object_get(body, "command_ack");
    json_t *e = json_object_get(body, "event_ack");
    if ((a && (!json_is_integer(a) || json_integer_value(a) < 0)) ||
        (e && (!json_is_integer(e) || json_integer_value(e) < 0))) {
      json_decref(body);
      gw_send_error(req, 400, "bad_request",
                    "command_ack and event_ack must be non-negative integers");
      return;
    }
    if (a) cack = json_integer_value(a);
    if (e) eack = json_integer_value(e);
  }
  json_decref(body);
  msgpack_packer pk;
  struct gw_call *c = gw_call_new(g, "keepalive", 3, &pk);
  if (c) {
    c->retry_busy = 1;
    msgpack_pack_uint64(&pk, session);
    msgpack_pack_uint64(&pk, (uint64_t)cack);
    msgpack_pack_uint64(&pk, (uint64_t)eack);
  }
  struct wait *w = wait_new(req, W_KEEPALIVE);
  if (w) w->session = session;
  start(g, req, c, w);
}

static void close_session(struct gw *g, h2o_req_t *req, uint64_t session) {
  msgpack_packer pk;
  struct gw_call *c = gw_call_new(g, "close", 1, &pk);
  if (c) {
    c->retry_busy = 1;
    msgpack_pack_uint64(&pk, session);
  }
  struct wait *w = wait_new(req, W_CLOSE);
  if (w) w->session = session;
  start(g, req, c, w);
}

static int path_is(const char *p, size_t n, const char *s) {
  return n == strlen(s) && memcmp(p, s, n) == 0;
}

static int has_prefix(const char *p, size_t n, const char *s) {
  return n > strlen(s) && memcmp(p, s, strlen(s)) == 0;
}

/* /v1/sessions/ID[/rest]: the id (0 if malformed), rest and its length. */
static uint64_t session_path(const char *p, size_t n, const char **rest,
                             size_t *rlen) {
  p += 13; /* "/v1/sessions/" */
  n -= 13;
  const char *slash = memchr(p, '/', n);
  size_t idlen = slash ? (size_t)(slash - p) : n;
  *rest = slash ? slash : p + n;
  *rlen = n - idlen;
  return seg_u64(p, idlen);
}

int gw_route(struct gw *g, h2o_req_t *req) {
  const char *p = req->path_normalized.base;
  size_t n = req->path_normalized.len;
  int metrics_only = req->conn->hosts == g->metrics_hosts;
  int get = method_is(req, "GET") || method_is(req, "HEAD");
  int post = method_is(req, "POST");
  if (g->closing) {
    gw_send_error(req, 503, "unavailable", "server is stopping");
    return 0;
  }
  if (path_is(p, n, "/metrics")) {
    if (!get)
      not_allowed(req, "GET");
    else
      metrics(g, req);
    return 0;
  }
  if (path_is(p, n, "/health")) {
    if (!get)
      not_allowed(req, "GET");
    else
      gw_send_json(req, 200, json_pack("{s:s}", "status", "ok"));
    return 0;
  }
  if (metrics_only) {
    gw_send_error(req, 404, "not_found",
                  "not found: this address serves /metrics and /health only");
    return 0;
  }
  if (path_is(p, n, "/ready")) {
    if (!get)
      not_allowed(req, "GET");
    else
      ready(g, req);
  } else if (path_is(p, n, "/v1/status")) {
    if (!get)
      not_allowed(req, "GET");
    else
      status(g, req);
  } else if (path_is(p, n, "/v1/members")) {
    if (!get) {
      not_allowed(req, "GET");
    } else {
      struct server_status st;
      server_status(g->server, &st);
      gw_send_json(req, 200, members_json(g, &st));
    }
  } else if (has_prefix(p, n, "/v1/commands/") &&
             !memchr(p + 13, '/', n - 13)) {
    if (!post)
      not_allowed(req, "POST");
    else
      command(g, req, p + 13, n - 13);
  } else if (has_prefix(p, n, "/v1/queries/") && !memchr(p + 12, '/', n - 12)) {
    if (!post)
      not_allowed(req, "POST");
    else
      query(g, req, p + 12, n - 12);
  } else if (path_is(p, n, "/v1/sessions")) {
    if (!post)
      not_allowed(req, "POST");
    else
      open_session(g, req);
  } else if (has_prefix(p, n, "/v1/sessions/")) {
    const char *rest;
    size_t rlen;
    uint64_t id = session_path(p, n, &rest, &rlen);
    if (!id) {
      gw_send_error(req, 404, "not_found",
                    "not found: a session id is a positive integer");
    } else if (rlen == 0) {
      if (!method_is(req, "DELETE"))
        not_allowed(req, "DELETE");
      else
        close_session(g, req, id);
    } else if (path_is(rest, rlen, "/keepalive")) {
      if (!post)
        not_allowed(req, "POST");
      else
        keepalive(g, req, id);
    } else if (path_is(rest, rlen, "/events")) {
      uint64_t last = 0;
      if (!get) {
        not_allowed(req, "GET");
      } else if (header_u64(req, "last-event-id", &last) < 0) {
        gw_send_error(req, 400, "bad_request",
                      "Last-Event-ID must be an event number");
      } else if (gw_stream_start(g, req, id, last) < 0) {
        gw_send_error(req, 503, "unavailable", "out of memory");
      }
    } else {
      gw_send_error(req, 404, "not_found", "not found: see docs/http.md");
    }
  } else {
    gw_send_error(req, 404, "not_found",
                  "not found: the API is under /v1 (docs/http.md)");
  }
  return 0;
}
