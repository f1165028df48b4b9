/*
 * client.c — the client protocol: request decoding, replies, session
 * entries (client.h, docs/protocol.md).
 */
#include "protocol/client.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "protocol/mp.h"

/* ---- names ---- */

static const char *const verb_names[] = {
    [CPROTO_UNKNOWN] = "",
    [CPROTO_OPEN] = "open",
    [CPROTO_KEEPALIVE] = "keepalive",
    [CPROTO_CLOSE] = "close",
    [CPROTO_SUBMIT] = "submit",
    [CPROTO_QUERY] = "query",
    [CPROTO_CHANGE] = "change",
    [CPROTO_REMOVE] = "remove",
    [CPROTO_TRANSFER] = "transfer",
};
#define VERB_COUNT (sizeof verb_names / sizeof verb_names[0])

/* Fields after the id, per verb. */
static const uint32_t verb_fields[VERB_COUNT] = {
    [CPROTO_OPEN] = 1,   [CPROTO_KEEPALIVE] = 3, [CPROTO_CLOSE] = 1,
    [CPROTO_SUBMIT] = 5, [CPROTO_QUERY] = 5,     [CPROTO_CHANGE] = 3,
    [CPROTO_REMOVE] = 1, [CPROTO_TRANSFER] = 1,
};

const char *cproto_verb_name(enum cproto_verb v) {
  return (unsigned)v < VERB_COUNT ? verb_names[v] : "";
}

int cproto_verb_is_admin(enum cproto_verb v) {
  return v == CPROTO_CHANGE || v == CPROTO_REMOVE || v == CPROTO_TRANSFER;
}

static const char *const code_names[CPROTO_CODE_COUNT] = {
    [CPROTO_EMALFORMED] = "malformed",
    [CPROTO_EUNKNOWN] = "unknown_request",
    [CPROTO_ETOO_LARGE] = "too_large",
    [CPROTO_ENO_MEMBER] = "no_such_member",
    [CPROTO_EINVALID] = "invalid",
    [CPROTO_EBUSY] = "busy",
    [CPROTO_ECHANGING] = "change_in_progress",
    [CPROTO_ENOT_CAUGHT_UP] = "not_caught_up",
    [CPROTO_ENOT_READY] = "not_ready",
    [CPROTO_ETRANSFERRING] = "transfer_in_progress",
    [CPROTO_ENOT_APPLIED] = "not_applied",
    [CPROTO_ELEADER_LOST] = "leader_lost",
    [CPROTO_ENO_MEMORY] = "no_memory",
    [CPROTO_ESTOPPING] = "stopping",
    [CPROTO_ESTORAGE_FAILED] = "storage_failed",
    [CPROTO_EDIVERGED] = "diverged",
    [CPROTO_ESTALE] = "stale",
    [CPROTO_EDENIED] = "denied",
};

const char *cproto_code_name(enum cproto_code c) {
  if (c <= 0 || c >= CPROTO_CODE_COUNT || !code_names[c]) return "internal";
  return code_names[c];
}

enum cproto_code cproto_code_of_name(const char *name, size_t len) {
  assert(name || len == 0);
  for (int c = 1; c < CPROTO_CODE_COUNT; c++)
    if (strlen(code_names[c]) == len && memcmp(code_names[c], name, len) == 0)
      return (enum cproto_code)c;
  return 0;
}

int cproto_code_transient(enum cproto_code c) {
  return c >= CPROTO_EBUSY && c <= CPROTO_ESTALE;
}

enum cproto_code cproto_code_of_raft(int rc) {
  switch (rc) {
    case RAFT_EBACKLOG:
      return CPROTO_EBUSY;
    case RAFT_ECHANGE:
      return CPROTO_ECHANGING;
    case RAFT_ENOTCAUGHTUP:
      return CPROTO_ENOT_CAUGHT_UP;
    case RAFT_ENOTREADY:
      return CPROTO_ENOT_READY;
    case RAFT_ETRANSFER:
      return CPROTO_ETRANSFERRING;
    case RAFT_ENOTFOUND:
      return CPROTO_ENO_MEMBER;
    case RAFT_ENOMEM:
      return CPROTO_ENO_MEMORY;
    case RAFT_ESTALE:
      return CPROTO_ESTALE;
    default:
      return CPROTO_EINVALID;
  }
}

