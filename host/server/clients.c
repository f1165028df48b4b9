/*
 * clients.c — requests from clients: commands, queries, membership.
 *
 * Requests and replies are msgpack arrays (docs/protocol.md), decoded and
 * built by host/protocol/client.c:
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
 * does not lead) or ["error", id, message, code]. Events reach the connection
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
#include <assert.h>

#include "server/server_int.h"

/* Replies are built by host/protocol/client.c into one buffer that is kept
 * (loop thread only; a reply is copied into the connection's queue before
 * the next one begins), so a reply costs no allocation; a buffer grown
 * past 64 KiB is let go. */
static msgpack_sbuffer reply_sb;

static msgpack_sbuffer *reply_buf(void) {
  reply_sb.size = 0;
  return &reply_sb;
}

/* Sends what a cproto_* builder put in sb (if the client is still there). */
static void finish(net_conn *c, msgpack_sbuffer *sb) {
  if (c) net_conn_send(c, sb->data, sb->size);
  sb->size = 0;
  if (sb->alloc > 64 * 1024) {
    msgpack_sbuffer_destroy(sb);
    msgpack_sbuffer_init(sb);
  }
}

void clients__reply_error(net_conn *c, uint64_t id, enum cproto_code code,
                          const char *msg) {
  msgpack_sbuffer *sb = reply_buf();
  cproto_error(sb, id, code, msg);
  finish(c, sb);
}

void clients__reply_raft_error(net_conn *c, uint64_t id, int rc) {
  assert(rc < 0 && rc != RAFT_ENOTLEADER);
  clients__reply_error(c, id, cproto_code_of_raft(rc), cproto_raft_message(rc));
}

static void reply_ok(net_conn *c, uint64_t id) {
  msgpack_sbuffer *sb = reply_buf();
  cproto_ok(sb, id);
  finish(c, sb);
}

void clients__redirect(struct server *s, net_conn *c, uint64_t id) {
  msgpack_sbuffer *sb = reply_buf();
  const char *leader = server_leader_address(s);
  cproto_redirect(sb, id, raft_role(s->raft) != RAFT_LEADER ? leader : NULL);
  finish(c, sb);
}

/* ["result", id, <reply>, index] where reply is already msgpack. */
static void reply_result(net_conn *c, uint64_t id, const char *reply,
                         size_t len, uint64_t index) {
  msgpack_sbuffer *sb = reply_buf();
  cproto_result(sb, id, reply, len, index);
  finish(c, sb);
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
  if (s->clients.pending_tail)
    s->clients.pending_tail->next = p;
  else
    s->clients.pending = p;
  s->clients.pending_tail = p;
}

/* Proposes a command entry: kind "c" with the request's raw tail
 * [session, seq, ack, op, args] (n = 5, args are not decoded), or "r", a
 * refused command, with [session, seq, ack, message] (n = 4). */
static void submit(struct inconn *ic, uint64_t id, uint64_t session,
                   enum cproto_kind kind, const void *tail, size_t len,
                   uint32_t n) {
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
    clients__reply_raft_error(ic->conn, id, (int)index);
    return;
  }
  clients__add_pending(s, ic->conn, id, (uint64_t)index, 0);
  /* Session entries (open, keep-alive, close) wait in the same list: only
   * commands count in copycat_commands_total. */
  if (s->clients.pending_tail &&
      s->clients.pending_tail->index == (uint64_t)index &&
      s->clients.pending_tail->id == id &&
      s->clients.pending_tail->conn == ic->conn)
    s->clients.pending_tail->command = 1;
  server__process_soon(s);
}

