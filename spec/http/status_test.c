/*
 * status_test.c — how the HTTP gateway reads a server's answer
 * (host/http/status.c): a refusal is resent and answered 503 when its
 * code is transient and never for its message; a permanent one is
 * answered at once; a failed session reply's code picks the status, so
 * an unknown command is 404 unknown_command and a handler's error 422.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "http/gw_int.h"

/* The code the gateway reads from a refusal a server built. */
static enum cproto_code code_of_frame(enum cproto_code sent,
                                      const char *message) {
  msgpack_sbuffer sb;
  msgpack_unpacked u;
  size_t off = 0;
  msgpack_sbuffer_init(&sb);
  cproto_error(&sb, 7, sent, message);
  msgpack_unpacked_init(&u);
  CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) ==
        MSGPACK_UNPACK_SUCCESS);
  CHECK(u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 4);
  enum cproto_code got = gw_code_of(&u.data.via.array.ptr[3]);
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);
  return got;
}

TEST(a_transient_refusal_is_resent_whatever_its_message) {
  const char *name;
  enum cproto_code c = code_of_frame(CPROTO_EBUSY, "no words of note");
  CHECK(c == CPROTO_EBUSY);
  CHECK(cproto_code_transient(c)); /* upstream.c resends it */
  CHECK(gw_refusal_status(c, &name) == 503 && strcmp(name, "unavailable") == 0);
  c = code_of_frame(CPROTO_ENOT_APPLIED, "leadership changed");
  CHECK(cproto_code_transient(c));
  for (int k = CPROTO_EBUSY; k <= CPROTO_ESTALE; k++) {
    CHECK(code_of_frame((enum cproto_code)k, "x") == (enum cproto_code)k);
    CHECK(gw_refusal_status((enum cproto_code)k, &name) == 503);
  }
}

TEST(a_permanent_refusal_is_not_resent_even_if_it_says_retry) {
  const char *name;
  enum cproto_code c =
      code_of_frame(CPROTO_EMALFORMED, "busy: retry shortly (not really)");
  CHECK(c == CPROTO_EMALFORMED);
  CHECK(!cproto_code_transient(c));
  CHECK(gw_refusal_status(c, &name) == 400 && strcmp(name, "bad_request") == 0);
  c = code_of_frame(CPROTO_ETOO_LARGE, "retry");
  CHECK(!cproto_code_transient(c));
  CHECK(gw_refusal_status(c, &name) == 413 && strcmp(name, "too_large") == 0);
  c = code_of_frame(CPROTO_EDENIED, "busy");
  CHECK(!cproto_code_transient(c));
  CHECK(gw_refusal_status(c, &name) == 400);
}

TEST(a_refusal_without_a_known_code_is_internal_and_not_resent) {
  const char *name;
  msgpack_object o = {.type = MSGPACK_OBJECT_STR};
  o.via.str.ptr = "retry";
  o.via.str.size = 5;
  CHECK(gw_code_of(&o) == 0);
  CHECK(gw_code_of(NULL) == 0);
  msgpack_object n = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
  n.via.u64 = CPROTO_EBUSY;
  CHECK(gw_code_of(&n) == 0); /* codes travel by name */
  CHECK(!cproto_code_transient(gw_code_of(&o)));
  CHECK(gw_refusal_status(0, &name) == 500 && strcmp(name, "internal") == 0);
}

TEST(a_failed_reply_is_mapped_by_its_code) {
  static const struct {
    const char *code, *name;
    int status;
  } want[] = {
      {"unknown_op", "unknown_command", 404},
      {"application", "application", 422},
      {"expired", "session_not_found", 404},
      {"sequence", "sequence", 409},
      {"lost", "lost", 410},
      {"busy", "busy", 429},
      {"refused", "too_large", 413},
      {"malformed", "bad_request", 400},
      {"something_new", "something_new", 500},
      {"", "internal", 500},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const char *name = NULL;
    int status = gw_failure_status(want[i].code, &name);
    if (status != want[i].status || strcmp(name, want[i].name) != 0)
      printf("%s: %d %s\n", want[i].code, status, name);
    CHECK(status == want[i].status && strcmp(name, want[i].name) == 0);
  }
}

int main(void) {
  RUN(a_transient_refusal_is_resent_whatever_its_message);
  RUN(a_permanent_refusal_is_not_resent_even_if_it_says_retry);
  RUN(a_refusal_without_a_known_code_is_internal_and_not_resent);
  RUN(a_failed_reply_is_mapped_by_its_code);
  return harness_done();
}
