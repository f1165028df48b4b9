/*
 * http_json.c — fuzzes the HTTP gateway's conversions (host/http/
 * convert.c): a request body that jansson accepts becomes msgpack
 * arguments, which decode as one msgpack value; any msgpack value (a
 * result from the state machine) becomes JSON or a clean refusal. JSON
 * that went through msgpack and back is JSON again.
 */
#include <string.h>

#include "fuzz.h"
#include "http/gw_int.h"
#include "protocol/mp.h"

const char fuzz_target_name[] = "http_json";

static void check_msgpack_to_json(const char *data, size_t size) {
  /* Only well-formed values: msgpack-c allocates what a count declares
   * before it sees the bytes (the gateway reads only its own server's
   * answers; the strict reader vets the rest). */
  struct mp_reader r;
  mp_reader_init(&r, data, size);
  if (mp_skip(&r) < 0) return;
  msgpack_unpacked up;
  msgpack_unpacked_init(&up);
  size_t off = 0;
  if (msgpack_unpack_next(&up, data, size, &off) == MSGPACK_UNPACK_SUCCESS) {
    json_t *j = gw_json_of(&up.data);
    if (j) {
      char *text = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
      FUZZ_CHECK(text != NULL);
      json_error_t e;
      json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
      /* jansson cannot read back an object key holding NUL ("\u0000"),
       * which is valid JSON: only that may fail. */
      FUZZ_CHECK(back != NULL || strstr(e.text, "NUL byte in object key"));
      json_decref(back);
      free(text);
      json_decref(j);
    }
  }
  msgpack_unpacked_destroy(&up);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_error_t e;
  json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &e);
  if (j) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    gw_pack_json(&pk, j);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    FUZZ_CHECK(msgpack_unpack_next(&up, sb.data, sb.size, &off) ==
                   MSGPACK_UNPACK_SUCCESS &&
               off == sb.size);
    msgpack_unpacked_destroy(&up);
    check_msgpack_to_json(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    json_decref(j);
  }
  check_msgpack_to_json((const char *)data, size);
  return 0;
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  static const char *json[] = {
      "{\"key\":\"a\",\"value\":[1,2.5,\"x\",true,null,{\"n\":-7}]}",
      "[]",
      "\"\\u00e9\"",
      "1e308",
      "-9223372036854775808",
      "{}",
  };
  for (size_t i = 0; i < sizeof json / sizeof json[0]; i++)
    add(ud, json[i], strlen(json[i]));
  /* msgpack: a map with an int key, a bin that is not UTF-8, a nested array */
  static const unsigned char mp[] = {
      0x83, 0x01, 0xa1, 'x',  0xa1, 'k', 0xc4, 0x02, 0xff, 0xfe, 0xa1, 'l',
      0x92, 0xc0, 0xcb, 0x7f, 0xf0, 0,   0,    0,    0,    0,    0,    0};
  add(ud, mp, sizeof mp);
}
