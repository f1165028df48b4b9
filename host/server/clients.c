/*
 * clients.c — requests from clients: commands, queries, membership.
 *
 * Requests and replies are msgpack arrays (docs/protocol.md):
 *   ["open", id, timeout_ms]                         -> result: session id
 *   ["keepalive", id, session, cmd_ack, event_ack]   -> result: [unknown ids]
 *   ["close", id, session]                           -> result
 *   ["submit", id, session, seq, ack, op, args]      -> result
 *   ["query", id, op, args, consistency, session, min_index] -> result
 *   ["change", id, name, address, type]    -> ["ok", id] once committed
 *   ["remove", id, name]                   -> ["ok", id] once committed
 *   ["transfer", id, name]                 -> ["ok", id] once started
 * where result is ["result", id, [ok, value, code?], index]: the session
 * layer's reply and the index it reflects (the client's "seen" index).
 * Any of them may get ["redirect", id, leader_address_or_nil] (this server
 * does not lead) or ["error", id, message]. Events reach the connection
 * whose client last named its session as ["event", session, seq, name,
 * data] (host/server/sessions.c).
 *
 * A command's reply is sent when its entry is applied here, so the client
 * learns the state machine's own result. If the entry at that index turns
 * out to be another one (leadership changed before it committed), the
 * client is told it was not applied and may retry: the session's sequence
 * numbers make the retry exactly-once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"

static void pack_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

/* Every reply is [verb, id, ...]: begin packs the envelope of an array of
 * n items, finish sends it (if the client is still there). Replies are
 * packed into one buffer that is kept (loop thread only; a reply is
 * copied into the connection's queue before the next one begins), so a
 * reply costs no allocation; a buffer grown past 64 KiB is let go. */
static msgpack_sbuffer reply_sb;

static void begin(msgpack_sbuffer **sb, msgpack_packer *pk, size_t n,
                  const char *verb, uint64_t id) {
  *sb = &reply_sb;
  reply_sb.size = 0;
  msgpack_packer_init(pk, &reply_sb, msgpack_sbuffer_write);
  msgpack_pack_array(pk, n);
  pack_str(pk, verb);
  msgpack_pack_uint64(pk, id);
}

static void finish(net_conn *c, msgpack_sbuffer *sb) {
  if (c) net_conn_send(c, sb->data, sb->size);
  sb->size = 0;
  if (sb->alloc > 64 * 1024) {
    msgpack_sbuffer_destroy(sb);
    msgpack_sbuffer_init(sb);
  }
}

void clients__reply_error(net_conn *c, uint64_t id, const char *msg) {
  msgpack_sbuffer *sb;
  msgpack_packer pk;
  begin(&sb, &pk, 3, "error", id);
  pack_str(&pk, msg);
  finish(c, sb);
}

static void reply_ok(net_conn *c, uint64_t id) {
  msgpack_sbuffer *sb;
  msgpack_packer pk;
  begin(&sb, &pk, 2, "ok", id);
  finish(c, sb);
}

void clients__redirect(struct server *s, net_conn *c, uint64_t id) {
  msgpack_sbuffer *sb;
  msgpack_packer pk;
  begin(&sb, &pk, 3, "redirect", id);
  const char *leader = server_leader_address(s);
  if (leader[0] && raft_role(s->raft) != RAFT_LEADER)
    pack_str(&pk, leader);
  else
    msgpack_pack_nil(&pk);
  finish(c, sb);
}

/* ["result", id, <reply>, index] where reply is already msgpack. */
static void reply_result(net_conn *c, uint64_t id, const char *reply,
                         size_t len, uint64_t index) {
  msgpack_sbuffer *sb;
  msgpack_packer pk;
  begin(&sb, &pk, 4, "result", id);
  msgpack_sbuffer_write(sb, reply, len);
  msgpack_pack_uint64(&pk, index);
  finish(c, sb);
}

