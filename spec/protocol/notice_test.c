/*
 * notice_test.c — the notices of host/protocol/notice.c: they round-trip,
 * every truncation and wrong field is refused with a reason, and they are
 * told apart from Raft messages and hellos.
 */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "protocol/protocol.h"

static void encode(msgpack_sbuffer *sb, int type, const char *from,
                   uint64_t index, uint64_t hash, uint64_t majority,
                   const char *names) {
  struct proto_notice n;
  memset(&n, 0, sizeof n);
  n.type = type;
  strcpy(n.from, from);
  n.index = index;
  n.hash = hash;
  n.majority = majority;
  strcpy(n.names, names);
  msgpack_sbuffer_init(sb);
  CHECK(proto_encode_notice(sb, &n) == 0);
}

TEST(every_notice_type_round_trips) {
  int types[] = {PROTO_NOTICE_HASH, PROTO_NOTICE_DIVERGED,
                 PROTO_NOTICE_REMOVED};
  for (int i = 0; i < 3; i++) {
    msgpack_sbuffer sb;
    encode(&sb, types[i], "n1", 20000, 0xfedcba9876543210u, UINT64_MAX,
           "n1,n2");
    CHECK(proto_is_notice(sb.data, sb.size));
    struct proto_notice n;
    char err[128];
    CHECK(proto_decode_notice(sb.data, sb.size, &n, err, sizeof err) == 0);
    CHECK(n.type == types[i] && strcmp(n.from, "n1") == 0);
    CHECK(n.index == 20000 && n.hash == 0xfedcba9876543210u);
    CHECK(n.majority == UINT64_MAX && strcmp(n.names, "n1,n2") == 0);
    msgpack_sbuffer_destroy(&sb);
  }
}

TEST(every_truncation_and_trailing_bytes_are_refused) {
  msgpack_sbuffer sb;
  encode(&sb, PROTO_NOTICE_DIVERGED, "n3", 10, 1, 2, "n1,n2");
  struct proto_notice n;
  char err[128];
  for (size_t len = 0; len < sb.size; len++) {
    err[0] = 0;
    CHECK(proto_decode_notice(sb.data, len, &n, err, sizeof err) ==
          PROTO_EFORMAT);
    CHECK(strncmp(err, "malformed notice: expected", 26) == 0);
  }
  msgpack_sbuffer_write(&sb, "\xc0", 1);
  CHECK(proto_decode_notice(sb.data, sb.size, &n, err, sizeof err) ==
        PROTO_EFORMAT);
  CHECK(strstr(err, "nothing after") != NULL);
  msgpack_sbuffer_destroy(&sb);
}

TEST(unknown_types_and_empty_senders_are_refused) {
  struct proto_notice n;
  char err[128];
  msgpack_sbuffer sb;
  memset(&n, 0, sizeof n);
  n.type = 23;
  msgpack_sbuffer_init(&sb);
  CHECK(proto_encode_notice(&sb, &n) == PROTO_EFORMAT);
  msgpack_sbuffer_destroy(&sb);
  encode(&sb, PROTO_NOTICE_HASH, "", 1, 1, 0, "");
  CHECK(proto_decode_notice(sb.data, sb.size, &n, err, sizeof err) ==
        PROTO_EFORMAT);
  CHECK(strstr(err, "sender") != NULL);
  msgpack_sbuffer_destroy(&sb);
}

TEST(raft_messages_and_hellos_are_not_notices) {
  struct raft_msg m;
  memset(&m, 0, sizeof m);
  m.type = RAFT_MSG_HEARTBEAT;
  m.term = 20; /* the term's position is a notice's "from" */
  strcpy(m.from, "a");
  strcpy(m.to, "b");
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  CHECK(proto_encode_msg(&sb, &m) == 0);
  CHECK(!proto_is_notice(sb.data, sb.size));
  msgpack_sbuffer_destroy(&sb);
  struct proto_hello h;
  memset(&h, 0, sizeof h);
  h.version = PROTO_VERSION;
  h.role = PROTO_SERVER;
  strcpy(h.name, "a");
  msgpack_sbuffer_init(&sb);
  CHECK(proto_encode_hello(&sb, &h) == 0);
  CHECK(!proto_is_notice(sb.data, sb.size));
  msgpack_sbuffer_destroy(&sb);
}

int main(void) {
  RUN(every_notice_type_round_trips);
  RUN(every_truncation_and_trailing_bytes_are_refused);
  RUN(unknown_types_and_empty_senders_are_refused);
  RUN(raft_messages_and_hellos_are_not_notices);
  return harness_done();
}
