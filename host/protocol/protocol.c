/*
 * protocol.c — encoding and decoding of hellos and Raft messages.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/mp.h"
#include "protocol/protocol.h"

/* Fields per message type after [type, term, from, to]. */
static int field_count(int type) {
  switch (type) {
    case RAFT_MSG_VOTE:
      return 4;
    case RAFT_MSG_VOTE_RESP:
      return 2;
    case RAFT_MSG_APPEND:
      return 4;
    case RAFT_MSG_APPEND_RESP:
      return 4;
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_HEARTBEAT_RESP:
      return 3;
    case RAFT_MSG_SNAPSHOT:
      return 7;
    case RAFT_MSG_SNAPSHOT_RESP:
      return 3;
    case RAFT_MSG_TIMEOUT_NOW:
      return 0;
    default:
      return -1;
  }
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return PROTO_EFORMAT;
}

/* ---- encoding ---- */

static void pack_str(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static void pack_buf(msgpack_packer *pk, const struct raft_buf *b) {
  if (!b) {
    msgpack_pack_nil(pk);
    return;
  }
  msgpack_pack_bin(pk, b->len);
  msgpack_pack_bin_body(pk, b->data, b->len);
}

static void pack_bool(msgpack_packer *pk, bool v) {
  if (v)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
}

int proto_encode_hello(msgpack_sbuffer *out, const struct proto_hello *h) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 6);
  pack_str(&pk, PROTO_MAGIC);
  msgpack_pack_uint64(&pk, h->version);
  pack_str(&pk, h->cluster);
  pack_str(&pk, h->role == PROTO_SERVER ? "server" : "client");
  pack_str(&pk, h->name);
  pack_str(&pk, h->address);
  return 0;
}

int proto_encode_msg(msgpack_sbuffer *out, const struct raft_msg *m) {
  int nf = field_count(m->type);
  if (nf < 0) return PROTO_EFORMAT;
  msgpack_packer pk;
  msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
  size_t before = out->size;
  msgpack_pack_array(&pk, 4 + (size_t)nf);
  msgpack_pack_uint8(&pk, m->type);
  msgpack_pack_uint64(&pk, m->term);
  pack_str(&pk, m->from);
  pack_str(&pk, m->to);
  switch (m->type) {
    case RAFT_MSG_VOTE:
      msgpack_pack_uint64(&pk, m->u.vote.last_index);
      msgpack_pack_uint64(&pk, m->u.vote.last_term);
      pack_bool(&pk, m->u.vote.prevote);
      pack_bool(&pk, m->u.vote.transfer);
      break;
    case RAFT_MSG_VOTE_RESP:
      pack_bool(&pk, m->u.vote_resp.prevote);
      pack_bool(&pk, m->u.vote_resp.granted);
      break;
    case RAFT_MSG_APPEND:
      msgpack_pack_uint64(&pk, m->u.append.prev_index);
      msgpack_pack_uint64(&pk, m->u.append.prev_term);
      msgpack_pack_uint64(&pk, m->u.append.commit);
      msgpack_pack_array(&pk, m->u.append.n);
      for (size_t i = 0; i < m->u.append.n; i++) {
        const struct raft_entry *e = &m->u.append.entries[i];
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, e->term);
        msgpack_pack_uint8(&pk, e->type);
        pack_buf(&pk, e->buf);
      }
      break;
    case RAFT_MSG_APPEND_RESP:
      pack_bool(&pk, m->u.append_resp.success);
      msgpack_pack_uint64(&pk, m->u.append_resp.index);
      msgpack_pack_uint64(&pk, m->u.append_resp.conflict_term);
      msgpack_pack_uint64(&pk, m->u.append_resp.conflict_index);
      break;
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_HEARTBEAT_RESP:
      msgpack_pack_uint64(&pk, m->u.heartbeat.commit);
      msgpack_pack_uint64(&pk, m->u.heartbeat.seq);
      msgpack_pack_uint64(&pk, m->u.heartbeat.last_index);
      break;
    case RAFT_MSG_SNAPSHOT:
      msgpack_pack_uint64(&pk, m->u.snapshot.index);
      msgpack_pack_uint64(&pk, m->u.snapshot.term);
      pack_buf(&pk, m->u.snapshot.conf);
      msgpack_pack_uint64(&pk, m->u.snapshot.offset);
      pack_buf(&pk, m->u.snapshot.data);
      pack_bool(&pk, m->u.snapshot.last);
      if (m->u.snapshot.has_crc)
        msgpack_pack_uint32(&pk, m->u.snapshot.crc);
      else
        msgpack_pack_nil(&pk);
      break;
    case RAFT_MSG_SNAPSHOT_RESP:
      msgpack_pack_uint64(&pk, m->u.snapshot_resp.index);
      msgpack_pack_uint64(&pk, m->u.snapshot_resp.offset);
      pack_bool(&pk, m->u.snapshot_resp.done);
      break;
    default:
      break;
  }
  /* msgpack_sbuffer_write fails only when realloc does. */
  return out->size > before ? 0 : PROTO_ENOMEM;
}