const char *cproto_raft_message(int rc) {
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

/* ---- decoding ---- */

static int fail(enum cproto_code *code, enum cproto_code c, char *err,
                size_t errlen, const char *msg) {
  *code = c;
  snprintf(err, errlen, "%s", msg);
  return CPROTO_EREQUEST;
}

static int member_type(const char *t) {
  if (strcmp(t, "active") == 0) return RAFT_ACTIVE;
  if (strcmp(t, "passive") == 0) return RAFT_PASSIVE;
  if (strcmp(t, "reserve") == 0) return RAFT_RESERVE;
  return 0;
}

static int consistency(const char *level, enum cproto_consistency *out) {
  if (strcmp(level, "linearizable") == 0)
    *out = CPROTO_LINEARIZABLE;
  else if (strcmp(level, "lease") == 0)
    *out = CPROTO_LEASE;
  else if (strcmp(level, "sequential") == 0)
    *out = CPROTO_SEQUENTIAL;
  else
    return -1;
  return 0;
}

/* The fields of each verb; the cursor stands after the id. */
static int decode_fields(struct mp_reader *m, struct cproto_request *r,
                         enum cproto_code *code, char *err, size_t errlen) {
  const unsigned char *start = m->p;
  switch (r->verb) {
    case CPROTO_SUBMIT:
      if (mp_read_uint(m, &r->session) < 0 || mp_read_uint(m, &r->seq) < 0 ||
          mp_read_uint(m, &r->ack) < 0)
        goto bad_submit;
      r->have_seq = 1;
      r->op = m->p;
      if (mp_skip(m) < 0) goto bad_submit;
      r->op_len = (size_t)(m->p - (const unsigned char *)r->op);
      if (mp_skip(m) < 0 || mp_left(m) != 0) goto bad_submit;
      r->op_args_len = (size_t)(m->p - (const unsigned char *)r->op);
      break;
    bad_submit:
      return fail(code, CPROTO_EMALFORMED, err, errlen,
                  "malformed submit: expected session, seq, ack, op and args");
    case CPROTO_QUERY: {
      char level[16];
      r->op = m->p;
      if (mp_skip(m) < 0) goto bad_op;
      r->op_len = (size_t)(m->p - (const unsigned char *)r->op);
      if (mp_skip(m) < 0) goto bad_op;
      r->op_args_len = (size_t)(m->p - (const unsigned char *)r->op);
      if (mp_read_name(m, level, sizeof level) < 0 ||
          mp_read_uint(m, &r->session) < 0 ||
          mp_read_uint(m, &r->min_index) < 0 || mp_left(m) != 0)
        return fail(code, CPROTO_EMALFORMED, err, errlen,
                    "malformed query: expected op, args, consistency, "
                    "session and min_index");
      if (consistency(level, &r->consistency) < 0)
        return fail(code, CPROTO_EMALFORMED, err, errlen,
                    "unknown consistency: use linearizable, lease or "
                    "sequential");
      break;
    bad_op:
      return fail(code, CPROTO_EMALFORMED, err, errlen,
                  "malformed query: bad op or args");
    }
    case CPROTO_OPEN:
      if (mp_read_uint(m, &r->timeout_ms) < 0 || mp_left(m) != 0)
        return fail(code, CPROTO_EMALFORMED, err, errlen,
                    "malformed open: expected a timeout in ms");
      break;
    case CPROTO_CLOSE:
      if (mp_read_uint(m, &r->session) < 0 || mp_left(m) != 0)
        return fail(code, CPROTO_EMALFORMED, err, errlen,
                    "malformed close: expected a session");
      break;
    case CPROTO_KEEPALIVE:
      if (mp_read_uint(m, &r->session) < 0 || mp_read_uint(m, &r->ack) < 0 ||
          mp_read_uint(m, &r->event_ack) < 0 || mp_left(m) != 0)
        return fail(code, CPROTO_EMALFORMED, err, errlen,
                    "malformed keepalive: expected session, command ack "
                    "and event ack");
      break;
    case CPROTO_CHANGE:
    case CPROTO_REMOVE:
    case CPROTO_TRANSFER: {
      char type[16];
      if (mp_read_name(m, r->name, sizeof r->name) < 0)
        return fail(code, CPROTO_EMALFORMED, err, errlen,
                    "malformed request: expected a member name");
      if (r->verb == CPROTO_CHANGE &&
          (mp_read_name(m, r->address, sizeof r->address) < 0 ||
           mp_read_name(m, type, sizeof type) < 0 ||
           !(r->member_type = member_type(type))))
        return fail(code, CPROTO_EMALFORMED, err, errlen,
                    "malformed change: expected name, address and type "
                    "(active, passive or reserve)");
      break;
    }
    default:
      break;
  }
  r->fields = start;
  r->fields_len = (size_t)(m->p - start);
  return 0;
}

int cproto_decode(const void *data, size_t len, struct cproto_request *r,
                  enum cproto_code *code, char *err, size_t errlen) {
  struct mp_reader m;
  uint32_t n;
  char verb[16];
  memset(r, 0, sizeof *r);
  *code = 0;
  mp_reader_init(&m, data, len);
  if (mp_read_array(&m, &n) < 0 || n < 2 ||
      mp_read_name(&m, verb, sizeof verb) < 0 ||
      (r->id_at = (size_t)(m.p - (const unsigned char *)data),
       mp_read_uint(&m, &r->id) < 0)) {
    snprintf(err, errlen, "malformed request: expected [verb, id, ...]");
    return CPROTO_EFRAME;
  }
  r->id_end = (size_t)(m.p - (const unsigned char *)data);
  r->nfields = n - 2;
  unsigned v = 1;
  while (v < VERB_COUNT && strcmp(verb, verb_names[v]) != 0)
    v++;
  /* A known verb with the wrong count keeps its name in r->verb for the
   * caller (a refusal that depends on the verb), but is not served. */
  if (v < VERB_COUNT) r->verb = (enum cproto_verb)v;
  if (v == VERB_COUNT || verb_fields[v] != r->nfields)
    return fail(code, CPROTO_EUNKNOWN, err, errlen,
                "unknown request (expected submit, query, change, remove or "
                "transfer)");
  return decode_fields(&m, r, code, err, errlen);
}

/* ---- replies ---- */

static void pack_str(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static void begin(msgpack_sbuffer *out, msgpack_packer *pk, size_t n,
                  const char *verb, uint64_t id) {
  msgpack_packer_init(pk, out, msgpack_sbuffer_write);
  msgpack_pack_array(pk, n);
  pack_str(pk, verb);
  msgpack_pack_uint64(pk, id);
}

void cproto_result(msgpack_sbuffer *out, uint64_t id, const void *reply,
                   size_t len, uint64_t index) {
  msgpack_packer pk;
  begin(out, &pk, 4, "result", id);
  msgpack_sbuffer_write(out, reply, len);
  msgpack_pack_uint64(&pk, index);
}

void cproto_ok(msgpack_sbuffer *out, uint64_t id) {
  msgpack_packer pk;
  begin(out, &pk, 2, "ok", id);
}

void cproto_redirect(msgpack_sbuffer *out, uint64_t id, const char *leader) {
  msgpack_packer pk;
  begin(out, &pk, 3, "redirect", id);
  if (leader && leader[0])
    pack_str(&pk, leader);
  else
    msgpack_pack_nil(&pk);
}

void cproto_error(msgpack_sbuffer *out, uint64_t id, enum cproto_code code,
                  const char *message) {
  msgpack_packer pk;
  begin(out, &pk, 4, "error", id);
  pack_str(&pk, message);
  pack_str(&pk, cproto_code_name(code));
}

/* ---- session entries ---- */

struct head {
  char *b;
  size_t n;
};

static int head_write(void *data, const char *buf, size_t len) {
  struct head *h = data;
  if (h->n + len > CPROTO_HEAD_MAX) return -1;
  memcpy(h->b + h->n, buf, len);
  h->n += len;
  return 0;
}

size_t cproto_entry_head(char *out, uint64_t time, enum cproto_kind kind,
                         uint32_t n) {
  struct head h = {out, 0};
  msgpack_packer pk;
  char k = (char)kind;
  msgpack_packer_init(&pk, &h, head_write);
  /* at most 5 + 9 + 1 + 1 bytes: these cannot fail */
  msgpack_pack_array(&pk, 2 + n);
  msgpack_pack_uint64(&pk, time);
  msgpack_pack_str(&pk, 1);
  msgpack_pack_str_body(&pk, &k, 1);
  return h.n;
}

void cproto_entry(msgpack_sbuffer *out, uint64_t time, enum cproto_kind kind,
                  const void *tail, size_t len, uint32_t n) {
  char head[CPROTO_HEAD_MAX];
  size_t hn = cproto_entry_head(head, time, kind, n);
  msgpack_sbuffer_write(out, head, hn);
  if (len) msgpack_sbuffer_write(out, tail, len);
}

void cproto_refused_tail(msgpack_sbuffer *out, uint64_t session, uint64_t seq,
                         uint64_t ack, const char *message) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
  msgpack_pack_uint64(&pk, session);
  msgpack_pack_uint64(&pk, seq);
  msgpack_pack_uint64(&pk, ack);
  pack_str(&pk, message);
}
