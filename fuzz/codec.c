/*
 * codec.c — fuzzes codec_unpack (msgpack -> Lua), which decodes log
 * entries, client arguments and snapshot contents for the state machine.
 *
 * Checked for each input: the decoder returns an error code or one value
 * and the number of bytes it used (<= the input); the Lua stack is as it
 * was after an error; memory allocated while decoding stays within a
 * bounded multiple of the input size (docs: "never allocates more than a
 * small multiple of len"); and a decoded value re-encodes (codec_pack) to
 * bytes that decode and re-encode to the same bytes.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"

const char fuzz_target_name[] = "codec";

/* Bytes a decode may allocate per input byte, plus a constant: a Lua table
 * costs ~56 bytes and an array slot 16, and each one needs at least one
 * input byte. */
#define ALLOC_PER_BYTE 512
#define ALLOC_SLACK (256 * 1024)

static lua_State *L;
static size_t in_use, peak;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (!ptr) osize = 0;
  if (nsize == 0) {
    free(ptr);
    in_use -= osize;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (!p) return NULL;
  in_use = in_use - osize + nsize;
  if (in_use > peak) peak = in_use;
  return p;
}

struct job {
  const uint8_t *data;
  size_t size;
};

static int run(lua_State *S) {
  const struct job *j = lua_touserdata(S, 1);
  char err[256];
  size_t used = 99;
  lua_settop(S, 0);
  lua_gc(S, LUA_GCCOLLECT);
  size_t before = in_use;
  peak = in_use;
  int rc =
      codec_unpack(S, (const char *)j->data, j->size, &used, err, sizeof err);
  FUZZ_CHECK(peak - before <= ALLOC_PER_BYTE * j->size + ALLOC_SLACK);
  if (rc != 0) {
    FUZZ_CHECK(rc < 0 && used == 0 && lua_gettop(S) == 0);
    FUZZ_CHECK(err[0] != '\0');
    return 0;
  }
  FUZZ_CHECK(lua_gettop(S) == 1 && used >= 1 && used <= j->size);

  /* Re-encode, decode, re-encode: the two encodings must agree. */
  msgpack_sbuffer a, b;
  msgpack_sbuffer_init(&a);
  msgpack_sbuffer_init(&b);
  rc = codec_pack(S, 1, &a, err, sizeof err);
  if (rc != 0) {
    /* Not every decoded value encodes again: an array mostly of nils
     * decodes to a marked array that the encoder finds too sparse
     * (docs/codec.md). An error is what is promised, not a crash. */
    FUZZ_CHECK(rc < 0 && err[0] != '\0' && a.size == 0);
    msgpack_sbuffer_destroy(&a);
    lua_settop(S, 0);
    return 0;
  }
  rc = codec_unpack(S, a.data, a.size, &used, err, sizeof err);
  if (rc != 0) fprintf(stderr, "decoding the re-encoding failed: %s\n", err);
  FUZZ_CHECK(rc == 0 && used == a.size);
  FUZZ_CHECK(codec_pack(S, 2, &b, err, sizeof err) == 0);
  FUZZ_CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
  msgpack_sbuffer_destroy(&a);
  msgpack_sbuffer_destroy(&b);
  lua_settop(S, 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) {
    L = lua_newstate(counting_alloc, NULL);
    FUZZ_CHECK(L != NULL);
    luaL_openlibs(L);
    luaL_requiref(L, "copycat.codec", luaopen_copycat_codec, 0);
    lua_settop(L, 0);
  }
  struct job j = {data, size};
  lua_pushcfunction(L, run);
  lua_pushlightuserdata(L, &j);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    /* Only a memory error may escape (none is expected here). */
    fprintf(stderr, "codec: Lua error: %s\n", lua_tostring(L, -1));
    FUZZ_CHECK(0);
  }
  lua_settop(L, 0);
  return 0;
}

/* Seeds: Lua values encoded by copycat.codec.encode itself. */
static const char *const seed_exprs[] = {
    "nil",
    "true",
    "false",
    "0",
    "-1",
    "127",
    "-33",
    "255",
    "65536",
    "math.maxinteger",
    "math.mininteger",
    "1.5",
    "-0.0",
    "1/0",
    "''",
    "'hello'",
    "string.rep('x', 40)",
    "string.rep('y', 300)",
    "'\\0\\255binary\\1'",
    "{}",
    "codec.map()",
    "{1, 2, 3}",
    "{'put', {'key', 'value'}}",
    "{a = 1, b = {c = {d = {}}}, [1.5] = true, [-3] = 'neg'}",
    "{[1] = 'a', [2] = 'b', [4] = 'd'}",
    "codec.array({nil, 2, nil, 4, n = nil})",
    "{{}, {{}}, {{{}}}, codec.map({1, 2})}",
    "{op = 'submit', args = {1, 'two', 3.0, false, {x = {y = 'z'}}}}",
    "(function() local t = {} for i = 1, 40 do t[i] = i * 1000 end "
    "return t end)()",
    "(function() local t = {} for i = 1, 20 do t['k' .. i] = {i} end "
    "return t end)()",
    "(function() local t = {} local c = t for i = 1, 90 do c[1] = {} "
    "c = c[1] end return t end)()",
};

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  lua_State *S = luaL_newstate();
  if (!S) return;
  luaL_openlibs(S);
  luaL_requiref(S, "copycat.codec", luaopen_copycat_codec, 0);
  lua_setglobal(S, "codec");
  for (size_t i = 0; i < sizeof seed_exprs / sizeof *seed_exprs; i++) {
    char chunk[512];
    snprintf(chunk, sizeof chunk, "return codec.encode(%s)", seed_exprs[i]);
    if (luaL_dostring(S, chunk) != LUA_OK) {
      fprintf(stderr, "seed %zu: %s\n", i, lua_tostring(S, -1));
      lua_settop(S, 0);
      continue;
    }
    size_t len;
    const char *s = lua_tolstring(S, -1, &len);
    add(ud, s, len);
    lua_settop(S, 0);
  }
  lua_close(S);
}