/* ---- decoding ---- */

/* Reads nil (NULL) or bin/str into a new buffer. */
static int read_buf(struct mp_reader *r, struct raft_buf **out) {
  *out = NULL;
  if (mp_read_nil(r)) return 0;
  const void *data;
  uint32_t len;
  int rc = mp_read_bytes(r, &data, &len);
  if (rc < 0) return rc;
  *out = raft_buf_from(data, len);
  return *out ? 0 : PROTO_ENOMEM;
}

static int read_entries(struct mp_reader *r, struct raft_msg *m) {
  uint32_t n;
  if (mp_read_array(r, &n) < 0) return PROTO_EFORMAT;
  m->u.append.n = 0;
  m->u.append.entries = NULL;
  if (n == 0) return 0;
  /* Each entry takes at least 4 bytes ([term, type, nil] = 0x93 + 3):
   * mp_read_array checked one byte each; tighten before allocating. */
  if ((size_t)n > mp_left(r) / 4) return PROTO_EFORMAT;
  m->u.append.entries = calloc(n, sizeof(struct raft_entry));
  if (!m->u.append.entries) return PROTO_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    struct raft_entry *e = &m->u.append.entries[i];
    uint32_t k;
    uint64_t type;
    if (mp_read_array(r, &k) < 0 || k != 3 || mp_read_uint(r, &e->term) < 0 ||
        mp_read_uint(r, &type) < 0 || type == 0 || type > 255)
      return PROTO_EFORMAT;
    e->type = (uint8_t)type;
    m->u.append.n = i + 1; /* so raft_msg_clear releases what was read */
    int rc = read_buf(r, &e->buf);
    if (rc < 0) return rc;
  }
  return 0;
}

/* The fields after [type, term, from, to]; all: every field of the type
 * is there (0 only for a snapshot chunk without its checksum field). */
static int read_fields(struct mp_reader *r, struct raft_msg *m, int all) {
  int rc = 0;
  switch (m->type) {
    case RAFT_MSG_VOTE:
      if (mp_read_uint(r, &m->u.vote.last_index) < 0 ||
          mp_read_uint(r, &m->u.vote.last_term) < 0 ||
          mp_read_bool(r, &m->u.vote.prevote) < 0 ||
          mp_read_bool(r, &m->u.vote.transfer) < 0)
        rc = PROTO_EFORMAT;
      break;
    case RAFT_MSG_VOTE_RESP:
      if (mp_read_bool(r, &m->u.vote_resp.prevote) < 0 ||
          mp_read_bool(r, &m->u.vote_resp.granted) < 0)
        rc = PROTO_EFORMAT;
      break;
    case RAFT_MSG_APPEND:
      if (mp_read_uint(r, &m->u.append.prev_index) < 0 ||
          mp_read_uint(r, &m->u.append.prev_term) < 0 ||
          mp_read_uint(r, &m->u.append.commit) < 0)
        rc = PROTO_EFORMAT;
      else
        rc = read_entries(r, m);
      break;
    case RAFT_MSG_APPEND_RESP:
      if (mp_read_bool(r, &m->u.append_resp.success) < 0 ||
          mp_read_uint(r, &m->u.append_resp.index) < 0 ||
          mp_read_uint(r, &m->u.append_resp.conflict_term) < 0 ||
          mp_read_uint(r, &m->u.append_resp.conflict_index) < 0)
        rc = PROTO_EFORMAT;
      break;
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_HEARTBEAT_RESP:
      if (mp_read_uint(r, &m->u.heartbeat.commit) < 0 ||
          mp_read_uint(r, &m->u.heartbeat.seq) < 0 ||
          mp_read_uint(r, &m->u.heartbeat.last_index) < 0)
        rc = PROTO_EFORMAT;
      break;
    case RAFT_MSG_SNAPSHOT:
      if (mp_read_uint(r, &m->u.snapshot.index) < 0 ||
          mp_read_uint(r, &m->u.snapshot.term) < 0)
        return PROTO_EFORMAT;
      rc = read_buf(r, &m->u.snapshot.conf);
      if (rc < 0) return rc;
      if (mp_read_uint(r, &m->u.snapshot.offset) < 0) return PROTO_EFORMAT;
      rc = read_buf(r, &m->u.snapshot.data);
      if (rc < 0) return rc;
      if (mp_read_bool(r, &m->u.snapshot.last) < 0) return PROTO_EFORMAT;
      if (all && !mp_read_nil(r)) {
        uint64_t crc;
        if (mp_read_uint(r, &crc) < 0 || crc > UINT32_MAX ||
            !m->u.snapshot.last)
          return PROTO_EFORMAT;
        m->u.snapshot.has_crc = true;
        m->u.snapshot.crc = (uint32_t)crc;
      }
      break;
    case RAFT_MSG_SNAPSHOT_RESP:
      if (mp_read_uint(r, &m->u.snapshot_resp.index) < 0 ||
          mp_read_uint(r, &m->u.snapshot_resp.offset) < 0 ||
          mp_read_bool(r, &m->u.snapshot_resp.done) < 0)
        rc = PROTO_EFORMAT;
      break;
    default:
      break;
  }
  return rc < 0 ? (rc == PROTO_ENOMEM ? rc : PROTO_EFORMAT) : 0;
}

