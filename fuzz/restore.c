/*
 * restore.c — fuzzes machine:restore (machine/sandbox.c and
 * sandbox_timers.c): a state machine snapshot arrives from the leader in
 * snapshot messages and from the snapshot file at start-up, and restoring
 * decodes it ([version, state, timer counter, timers], timers holding
 * their arguments as encoded bytes).
 *
 * Each input is restored into a fresh sandbox whose machine has timers;
 * when the restore succeeds the machine snapshots itself and fires every
 * restored timer (which decodes the timers' stored arguments). Errors are
 * expected; a crash or sanitizer report is not.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <string.h>

#include "l_core.h"
#include "fuzz.h"

const char fuzz_target_name[] = "restore";
/* A fresh sandbox per input: ~0.2 ms each. */
const unsigned long long fuzz_default_iterations = 2000;

static const char driver[] =
    "local core = ...\n"
    "local src = [==[\n"
    "  local sm = state_machine()\n"
    "  local state = {}\n"
    "  sm.timers = {}\n"
    "  function sm.timers.note(t, ...) state[#state + 1] = { t.id, ... } end\n"
    "  function sm.timers.again(t, d, ...)\n"
    "    sm.schedule(d or 1, sm.timers.note, ...)\n"
    "  end\n"
    "  function sm.commands.at(c)\n"
    "    for _, e in ipairs(c.args) do\n"
    "      sm.schedule(e[1], sm.timers[e[2]], table.unpack(e, 3))\n"
    "    end\n"
    "  end\n"
    "  function sm.commands.put(c) state[c.args[1]] = c.args[2] end\n"
    "  function sm.snapshot() return state end\n"
    "  function sm.restore(s) state = s end\n"
    "  return sm\n"
    "]==]\n"
    "local function new()\n"
    "  return assert(core.sandbox.new(src, 'fuzz', 1000000, 10000000,\n"
    "                                 16 * 1024 * 1024))\n"
    "end\n"
    "local function one(bytes)\n"
    "  local m = new()\n"
    "  if m:restore(bytes) then\n"
    "    assert(m:snapshot())\n"
    "    m:advance({ index = 1, term = 1, time = math.maxinteger })\n"
    "    m:advance({ index = 2, term = 1, time = math.maxinteger })\n"
    "  end\n"
    "  m:close()\n"
    "end\n"
    "local function seeds()\n"
    "  local out = {}\n"
    "  local m = new()\n"
    "  out[#out + 1] = assert(m:snapshot())\n"
    "  local ctx = { index = 1, term = 1, time = 1000 }\n"
    "  assert(m:command('put', { 'k', { a = 1, b = { 1, 2, 3 } } }, ctx))\n"
    "  out[#out + 1] = assert(m:snapshot())\n"
    "  ctx.index = 2\n"
    "  assert(m:command('at', { { 10, 'note', 'x', { y = 2 } },\n"
    "                          { 20, 'again', 5, 'z' },\n"
    "                          { 30, 'note' } }, ctx))\n"
    "  out[#out + 1] = assert(m:snapshot())\n"
    "  m:close()\n"
    "  return out\n"
    "end\n"
    "return one, seeds\n";

static lua_State *L;
static int one_ref, seeds_ref;

static void setup(void) {
  if (L) return;
  L = luaL_newstate();
  FUZZ_CHECK(L != NULL);
  luaL_openlibs(L);
  FUZZ_CHECK(luaL_loadstring(L, driver) == LUA_OK);
  luaL_requiref(L, "copycat.core", luaopen_copycat_core, 0); /* the arg */
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
    fprintf(stderr, "restore: %s\n", lua_tostring(L, -1));
    FUZZ_CHECK(0);
  }
  seeds_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  one_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  lua_rawgeti(L, LUA_REGISTRYINDEX, one_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    /* machine methods report errors as values; the assert on snapshot
     * after a successful restore is the only raise expected here. */
    fprintf(stderr, "restore: %s\n", lua_tostring(L, -1));
    FUZZ_CHECK(0);
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  setup();
  lua_rawgeti(L, LUA_REGISTRYINDEX, seeds_ref);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "restore seeds: %s\n", lua_tostring(L, -1));
    lua_settop(L, 0);
    return;
  }
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    size_t len;
    lua_rawgeti(L, -1, i);
    const char *s = lua_tolstring(L, -1, &len);
    if (s) add(ud, s, len);
    lua_pop(L, 1);
  }
  lua_settop(L, 0);
}
