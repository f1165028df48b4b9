/*
** codec_test.c - the C contract of codec_pack/codec_unpack (machine/codec.h)
** as the host uses it: appending to a caller's buffer, restoring it on error,
** leaving the Lua stack balanced, and decoding one value from a longer buffer.
*/
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "codec.h"
#include "harness.h"

/* Run a Lua chunk that leaves one value on the stack. */
static void push_eval(lua_State *L, const char *expr) {
  char chunk[512];
  snprintf(chunk, sizeof chunk, "return %s", expr);
  if (luaL_dostring(L, chunk) != LUA_OK) {
    printf("    lua error: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  return L;
}

TEST(pack_appends_after_existing_bytes) {
  lua_State *L = new_state();
  msgpack_sbuffer sb;
  msgpack_packer pk;
  char err[128];
  int top;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 2); /* an envelope [7, <value>] */
  msgpack_pack_int(&pk, 7);
  push_eval(L, "{ b = 1, a = { true } }");
  top = lua_gettop(L);
  CHECK_INT(codec_pack(L, -1, &sb, err, sizeof err), ==, 0);
  CHECK_INT(lua_gettop(L), ==, top);
  CHECK_INT(sb.size, ==, 10);
  CHECK(memcmp(sb.data,
               "\x92\x07\x82\xa1"
               "a\x91\xc3\xa1"
               "b\x01",
               10) == 0);
  msgpack_sbuffer_destroy(&sb);
  lua_close(L);
}

TEST(pack_error_restores_buffer_and_names_path) {
  lua_State *L = new_state();
  msgpack_sbuffer sb;
  char err[128];
  int top;
  msgpack_sbuffer_init(&sb);
  msgpack_sbuffer_write(&sb, "xyz", 3);
  push_eval(L, "{ a = 1, b = { 1, 2, print } }");
  top = lua_gettop(L);
  CHECK_INT(codec_pack(L, top, &sb, err, sizeof err), ==, CODEC_ETYPE);
  CHECK_INT(lua_gettop(L), ==, top);
  CHECK_INT(sb.size, ==, 3);
  CHECK(strcmp(err, "cannot encode a function at value.b[3]") == 0);
  /* errlen 0: no message, same code */
  CHECK_INT(codec_pack(L, top, &sb, NULL, 0), ==, CODEC_ETYPE);
  msgpack_sbuffer_destroy(&sb);
  lua_close(L);
}

TEST(pack_reports_cycle_and_depth_codes) {
  lua_State *L = new_state();
  msgpack_sbuffer sb;
  char err[1024];
  msgpack_sbuffer_init(&sb);
  push_eval(L, "(function() local t = {}; t.t = t; return t end)()");
  CHECK_INT(codec_pack(L, -1, &sb, err, sizeof err), ==, CODEC_ECYCLE);
  lua_pop(L, 1);
  push_eval(L,
            "(function() local t = {}; for i = 1, 200 do t = { t } end "
            "return t end)()");
  CHECK_INT(codec_pack(L, -1, &sb, err, sizeof err), ==, CODEC_EDEPTH);
  lua_pop(L, 1);
  push_eval(L, "{ [{}] = 1 }");
  CHECK_INT(codec_pack(L, -1, &sb, err, sizeof err), ==, CODEC_EKEY);
  CHECK_INT(sb.size, ==, 0);
  msgpack_sbuffer_destroy(&sb);
  lua_close(L);
}

TEST(unpack_one_value_leaves_trailing_bytes) {
  lua_State *L = new_state();
  const char buf[] = "\x93\x01\xa2hi\xc0\xff\xff";
  char err[128];
  size_t used = 99;
  int top = lua_gettop(L);
  CHECK_INT(codec_unpack(L, buf, sizeof buf - 1, &used, err, sizeof err), ==,
            0);
  CHECK_INT(used, ==, 6);
  CHECK_INT(lua_gettop(L), ==, top + 1);
  CHECK(lua_istable(L, -1));
  CHECK_INT(lua_rawgeti(L, -1, 1), ==, LUA_TNUMBER);
  CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 1);
  lua_pop(L, 1);
  CHECK_INT(lua_rawgeti(L, -1, 2), ==, LUA_TSTRING);
  CHECK(strcmp(lua_tostring(L, -1), "hi") == 0);
  lua_pop(L, 1);
  /* [1, "hi", nil] has a nil element: the array marker is set */
  CHECK(lua_getmetatable(L, -1));
  luaL_getmetatable(L, CODEC_ARRAY_MT);
  CHECK(lua_rawequal(L, -1, -2));
  lua_close(L);
}

TEST(unpack_errors_push_nothing) {
  lua_State *L = new_state();
  char err[128];
  size_t used = 99;
  int top = lua_gettop(L);
  CHECK_INT(codec_unpack(L, "\x92\x01", 2, &used, err, sizeof err), ==,
            CODEC_ETRUNC);
  CHECK_INT(used, ==, 0);
  CHECK_INT(lua_gettop(L), ==, top);
  CHECK(strstr(err, "array of 2 elements declared at offset 0") != NULL);
  CHECK_INT(codec_unpack(L, "\x92\x01\xa3hi", 5, &used, err, sizeof err), ==,
            CODEC_ETRUNC);
  CHECK(strcmp(err,
               "truncated input: str at offset 2 needs 3 more bytes, "
               "2 remain") == 0);
  CHECK_INT(codec_unpack(L, "\x91\xc1", 2, &used, err, sizeof err), ==,
            CODEC_EFORMAT);
  CHECK_INT(codec_unpack(L, "\xd4\x01\x00", 3, &used, err, sizeof err), ==,
            CODEC_EFORMAT);
  CHECK_INT(codec_unpack(L, "\x82\x01\x01\x01\x02", 5, &used, err, sizeof err),
            ==, CODEC_EKEY);
  CHECK_INT(codec_unpack(L, "", 0, &used, NULL, 0), ==, CODEC_ETRUNC);
  {
    char bomb[300];
    memset(bomb, 0x91, sizeof bomb);
    CHECK_INT(codec_unpack(L, bomb, sizeof bomb, &used, err, sizeof err), ==,
              CODEC_EDEPTH);
  }
  CHECK_INT(lua_gettop(L), ==, top);
  lua_close(L);
}

