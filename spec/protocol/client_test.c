/*
 * client_test.c — the client protocol of host/protocol/client.c: every
 * verb decodes into its fields with raw parts pointing into the frame;
 * truncations, wrong counts, unknown verbs and consistencies are refused
 * with a code and a sentence; replies carry their code by name; and every
 * code is listed in docs/protocol.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "protocol/client.h"

static void pk_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

/* Starts [verb, id, ...] of n elements in a new buffer. */
static void start(msgpack_sbuffer *sb, msgpack_packer *pk, uint32_t n,
                  const char *verb, uint64_t id) {
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(pk, n);
  pk_str(pk, verb);
  msgpack_pack_uint64(pk, id);
}

static int decode(msgpack_sbuffer *sb, struct cproto_request *r,
                  enum cproto_code *code, char *err) {
  return cproto_decode(sb->data, sb->size, r, code, err, 160);
}

TEST(submit_keeps_op_and_args_raw) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  start(&sb, &pk, 7, "submit", 9);
  msgpack_pack_uint64(&pk, 3);
  msgpack_pack_uint64(&pk, 41);
  msgpack_pack_uint64(&pk, 40);
  size_t op_at = sb.size;
  pk_str(&pk, "put");
  msgpack_pack_array(&pk, 2);
  pk_str(&pk, "k");
  msgpack_pack_int64(&pk, -5);
  struct cproto_request r;
  enum cproto_code code;
  char err[160];
  CHECK(decode(&sb, &r, &code, err) == 0);
  CHECK(r.verb == CPROTO_SUBMIT && r.id == 9);
  CHECK(r.session == 3 && r.seq == 41 && r.ack == 40 && r.have_seq);
  CHECK((const char *)r.op == sb.data + op_at && r.op_len == 4);
  CHECK(r.op_args_len == sb.size - op_at);
  /* the fields after the id, as the session entry's tail */
  CHECK((const char *)r.fields + r.fields_len == sb.data + sb.size);
  CHECK(r.fields_len == sb.size - op_at + 3);
  msgpack_sbuffer_destroy(&sb);
}

TEST(every_verb_decodes) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  struct cproto_request r;
  enum cproto_code code;
  char err[160];

  start(&sb, &pk, 7, "query", 1);
  pk_str(&pk, "get");
  pk_str(&pk, "k");
  pk_str(&pk, "lease");
  msgpack_pack_uint64(&pk, 0);
  msgpack_pack_uint64(&pk, 77);
  CHECK(decode(&sb, &r, &code, err) == 0);
  CHECK(r.verb == CPROTO_QUERY && r.consistency == CPROTO_LEASE);
  CHECK(r.min_index == 77 && r.session == 0 && r.op_len == 4);
  CHECK(r.op_args_len == 6);
  msgpack_sbuffer_destroy(&sb);

  start(&sb, &pk, 3, "open", 2);
  msgpack_pack_uint64(&pk, 30000);
  CHECK(decode(&sb, &r, &code, err) == 0);
  CHECK(r.verb == CPROTO_OPEN && r.timeout_ms == 30000 && r.nfields == 1);
  msgpack_sbuffer_destroy(&sb);

  start(&sb, &pk, 5, "keepalive", 3);
  msgpack_pack_uint64(&pk, 4);
  msgpack_pack_uint64(&pk, 5);
  msgpack_pack_uint64(&pk, 6);
  CHECK(decode(&sb, &r, &code, err) == 0);
  CHECK(r.verb == CPROTO_KEEPALIVE && r.session == 4 && r.ack == 5);
  CHECK(r.event_ack == 6);
  msgpack_sbuffer_destroy(&sb);

  start(&sb, &pk, 3, "close", 4);
  msgpack_pack_uint64(&pk, 8);
  CHECK(decode(&sb, &r, &code, err) == 0);
  CHECK(r.verb == CPROTO_CLOSE && r.session == 8);
  msgpack_sbuffer_destroy(&sb);

  start(&sb, &pk, 5, "change", 5);
  pk_str(&pk, "n4");
  pk_str(&pk, "127.0.0.1:7004");
  pk_str(&pk, "passive");
  CHECK(decode(&sb, &r, &code, err) == 0);
  CHECK(r.verb == CPROTO_CHANGE && strcmp(r.name, "n4") == 0);
  CHECK(strcmp(r.address, "127.0.0.1:7004") == 0);
  CHECK(r.member_type == RAFT_PASSIVE && cproto_verb_is_admin(r.verb));
  msgpack_sbuffer_destroy(&sb);

  const char *one[] = {"remove", "transfer"};
  enum cproto_verb v[] = {CPROTO_REMOVE, CPROTO_TRANSFER};
  for (int i = 0; i < 2; i++) {
    start(&sb, &pk, 3, one[i], 6);
    pk_str(&pk, "n2");
    CHECK(decode(&sb, &r, &code, err) == 0);
    CHECK(r.verb == v[i] && strcmp(r.name, "n2") == 0);
    CHECK(strcmp(cproto_verb_name(r.verb), one[i]) == 0);
    msgpack_sbuffer_destroy(&sb);
  }
}

