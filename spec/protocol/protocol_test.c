/* Wire format of hellos and Raft messages (host/protocol). */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "protocol/protocol.h"

static struct raft_msg base(int type) {
  struct raft_msg m;
  memset(&m, 0, sizeof m);
  m.type = (uint8_t)type;
  m.term = UINT64_MAX - 1;
  strcpy(m.from, "node-1");
  strcpy(m.to,
         "a-rather-long-member-name-of-sixty-three-bytes-exactly-xxxxxxxx");
  return m;
}

/* One message of each type with every field set to a non-default value. */
static int sample(int type, struct raft_msg *m, struct raft_entry *ents) {
  *m = base(type);
  switch (type) {
    case RAFT_MSG_VOTE:
      m->u.vote.last_index = 1ull << 40;
      m->u.vote.last_term = 7;
      m->u.vote.prevote = true;
      m->u.vote.transfer = true;
      break;
    case RAFT_MSG_VOTE_RESP:
      m->u.vote_resp.granted = true;
      break;
    case RAFT_MSG_APPEND:
      m->u.append.prev_index = 41;
      m->u.append.prev_term = 3;
      m->u.append.commit = 40;
      ents[0] = (struct raft_entry){4, RAFT_COMMAND, raft_buf_from("abc", 3)};
      ents[1] = (struct raft_entry){4, RAFT_NOOP, NULL};
      ents[2] = (struct raft_entry){5, 200, raft_buf_from("\0\xff", 2)};
      m->u.append.n = 3;
      m->u.append.entries = ents;
      break;
    case RAFT_MSG_APPEND_RESP:
      m->u.append_resp.index = 99;
      m->u.append_resp.conflict_term = 2;
      m->u.append_resp.conflict_index = 17;
      break;
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_HEARTBEAT_RESP:
      m->u.heartbeat.commit = 12;
      m->u.heartbeat.seq = 1234567;
      m->u.heartbeat.last_index = 77;
      break;
    case RAFT_MSG_SNAPSHOT:
      m->u.snapshot.index = 1000;
      m->u.snapshot.term = 9;
      m->u.snapshot.conf = raft_buf_from("conf", 4);
      m->u.snapshot.offset = 65536;
      m->u.snapshot.data = raft_buf_from("chunk-bytes", 11);
      m->u.snapshot.last = true;
      m->u.snapshot.has_crc = true;
      m->u.snapshot.crc = 0xE3069283u;
      break;
    case RAFT_MSG_SNAPSHOT_RESP:
      m->u.snapshot_resp.index = 1000;
      m->u.snapshot_resp.offset = 70000;
      m->u.snapshot_resp.done = true;
      break;
    case RAFT_MSG_TIMEOUT_NOW:
      break;
    default:
      return -1;
  }
  return 0;
}

static void release_sample(struct raft_msg *m) {
  if (m->type == RAFT_MSG_APPEND) {
    for (size_t i = 0; i < m->u.append.n; i++)
      raft_buf_unref(m->u.append.entries[i].buf);
  } else if (m->type == RAFT_MSG_SNAPSHOT) {
    raft_buf_unref(m->u.snapshot.conf);
    raft_buf_unref(m->u.snapshot.data);
  }
}