const char *clients__error_text(int rc) {
  switch (rc) {
    case RAFT_EBACKLOG:
      return "busy: too much uncommitted data (is a quorum of servers up?)";
    case RAFT_ECHANGE:
      return "another membership change is in progress: retry shortly";
    case RAFT_ENOTCAUGHTUP:
      return "the member has not caught up with the log yet: retry shortly";
    case RAFT_ENOTREADY:
      return "the new leader has not committed an entry yet: retry shortly";
    case RAFT_ETRANSFER:
      return "a leadership transfer is in progress: retry shortly";
    case RAFT_ENOTFOUND:
      return "no such member";
    default:
      return raft_strerror(rc);
  }
}

/* ---- commands ---- */

void clients__add_pending(struct server *s, net_conn *c, uint64_t id,
                          uint64_t index, int admin) {
  struct pending *p = calloc(1, sizeof *p);
  if (!p) return; /* the client times out and retries */
  p->index = index;
  p->term = raft_term(s->raft);
  p->conn = c;
  p->id = id;
  p->admin = admin;
  if (s->pending_tail)
    s->pending_tail->next = p;
  else
    s->pending = p;
  s->pending_tail = p;
}

/* tail points at the raw [session, seq, ack, op, args] of the request:
 * the entry is [time, "c", session, seq, ack, op, args], written without
 * decoding args. */
/* Proposes a command entry: kind "c" with tail [session, seq, ack, op,
 * args] (n = 5), or "r", a refused command, with [session, seq, ack,
 * message] (n = 4). */
static void submit(struct inconn *ic, uint64_t id, uint64_t session,
                   const char *kind, const void *tail, size_t len, uint32_t n) {
  struct server *s = ic->s;
  ic->session = session;
  int64_t index = sessions__propose(s, kind, tail, len, n);
  if (index == RAFT_ENOTLEADER) {
    metrics__command(s, METRICS_REDIRECT);
    clients__redirect(s, ic->conn, id);
    return;
  }
  if (index < 0) {
    metrics__command(s, METRICS_ERROR);
    clients__reply_error(ic->conn, id, clients__error_text((int)index));
    return;
  }
  clients__add_pending(s, ic->conn, id, (uint64_t)index, 0);
  /* Session entries (open, keep-alive, close) wait in the same list: only
   * commands count in copycat_commands_total. */
  if (s->pending_tail && s->pending_tail->index == (uint64_t)index &&
      s->pending_tail->id == id && s->pending_tail->conn == ic->conn)
    s->pending_tail->command = 1;
  server__process_soon(s);
}

void clients__applied(struct server *s, uint64_t index, uint64_t term,
                      const char *reply, size_t len) {
  while (s->pending && s->pending->index <= index) {
    struct pending *p = s->pending;
    s->pending = p->next;
    if (!s->pending) s->pending_tail = NULL;
    if (p->command)
      metrics__command(s, p->index == index && p->term == term && reply
                              ? METRICS_OK
                              : METRICS_ERROR);
    if (p->index == index && p->term == term && p->admin)
      reply_ok(p->conn, p->id);
    else if (p->index == index && p->term == term && reply)
      reply_result(p->conn, p->id, reply, len, index);
    else
      clients__reply_error(p->conn, p->id,
                           "not applied: leadership changed before the command "
                           "committed; it is safe to retry");
    free(p);
  }
}

/* ---- queries ---- */

static void run_query(struct server *s, net_conn *c, uint64_t id,
                      uint64_t session, const void *req, size_t len) {
  msgpack_sbuffer *out = &s->scratch;
  size_t mark = out->size;
  metrics__query(s, METRICS_OK);
  s->o.sm->query(s->o.sm->data, req, len, session, s->applied, out);
  reply_result(c, id, out->data + mark, out->size - mark, s->applied);
  out->size = mark;
}

/* A query runs once its read index is known (linearizable, lease) and this
 * server has applied both it and what the client has already seen
 * (min_index): a sequential query on a lagging follower waits rather than
 * going back in time. */