TEST(pack_and_lua_encode_agree_and_share_markers) {
  lua_State *L = new_state();
  msgpack_sbuffer sb;
  char err[128];
  size_t len, used;
  const char *s;
  luaL_requiref(L, "copycat.codec", luaopen_copycat_codec, 0);
  lua_setglobal(L, "codec");
  msgpack_sbuffer_init(&sb);
  push_eval(L, "{ list = codec.array(), x = { 1.0, -0.0, 'z' } }");
  CHECK_INT(codec_pack(L, -1, &sb, err, sizeof err), ==, 0);
  push_eval(L,
            "codec.encode({ list = codec.array(), x = { 1.0, -0.0, 'z' } })");
  s = lua_tolstring(L, -1, &len);
  CHECK(s != NULL);
  CHECK_INT(len, ==, sb.size);
  CHECK(memcmp(s, sb.data, len) == 0);
  CHECK_INT(codec_unpack(L, sb.data, sb.size, &used, err, sizeof err), ==, 0);
  lua_setglobal(L, "back");
  push_eval(L, "codec.is_array(back.list) and math.type(back.x[1])");
  CHECK(strcmp(lua_tostring(L, -1), "float") == 0);
  msgpack_sbuffer_destroy(&sb);
  lua_close(L);
}

/* Found by fuzz/codec.c under UBSan: the first map a state ever encodes,
** if empty, has no key array yet (sorting NULL + 0 keys). */
TEST(pack_empty_map_decoded_from_a_client_in_a_fresh_state) {
  lua_State *L = new_state();
  msgpack_sbuffer sb;
  char err[128];
  size_t used;
  msgpack_sbuffer_init(&sb);
  CHECK_INT(codec_unpack(L, "\x80", 1, &used, err, sizeof err), ==, 0);
  CHECK_INT(used, ==, 1);
  CHECK_INT(codec_pack(L, -1, &sb, err, sizeof err), ==, 0);
  CHECK_INT(sb.size, ==, 1);
  CHECK(memcmp(sb.data, "\x80", 1) == 0);
  msgpack_sbuffer_destroy(&sb);
  lua_close(L);
}

/* An allocator that refuses to grow past `limit` bytes in use. */
struct capped {
  size_t used, limit;
};

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  struct capped *c = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    c->used -= old;
    return NULL;
  }
  if (nsize > old && c->used - old + nsize > c->limit) return NULL;
  void *p = realloc(ptr, nsize);
  if (p) c->used = c->used - old + nsize;
  return p;
}

/* A 1 MB array of empty arrays decodes into ~72 MB of tables: where Lua
** runs out of memory, the server's apply/query and the net module got a
** panic (abort) from one client request. */
TEST(unpack_protected_turns_memory_exhaustion_into_an_error) {
  struct capped cap = {0, 4u << 20};
  lua_State *L = lua_newstate(capped_alloc, &cap);
  CHECK(L != NULL);
  size_t n = 1000000, used = 99;
  char *buf = malloc(5 + n), err[256];
  CHECK(buf != NULL);
  buf[0] = (char)0xdd;
  buf[1] = (char)(n >> 24);
  buf[2] = (char)(n >> 16);
  buf[3] = (char)(n >> 8);
  buf[4] = (char)n;
  memset(buf + 5, 0x90, n);
  lua_pushinteger(L, 7);
  CHECK_INT(codec_unpack_protected(L, buf, 5 + n, &used, err, sizeof err), ==,
            CODEC_ENOMEM);
  CHECK_INT(used, ==, 0);
  CHECK(strstr(err, "not enough memory") != NULL);
  CHECK_INT(lua_gettop(L), ==, 1);
  CHECK_INT(lua_tointeger(L, 1), ==, 7);
  /* The state is still usable, and small values still decode. */
  lua_gc(L, LUA_GCCOLLECT);
  CHECK_INT(codec_unpack_protected(L, buf, 5 + 10, &used, err, sizeof err), ==,
            CODEC_ETRUNC);
  buf[0] = (char)0x93;
  CHECK_INT(codec_unpack_protected(L, buf, 4, &used, err, sizeof err), ==, 0);
  CHECK_INT(used, ==, 4);
  CHECK_INT(lua_gettop(L), ==, 2);
  CHECK(lua_istable(L, 2));
  CHECK_INT(luaL_len(L, 2), ==, 3);
  free(buf);
  lua_close(L);
}

int main(void) {
  RUN(pack_appends_after_existing_bytes);
  RUN(pack_error_restores_buffer_and_names_path);
  RUN(pack_reports_cycle_and_depth_codes);
  RUN(unpack_one_value_leaves_trailing_bytes);
  RUN(unpack_errors_push_nothing);
  RUN(pack_and_lua_encode_agree_and_share_markers);
  RUN(pack_empty_map_decoded_from_a_client_in_a_fresh_state);
  RUN(unpack_protected_turns_memory_exhaustion_into_an_error);
  return harness_done();
}
