/*
 * sessions.c — the server's part of client sessions (docs/sessions.md).
 *
 * Sessions themselves are state-machine state, kept by the Lua session
 * layer (lua/copycat/sessions.lua) from committed entries. The server only:
 *   - turns session requests into entries: open, close, and keep-alives,
 *     which it gathers and proposes as one entry per tick (a busy cluster
 *     with many clients writes one keep-alive entry, not one per client);
 *   - lets a leader commit the passing of time when nothing else is
 *     proposed, so sessions expire and timers fire on an idle cluster;
 *   - pushes the events an applied entry produced to the connections whose
 *     client last named that session here.
 *
 * Every entry is [time, kind, ...]: the leader's wall clock in
 * milliseconds, never older than a time already in the log.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Builds the entry straight into its buffer (one allocation per entry). */
int64_t sessions__propose(struct server *s, enum cproto_kind kind,
                          const void *tail, size_t len, uint32_t n) {
  uint64_t now = wall_ms();
  if (now < s->sessions.last_time)
    now = s->sessions.last_time; /* time never goes back */
  s->sessions.last_time = now;
  char head[CPROTO_HEAD_MAX];
  size_t hn = cproto_entry_head(head, now, kind, n);
  struct raft_buf *buf = raft_buf_new(hn + len);
  if (!buf) return RAFT_ENOMEM;
  memcpy(buf->data, head, hn);
  if (len) memcpy(buf->data + hn, tail, len);
  int64_t index = raft_propose(s->raft, RAFT_COMMAND, buf);
  raft_buf_unref(buf);
  if (index > 0) s->sessions.last_propose_ms = uv_now(s->loop);
  return index;
}

/* Proposes a one-off session entry and answers the client when it has been
 * applied (the reply is the session layer's). */
static void propose_for(struct inconn *ic, uint64_t id, enum cproto_kind kind,
                        const void *tail, size_t len, uint32_t n) {
  struct server *s = ic->s;
  int64_t index = sessions__propose(s, kind, tail, len, n);
  if (index == RAFT_ENOTLEADER) {
    clients__redirect(s, ic->conn, id);
  } else if (index < 0) {
    clients__reply_raft_error(ic->conn, id, (int)index);
  } else {
    clients__add_pending(s, ic->conn, id, (uint64_t)index, 0);
    server__process_soon(s);
  }
}

/* ["open", id, timeout_ms] */
void sessions__open(struct inconn *ic, const struct cproto_request *q) {
  assert(q->verb == CPROTO_OPEN);
  propose_for(ic, q->id, CPROTO_KIND_OPEN, q->fields, q->fields_len, 1);
}

/* ["close", id, session] */
void sessions__close(struct inconn *ic, const struct cproto_request *q) {
  assert(q->verb == CPROTO_CLOSE);
  if (ic->session == q->session) ic->session = 0;
  propose_for(ic, q->id, CPROTO_KIND_CLOSE, q->fields, q->fields_len, 1);
}

/* ["keepalive", id, session, command_ack, event_ack]: gathered into the
 * next batch; answered when that batch has been applied. */
void sessions__keepalive(struct inconn *ic, const struct cproto_request *q) {
  struct server *s = ic->s;
  assert(q->verb == CPROTO_KEEPALIVE);
  ic->session = q->session;
  if (raft_role(s->raft) != RAFT_LEADER) {
    clients__redirect(s, ic->conn, q->id);
    return;
  }
  if (s->sessions.ka_n == s->sessions.ka_cap) {
    size_t cap = s->sessions.ka_cap ? s->sessions.ka_cap * 2 : 16;
    struct ka_wait *w = realloc(s->sessions.ka_waits, cap * sizeof *w);
    if (!w) {
      clients__reply_error(ic->conn, q->id, CPROTO_ENO_MEMORY,
                           "out of memory: retry shortly");
      return;
    }
    s->sessions.ka_waits = w;
    s->sessions.ka_cap = cap;
  }
  msgpack_sbuffer_write(&s->sessions.ka, "\x93", 1);
  msgpack_sbuffer_write(&s->sessions.ka, (const char *)q->fields,
                        q->fields_len);
  s->sessions.ka_waits[s->sessions.ka_n].conn = ic->conn;
  s->sessions.ka_waits[s->sessions.ka_n].id = q->id;
  s->sessions.ka_n++;
}