static int same_buf(const struct raft_buf *a, const struct raft_buf *b) {
  if (!a || !b) return a == b;
  return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void check_same(const struct raft_msg *a, const struct raft_msg *b) {
  CHECK_INT(a->type, ==, b->type);
  CHECK(a->term == b->term);
  CHECK(strcmp(a->from, b->from) == 0);
  CHECK(strcmp(a->to, b->to) == 0);
  switch (a->type) {
    case RAFT_MSG_APPEND:
      CHECK(a->u.append.prev_index == b->u.append.prev_index);
      CHECK(a->u.append.prev_term == b->u.append.prev_term);
      CHECK(a->u.append.commit == b->u.append.commit);
      CHECK_INT(a->u.append.n, ==, b->u.append.n);
      for (size_t i = 0; i < a->u.append.n; i++) {
        CHECK(a->u.append.entries[i].term == b->u.append.entries[i].term);
        CHECK_INT(a->u.append.entries[i].type, ==, b->u.append.entries[i].type);
        CHECK(same_buf(a->u.append.entries[i].buf, b->u.append.entries[i].buf));
      }
      break;
    case RAFT_MSG_SNAPSHOT:
      CHECK(a->u.snapshot.index == b->u.snapshot.index);
      CHECK(a->u.snapshot.term == b->u.snapshot.term);
      CHECK(a->u.snapshot.offset == b->u.snapshot.offset);
      CHECK(a->u.snapshot.last == b->u.snapshot.last);
      CHECK(a->u.snapshot.has_crc == b->u.snapshot.has_crc);
      CHECK(a->u.snapshot.crc == b->u.snapshot.crc);
      CHECK(same_buf(a->u.snapshot.conf, b->u.snapshot.conf));
      CHECK(same_buf(a->u.snapshot.data, b->u.snapshot.data));
      break;
    default: /* the remaining unions hold only scalars */
      CHECK(memcmp(&a->u, &b->u, sizeof a->u) == 0);
  }
}

TEST(every_message_type_round_trips) {
  for (int type = RAFT_MSG_VOTE; type <= RAFT_MSG_TIMEOUT_NOW; type++) {
    struct raft_msg m, d;
    struct raft_entry ents[3];
    CHECK_INT(sample(type, &m, ents), ==, 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_INT(proto_encode_msg(&sb, &m), ==, 0);
    char err[128];
    CHECK_INT(proto_decode_msg(sb.data, sb.size, &d, err, sizeof err), ==, 0);
    check_same(&m, &d);
    raft_msg_clear(&d);
    release_sample(&m);
    msgpack_sbuffer_destroy(&sb);
  }
}

TEST(every_truncation_of_every_message_is_refused) {
  for (int type = RAFT_MSG_VOTE; type <= RAFT_MSG_TIMEOUT_NOW; type++) {
    struct raft_msg m, d;
    struct raft_entry ents[3];
    sample(type, &m, ents);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    proto_encode_msg(&sb, &m);
    char err[128];
    for (size_t cut = 0; cut < sb.size; cut++)
      CHECK_INT(proto_decode_msg(sb.data, cut, &d, err, sizeof err), ==,
                PROTO_EFORMAT);
    release_sample(&m);
    msgpack_sbuffer_destroy(&sb);
  }
}

TEST(trailing_bytes_after_a_message_are_refused) {
  struct raft_msg m = base(RAFT_MSG_TIMEOUT_NOW), d;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  proto_encode_msg(&sb, &m);
  msgpack_sbuffer_write(&sb, "\x01", 1);
  char err[128];
  CHECK_INT(proto_decode_msg(sb.data, sb.size, &d, err, sizeof err), ==,
            PROTO_EFORMAT);
  msgpack_sbuffer_destroy(&sb);
}

TEST(random_byte_flips_never_crash_the_decoder) {
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (int type = RAFT_MSG_VOTE; type <= RAFT_MSG_TIMEOUT_NOW; type++) {
    struct raft_msg m, d;
    struct raft_entry ents[3];
    sample(type, &m, ents);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    proto_encode_msg(&sb, &m);
    for (int iter = 0; iter < 3000; iter++) {
      char copy[512];
      CHECK(sb.size <= sizeof copy);
      memcpy(copy, sb.data, sb.size);
      for (int k = 0; k < 3; k++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        copy[seed % sb.size] = (char)(seed >> 32);
      }
      char err[128];
      if (proto_decode_msg(copy, sb.size, &d, err, sizeof err) == 0)
        raft_msg_clear(&d);
    }
    release_sample(&m);
    msgpack_sbuffer_destroy(&sb);
  }
}

TEST(a_hostile_entry_count_is_refused_before_allocating) {
  /* [3, 1, "a", "b", 0, 0, 0, array32 of 4294967295 entries] */
  const char frame[] =
      "\x98\x03\x01\xa1"
      "a"
      "\xa1"
      "b"
      "\x00\x00\x00"
      "\xdd\xff\xff\xff\xff";
  struct raft_msg d;
  char err[128];
  CHECK_INT(proto_decode_msg(frame, sizeof frame - 1, &d, err, sizeof err), ==,
            PROTO_EFORMAT);
}

TEST(member_names_longer_than_the_limit_are_refused) {
  struct raft_msg m = base(RAFT_MSG_TIMEOUT_NOW), d;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint8(&pk, m.type);
  msgpack_pack_uint64(&pk, 1);
  char name[RAFT_NAME_MAX + 1];
  memset(name, 'x', sizeof name);
  msgpack_pack_str(&pk, sizeof name);
  msgpack_pack_str_body(&pk, name, sizeof name);
  msgpack_pack_str(&pk, 1);
  msgpack_pack_str_body(&pk, "b", 1);
  char err[128];
  CHECK_INT(proto_decode_msg(sb.data, sb.size, &d, err, sizeof err), ==,
            PROTO_EFORMAT);
  CHECK(strstr(err, "member name") != NULL);
  msgpack_sbuffer_destroy(&sb);
}

TEST(unknown_message_types_are_refused) {
  const char frame[] =
      "\x94\x63\x01\xa1"
      "a"
      "\xa1"
      "b"; /* type 99 */
  struct raft_msg d;
  char err[128];
  CHECK_INT(proto_decode_msg(frame, sizeof frame - 1, &d, err, sizeof err), ==,
            PROTO_EFORMAT);
  CHECK(strstr(err, "unknown message type") != NULL);
}

TEST(hello_round_trips) {
  struct proto_hello h = {PROTO_VERSION, "prod-eu",        PROTO_SERVER,
                          "n1",          "127.0.0.1:5001", ""},
                     d;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  proto_encode_hello(&sb, &h);
  char err[160];
  CHECK_INT(proto_decode_hello(sb.data, sb.size, &d, err, sizeof err), ==, 0);
  CHECK(strcmp(d.cluster, "prod-eu") == 0);
  CHECK(strcmp(d.name, "n1") == 0);
  CHECK(strcmp(d.address, "127.0.0.1:5001") == 0);
  CHECK_INT(d.role, ==, PROTO_SERVER);
  msgpack_sbuffer_destroy(&sb);
}

TEST(hello_with_another_version_is_refused_naming_both) {
  struct proto_hello h = {PROTO_VERSION + 1, "c", PROTO_CLIENT, "", "", ""}, d;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  proto_encode_hello(&sb, &h);
  char err[200];
  CHECK_INT(proto_decode_hello(sb.data, sb.size, &d, err, sizeof err), ==,
            PROTO_EVERSION);
  CHECK(strstr(err, "protocol version 2 is not supported") != NULL);
  msgpack_sbuffer_destroy(&sb);
}

TEST(a_client_hello_may_carry_an_admin_token) {
  /* ["copycat", 1, "c", "client", "", "", "s3cret"] */
  const char frame[] =
      "\x97\xa7"
      "copycat\x01\xa1"
      "c\xa6"
      "client\xa0\xa0\xa6s3cret";
  struct proto_hello d;
  char err[160];
  CHECK_INT(proto_decode_hello(frame, sizeof frame - 1, &d, err, sizeof err),
            ==, 0);
  CHECK_INT(d.role, ==, PROTO_CLIENT);
  CHECK(strcmp(d.token, "s3cret") == 0);
  /* An eighth field, or a token that is not a string, is malformed. */
  const char eight[] =
      "\x98\xa7"
      "copycat\x01\xa1"
      "c\xa6"
      "client\xa0\xa0\xa1t\xa1u";
  CHECK_INT(proto_decode_hello(eight, sizeof eight - 1, &d, err, sizeof err),
            ==, PROTO_EFORMAT);
  const char number[] =
      "\x97\xa7"
      "copycat\x01\xa1"
      "c\xa6"
      "client\xa0\xa0\x07";
  CHECK_INT(proto_decode_hello(number, sizeof number - 1, &d, err, sizeof err),
            ==, PROTO_EFORMAT);
}

TEST(garbage_is_not_a_hello) {
  struct proto_hello d;
  char err[160];
  CHECK_INT(proto_decode_hello("GET / HTTP/1.1", 14, &d, err, sizeof err), ==,
            PROTO_EFORMAT);
  CHECK(strstr(err, "not a copycat-lua hello") != NULL);
  const char wrong_role[] =
      "\x96\xa7"
      "copycat"
      "\x01\xa1"
      "c"
      "\xa3"
      "spy"
      "\xa0\xa0";
  CHECK_INT(proto_decode_hello(wrong_role, sizeof wrong_role - 1, &d, err,
                               sizeof err),
            ==, PROTO_EFORMAT);
  CHECK(strstr(err, "unknown role 'spy'") != NULL);
}

/* A chunk from a server older than the checksum field: six fields. */
TEST(a_snapshot_chunk_without_its_checksum_field_is_accepted) {
  struct raft_msg m, got;
  struct raft_entry ents[3];
  sample(RAFT_MSG_SNAPSHOT, &m, ents);
  m.u.snapshot.has_crc = false;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  CHECK(proto_encode_msg(&sb, &m) == 0);
  /* [type, term, from, to, 7 fields]: a fixarray of 11, the last nil */
  CHECK((uint8_t)sb.data[0] == 0x9b);
  CHECK((uint8_t)sb.data[sb.size - 1] == 0xc0);
  sb.data[0] = (char)0x9a;
  char err[256];
  CHECK(proto_decode_msg(sb.data, sb.size - 1, &got, err, sizeof err) == 0);
  CHECK(got.type == RAFT_MSG_SNAPSHOT && !got.u.snapshot.has_crc);
  CHECK(got.u.snapshot.offset == m.u.snapshot.offset && got.u.snapshot.last);
  CHECK(got.u.snapshot.data->len == m.u.snapshot.data->len);
  raft_msg_clear(&got);
  /* five fields are still too few */
  sb.data[0] = (char)0x99;
  CHECK(proto_decode_msg(sb.data, sb.size - 2, &got, err, sizeof err) != 0);
  CHECK(strstr(err, "expected 11") != NULL);
  msgpack_sbuffer_destroy(&sb);
  release_sample(&m);
}

int main(void) {
  RUN(every_message_type_round_trips);
  RUN(every_truncation_of_every_message_is_refused);
  RUN(trailing_bytes_after_a_message_are_refused);
  RUN(random_byte_flips_never_crash_the_decoder);
  RUN(a_hostile_entry_count_is_refused_before_allocating);
  RUN(member_names_longer_than_the_limit_are_refused);
  RUN(unknown_message_types_are_refused);
  RUN(hello_round_trips);
  RUN(hello_with_another_version_is_refused_naming_both);
  RUN(a_client_hello_may_carry_an_admin_token);
  RUN(garbage_is_not_a_hello);
  RUN(a_snapshot_chunk_without_its_checksum_field_is_accepted);
  return harness_done();
}