void clients__applied(struct server *s, uint64_t index, uint64_t term,
                      const char *reply, size_t len) {
  assert(index == s->clients.applying);
  s->clients.replied = index;
  while (s->clients.pending && s->clients.pending->index <= index) {
    struct pending *p = s->clients.pending;
    s->clients.pending = p->next;
    if (!s->clients.pending) s->clients.pending_tail = NULL;
    if (p->command)
      metrics__command(s, p->index == index && p->term == term && reply
                              ? METRICS_OK
                              : METRICS_ERROR);
    if (p->index == index && p->term == term && p->admin)
      reply_ok(p->conn, p->id);
    else if (p->index == index && p->term == term && reply)
      reply_result(p->conn, p->id, reply, len, index);
    else
      clients__reply_error(p->conn, p->id, CPROTO_ENOT_APPLIED,
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
static void query(struct server *s, net_conn *c,
                  const struct cproto_request *q) {
  uint64_t id = q->id;
  int sequential = q->consistency == CPROTO_SEQUENTIAL;
  int lease = q->consistency == CPROTO_LEASE;
  /* the raw [op, args] pair: made an array for the machine. */
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_sbuffer_write(&sb, "\x92", 1);
  msgpack_sbuffer_write(&sb, (const char *)q->op, q->op_args_len);
  if (sequential && q->min_index <= s->applied) {
    run_query(s, c, id, q->session, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return;
  }
  uint64_t ctx = 0;
  if (!sequential) {
    server__catch_up(s); /* a lease must not outlive a pause */
    ctx = ++s->clients.next_read_ctx;
    int rc = raft_read(s->raft, ctx, lease);
    if (rc == RAFT_ENOTLEADER) {
      metrics__query(s, METRICS_REDIRECT);
      clients__redirect(s, c, id);
      msgpack_sbuffer_destroy(&sb);
      return;
    }
    if (rc < 0) {
      metrics__query(s, METRICS_ERROR);
      clients__reply_raft_error(c, id, rc);
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
    clients__reply_error(c, id, CPROTO_ENO_MEMORY,
                         "out of memory: retry shortly");
    return;
  }
  r->ctx = ctx;
  r->ready = sequential;
  r->min_index = q->min_index;
  r->session = q->session;
  r->conn = c;
  r->id = id;
  r->next = s->clients.reads;
  s->clients.reads = r;
  server__process_soon(s);
}

void clients__reads_ready(struct server *s, const struct raft_read_result *rr,
                          size_t n) {
  for (size_t i = 0; i < n; i++) {
    for (struct pending_read *r = s->clients.reads; r; r = r->next) {
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
  struct pending_read **pp = &s->clients.reads;
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

static void admin(struct server *s, net_conn *c,
                  const struct cproto_request *q) {
  uint64_t id = q->id;
  const char *verb = cproto_verb_name(q->verb);
  int rc;
  if (q->verb == CPROTO_CHANGE)
    rc = raft_change(s->raft, q->name, q->address, q->member_type);
  else if (q->verb == CPROTO_REMOVE)
    rc = raft_remove(s->raft, q->name);
  else
    rc = raft_transfer(s->raft, q->name);
  server__log_request(s, verb, q->name,
                      q->verb == CPROTO_CHANGE ? q->address : NULL,
                      q->verb == CPROTO_CHANGE ? q->member_type : 0, rc);
  if (rc == RAFT_ENOTLEADER) {
    clients__redirect(s, c, id);
  } else if (rc == RAFT_ENOTCAUGHTUP) {
    /* How far it has come, so that an operator can show progress
     * (copycat.operator reads these two numbers). */
    uint64_t match = 0, snap_index = 0, received = 0;
    char why[256];
    raft_match_index(s->raft, q->name, &match); /* stays 0 for a new member */
    int n = snprintf(why, sizeof why,
                     "the member has not caught up with the log yet (it "
                     "holds %llu of %llu entries",
                     (unsigned long long)match,
                     (unsigned long long)raft_last_index(s->raft));
    /* Catching up by snapshot: the entries do not move meanwhile, the
     * bytes do (the size is this server's snapshot's, the one sent). */
    const struct store_snapshot *snap = store_snapshot(s->store);
    if (raft_snapshot_progress(s->raft, q->name, &snap_index, &received) == 1 &&
        snap && snap->last_index == snap_index && n > 0 &&
        (size_t)n < sizeof why)
      n += snprintf(why + n, sizeof why - (size_t)n,
                    "; it is receiving a snapshot: %llu of %zu bytes",
                    (unsigned long long)received, snap->data_len);
    if (n > 0 && (size_t)n < sizeof why)
      snprintf(why + n, sizeof why - (size_t)n, "): retry shortly");
    clients__reply_error(c, id, CPROTO_ENOT_CAUGHT_UP, why);
  } else if (rc < 0) {
    clients__reply_raft_error(c, id, rc);
  } else if (q->verb == CPROTO_TRANSFER) {
    reply_ok(c, id); /* transfer: the caller watches the leader change */
  } else {
    /* Answer once the new configuration has committed. */
    clients__add_pending(s, c, id, raft_configuration_index(s->raft), 1);
  }
  server__process_soon(s);
}

/* A submit larger than max_request: the command is not logged, but its
 * sequence number must be used up, or the session's next commands would
 * wait for it forever: a small "refused" entry takes its place. Other
 * requests get an error. */
static void too_large(struct inconn *ic, const struct cproto_request *q,
                      size_t len) {
  char msg[200];
  snprintf(msg, sizeof msg,
           "request too large: %zu bytes, the server takes at most %u "
           "(max_request_bytes); split large values",
           len, (unsigned)ic->s->o.max_request);
  if (q->verb == CPROTO_SUBMIT && q->have_seq) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cproto_refused_tail(&sb, q->session, q->seq, q->ack, msg);
    submit(ic, q->id, q->session, CPROTO_KIND_REFUSED, sb.data, sb.size, 4);
    msgpack_sbuffer_destroy(&sb);
    return;
  }
  clients__reply_error(ic->conn, q->id, CPROTO_ETOO_LARGE, msg);
}

void clients__request(struct inconn *ic, const char *data, size_t len) {
  struct server *s = ic->s;
  struct cproto_request q;
  enum cproto_code code;
  char err[160];
  int rc = cproto_decode(data, len, &q, &code, err, sizeof err);
  if (rc == CPROTO_EFRAME) {
    net_conn_close(ic->conn, err);
    return;
  }
  /* The order of refusals: a failed or diverged server refuses before
   * it looks further (membership requests still reach a diverged one, so
   * that an operator can replace it), then size, then the fields. */
  if (s->failed) {
    clients__reply_error(ic->conn, q.id, CPROTO_ESTORAGE_FAILED,
                         "this server stopped accepting writes after "
                         "a storage failure (see its log)");
    return;
  }
  const char *refusal = agree__refusal(s);
  if (refusal && !cproto_verb_is_admin(q.verb)) {
    clients__reply_error(ic->conn, q.id, CPROTO_EDIVERGED, refusal);
    return;
  }
  /* Membership and leadership requests without admin rights are refused
   * here, by whichever member the client reached (trust.c). */
  if (cproto_verb_is_admin(q.verb) &&
      trust__admin_check(ic, q.id, cproto_verb_name(q.verb)) < 0)
    return;
  /* A follower hands what only the leader serves to the leader. */
  if (forward__request(ic, cproto_verb_name(q.verb), q.id, data, len, q.id_at,
                       q.id_end))
    return;
  if (len > s->o.max_request) {
    too_large(ic, &q, len);
    return;
  }
  if (rc < 0) {
    if (q.verb == CPROTO_QUERY && code == CPROTO_EMALFORMED)
      metrics__query(s, METRICS_ERROR);
    clients__reply_error(ic->conn, q.id, code, err);
    return;
  }
  switch (q.verb) {
    case CPROTO_SUBMIT:
      submit(ic, q.id, q.session, CPROTO_KIND_COMMAND, q.fields, q.fields_len,
             5);
      break;
    case CPROTO_QUERY:
      query(s, ic->conn, &q);
      break;
    case CPROTO_OPEN:
      sessions__open(ic, &q);
      break;
    case CPROTO_KEEPALIVE:
      sessions__keepalive(ic, &q);
      break;
    case CPROTO_CLOSE:
      sessions__close(ic, &q);
      break;
    case CPROTO_CHANGE:
    case CPROTO_REMOVE:
    case CPROTO_TRANSFER:
      admin(s, ic->conn, &q);
      break;
    default:
      assert(!"cproto_decode returned an unknown verb");
  }
}

void clients__conn_gone(struct server *s, net_conn *c) {
  forward__conn_gone(s, c);
  for (struct pending *p = s->clients.pending; p; p = p->next)
    if (p->conn == c) p->conn = NULL;
  sessions__conn_gone(s, c);
  /* Reads of a gone client are dropped now: a sequential read may wait
   * for an index this server never reaches. Linearizable ones leave their
   * context with the core, which finds nobody to answer. */
  struct pending_read **pp = &s->clients.reads;
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

void clients__fail_all(struct server *s, enum cproto_code code,
                       const char *why) {
  while (s->clients.pending) {
    struct pending *p = s->clients.pending;
    s->clients.pending = p->next;
    if (p->command) metrics__command(s, METRICS_ERROR);
    clients__reply_error(p->conn, p->id, code, why);
    free(p);
  }
  s->clients.pending_tail = NULL;
  while (s->clients.reads) {
    struct pending_read *r = s->clients.reads;
    s->clients.reads = r->next;
    metrics__query(s, METRICS_ERROR);
    clients__reply_error(r->conn, r->id, code, why);
    raft_buf_unref(r->req);
    free(r);
  }
}

void clients__applying(struct server *s, uint64_t index) {
  /* Entries are applied once each, in order. */
  assert(index > s->clients.applying || s->clients.applying == 0);
  s->clients.applying = index;
}

uint64_t clients__replied_index(const struct server *s) {
  return s->clients.replied;
}

uint64_t clients__applying_index(const struct server *s) {
  return s->clients.applying;
}
