/*
** sandbox_view.c - queries see the state through a read-only view.
**
** A query reaches the state through the upvalues of its handler (the
** chunk's locals: the state tables, the `sm` table, _ENV and so the
** globals) and through the upvalues of the functions those lead to. For
** the length of one query every such upvalue that holds a table is set to
** a view of it: an empty table whose metatable reads through to the
** original, wraps what it returns (tables in views, functions after their
** own upvalues got the same treatment) and refuses writes. Upvalues that
** hold other values are remembered. When the query returns (or fails) the
** upvalues get their originals back; one that the query assigned makes the
** query fail, so a query cannot change the state it reads. Results are
** unwrapped (views replaced by their originals) before they are encoded.
**
** Views are kept (weakly) from one query to the next, so that a query
** that reads what the previous one read allocates nothing; rawset refuses
** views, so a view never holds anything of its own. pairs, next, rawget
** and rawlen see through a view; rawequal(view, original) cannot be asked
** (a query never holds an original).
**
** Not covered (docs/state-machine.md): functions reached other than
** through upvalues and views (an __index function of a state table's own
** metatable is called with the original table), tables used as keys of
** the state (pairs returns them as they are).
*/
#include <lauxlib.h>
#include <lua.h>

#include "sandbox.h"

/* The registry key of the state table: this variable's address (a light
** userdata key costs no string lookup, and queries look it up often). */
static const char state_key = 0;

/* Fields of the state table (in the registry, upvalue 1 of the
** metamethods). */
enum {
  ST_ORIG = 1, /* view -> original (weak keys) */
  ST_MEMO,     /* original -> view (weak keys) */
  ST_SEEN,     /* function -> generation whose query wrapped it (weak) */
  ST_SWAPS,    /* flat list: function, upvalue index, original, view|false */
  ST_NSWAPS,   /* entries in use in the swaps list */
  ST_NAME,     /* the query's name, for messages */
  ST_GEN,      /* the query's generation */
  ST_MT        /* the views' metatable */
};

static void push_state(lua_State *S) {
  lua_rawgetp(S, LUA_REGISTRYINDEX, &state_key);
}

static int is_view(lua_State *S, int st, int idx) {
  if (lua_type(S, idx) != LUA_TTABLE || !lua_getmetatable(S, idx)) return 0;
  lua_rawgeti(S, st, ST_MT);
  int v = lua_rawequal(S, -1, -2);
  lua_pop(S, 2);
  return v;
}

/* The view at idx becomes its original; 1 if it was a view. */
static int unview(lua_State *S, int st, int idx) {
  if (!is_view(S, st, idx)) return 0;
  lua_rawgeti(S, st, ST_ORIG);
  lua_pushvalue(S, idx);
  lua_rawget(S, -2);
  lua_replace(S, idx);
  lua_pop(S, 1);
  return 1;
}

static void wrap_function(lua_State *S, int st, int fn);

/* The value at idx becomes what a query may see of it: a view for a
** table, the function itself once its upvalues are wrapped. */
static void wrap(lua_State *S, int st, int idx) {
  int t = lua_type(S, idx);
  if (t == LUA_TFUNCTION) {
    wrap_function(S, st, idx);
    return;
  }
  if (t != LUA_TTABLE || is_view(S, st, idx)) return;
  lua_rawgeti(S, st, ST_MEMO);
  lua_pushvalue(S, idx);
  if (lua_rawget(S, -2) == LUA_TNIL) {
    lua_pop(S, 1);
    lua_createtable(S, 0, 0);
    lua_rawgeti(S, st, ST_MT);
    lua_setmetatable(S, -2);
    lua_pushvalue(S, idx);
    lua_pushvalue(S, -2);
    lua_rawset(S, -4); /* memo[original] = view */
    lua_rawgeti(S, st, ST_ORIG);
    lua_pushvalue(S, -2);
    lua_pushvalue(S, idx);
    lua_rawset(S, -3); /* orig[view] = original */
    lua_pop(S, 1);
  }
  lua_replace(S, idx);
  lua_pop(S, 1);
}

