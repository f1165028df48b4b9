/*
 * proto_msg.c — fuzzes proto_decode_msg (Raft messages from peers) and the
 * configuration inside snapshot messages (raft_conf_decode), the way the
 * server receives them.
 *
 * A message that decodes must encode again, and that encoding must decode
 * to the same encoding (the decoder accepts non-minimal integers, so the
 * input itself need not come back byte for byte).
 */
#include <string.h>

#include "fuzz.h"
#include "protocol/protocol.h"

const char fuzz_target_name[] = "proto_msg";

static void reencode_check(const struct raft_msg *m) {
  msgpack_sbuffer a, b;
  struct raft_msg m2;
  char err[256];
  msgpack_sbuffer_init(&a);
  msgpack_sbuffer_init(&b);
  FUZZ_CHECK(proto_encode_msg(&a, m) == 0);
  FUZZ_CHECK(proto_decode_msg(a.data, a.size, &m2, err, sizeof err) == 0);
  FUZZ_CHECK(proto_encode_msg(&b, &m2) == 0);
  FUZZ_CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
  raft_msg_clear(&m2);
  msgpack_sbuffer_destroy(&a);
  msgpack_sbuffer_destroy(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct raft_msg m;
  char err[256];
  err[0] = '\0';
  int rc = proto_decode_msg(data, size, &m, err, sizeof err);
  if (rc != 0) {
    FUZZ_CHECK(rc == PROTO_EFORMAT || rc == PROTO_ENOMEM);
    FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof err) != NULL);
    return 0;
  }
  FUZZ_CHECK(memchr(m.from, '\0', sizeof m.from) != NULL);
  FUZZ_CHECK(memchr(m.to, '\0', sizeof m.to) != NULL);
  if (m.type == RAFT_MSG_APPEND)
    for (size_t i = 0; i < m.u.append.n; i++) {
      const struct raft_entry *e = &m.u.append.entries[i];
      if (e->buf) fuzz_touch(e->buf->data, e->buf->len);
    }
  if (m.type == RAFT_MSG_SNAPSHOT && m.u.snapshot.data)
    fuzz_touch(m.u.snapshot.data->data, m.u.snapshot.data->len);
  if (m.type == RAFT_MSG_SNAPSHOT && m.u.snapshot.conf) {
    struct raft_conf c;
    (void)raft_conf_decode(&c, m.u.snapshot.conf->data, m.u.snapshot.conf->len);
  }
  reencode_check(&m);
  raft_msg_clear(&m);
  return 0;
}

/* ---- seeds: one message of every type ---- */

static void add_msg(fuzz_add_fn add, void *ud, const struct raft_msg *m) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  if (proto_encode_msg(&sb, m) == 0) add(ud, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

static void base(struct raft_msg *m, int type) {
  memset(m, 0, sizeof *m);
  m->type = (uint8_t)type;
  m->term = 7;
  strcpy(m->from, "alpha");
  strcpy(m->to, "bravo");
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  struct raft_msg m;
  base(&m, RAFT_MSG_VOTE);
  m.u.vote.last_index = 1000;
  m.u.vote.last_term = 6;
  m.u.vote.prevote = true;
  add_msg(add, ud, &m);

  base(&m, RAFT_MSG_VOTE_RESP);
  m.u.vote_resp.granted = true;
  add_msg(add, ud, &m);

  /* Appends with 0, 1 and 3 entries, payloads nil, empty and not. */
  static const char cmd[] = "\x93\xcf\0\0\0\0\0\0\0\x05\xa3put\x92\xa1k\xa1v";
  struct raft_buf *p1 = raft_buf_from(cmd, sizeof cmd - 1);
  struct raft_buf *p2 = raft_buf_from("", 0);
  struct raft_conf conf;
  memset(&conf, 0, sizeof conf);
  raft_conf_add(&conf, "alpha", "127.0.0.1:7001", RAFT_ACTIVE);
  raft_conf_add(&conf, "bravo", "127.0.0.1:7002", RAFT_PASSIVE);
  raft_conf_add(&conf, "charlie", "[::1]:7003", RAFT_RESERVE);
  struct raft_buf *cb = raft_conf_encode(&conf);
  struct raft_entry es[3] = {{.term = 5, .type = RAFT_COMMAND, .buf = p1},
                             {.term = 6, .type = RAFT_CONFIG, .buf = cb},
                             {.term = 7, .type = RAFT_COMMAND, .buf = NULL}};
  for (size_t n = 0; n <= 3; n += (n == 1 ? 2 : 1)) {
    base(&m, RAFT_MSG_APPEND);
    m.u.append.prev_index = 41;
    m.u.append.prev_term = 4;
    m.u.append.commit = 40;
    m.u.append.n = n;
    m.u.append.entries = n ? es : NULL;
    add_msg(add, ud, &m);
  }
  es[0].buf = p2;
  base(&m, RAFT_MSG_APPEND);
  m.u.append.n = 1;
  m.u.append.entries = es;
  add_msg(add, ud, &m);

  base(&m, RAFT_MSG_APPEND_RESP);
  m.u.append_resp.index = 44;
  m.u.append_resp.conflict_term = 3;
  m.u.append_resp.conflict_index = 30;
  add_msg(add, ud, &m);

  base(&m, RAFT_MSG_HEARTBEAT);
  m.u.heartbeat.commit = 44;
  m.u.heartbeat.seq = 99;
  add_msg(add, ud, &m);
  base(&m, RAFT_MSG_HEARTBEAT_RESP);
  m.u.heartbeat.seq = 99;
  m.u.heartbeat.last_index = 0xffffffffffull;
  add_msg(add, ud, &m);

  base(&m, RAFT_MSG_SNAPSHOT);
  m.u.snapshot.index = 500;
  m.u.snapshot.term = 6;
  m.u.snapshot.conf = cb;
  m.u.snapshot.data = p1;
  add_msg(add, ud, &m);
  m.u.snapshot.conf = NULL;
  m.u.snapshot.offset = 21;
  m.u.snapshot.data = p2;
  m.u.snapshot.last = true;
  m.u.snapshot.has_crc = true;
  m.u.snapshot.crc = 0xdeadbeefu;
  add_msg(add, ud, &m);

  base(&m, RAFT_MSG_SNAPSHOT_RESP);
  m.u.snapshot_resp.index = 500;
  m.u.snapshot_resp.offset = 21;
  m.u.snapshot_resp.done = true;
  add_msg(add, ud, &m);

  base(&m, RAFT_MSG_TIMEOUT_NOW);
  add_msg(add, ud, &m);

  raft_buf_unref(p1);
  raft_buf_unref(p2);
  raft_buf_unref(cb);
}