/* Proposes the gathered keep-alives as one entry [time, "k", [...]]. */
static void flush_keepalives(struct server *s) {
  if (s->sessions.ka_n == 0) return;
  msgpack_sbuffer tail;
  msgpack_sbuffer_init(&tail);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &tail, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, s->sessions.ka_n);
  msgpack_sbuffer_write(&tail, s->sessions.ka.data, s->sessions.ka.size);
  int64_t index =
      sessions__propose(s, CPROTO_KIND_KEEPALIVE, tail.data, tail.size, 1);
  msgpack_sbuffer_destroy(&tail);
  for (uint32_t i = 0; i < s->sessions.ka_n; i++) {
    struct ka_wait *w = &s->sessions.ka_waits[i];
    if (index == RAFT_ENOTLEADER)
      clients__redirect(s, w->conn, w->id);
    else if (index < 0)
      clients__reply_raft_error(w->conn, w->id, (int)index);
    else
      clients__add_pending(s, w->conn, w->id, (uint64_t)index, 0);
  }
  s->sessions.ka_n = 0;
  s->sessions.ka.size = 0;
}

void sessions__tick(struct server *s) {
  if (s->failed || s->stopping) return;
  flush_keepalives(s);
  if (raft_role(s->raft) == RAFT_LEADER && s->o.sm->wants_time &&
      uv_now(s->loop) - s->sessions.last_propose_ms >= s->o.time_ms &&
      s->o.sm->wants_time(s->o.sm->data)) {
    /* Refusals (a transfer in progress, a full backlog) just wait for the
     * next tick. */
    (void)sessions__propose(s, CPROTO_KIND_TIME, NULL, 0, 0);
  }
  server__process(s);
}

/* events holds arrays ["event", session, seq, name, data] back to back. */
void sessions__push(struct server *s, const char *events, size_t len) {
  /* The reply first: a client sees a command's result before the events
   * it caused. */
  assert(clients__replied_index(s) == clients__applying_index(s));
  struct mp_reader r;
  mp_reader_init(&r, events, len);
  while (mp_left(&r) > 0) {
    const unsigned char *start = r.p;
    uint32_t n;
    char verb[8];
    uint64_t session;
    if (mp_read_array(&r, &n) < 0 || n != 5 ||
        mp_read_name(&r, verb, sizeof verb) < 0 ||
        mp_read_uint(&r, &session) < 0 || mp_skip(&r) < 0 || mp_skip(&r) < 0 ||
        mp_skip(&r) < 0)
      return; /* the binding wrote these: cannot happen */
    peers__send_session(s, session, start, (size_t)(r.p - start));
  }
}

void sessions__free(struct server *s) {
  sessions__fail_all(s, CPROTO_ESTOPPING, "server is stopping");
  free(s->sessions.ka_waits);
  s->sessions.ka_waits = NULL;
  msgpack_sbuffer_destroy(&s->sessions.ka);
}

void sessions__init(struct server *s) {
  msgpack_sbuffer_init(&s->sessions.ka);
}

void sessions__saw_time(struct server *s, uint64_t t) {
  if (t > s->sessions.last_time) s->sessions.last_time = t;
}

void sessions__fail_all(struct server *s, enum cproto_code code,
                        const char *why) {
  for (uint32_t i = 0; i < s->sessions.ka_n; i++)
    clients__reply_error(s->sessions.ka_waits[i].conn,
                         s->sessions.ka_waits[i].id, code, why);
  s->sessions.ka_n = 0;
}

void sessions__conn_gone(struct server *s, net_conn *c) {
  for (uint32_t i = 0; i < s->sessions.ka_n; i++)
    if (s->sessions.ka_waits[i].conn == c) s->sessions.ka_waits[i].conn = NULL;
}