static void query(struct server *s, net_conn *c, uint64_t id,
                  const unsigned char *req, size_t len, const char *level,
                  uint64_t session, uint64_t min_index) {
  int sequential = strcmp(level, "sequential") == 0;
  int lease = strcmp(level, "lease") == 0;
  if (!sequential && !lease && strcmp(level, "linearizable") != 0) {
    metrics__query(s, METRICS_ERROR);
    clients__reply_error(c, id,
                         "unknown consistency: use linearizable, lease or "
                         "sequential");
    return;
  }
  /* req is the raw [op, args] pair: make it an array for the machine. */
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_sbuffer_write(&sb, "\x92", 1);
  msgpack_sbuffer_write(&sb, (const char *)req, len);
  if (sequential && min_index <= s->applied) {
    run_query(s, c, id, session, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return;
  }
  uint64_t ctx = 0;
  if (!sequential) {
    server__catch_up(s); /* a lease must not outlive a pause */
    ctx = ++s->next_read_ctx;
    int rc = raft_read(s->raft, ctx, lease);
    if (rc == RAFT_ENOTLEADER) {
      metrics__query(s, METRICS_REDIRECT);
      clients__redirect(s, c, id);
      msgpack_sbuffer_destroy(&sb);
      return;
    }
    if (rc < 0) {
      metrics__query(s, METRICS_ERROR);
      clients__reply_error(c, id, clients__error_text(rc));
      msgpack_sbuffer_destroy(&sb);
      return;
    }
  }
  struct pending_read *r = calloc(1, sizeof *r);
  if (r) r->req = raft_buf_from(sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  if (!r || !r->req) {
    free(r);
    metrics__query(s, METRICS_ERROR);
    clients__reply_error(c, id, "out of memory: retry shortly");
    return;
  }
  r->ctx = ctx;
  r->ready = sequential;
  r->min_index = min_index;
  r->session = session;
  r->conn = c;
  r->id = id;
  r->next = s->reads;
  s->reads = r;
  server__process_soon(s);
}

void clients__reads_ready(struct server *s, const struct raft_read_result *rr,
                          size_t n) {
  for (size_t i = 0; i < n; i++) {
    for (struct pending_read *r = s->reads; r; r = r->next) {
      if (!r->ctx || r->ctx != rr[i].ctx) continue;
      r->ready = 1;
      if (rr[i].status < 0)
        r->redirect = 1;
      else
        r->index = rr[i].index;
    }
  }
}

void clients__serve_reads(struct server *s) {
  struct pending_read **pp = &s->reads;
  while (*pp) {
    struct pending_read *r = *pp;
    uint64_t need = r->index > r->min_index ? r->index : r->min_index;
    if (r->ready && (r->redirect || need <= s->applied)) {
      if (r->redirect) {
        metrics__query(s, METRICS_REDIRECT);
        clients__redirect(s, r->conn, r->id);
      } else if (r->conn) {
        run_query(s, r->conn, r->id, r->session, r->req->data, r->req->len);
      }
      *pp = r->next;
      raft_buf_unref(r->req);
      free(r);
    } else {
      pp = &r->next;
    }
  }
}

/* ---- membership ---- */

static int member_type(const char *t) {
  if (strcmp(t, "active") == 0) return RAFT_ACTIVE;
  if (strcmp(t, "passive") == 0) return RAFT_PASSIVE;
  if (strcmp(t, "reserve") == 0) return RAFT_RESERVE;
  return 0;
}

static void admin(struct server *s, net_conn *c, uint64_t id, const char *verb,
                  struct mp_reader *r) {
  char name[RAFT_NAME_MAX], address[RAFT_ADDR_MAX], type[16];
  int rc;
  if (mp_read_name(r, name, sizeof name) < 0) {
    clients__reply_error(c, id, "malformed request: expected a member name");
    return;
  }
  if (strcmp(verb, "change") == 0) {
    if (mp_read_name(r, address, sizeof address) < 0 ||
        mp_read_name(r, type, sizeof type) < 0 || !member_type(type)) {
      clients__reply_error(c, id,
                           "malformed change: expected name, address and "
                           "type (active, passive or reserve)");
      return;
    }
    rc = raft_change(s->raft, name, address, member_type(type));
  } else if (strcmp(verb, "remove") == 0) {
    rc = raft_remove(s->raft, name);
  } else {
    rc = raft_transfer(s->raft, name);
  }
  server__log_request(s, verb, name, verb[0] == 'c' ? address : NULL,
                      verb[0] == 'c' ? member_type(type) : 0, rc);
  if (rc == RAFT_ENOTLEADER) {
    clients__redirect(s, c, id);
  } else if (rc == RAFT_ENOTCAUGHTUP) {
    /* How far it has come, so that an operator can show progress
     * (copycat.operator reads these two numbers). */
    uint64_t match = 0;
    char why[160];
    raft_match_index(s->raft, name, &match); /* stays 0 for a new member */
    snprintf(why, sizeof why,
             "the member has not caught up with the log yet (it holds %llu "
             "of %llu entries): retry shortly",
             (unsigned long long)match,
             (unsigned long long)raft_last_index(s->raft));
    clients__reply_error(c, id, why);
  } else if (rc < 0) {
    clients__reply_error(c, id, clients__error_text(rc));
  } else if (verb[0] == 't') {
    reply_ok(c, id); /* transfer: the caller watches the leader change */
  } else {
    /* Answer once the new configuration has committed. */
    clients__add_pending(s, c, id, raft_configuration_index(s->raft), 1);
  }
  server__process_soon(s);
}

void clients__request(struct inconn *ic, const char *data, size_t len) {
  struct server *s = ic->s;
  struct mp_reader r;
  uint32_t n;
  char verb[16];
  uint64_t id;
  mp_reader_init(&r, data, len);
  size_t id_at = 0;
  if (mp_read_array(&r, &n) < 0 || n < 2 ||
      mp_read_name(&r, verb, sizeof verb) < 0 ||
      (id_at = (size_t)(r.p - (const unsigned char *)data),
       mp_read_uint(&r, &id) < 0)) {
    net_conn_close(ic->conn, "malformed request: expected [verb, id, ...]");
    return;
  }
  if (s->failed) {
    clients__reply_error(ic->conn, id,
                         "this server stopped accepting writes after "
                         "a storage failure (see its log)");
    return;
  }
  const char *refusal = agree__refusal(s);
  if (refusal && strcmp(verb, "change") != 0 && strcmp(verb, "remove") != 0 &&
      strcmp(verb, "transfer") != 0) {
    clients__reply_error(ic->conn, id, refusal);
    return;
  }
  /* Membership and leadership requests without admin rights are refused
   * here, by whichever member the client reached (trust.c). */
  if ((strcmp(verb, "change") == 0 || strcmp(verb, "remove") == 0 ||
       strcmp(verb, "transfer") == 0) &&
      trust__admin_check(ic, id, verb) < 0)
    return;
  /* A follower hands what only the leader serves to the leader. */
  if (forward__request(ic, verb, id, data, len, id_at,
                       (size_t)(r.p - (const unsigned char *)data)))
    return;
  if (len > s->o.max_request) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "request too large: %zu bytes, the server takes at most %u "
             "(max_request_bytes); split large values",
             len, (unsigned)s->o.max_request);
    uint64_t session, seq, ack;
    if (strcmp(verb, "submit") == 0 && n == 7 &&
        mp_read_uint(&r, &session) == 0 && mp_read_uint(&r, &seq) == 0 &&
        mp_read_uint(&r, &ack) == 0) {
      /* The command is not logged, but its sequence number must be used
       * up, or the session's next commands would wait for it forever: a
       * small "refused" entry takes its place. */
      msgpack_sbuffer sb;
      msgpack_sbuffer_init(&sb);
      msgpack_packer pk;
      msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
      msgpack_pack_uint64(&pk, session);
      msgpack_pack_uint64(&pk, seq);
      msgpack_pack_uint64(&pk, ack);
      msgpack_pack_str(&pk, strlen(msg));
      msgpack_pack_str_body(&pk, msg, strlen(msg));
      submit(ic, id, session, "r", sb.data, sb.size, 4);
      msgpack_sbuffer_destroy(&sb);
      return;
    }
    clients__reply_error(ic->conn, id, msg);
    return;
  }
  if (strcmp(verb, "submit") == 0 && n == 7) {
    const unsigned char *start = r.p;
    uint64_t session, seq, ack;
    if (mp_read_uint(&r, &session) < 0 || mp_read_uint(&r, &seq) < 0 ||
        mp_read_uint(&r, &ack) < 0 || mp_skip(&r) < 0 || mp_skip(&r) < 0 ||
        mp_left(&r) != 0) {
      clients__reply_error(ic->conn, id,
                           "malformed submit: expected session, seq, ack, "
                           "op and args");
      return;
    }
    submit(ic, id, session, "c", start, (size_t)(r.p - start), 5);
  } else if (strcmp(verb, "query") == 0 && n == 7) {
    const unsigned char *start = r.p;
    char level[16];
    uint64_t session, min_index;
    if (mp_skip(&r) < 0 || mp_skip(&r) < 0) {
      clients__reply_error(ic->conn, id, "malformed query: bad op or args");
      return;
    }
    size_t oplen = (size_t)(r.p - start);
    if (mp_read_name(&r, level, sizeof level) < 0 ||
        mp_read_uint(&r, &session) < 0 || mp_read_uint(&r, &min_index) < 0 ||
        mp_left(&r) != 0) {
      clients__reply_error(ic->conn, id,
                           "malformed query: expected op, args, consistency, "
                           "session and min_index");
      return;
    }
    query(s, ic->conn, id, start, oplen, level, session, min_index);
  } else if (strcmp(verb, "open") == 0 && n == 3) {
    sessions__open(ic, id, &r);
  } else if (strcmp(verb, "keepalive") == 0 && n == 5) {
    sessions__keepalive(ic, id, &r);
  } else if (strcmp(verb, "close") == 0 && n == 3) {
    sessions__close(ic, id, &r);
  } else if ((strcmp(verb, "change") == 0 && n == 5) ||
             ((strcmp(verb, "remove") == 0 || strcmp(verb, "transfer") == 0) &&
              n == 3)) {
    admin(s, ic->conn, id, verb, &r); /* rights checked above */
  } else {
    clients__reply_error(ic->conn, id,
                         "unknown request (expected submit, query, "
                         "change, remove or transfer)");
  }
}