/* Appends v to the swaps list (at sw) as entry n + k. */
static void put(lua_State *S, int sw, lua_Integer n, int k, int v) {
  lua_pushvalue(S, v);
  lua_rawseti(S, sw, n + k);
}

/* Wraps every upvalue of the Lua function at fn, once per query, recording
** each swap before making it (recording may fail for memory; a swap is
** undone only if it is on the list). */
static void wrap_function(lua_State *S, int st, int fn) {
  if (lua_iscfunction(S, fn)) return;
  luaL_checkstack(S, 8, "views");
  lua_rawgeti(S, st, ST_SEEN);
  lua_rawgeti(S, st, ST_GEN);
  lua_pushvalue(S, fn);
  lua_rawget(S, -3);
  if (lua_rawequal(S, -1, -2)) {
    lua_pop(S, 3);
    return;
  }
  lua_pop(S, 1);
  lua_pushvalue(S, fn);
  lua_insert(S, -2);
  lua_rawset(S, -3); /* seen[fn] = generation */
  lua_pop(S, 1);
  lua_rawgeti(S, st, ST_SWAPS);
  int sw = lua_gettop(S);
  for (int i = 1; lua_getupvalue(S, fn, i) != NULL; i++) {
    int v = lua_gettop(S);
    int t = lua_type(S, v);
    if (t == LUA_TFUNCTION) {
      wrap_function(S, st, v);
    } else if (!is_view(S, st, v)) { /* a view: a cell walked already */
      lua_rawgeti(S, st, ST_NSWAPS);
      lua_Integer n = lua_tointeger(S, -1);
      lua_pop(S, 1);
      put(S, sw, n, 1, fn);
      lua_pushinteger(S, i);
      lua_rawseti(S, sw, n + 2);
      put(S, sw, n, 3, v);
      lua_pushvalue(S, v);
      if (t == LUA_TTABLE)
        wrap(S, st, lua_gettop(S));
      else
        lua_pushboolean(S, 0);
      put(S, sw, n, 4, lua_gettop(S));
      lua_pushinteger(S, n + 4);
      lua_rawseti(S, st, ST_NSWAPS);
      if (t == LUA_TTABLE)
        lua_setupvalue(S, fn, i); /* pops the view */
      else
        lua_pop(S, 1);
    }
    lua_settop(S, sw);
  }
  lua_pop(S, 1);
}

/* ---- the views' metamethods (upvalue 1: the state) ---- */

#define ST lua_upvalueindex(1)

static int view_index(lua_State *S) {
  lua_rawgeti(S, ST, ST_ORIG);
  lua_pushvalue(S, 1);
  lua_rawget(S, -2);
  lua_replace(S, 1);
  lua_pop(S, 1);
  unview(S, ST, 2); /* a view used as a key means its original */
  lua_gettable(S, 1);
  wrap(S, ST, lua_gettop(S));
  return 1;
}

static int view_newindex(lua_State *S) {
  lua_rawgeti(S, ST, ST_NAME);
  if (lua_type(S, 2) == LUA_TSTRING)
    lua_pushfstring(S, "'%s'", lua_tostring(S, 2));
  else if (lua_isinteger(S, 2))
    lua_pushfstring(S, "%I", (LUAI_UACINT)lua_tointeger(S, 2));
  else
    lua_pushstring(S, luaL_typename(S, 2));
  return luaL_error(S,
                    "query '%s' tried to write to the state (key %s): a query "
                    "has a read-only view of it",
                    lua_tostring(S, -2), lua_tostring(S, -1));
}

static int view_len(lua_State *S) {
  unview(S, ST, 1);
  lua_len(S, 1);
  return 1;
}

/* pairs over a view: the original's iterator (upvalue 2), values wrapped. */
static int view_pairs_next(lua_State *S) {
  lua_settop(S, 2);
  lua_pushvalue(S, lua_upvalueindex(2));
  lua_insert(S, 1);
  lua_call(S, 2, 2);
  if (lua_isnil(S, 1)) return 1;
  wrap(S, ST, 1);
  wrap(S, ST, 2);
  return 2;
}

