/*
 * client_request.c — fuzzes what a server does with a client's request
 * frame before it reaches the Raft core: cproto_decode()
 * (host/protocol/client.c, the one decoder host/server/clients.c uses)
 * over ["submit", id, session, seq, ack, op, args],
 * ["query", id, op, args, level, session, min_index], ["open", id, ms],
 * ["keepalive", id, session, ack, event_ack], ["close", id, session],
 * ["change", id, name, address, type], ["remove"|"transfer", id, name];
 * every raw part it returns must lie inside the frame. Then, for a
 * session request, the log entry the server builds from it
 * (cproto_entry: [time, kind, fields...], copied without decoding) as the
 * state machine decodes it with codec_unpack, and for a query the op/args
 * bytes likewise.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <msgpack.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"
#include "protocol/client.h"
#include "raft/raft.h"

const char fuzz_target_name[] = "client_request";

static lua_State *L;

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

/* What the state machine does with the bytes (bindings/l_server.c). */
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
static void propose(enum cproto_kind kind, const void *tail, size_t len,
                    uint32_t n) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  cproto_entry(&sb, 1767225600000ull, kind, tail, len, n);
  machine_decode(sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

/* p[0..len) lies inside data[0..size). */
static int inside(const void *p, size_t len, const uint8_t *data, size_t size) {
  const uint8_t *q = p;
  return q >= data && q <= data + size && len <= (size_t)(data + size - q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct cproto_request r;
  enum cproto_code code;
  char err[160];
  int rc = cproto_decode(data, size, &r, &code, err, sizeof err);
  FUZZ_CHECK(strlen(err) < sizeof err || rc == 0);
  if (rc == CPROTO_EREQUEST) {
    FUZZ_CHECK(code > 0 && code < CPROTO_CODE_COUNT);
    FUZZ_CHECK(strcmp(cproto_code_name(code), "internal") != 0);
    return 0;
  }
  if (rc < 0) return 0;
  FUZZ_CHECK(r.verb != CPROTO_UNKNOWN);
  FUZZ_CHECK(inside(r.fields, r.fields_len, data, size));
  /* session requests and commands end the frame (membership requests are
   * not checked for trailing bytes) */
  if (!cproto_verb_is_admin(r.verb))
    FUZZ_CHECK((const uint8_t *)r.fields + r.fields_len == data + size);
  FUZZ_CHECK(strlen(r.name) < sizeof r.name);
  FUZZ_CHECK(strlen(r.address) < sizeof r.address);
  switch (r.verb) {
    case CPROTO_SUBMIT:
      FUZZ_CHECK(r.have_seq && r.op_len <= r.op_args_len);
      FUZZ_CHECK(inside(r.op, r.op_args_len, data, size));
      propose(CPROTO_KIND_COMMAND, r.fields, r.fields_len, 5);
      break;
    case CPROTO_QUERY:
      FUZZ_CHECK(r.op_len <= r.op_args_len);
      FUZZ_CHECK(inside(r.op, r.op_args_len, data, size));
      machine_decode(r.op, r.op_args_len);
      break;
    case CPROTO_OPEN:
      propose(CPROTO_KIND_OPEN, r.fields, r.fields_len, 1);
      break;
    case CPROTO_KEEPALIVE:
      propose(CPROTO_KIND_KEEPALIVE, r.fields, r.fields_len, 3);
      break;
    case CPROTO_CLOSE:
      propose(CPROTO_KIND_CLOSE, r.fields, r.fields_len, 1);
      break;
    case CPROTO_CHANGE:
      FUZZ_CHECK(r.member_type != 0);
      break;
    default:
      FUZZ_CHECK(cproto_verb_is_admin(r.verb));
      break;
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