void clients__conn_gone(struct server *s, net_conn *c) {
  forward__conn_gone(s, c);
  for (struct pending *p = s->pending; p; p = p->next)
    if (p->conn == c) p->conn = NULL;
  for (uint32_t i = 0; i < s->ka_n; i++)
    if (s->ka_waits[i].conn == c) s->ka_waits[i].conn = NULL;
  /* Reads of a gone client are dropped now: a sequential read may wait
   * for an index this server never reaches. Linearizable ones leave their
   * context with the core, which finds nobody to answer. */
  struct pending_read **pp = &s->reads;
  while (*pp) {
    struct pending_read *r = *pp;
    if (r->conn == c) {
      *pp = r->next;
      raft_buf_unref(r->req);
      free(r);
    } else {
      pp = &r->next;
    }
  }
}

void clients__fail_all(struct server *s, const char *why) {
  while (s->pending) {
    struct pending *p = s->pending;
    s->pending = p->next;
    if (p->command) metrics__command(s, METRICS_ERROR);
    clients__reply_error(p->conn, p->id, why);
    free(p);
  }
  s->pending_tail = NULL;
  while (s->reads) {
    struct pending_read *r = s->reads;
    s->reads = r->next;
    metrics__query(s, METRICS_ERROR);
    clients__reply_error(r->conn, r->id, why);
    raft_buf_unref(r->req);
    free(r);
  }
}