int proto_decode_msg(const void *data, size_t len, struct raft_msg *m,
                     char *err, size_t errlen) {
  struct mp_reader r;
  uint32_t n;
  uint64_t type;
  memset(m, 0, sizeof *m);
  mp_reader_init(&r, data, len);
  if (mp_read_array(&r, &n) < 0 || n < 4)
    return fail(err, errlen, "not a message: expected an array [type, ...]");
  if (mp_read_uint(&r, &type) < 0 || field_count((int)type) < 0 || type > 255)
    return fail(err, errlen, "unknown message type");
  /* A snapshot chunk from a server older than its checksum (the seventh
   * field) has six: accepted, so that such a leader's followers can
   * still catch up during a rolling upgrade (the chunks go unchecked). */
  int older =
      type == RAFT_MSG_SNAPSHOT && n == 3u + (unsigned)field_count((int)type);
  if (n != 4u + (unsigned)field_count((int)type) && !older)
    return fail(err, errlen, "%s with %u fields, expected %d",
                raft_msg_name((int)type), n, 4 + field_count((int)type));
  m->type = (uint8_t)type;
  if (mp_read_uint(&r, &m->term) < 0 ||
      mp_read_name(&r, m->from, sizeof m->from) < 0 ||
      mp_read_name(&r, m->to, sizeof m->to) < 0) {
    memset(m, 0, sizeof *m);
    return fail(err, errlen, "%s: bad term or member name",
                raft_msg_name((int)type));
  }
  int rc = read_fields(&r, m, !older);
  if (rc == 0 && mp_left(&r) != 0) rc = PROTO_EFORMAT;
  if (rc < 0) {
    raft_msg_clear(m);
    memset(m, 0, sizeof *m);
    if (rc == PROTO_ENOMEM) {
      if (errlen) snprintf(err, errlen, "out of memory");
      return rc;
    }
    return fail(err, errlen, "%s: malformed fields", raft_msg_name((int)type));
  }
  return 0;
}

int proto_decode_hello(const void *data, size_t len, struct proto_hello *h,
                       char *err, size_t errlen) {
  struct mp_reader r;
  uint32_t n;
  char magic[16], role[16];
  memset(h, 0, sizeof *h);
  mp_reader_init(&r, data, len);
  if (mp_read_array(&r, &n) < 0 || (n != 6 && n != 7) ||
      mp_read_name(&r, magic, sizeof magic) < 0 ||
      strcmp(magic, PROTO_MAGIC) != 0 || mp_read_uint(&r, &h->version) < 0)
    return fail(err, errlen,
                "not a copycat-lua hello (is this a copycat-lua peer?)");
  if (h->version != PROTO_VERSION) {
    if (errlen)
      snprintf(err, errlen,
               "protocol version %llu is not supported (this server speaks "
               "version %d): upgrade the older side",
               (unsigned long long)h->version, PROTO_VERSION);
    return PROTO_EVERSION;
  }
  if (mp_read_name(&r, h->cluster, sizeof h->cluster) < 0 ||
      mp_read_name(&r, role, sizeof role) < 0 ||
      mp_read_name(&r, h->name, sizeof h->name) < 0 ||
      mp_read_name(&r, h->address, sizeof h->address) < 0 ||
      (n == 7 && mp_read_name(&r, h->token, sizeof h->token) < 0) ||
      mp_left(&r) != 0)
    return fail(err, errlen, "malformed hello");
  if (strcmp(role, "server") == 0)
    h->role = PROTO_SERVER;
  else if (strcmp(role, "client") == 0)
    h->role = PROTO_CLIENT;
  else
    return fail(err, errlen, "hello with unknown role '%s'", role);
  return 0;
}