/* __pairs: the sandbox's pairs on the original (canonical order). */
static int view_pairs(lua_State *S) {
  unview(S, ST, 1);
  lua_settop(S, 1);
  lua_getglobal(S, "pairs");
  lua_pushvalue(S, 1);
  lua_call(S, 1, 3); /* 2 iterator, 3 original, 4 nil */
  lua_pushvalue(S, ST);
  lua_pushvalue(S, 2);
  lua_pushcclosure(S, view_pairs_next, 2);
  lua_replace(S, 2);
  return 3;
}

/* rawget, rawlen: see through a view (upvalue 2: the standard one). */
static int raw_through(lua_State *S) {
  int view = unview(S, ST, 1);
  int n = lua_gettop(S);
  lua_pushvalue(S, lua_upvalueindex(2));
  lua_insert(S, 1);
  lua_call(S, n, 1);
  if (view) wrap(S, ST, 1);
  return 1;
}

/* rawset: refuses a view (which never holds anything of its own). */
static int raw_set(lua_State *S) {
  if (is_view(S, ST, 1)) return view_newindex(S);
  int n = lua_gettop(S);
  lua_pushvalue(S, lua_upvalueindex(2));
  lua_insert(S, 1);
  lua_call(S, n, 1);
  return 1;
}

#undef ST

/* ---- around a query ---- */

static void weak_table(lua_State *S, int st, int field) {
  lua_newtable(S);
  lua_createtable(S, 0, 1);
  lua_pushliteral(S, "k");
  lua_setfield(S, -2, "__mode");
  lua_setmetatable(S, -2);
  lua_rawseti(S, st, field);
}

static void replace_raw(lua_State *S, int st, const char *name,
                        lua_CFunction fn) {
  lua_pushvalue(S, st);
  lua_getglobal(S, name);
  lua_pushcclosure(S, fn, 2);
  lua_setglobal(S, name);
}

void sandbox_view_open(lua_State *S) {
  static const luaL_Reg mm[] = {{"__index", view_index},
                                {"__newindex", view_newindex},
                                {"__len", view_len},
                                {"__pairs", view_pairs},
                                {NULL, NULL}};
  lua_createtable(S, ST_MT, 0);
  int st = lua_gettop(S);
  weak_table(S, st, ST_ORIG);
  weak_table(S, st, ST_MEMO);
  weak_table(S, st, ST_SEEN);
  lua_newtable(S);
  lua_rawseti(S, st, ST_SWAPS);
  lua_pushinteger(S, 0);
  lua_rawseti(S, st, ST_NSWAPS);
  lua_pushinteger(S, 0);
  lua_rawseti(S, st, ST_GEN);
  lua_createtable(S, 0, 5);
  lua_pushvalue(S, st);
  luaL_setfuncs(S, mm, 1);
  lua_pushliteral(S, "read-only view");
  lua_setfield(S, -2, "__metatable");
  lua_rawseti(S, st, ST_MT);
  replace_raw(S, st, "rawget", raw_through);
  replace_raw(S, st, "rawlen", raw_through);
  replace_raw(S, st, "rawset", raw_set);
  lua_rawsetp(S, LUA_REGISTRYINDEX, &state_key);
}

void sandbox_view_prepare(lua_State *S, const char *name, size_t len) {
  push_state(S);
  lua_pushlstring(S, name, len);
  lua_rawseti(S, -2, ST_NAME);
  lua_rawgeti(S, -1, ST_GEN);
  lua_pushinteger(S, lua_tointeger(S, -1) + 1);
  lua_rawseti(S, -3, ST_GEN);
  lua_pop(S, 2);
}

void sandbox_view_begin(lua_State *S, int fn) {
  fn = lua_absindex(S, fn);
  push_state(S);
  wrap_function(S, lua_gettop(S), fn);
  lua_pop(S, 1);
}