TEST(frames_without_verb_and_id_are_frame_errors) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  struct cproto_request r;
  enum cproto_code code;
  char err[160];
  start(&sb, &pk, 3, "open", 2);
  msgpack_pack_uint64(&pk, 1000);
  /* every cut inside [verb, id] */
  for (size_t len = 0; len < 7; len++)
    CHECK(cproto_decode(sb.data, len, &r, &code, err, sizeof err) ==
          CPROTO_EFRAME);
  CHECK(strstr(err, "[verb, id, ...]") != NULL);
  msgpack_sbuffer_destroy(&sb);
  start(&sb, &pk, 2, "a-verb-much-too-long", 2);
  CHECK(decode(&sb, &r, &code, err) == CPROTO_EFRAME);
  msgpack_sbuffer_destroy(&sb);
}

TEST(bad_fields_get_a_code_and_the_id) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  struct cproto_request r;
  enum cproto_code code;
  char err[160];

  start(&sb, &pk, 7, "submit", 11);
  msgpack_pack_uint64(&pk, 1);
  msgpack_pack_uint64(&pk, 2);
  msgpack_pack_uint64(&pk, 3);
  pk_str(&pk, "put");
  size_t whole = sb.size;
  msgpack_pack_nil(&pk);
  /* args cut off: the id and the sequence are still known */
  CHECK(cproto_decode(sb.data, whole, &r, &code, err, sizeof err) ==
        CPROTO_EREQUEST);
  CHECK(code == CPROTO_EMALFORMED && r.id == 11 && r.verb == CPROTO_SUBMIT);
  CHECK(r.have_seq && r.seq == 2);
  CHECK(strcmp(err,
               "malformed submit: expected session, seq, ack, op and "
               "args") == 0);
  msgpack_sbuffer_destroy(&sb);

  start(&sb, &pk, 7, "query", 12);
  pk_str(&pk, "get");
  pk_str(&pk, "k");
  pk_str(&pk, "eventually");
  msgpack_pack_uint64(&pk, 0);
  msgpack_pack_uint64(&pk, 0);
  CHECK(decode(&sb, &r, &code, err) == CPROTO_EREQUEST);
  CHECK(code == CPROTO_EMALFORMED && strstr(err, "unknown consistency"));
  msgpack_sbuffer_destroy(&sb);

  start(&sb, &pk, 5, "change", 13);
  pk_str(&pk, "n4");
  pk_str(&pk, "127.0.0.1:7004");
  pk_str(&pk, "voter");
  CHECK(decode(&sb, &r, &code, err) == CPROTO_EREQUEST);
  CHECK(code == CPROTO_EMALFORMED && strstr(err, "malformed change"));
  msgpack_sbuffer_destroy(&sb);

  /* a known verb with the wrong count, and an unknown verb */
  start(&sb, &pk, 4, "close", 14);
  msgpack_pack_uint64(&pk, 1);
  msgpack_pack_uint64(&pk, 1);
  CHECK(decode(&sb, &r, &code, err) == CPROTO_EREQUEST);
  CHECK(code == CPROTO_EUNKNOWN && r.verb == CPROTO_CLOSE && r.id == 14);
  msgpack_sbuffer_destroy(&sb);
  start(&sb, &pk, 2, "launch", 15);
  CHECK(decode(&sb, &r, &code, err) == CPROTO_EREQUEST);
  CHECK(code == CPROTO_EUNKNOWN && r.verb == CPROTO_UNKNOWN);
  CHECK(strstr(err, "unknown request") != NULL);
  msgpack_sbuffer_destroy(&sb);
}

