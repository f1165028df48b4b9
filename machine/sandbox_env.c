/*
** sandbox_env.c - the environment of a state machine's sandbox state.
**
** The globals are an allow-list (like Redis' scripting sandbox): the base,
** string, table, math, utf8 and coroutine libraries are opened, everything
** not listed is removed, and the functions sandbox_lib.c replaces are
** swapped in. Forbidden names (io, os, load, ...) raise an error saying why
** instead of reading as nil; once the file has loaded, new globals are
** refused. state_machine() and the check of what the file returned live
** here too.
*/
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec.h"
#include "sandbox.h"

/* Globals a state machine may use. Everything else the base library
** defines (load, dofile, loadfile, collectgarbage, warn, ...) is removed. */
static const char *const allowed[] = {
    "assert", "error",        "ipairs",       "pairs",    "next",
    "pcall",  "xpcall",       "select",       "tonumber", "tostring",
    "type",   "rawequal",     "rawget",       "rawset",   "rawlen",
    "print",  "setmetatable", "getmetatable", "_G",       "_VERSION",
    "string", "table",        "math",         "utf8",     "coroutine",
    NULL};

/* Globals whose use gets an explanation rather than a nil. */
static const char *const forbidden[] = {
    "io",     "os",       "require", "load",           "loadstring",
    "dofile", "loadfile", "debug",   "collectgarbage", "package",
    "module", "setfenv",  "getfenv", "warn",           NULL};

static int in_list(const char *const *list, const char *s) {
  for (; *list; list++)
    if (strcmp(*list, s) == 0) return 1;
  return 0;
}

static int globals_index(lua_State *S) {
  const char *name = lua_type(S, 2) == LUA_TSTRING ? lua_tostring(S, 2) : "";
  if (in_list(forbidden, name))
    return luaL_error(S,
                      "%s is not available in a state machine (state "
                      "machines must be deterministic)",
                      name);
  return 0;
}

/* Once the file has loaded, a new global would be state that snapshot()
** does not capture: refuse it. */
static int globals_newindex(lua_State *S) {
  if (sandbox_get(S)->locked)
    return luaL_error(S,
                      "assignment to undefined global '%s' (a state "
                      "machine keeps its state in locals of its file, "
                      "saved by sm.snapshot)",
                      lua_type(S, 2) == LUA_TSTRING ? lua_tostring(S, 2)
                                                    : luaL_typename(S, 2));
  lua_rawset(S, 1);
  return 0;
}

static int string_index(lua_State *S) {
  if (lua_type(S, 2) == LUA_TSTRING && strcmp(lua_tostring(S, 2), "dump") == 0)
    return luaL_error(S,
                      "string.dump is not available in a state machine "
                      "(state machines must be deterministic)");
  return 0;
}

/* state_machine(): the one state machine of the file, with the functions
** the sandbox provides (sm.session, sm.schedule, sm.cancel). */
static int l_state_machine(lua_State *S) {
  if (lua_getfield(S, LUA_REGISTRYINDEX, SANDBOX_SM_KEY) != LUA_TNIL)
    return luaL_error(S, "state_machine() may be called only once per file");
  lua_createtable(S, 0, 10);
  lua_newtable(S);
  lua_setfield(S, -2, "commands");
  lua_newtable(S);
  lua_setfield(S, -2, "queries");
  lua_pushcfunction(S, sandbox_sm_session);
  lua_setfield(S, -2, "session");
  lua_pushcfunction(S, sandbox_sm_schedule);
  lua_setfield(S, -2, "schedule");
  lua_pushcfunction(S, sandbox_sm_cancel);
  lua_setfield(S, -2, "cancel");
  lua_pushvalue(S, -1);
  lua_setfield(S, LUA_REGISTRYINDEX, SANDBOX_SM_KEY);
  return 1;
}