int sandbox_view_unview(lua_State *S, int idx) {
  idx = lua_absindex(S, idx);
  if (lua_type(S, idx) != LUA_TTABLE) return 0;
  push_state(S);
  int r = unview(S, lua_gettop(S), idx);
  lua_pop(S, 1);
  return r;
}

void sandbox_view_wrap(lua_State *S, int idx) {
  idx = lua_absindex(S, idx);
  push_state(S);
  wrap(S, lua_gettop(S), idx);
  lua_pop(S, 1);
}

/* Views in the table at idx (built by the query) become their originals,
** recursively; `seen` guards against cycles. */
static void unwrap_table(lua_State *S, int st, int idx, int seen) {
  lua_pushvalue(S, idx);
  if (lua_rawget(S, seen) != LUA_TNIL) {
    lua_pop(S, 1);
    return;
  }
  lua_pop(S, 1);
  lua_pushvalue(S, idx);
  lua_pushboolean(S, 1);
  lua_rawset(S, seen);
  luaL_checkstack(S, 6, "results");
  lua_pushnil(S);
  while (lua_next(S, idx)) {
    int v = lua_gettop(S);
    if (unview(S, st, v)) {
      lua_pushvalue(S, v - 1);
      lua_pushvalue(S, v);
      lua_rawset(S, idx); /* an existing key: allowed during lua_next */
    } else if (lua_type(S, v) == LUA_TTABLE) {
      unwrap_table(S, st, v, seen);
    }
    lua_settop(S, v - 1);
  }
}

int sandbox_view_end(lua_State *S, int first, int failed) {
  int top = lua_gettop(S);
  push_state(S);
  int st = top + 1;
  lua_rawgeti(S, st, ST_SWAPS);
  int sw = top + 2;
  lua_rawgeti(S, st, ST_NSWAPS);
  lua_Integer n = lua_tointeger(S, -1), bad = 0;
  lua_pop(S, 1);
  const char *badname = "?";
  for (lua_Integer k = n - 3; k >= 1; k -= 4) {
    lua_rawgeti(S, sw, k); /* sw + 1: the function */
    lua_rawgeti(S, sw, k + 1);
    int i = (int)lua_tointeger(S, -1);
    lua_rawgeti(S, sw, k + 2); /* sw + 3: the original */
    lua_rawgeti(S, sw, k + 3); /* sw + 4: its view, or false */
    const char *uv = lua_getupvalue(S, sw + 1, i);
    int same = lua_toboolean(S, sw + 4) ? lua_rawequal(S, -1, sw + 4)
                                        : lua_rawequal(S, -1, sw + 3);
    if (!same && !bad) {
      bad = k;
      badname = uv && uv[0] ? uv : "?"; /* kept by the function's proto */
    }
    lua_pushvalue(S, sw + 3);
    lua_setupvalue(S, sw + 1, i);
    lua_settop(S, sw);
    for (int j = 0; j < 4; j++) { /* let go of what the entry held */
      lua_pushnil(S);
      lua_rawseti(S, sw, k + j);
    }
  }
  lua_pushinteger(S, 0);
  lua_rawseti(S, st, ST_NSWAPS);
  if (bad) { /* everything is back: now the message */
    lua_rawgeti(S, st, ST_NAME);
    lua_pushfstring(S,
                    "query '%s' assigned to '%s': a query has a read-only "
                    "view of the state (the assignment was undone)",
                    lua_tostring(S, -1), badname);
    lua_replace(S, top + 1);
    lua_settop(S, top + 1);
    return 1;
  }
  if (!failed) {
    lua_newtable(S); /* the tables already unwrapped */
    int seen = lua_gettop(S);
    for (int i = first; i <= top; i++)
      if (!unview(S, st, i) && lua_type(S, i) == LUA_TTABLE)
        unwrap_table(S, st, i, seen);
  }
  lua_settop(S, top);
  return 0;
}