/* Unpacks one reply and checks its verb and id. */
static msgpack_object unpack(msgpack_unpacked *u, msgpack_sbuffer *sb,
                             const char *verb, uint64_t id, uint32_t n) {
  size_t off = 0;
  msgpack_unpacked_init(u);
  CHECK(msgpack_unpack_next(u, sb->data, sb->size, &off) ==
        MSGPACK_UNPACK_SUCCESS);
  CHECK(off == sb->size);
  msgpack_object o = u->data;
  CHECK(o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == n);
  msgpack_object *a = o.via.array.ptr;
  CHECK(a[0].type == MSGPACK_OBJECT_STR && a[0].via.str.size == strlen(verb) &&
        memcmp(a[0].via.str.ptr, verb, strlen(verb)) == 0);
  CHECK(a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[1].via.u64 == id);
  return o;
}

static int str_is(const msgpack_object *o, const char *s) {
  return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
         memcmp(o->via.str.ptr, s, strlen(s)) == 0;
}

TEST(replies_carry_codes_by_name) {
  msgpack_sbuffer sb;
  msgpack_unpacked u;
  msgpack_sbuffer_init(&sb);
  cproto_error(&sb, 7, CPROTO_EBUSY, "busy: too much");
  msgpack_object o = unpack(&u, &sb, "error", 7, 4);
  CHECK(str_is(&o.via.array.ptr[2], "busy: too much"));
  CHECK(str_is(&o.via.array.ptr[3], "busy"));
  msgpack_unpacked_destroy(&u);

  sb.size = 0;
  cproto_redirect(&sb, 8, "");
  o = unpack(&u, &sb, "redirect", 8, 3);
  CHECK(o.via.array.ptr[2].type == MSGPACK_OBJECT_NIL);
  msgpack_unpacked_destroy(&u);
  sb.size = 0;
  cproto_redirect(&sb, 8, "127.0.0.1:5001");
  o = unpack(&u, &sb, "redirect", 8, 3);
  CHECK(str_is(&o.via.array.ptr[2], "127.0.0.1:5001"));
  msgpack_unpacked_destroy(&u);

  sb.size = 0;
  cproto_result(&sb, 9, "\x92\xc3\x01", 3, 42); /* [true, 1] */
  o = unpack(&u, &sb, "result", 9, 4);
  CHECK(o.via.array.ptr[2].type == MSGPACK_OBJECT_ARRAY);
  CHECK(o.via.array.ptr[3].via.u64 == 42);
  msgpack_unpacked_destroy(&u);

  sb.size = 0;
  cproto_ok(&sb, 10);
  unpack(&u, &sb, "ok", 10, 2);
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);

  /* the core's refusals map to codes; unknown values read "internal" */
  CHECK(cproto_code_of_raft(RAFT_EBACKLOG) == CPROTO_EBUSY);
  CHECK(cproto_code_of_raft(RAFT_ENOTFOUND) == CPROTO_ENO_MEMBER);
  CHECK(cproto_code_transient(CPROTO_EBUSY));
  CHECK(!cproto_code_transient(CPROTO_ENO_MEMBER));
  CHECK(strcmp(cproto_code_name((enum cproto_code)0), "internal") == 0);
  CHECK(strcmp(cproto_code_name(CPROTO_CODE_COUNT), "internal") == 0);
}