/* Checks what the file returned. Compiled before any user code runs, so it
** uses the sandbox's own pairs (keys in canonical order: the first problem
** reported is the same on every replica). */
static const char validate_src[] =
    "local pairs, ipairs, type, error, rawequal, tostring, format =\n"
    "  pairs, ipairs, type, error, rawequal, tostring, string.format\n"
    "local fields = { commands = 'table', queries = 'table',\n"
    "  timers = 'table', snapshot = 'function', restore = 'function',\n"
    "  session_opened = 'function', session_closed = 'function',\n"
    "  session = 'function', schedule = 'function', cancel = 'function' }\n"
    "return function(result, sm, name)\n"
    "  if sm == nil then\n"
    "    error(format('%s: the file must create its state machine with '\n"
    "      .. 'state_machine() and return it', name), 0)\n"
    "  end\n"
    "  if not rawequal(result, sm) then\n"
    "    error(format('%s: the file must return the state machine made by '\n"
    "      .. 'state_machine() (it returned %s)', name, result == nil and\n"
    "      'nothing' or 'a ' .. type(result) .. ' value'), 0)\n"
    "  end\n"
    "  for k, v in pairs(sm) do\n"
    "    local want = fields[k]\n"
    "    if not want then\n"
    "      error(format('%s: unknown field %s in the state machine '\n"
    "        .. '(expected commands, queries, timers, snapshot, restore, '\n"
    "        .. 'session_opened or session_closed)', name,\n"
    "        type(k) == 'string' and\n"
    "        \"'\" .. k .. \"'\" or tostring(k)), 0)\n"
    "    end\n"
    "    if type(v) ~= want then\n"
    "      error(format('%s: sm.%s must be a %s (got %s)', name, k, want,\n"
    "        type(v)), 0)\n"
    "    end\n"
    "  end\n"
    "  if (sm.snapshot == nil) ~= (sm.restore == nil) then\n"
    "    error(format('%s: sm.snapshot and sm.restore must be defined '\n"
    "      .. 'together', name), 0)\n"
    "  end\n"
    "  for _, kind in ipairs({ 'commands', 'queries' }) do\n"
    "    if type(sm[kind]) ~= 'table' then\n"
    "      error(format('%s: sm.%s must be a table (got %s)', name, kind,\n"
    "        type(sm[kind])), 0)\n"
    "    end\n"
    "    local what = kind == 'commands' and 'command' or 'query'\n"
    "    for op, fn in pairs(sm[kind]) do\n"
    "      if type(op) ~= 'string' then\n"
    "        error(format('%s: %s names must be strings (found %s %s)',\n"
    "          name, what, type(op), tostring(op)), 0)\n"
    "      end\n"
    "      if type(fn) ~= 'function' then\n"
    "        error(format(\"%s: %s '%s' is not a function (got %s)\", name,\n"
    "          what, op, type(fn)), 0)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  local seen = {}\n"
    "  for k, fn in pairs(sm.timers or {}) do\n"
    "    if type(k) ~= 'string' then\n"
    "      error(format('%s: timer names must be strings (found %s %s)',\n"
    "        name, type(k), tostring(k)), 0)\n"
    "    end\n"
    "    if type(fn) ~= 'function' then\n"
    "      error(format(\"%s: timer '%s' is not a function (got %s)\", name,\n"
    "        k, type(fn)), 0)\n"
    "    end\n"
    "    if seen[fn] then\n"
    "      error(format(\"%s: sm.timers.%s and sm.timers.%s are the same \"\n"
    "        .. 'function (a timer is saved by the name of its function)',\n"
    "        name, seen[fn], k), 0)\n"
    "    end\n"
    "    seen[fn] = k\n"
    "  end\n"
    "end\n";

/* Keep only the names in `allowed` in the global table at g. */
static void filter_globals(lua_State *S, int g) {
  lua_pushnil(S);
  while (lua_next(S, g)) {
    lua_pop(S, 1);
    if (lua_type(S, -1) != LUA_TSTRING ||
        !in_list(allowed, lua_tostring(S, -1))) {
      lua_pushvalue(S, -1);
      lua_pushnil(S);
      lua_rawset(S, g); /* clearing a field during traversal is allowed */
    }
  }
}

/* Build the environment (runs protected, in S). */
int sandbox_env_open(lua_State *S) {
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                  {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_TABLIBNAME, luaopen_table},
                                  {LUA_MATHLIBNAME, luaopen_math},
                                  {LUA_UTF8LIBNAME, luaopen_utf8},
                                  {LUA_COLIBNAME, luaopen_coroutine},
                                  {NULL, NULL}};
  const luaL_Reg *lib;
  int g;
  for (lib = libs; lib->name; lib++) {
    luaL_requiref(S, lib->name, lib->func, 1);
    lua_pop(S, 1);
  }
  codec_open(S); /* creates the array/map marker metatables of S */
  lua_pop(S, 1);
  lua_pushglobaltable(S);
  g = lua_gettop(S);
  filter_globals(S, g);

  lua_getfield(S, g, "string");
  lua_pushnil(S);
  lua_setfield(S, -2, "dump");
  lua_createtable(S, 0, 1);
  lua_pushcfunction(S, string_index);
  lua_setfield(S, -2, "__index");
  lua_setmetatable(S, -2);
  lua_pop(S, 1);

  sandbox_openlib(S);
  sandbox_session_open(S);
  sandbox_view_open(S);
  sandbox_timers_open(S);
  lua_pushcfunction(S, l_state_machine);
  lua_setfield(S, g, "state_machine");

  if (luaL_loadbuffer(S, validate_src, sizeof validate_src - 1, "=sandbox"))
    return lua_error(S);
  lua_call(S, 0, 1);
  lua_setfield(S, LUA_REGISTRYINDEX, SANDBOX_VALIDATE_KEY);

  lua_createtable(S, 0, 2);
  lua_pushcfunction(S, globals_index);
  lua_setfield(S, -2, "__index");
  lua_pushcfunction(S, globals_newindex);
  lua_setfield(S, -2, "__newindex");
  lua_setmetatable(S, g);
  return 0;
}
