/*
 * client_request.c — fuzzes what a server does with a client's request
 * frame before it reaches the Raft core: the mp_reader grammar of
 * clients__request() and sessions__open/keepalive/close() in
 * host/server/ (["submit", id, session, seq, ack, op, args],
 * ["query", id, op, args, level, session, min_index], ["open", id, ms],
 * ["keepalive", id, session, ack, event_ack], ["close", id, session],
 * ["change", id, name, address, type], ["remove"|"transfer", id, name]),
 * then, for a submit, the log entry the server builds from it
 * ([time, "c", session, seq, ack, op, args], copied without decoding) as
 * the state machine decodes it with codec_unpack, and for a query the
 * op/args bytes likewise.
 *
 * The request functions send replies on a live connection, so this target
 * repeats their sequence of reader calls (keep the two in step); every
 * reader call is checked to keep the cursor inside the frame.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <msgpack.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"
#include "protocol/mp.h"
#include "raft/raft.h"

const char fuzz_target_name[] = "client_request";

static const unsigned char *frame_end;
static lua_State *L;

#define IN(r) FUZZ_CHECK((r)->p <= frame_end && (r)->end == frame_end)

static int rd_uint(struct mp_reader *r, uint64_t *v) {
  int rc = mp_read_uint(r, v);
  IN(r);
  return rc;
}
static int rd_name(struct mp_reader *r, char *out, size_t max) {
  int rc = mp_read_name(r, out, max);
  IN(r);
  if (rc == 0) FUZZ_CHECK(strlen(out) < max);
  return rc;
}
static int rd_skip(struct mp_reader *r) {
  int rc = mp_skip(r);
  IN(r);
  return rc;
}

static int unpack_job(lua_State *S) {
  const char *p = lua_touserdata(S, 1);
  size_t len = (size_t)lua_tointeger(S, 2), used;
  char err[256];
  lua_settop(S, 0);
  if (codec_unpack(S, p, len, &used, err, sizeof err) == 0)
    FUZZ_CHECK(used <= len && lua_gettop(S) == 1);
  else
    FUZZ_CHECK(lua_gettop(S) == 0);
  return 0;
}

/* What the state machine does with the bytes (bindings/server.c). */
static void machine_decode(const void *p, size_t len) {
  if (!L) {
    L = luaL_newstate();
    FUZZ_CHECK(L != NULL);
    luaL_requiref(L, "copycat.codec", luaopen_copycat_codec, 0);
    lua_settop(L, 0);
  }
  lua_pushcfunction(L, unpack_job);
  lua_pushlightuserdata(L, (void *)(uintptr_t)p);
  lua_pushinteger(L, (lua_Integer)len);
  FUZZ_CHECK(lua_pcall(L, 2, 0, 0) == LUA_OK);
  lua_settop(L, 0);
}