TEST(session_entries_frame_their_tail) {
  msgpack_sbuffer sb;
  msgpack_unpacked u;
  size_t off = 0;
  msgpack_sbuffer_init(&sb);
  cproto_entry(&sb, 1000, CPROTO_KIND_OPEN, "\xcd\x75\x30", 3, 1);
  msgpack_unpacked_init(&u);
  CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) ==
        MSGPACK_UNPACK_SUCCESS);
  msgpack_object *a = u.data.via.array.ptr;
  CHECK(u.data.via.array.size == 3 && a[0].via.u64 == 1000);
  CHECK(str_is(&a[1], "o") && a[2].via.u64 == 30000);
  msgpack_unpacked_destroy(&u);
  sb.size = 0;
  msgpack_sbuffer tail;
  msgpack_sbuffer_init(&tail);
  cproto_refused_tail(&tail, 3, 4, 2, "too large");
  cproto_entry(&sb, 1001, CPROTO_KIND_REFUSED, tail.data, tail.size, 4);
  off = 0;
  msgpack_unpacked_init(&u);
  CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) ==
        MSGPACK_UNPACK_SUCCESS);
  a = u.data.via.array.ptr;
  CHECK(u.data.via.array.size == 6 && str_is(&a[1], "r"));
  CHECK(a[2].via.u64 == 3 && a[3].via.u64 == 4 && a[4].via.u64 == 2);
  CHECK(str_is(&a[5], "too large"));
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&tail);
  msgpack_sbuffer_destroy(&sb);
}

/* A code read from an error frame by name is the code that was sent. */
TEST(codes_read_back_by_name) {
  for (int c = 1; c < CPROTO_CODE_COUNT; c++) {
    const char *name = cproto_code_name((enum cproto_code)c);
    CHECK(cproto_code_of_name(name, strlen(name)) == (enum cproto_code)c);
  }
  CHECK(cproto_code_of_name("busy", 4) == CPROTO_EBUSY);
  CHECK(cproto_code_transient(cproto_code_of_name("busy", 4)));
  CHECK(!cproto_code_transient(cproto_code_of_name("malformed", 9)));
  /* a prefix, a longer name, "internal" and nothing are no code */
  CHECK(cproto_code_of_name("bus", 3) == 0);
  CHECK(cproto_code_of_name("busy!", 5) == 0);
  CHECK(cproto_code_of_name("internal", 8) == 0);
  CHECK(cproto_code_of_name(NULL, 0) == 0);
  CHECK(!cproto_code_transient((enum cproto_code)0));
}

/* docs/protocol.md names every code as `name` (run from the repository). */
TEST(docs_list_every_code) {
  FILE *f = fopen("docs/protocol.md", "r");
  CHECK(f != NULL);
  static char doc[1 << 16];
  size_t n = fread(doc, 1, sizeof doc - 1, f);
  fclose(f);
  doc[n] = 0;
  for (int c = 1; c < CPROTO_CODE_COUNT; c++) {
    char quoted[64];
    snprintf(quoted, sizeof quoted, "| `%s` |",
             cproto_code_name((enum cproto_code)c));
    if (!strstr(doc, quoted)) printf("docs/protocol.md lacks %s\n", quoted);
    CHECK(strstr(doc, quoted) != NULL);
  }
}

int main(void) {
  RUN(submit_keeps_op_and_args_raw);
  RUN(every_verb_decodes);
  RUN(frames_without_verb_and_id_are_frame_errors);
  RUN(bad_fields_get_a_code_and_the_id);
  RUN(replies_carry_codes_by_name);
  RUN(session_entries_frame_their_tail);
  RUN(codes_read_back_by_name);
  RUN(docs_list_every_code);
  return harness_done();
}
