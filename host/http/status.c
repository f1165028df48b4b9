/*
 * status.c — what a server's answer means to an HTTP caller, decided by
 * its stable code alone, never by its message (docs/http.md "Errors",
 * docs/protocol.md "Error codes"). Pure: no I/O, no state.
 *
 * Two kinds of answer carry a code: a refusal ["error", id, message,
 * code], whose code is one of enum cproto_code by name, and a failed
 * session reply [false, message, code] (docs/sessions.md), whose code the
 * session layer gives ("application", "unknown_op", "expired", ...).
 */
#include <assert.h>
#include <string.h>

#include "http/gw_int.h"

enum cproto_code gw_code_of(const msgpack_object *o) {
  if (!o || o->type != MSGPACK_OBJECT_STR) return 0;
  return cproto_code_of_name(o->via.str.ptr, o->via.str.size);
}

int gw_refusal_status(enum cproto_code code, const char **name) {
  assert(name);
  if (cproto_code_transient(code)) {
    *name = "unavailable";
    return 503;
  }
  switch (code) {
    case CPROTO_ETOO_LARGE:
      *name = "too_large";
      return 413;
    case CPROTO_EMALFORMED:
    case CPROTO_EUNKNOWN:
    case CPROTO_ENO_MEMBER:
    case CPROTO_EINVALID:
    case CPROTO_EDENIED:
      *name = "bad_request";
      return 400;
    default: /* no code, or one this build does not know */
      *name = "internal";
      return 500;
  }
}

int gw_failure_status(const char *code, const char **name) {
  static const struct {
    const char *code, *name;
    int status;
  } map[] = {
      {"unknown_op", "unknown_command", 404},
      {"application", "application", 422},
      {"expired", "session_not_found", 404},
      {"sequence", "sequence", 409},
      {"lost", "lost", 410},
      {"busy", "busy", 429},
      {"refused", "too_large", 413},
      {"malformed", "bad_request", 400},
  };
  assert(code && name);
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(code, map[i].code) == 0) {
      *name = map[i].name;
      return map[i].status;
    }
  *name = code[0] ? code : "internal";
  return 500;
}