/* sessions__propose(): [time, kind, tail...] with n values in tail. */
static void propose(const char *kind, const unsigned char *tail, size_t len,
                    uint32_t n) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 2 + n);
  msgpack_pack_uint64(&pk, 1767225600000ull);
  msgpack_pack_str(&pk, strlen(kind));
  msgpack_pack_str_body(&pk, kind, strlen(kind));
  if (len) msgpack_sbuffer_write(&sb, (const char *)tail, len);
  machine_decode(sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct mp_reader r;
  uint32_t n;
  char verb[16];
  uint64_t id;
  frame_end = data + size;
  mp_reader_init(&r, data, size);
  int rc = mp_read_array(&r, &n);
  IN(&r);
  if (rc < 0 || n < 2 || rd_name(&r, verb, sizeof verb) < 0 ||
      rd_uint(&r, &id) < 0)
    return 0;
  if (strcmp(verb, "submit") == 0 && n == 7) {
    const unsigned char *start = r.p;
    uint64_t session, seq, ack;
    if (rd_uint(&r, &session) < 0 || rd_uint(&r, &seq) < 0 ||
        rd_uint(&r, &ack) < 0 || rd_skip(&r) < 0 || rd_skip(&r) < 0 ||
        mp_left(&r) != 0)
      return 0;
    propose("c", start, (size_t)(r.p - start), 5);
  } else if (strcmp(verb, "query") == 0 && n == 7) {
    const unsigned char *start = r.p;
    char level[16];
    uint64_t session, min_index;
    if (rd_skip(&r) < 0 || rd_skip(&r) < 0) return 0;
    size_t oplen = (size_t)(r.p - start);
    if (rd_name(&r, level, sizeof level) < 0 || rd_uint(&r, &session) < 0 ||
        rd_uint(&r, &min_index) < 0 || mp_left(&r) != 0)
      return 0;
    machine_decode(start, oplen);
  } else if (strcmp(verb, "open") == 0 && n == 3) {
    const unsigned char *start = r.p;
    uint64_t timeout;
    if (rd_uint(&r, &timeout) < 0 || mp_left(&r) != 0) return 0;
    propose("o", start, (size_t)(r.p - start), 1);
  } else if (strcmp(verb, "keepalive") == 0 && n == 5) {
    const unsigned char *start = r.p;
    uint64_t session, ack, event_ack;
    if (rd_uint(&r, &session) < 0 || rd_uint(&r, &ack) < 0 ||
        rd_uint(&r, &event_ack) < 0 || mp_left(&r) != 0)
      return 0;
    propose("k", start, (size_t)(r.p - start), 3);
  } else if (strcmp(verb, "close") == 0 && n == 3) {
    const unsigned char *start = r.p;
    uint64_t session;
    if (rd_uint(&r, &session) < 0 || mp_left(&r) != 0) return 0;
    propose("x", start, (size_t)(r.p - start), 1);
  } else if ((strcmp(verb, "change") == 0 && n == 5) ||
             ((strcmp(verb, "remove") == 0 || strcmp(verb, "transfer") == 0) &&
              n == 3)) {
    char name[RAFT_NAME_MAX], address[RAFT_ADDR_MAX], type[16];
    if (rd_name(&r, name, sizeof name) < 0) return 0;
    if (strcmp(verb, "change") == 0 &&
        (rd_name(&r, address, sizeof address) < 0 ||
         rd_name(&r, type, sizeof type) < 0))
      return 0;
  }
  return 0;
}

/* ---- seeds: one request of each kind ---- */

static void pk_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

static void op_args(msgpack_packer *pk) {
  pk_str(pk, "put");
  msgpack_pack_array(pk, 2);
  pk_str(pk, "key");
  msgpack_pack_map(pk, 2);
  pk_str(pk, "n");
  msgpack_pack_int64(pk, -12345);
  pk_str(pk, "f");
  msgpack_pack_double(pk, 2.5);
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  for (int kind = 0; kind < 7; kind++) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    switch (kind) {
      case 0:
        msgpack_pack_array(&pk, 7);
        pk_str(&pk, "submit");
        msgpack_pack_uint64(&pk, 17);
        msgpack_pack_uint64(&pk, 3);
        msgpack_pack_uint64(&pk, 41);
        msgpack_pack_uint64(&pk, 40);
        op_args(&pk);
        break;
      case 1:
        msgpack_pack_array(&pk, 7);
        pk_str(&pk, "query");
        msgpack_pack_uint64(&pk, 18);
        op_args(&pk);
        pk_str(&pk, "linearizable");
        msgpack_pack_uint64(&pk, 3);
        msgpack_pack_uint64(&pk, 1000);
        break;
      case 2:
        msgpack_pack_array(&pk, 3);
        pk_str(&pk, "open");
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_uint64(&pk, 30000);
        break;
      case 3:
        msgpack_pack_array(&pk, 5);
        pk_str(&pk, "keepalive");
        msgpack_pack_uint64(&pk, 2);
        msgpack_pack_uint64(&pk, 3);
        msgpack_pack_uint64(&pk, 40);
        msgpack_pack_uint64(&pk, 7);
        break;
      case 4:
        msgpack_pack_array(&pk, 3);
        pk_str(&pk, "close");
        msgpack_pack_uint64(&pk, 4);
        msgpack_pack_uint64(&pk, 3);
        break;
      case 5:
        msgpack_pack_array(&pk, 5);
        pk_str(&pk, "change");
        msgpack_pack_uint64(&pk, 5);
        pk_str(&pk, "delta");
        pk_str(&pk, "127.0.0.1:7004");
        pk_str(&pk, "passive");
        break;
      default:
        msgpack_pack_array(&pk, 3);
        pk_str(&pk, "transfer");
        msgpack_pack_uint64(&pk, 6);
        pk_str(&pk, "bravo");
        break;
    }
    add(ud, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
  }
}
