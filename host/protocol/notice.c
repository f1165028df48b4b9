/*
 * notice.c — encoding and decoding of notices (protocol.h), the peer
 * messages the server exchanges beside the Raft core's: state hashes,
 * divergence and removal. The decoder treats its input as hostile, like
 * proto_decode_msg.
 */
#include <stdio.h>
#include <string.h>

#include "protocol/mp.h"
#include "protocol/protocol.h"

static void pack_str(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static int valid_type(uint64_t t) {
  return t >= PROTO_NOTICE_HASH && t <= PROTO_NOTICE_REMOVED;
}

int proto_is_notice(const void *data, size_t len) {
  struct mp_reader r;
  uint32_t n;
  uint64_t t;
  mp_reader_init(&r, data, len);
  return mp_read_array(&r, &n) == 0 && n == 6 && mp_read_uint(&r, &t) == 0 &&
         valid_type(t);
}

int proto_encode_notice(msgpack_sbuffer *out, const struct proto_notice *n) {
  if (!valid_type((uint64_t)n->type)) return PROTO_EFORMAT;
  msgpack_packer pk;
  msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 6);
  msgpack_pack_uint8(&pk, (uint8_t)n->type);
  pack_str(&pk, n->from);
  msgpack_pack_uint64(&pk, n->index);
  msgpack_pack_uint64(&pk, n->hash);
  msgpack_pack_uint64(&pk, n->majority);
  pack_str(&pk, n->names);
  return 0;
}

int proto_decode_notice(const void *data, size_t len, struct proto_notice *n,
                        char *err, size_t errlen) {
  struct mp_reader r;
  uint32_t count;
  uint64_t t;
  memset(n, 0, sizeof *n);
  mp_reader_init(&r, data, len);
  const char *what = "an array of 6";
  if (mp_read_array(&r, &count) < 0 || count != 6) goto bad;
  what = "a notice type (20..22)";
  if (mp_read_uint(&r, &t) < 0 || !valid_type(t)) goto bad;
  n->type = (int)t;
  what = "the sender's name";
  if (mp_read_name(&r, n->from, sizeof n->from) < 0 || !n->from[0]) goto bad;
  what = "index, hash and majority hash (uint)";
  if (mp_read_uint(&r, &n->index) < 0 || mp_read_uint(&r, &n->hash) < 0 ||
      mp_read_uint(&r, &n->majority) < 0)
    goto bad;
  what = "the member names (str)";
  if (mp_read_name(&r, n->names, sizeof n->names) < 0) goto bad;
  what = "nothing after the names";
  if (mp_left(&r) != 0) goto bad;
  return 0;
bad:
  snprintf(err, errlen, "malformed notice: expected %s", what);
  memset(n, 0, sizeof *n);
  return PROTO_EFORMAT;
}
