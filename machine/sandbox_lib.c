/*
** sandbox_lib.c - deterministic replacements for standard Lua functions.
**
** Replicas are separate processes, and a few standard functions give
** results that differ between processes running the same code on the same
** data:
**   pairs, next       visit keys in hash order, and Lua 5.4 seeds string
**                     hashes per process: replaced by the canonical key order
**                     of copycat.codec (booleans, numbers, strings bytewise);
**   table.sort        picks pivots from clock() and time() for large arrays,
**                     so equal elements land in varying order: replaced by a
**                     stable merge sort;
**   tostring, string.format("%s"/"%p")   show addresses;
**   math.random       seeded from the time: replaced by xoshiro256** seeded
**                     from the log entry;
**   setmetatable      __gc and __mode run at moments chosen by the garbage
**                     collector: refused;
**   coroutine.*, xpcall   wrapped so that one budget covers every coroutine
**                     and no message handler runs once it is spent.
** Each function here runs inside the sandbox state S.
*/
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "sandbox.h"

/* ------------------------------------------------------------------------ */
/* Canonical key order (the order copycat.codec writes map keys in)          */
/* ------------------------------------------------------------------------ */

enum { K_BOOL, K_NUM, K_STR };

typedef struct Key {
  int cls, isint, b;
  lua_Integer i;
  lua_Number n;
  const char *s; /* K_STR: anchored by the table the key came from */
  size_t len;
  lua_Integer pos; /* where the key sits in the unsorted key list */
} Key;

/* Describe the key at idx; 0 if it has no place in the order (a table,
** function, thread or userdata key). */
static int key_get(lua_State *S, int idx, Key *k) {
  switch (lua_type(S, idx)) {
    case LUA_TBOOLEAN:
      k->cls = K_BOOL;
      k->b = lua_toboolean(S, idx);
      return 1;
    case LUA_TNUMBER:
      k->cls = K_NUM;
      k->isint = lua_isinteger(S, idx);
      if (k->isint)
        k->i = lua_tointeger(S, idx);
      else
        k->n = lua_tonumber(S, idx);
      return 1;
    case LUA_TSTRING:
      k->cls = K_STR;
      k->s = lua_tolstring(S, idx, &k->len);
      return 1;
    default:
      return 0;
  }
}

static int key_cmp(const Key *a, const Key *b) {
  size_t n;
  int c;
  if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
  switch (a->cls) {
    case K_BOOL:
      return a->b - b->b;
    case K_NUM:
      if (a->isint && b->isint) return a->i < b->i ? -1 : a->i > b->i;
      if (!a->isint && !b->isint) return a->n < b->n ? -1 : a->n > b->n;
      if (a->isint) return codec_compare_int_float(a->i, b->n);
      return -codec_compare_int_float(b->i, a->n);
    default:
      n = a->len < b->len ? a->len : b->len;
      c = memcmp(a->s, b->s, n);
      if (c != 0) return c;
      return a->len < b->len ? -1 : a->len > b->len;
  }
}

static int key_qcmp(const void *a, const void *b) {
  return key_cmp((const Key *)a, (const Key *)b);
}

static int bad_key(lua_State *S, const char *fn, int idx) {
  return luaL_error(S,
                    "%s: a table with %s keys has no deterministic order "
                    "(use string, number or boolean keys)",
                    fn, luaL_typename(S, idx));
}

/* pairs iterator. Upvalues: the table, the sorted key list, the position.
** Keys removed since pairs() was called are skipped; keys added are not
** visited (Lua leaves both undefined for its own pairs). */
static int pairs_next(lua_State *S) {
  lua_Integer i = lua_tointeger(S, lua_upvalueindex(3));
  for (;;) {
    if (lua_rawgeti(S, lua_upvalueindex(2), ++i) == LUA_TNIL) return 1;
    lua_pushvalue(S, -1);
    if (lua_rawget(S, lua_upvalueindex(1)) != LUA_TNIL) break;
    lua_pop(S, 2);
  }
  lua_pushinteger(S, i);
  lua_replace(S, lua_upvalueindex(3));
  return 2;
}

/* pairs(t): __pairs if t's metatable has one, otherwise t's keys in the
** canonical order. Costs O(n log n) time and O(n) memory at the call, and n
** units of budget. */
static int sb_pairs(lua_State *S) {
  lua_Integer n = 0, i;
  Key *keys;
  luaL_checkany(S, 1);
  if (luaL_getmetafield(S, 1, "__pairs") != LUA_TNIL) {
    lua_pushvalue(S, 1);
    lua_call(S, 1, 3);
    return 3;
  }
  luaL_checktype(S, 1, LUA_TTABLE);
  lua_settop(S, 1);
  lua_newtable(S); /* 2: keys in traversal order */
  lua_pushnil(S);
  while (lua_next(S, 1)) {
    lua_pop(S, 1);
    switch (lua_type(S, -1)) {
      case LUA_TBOOLEAN:
      case LUA_TNUMBER:
      case LUA_TSTRING:
        break;
      default:
        return bad_key(S, "pairs", -1);
    }
    lua_pushvalue(S, -1);
    lua_rawseti(S, 2, ++n);
  }
  sandbox_charge(S, n);
  keys = (Key *)lua_newuserdatauv(S, (size_t)n * sizeof *keys + 1, 0); /* 3 */
  for (i = 0; i < n; i++) {
    lua_rawgeti(S, 2, i + 1);
    key_get(S, -1, &keys[i]); /* strings stay anchored in table 2 */
    keys[i].pos = i + 1;
    lua_pop(S, 1);
  }
  qsort(keys, (size_t)n, sizeof *keys, key_qcmp);
  lua_pushvalue(S, 1);
  lua_createtable(S, (int)(n < INT_MAX ? n : INT_MAX), 0);
  for (i = 0; i < n; i++) {
    lua_rawgeti(S, 2, keys[i].pos);
    lua_rawseti(S, -2, i + 1);
  }
  lua_pushinteger(S, 0);
  lua_pushcclosure(S, pairs_next, 3);
  lua_pushvalue(S, 1);
  lua_pushnil(S);
  return 3;
}

/* next(t [, k]): the key after k in the canonical order (the first key if k
** is nil) and its value, or nil. O(n) per call, so a whole traversal with
** next is O(n^2): use pairs. Charges n units. */
static int sb_next(lua_State *S) {
  Key after, best, cur;
  int have_after, have_best = 0, view;
  lua_Integer n = 0;
  luaL_checktype(S, 1, LUA_TTABLE);
  lua_settop(S, 2);
  view = sandbox_view_unview(S, 1); /* a query's view: its original */
  have_after = !lua_isnil(S, 2);
  if (have_after && !key_get(S, 2, &after)) return bad_key(S, "next", 2);
  lua_pushnil(S); /* 3: best key so far */
  lua_pushnil(S);
  while (lua_next(S, 1)) {
    lua_pop(S, 1);
    n++;
    if (!key_get(S, -1, &cur)) return bad_key(S, "next", -1);
    if (have_after && key_cmp(&cur, &after) <= 0) continue;
    if (have_best && key_cmp(&cur, &best) >= 0) continue;
    lua_copy(S, -1, 3);
    key_get(S, 3, &best); /* the string is anchored at slot 3 */
    have_best = 1;
  }
  sandbox_charge(S, n);
  if (!have_best) {
    lua_pushnil(S);
    return 1;
  }
  lua_pushvalue(S, 3);
  lua_pushvalue(S, 3);
  lua_rawget(S, 1);
  if (view) {
    sandbox_view_wrap(S, -2);
    sandbox_view_wrap(S, -1);
  }
  return 2;
}

/* ------------------------------------------------------------------------ */
/* table.sort: stable bottom-up merge sort                                   */
/* ------------------------------------------------------------------------ */

/* Is src[i] < src[j]? Stack: 1 table, 2 comparator or nil, 3 src. */
static int sort_less(lua_State *S, lua_Integer i, lua_Integer j) {
  int r;
  if (!lua_isnil(S, 2)) {
    lua_pushvalue(S, 2);
    lua_rawgeti(S, 3, i);
    lua_rawgeti(S, 3, j);
    lua_call(S, 2, 1);
    r = lua_toboolean(S, -1);
    lua_pop(S, 1);
  } else {
    sandbox_charge(S, 1);
    lua_rawgeti(S, 3, i);
    lua_rawgeti(S, 3, j);
    r = lua_compare(S, -2, -1, LUA_OPLT);
    lua_pop(S, 2);
  }
  return r;
}

/* table.sort(t [, comp]): like the standard one, but stable, hence its
** result does not depend on pivot choices. O(n log n) comparisons and O(n)
** extra memory. */
static int sb_sort(lua_State *S) {
  lua_Integer n, width, lo, i;
  luaL_checktype(S, 1, LUA_TTABLE);
  n = luaL_len(S, 1);
  if (!lua_isnoneornil(S, 2)) luaL_checktype(S, 2, LUA_TFUNCTION);
  lua_settop(S, 2);
  if (n < 2) return 0;
  luaL_argcheck(S, n < INT_MAX, 1, "array too big");
  sandbox_charge(S, n);
  lua_createtable(S, (int)n, 0); /* 3: src */
  lua_createtable(S, (int)n, 0); /* 4: dst */
  for (i = 1; i <= n; i++) {
    lua_geti(S, 1, i);
    lua_rawseti(S, 3, i);
  }
  for (width = 1; width < n; width *= 2) {
    for (lo = 1; lo <= n; lo += 2 * width) {
      lua_Integer mid = lo + width, hi = lo + 2 * width, a = lo, b = mid, o;
      if (mid > n + 1) mid = n + 1;
      if (hi > n + 1) hi = n + 1;
      if (b > mid) b = mid;
      for (o = lo; o < hi; o++) {
        lua_Integer from;
        /* Take from the right run only if strictly less: stability. */
        if (a < mid && (b >= hi || !sort_less(S, b, a)))
          from = a++;
        else
          from = b++;
        lua_rawgeti(S, 3, from);
        lua_rawseti(S, 4, o);
      }
    }
    lua_rotate(S, 3, 1); /* swap src and dst */
  }
  for (i = 1; i <= n; i++) {
    lua_rawgeti(S, 3, i);
    lua_seti(S, 1, i);
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* tostring and string.format without addresses                              */
/* ------------------------------------------------------------------------ */

/* Push the string form of the value at idx: __tostring if present,
** otherwise the standard form for nil, booleans, numbers and strings, and
** the bare type name for everything else (never an address). */
static void push_tostring(lua_State *S, int idx) {
  idx = lua_absindex(S, idx);
  if (luaL_callmeta(S, idx, "__tostring")) {
    if (!lua_isstring(S, -1))
      luaL_error(S, "'__tostring' must return a string");
    return;
  }
  switch (lua_type(S, idx)) {
    case LUA_TNIL:
    case LUA_TBOOLEAN:
    case LUA_TNUMBER:
    case LUA_TSTRING:
      luaL_tolstring(S, idx, NULL);
      break;
    default:
      lua_pushstring(S, luaL_typename(S, idx));
  }
}

static int sb_tostring(lua_State *S) {
  luaL_checkany(S, 1);
  push_tostring(S, 1);
  return 1;
}

/* string.format: refuses %p, and converts the arguments of %s that are not
** strings or numbers with the tostring above, then calls the standard
** string.format (upvalue 1). */
static int sb_format(lua_State *S) {
  size_t len;
  const char *fmt = luaL_checklstring(S, 1, &len), *p = fmt, *end = fmt + len;
  int arg = 1, top = lua_gettop(S);
  while (p < end) {
    if (*p++ != '%') continue;
    if (p < end && *p == '%') {
      p++;
      continue;
    }
    while (p < end && strchr("-+ #0", *p))
      p++;
    while (p < end && ((*p >= '0' && *p <= '9') || *p == '.'))
      p++;
    if (p >= end) break; /* the standard format reports it */
    arg++;
    if (*p == 'p')
      return luaL_error(S,
                        "string.format: '%%p' is not available in a state "
                        "machine (addresses differ between replicas)");
    if (*p == 's' && arg <= top && lua_type(S, arg) != LUA_TSTRING &&
        lua_type(S, arg) != LUA_TNUMBER) {
      push_tostring(S, arg);
      lua_replace(S, arg);
    }
    p++;
  }
  lua_pushvalue(S, lua_upvalueindex(1));
  lua_insert(S, 1);
  lua_call(S, top, 1);
  return 1;
}

/* string.rep: charged one unit per 64 bytes of result before it is built,
** so that the budget also bounds the memory one call can ask for. */
static int sb_rep(lua_State *S) {
  size_t l, lsep = 0;
  lua_Integer n;
  lua_Number bytes;
  luaL_checklstring(S, 1, &l);
  n = luaL_checkinteger(S, 2);
  luaL_optlstring(S, 3, "", &lsep);
  if (n > 0) {
    bytes = (lua_Number)l * (lua_Number)n + (lua_Number)lsep * (lua_Number)n;
    sandbox_charge(S, bytes / 64 >= 0x1p62 ? (lua_Integer)1 << 62
                                           : (lua_Integer)(bytes / 64));
  }
  lua_pushvalue(S, lua_upvalueindex(1));
  lua_insert(S, 1);
  lua_call(S, lua_gettop(S) - 1, 1);
  return 1;
}

/* ------------------------------------------------------------------------ */
/* Metatables                                                                */
/* ------------------------------------------------------------------------ */

static int sb_setmetatable(lua_State *S) {
  static const char *const refused[][2] = {
      {"__gc", "finalizers run when the garbage collector decides"},
      {"__mode", "weak tables lose entries when the garbage collector runs"}};
  size_t i;
  int t = lua_type(S, 2);
  luaL_checktype(S, 1, LUA_TTABLE);
  luaL_argexpected(S, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (t == LUA_TTABLE) {
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
      lua_pushstring(S, refused[i][0]);
      if (lua_rawget(S, 2) != LUA_TNIL)
        return luaL_error(S,
                          "setmetatable: %s is not available in a state "
                          "machine (%s, at moments that differ between "
                          "replicas)",
                          refused[i][0], refused[i][1]);
      lua_pop(S, 1);
    }
  }
  if (luaL_getmetafield(S, 1, "__metatable") != LUA_TNIL)
    return luaL_error(S, "cannot change a protected metatable");
  lua_settop(S, 2);
  lua_setmetatable(S, 1);
  return 1;
}

/* getmetatable: the standard one, except that the marker metatables the
** codec gives decoded arrays and maps are hidden (they are shared by every
** decoded table, so a change to one would reach all of them). */
static int sb_getmetatable(lua_State *S) {
  static const char *const markers[] = {CODEC_ARRAY_MT, CODEC_MAP_MT};
  size_t i;
  luaL_checkany(S, 1);
  if (!lua_getmetatable(S, 1)) {
    lua_pushnil(S);
    return 1;
  }
  for (i = 0; i < sizeof markers / sizeof markers[0]; i++) {
    luaL_getmetatable(S, markers[i]);
    if (lua_rawequal(S, -1, -2)) {
      lua_pushnil(S);
      return 1;
    }
    lua_pop(S, 1);
  }
  luaL_getmetafield(S, 1, "__metatable");
  return 1;
}

/* ------------------------------------------------------------------------ */
/* math.random: xoshiro256**, reseeded for every call from the log entry     */
/* ------------------------------------------------------------------------ */

static uint64_t rotl(uint64_t x, int n) {
  return (x << n) | (x >> (64 - n));
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return r;
}

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

void sandbox_seed(Sandbox *sb, uint64_t a, uint64_t b) {
  uint64_t x = a ^ rotl(b * 0xd1342543de82ef95u, 32);
  int i;
  for (i = 0; i < 4; i++)
    sb->rng[i] = splitmix(&x);
}

/* A uniform integer in [0, n], by masking and rejection. */
static uint64_t rng_below(uint64_t *s, uint64_t n) {
  uint64_t mask = n, r;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  do
    r = rng_next(s) & mask;
  while (r > n);
  return r;
}

/* math.random([m [, n]]) with the standard contract: a float in [0,1), an
** integer in [1,m] or [m,n], or with m == 0 an integer of 64 random bits. */
static int sb_random(lua_State *S) {
  uint64_t *s = sandbox_get(S)->rng;
  lua_Integer lo, hi;
  switch (lua_gettop(S)) {
    case 0:
      lua_pushnumber(S, (lua_Number)(rng_next(s) >> 11) * 0x1.0p-53);
      return 1;
    case 1:
      lo = 1;
      hi = luaL_checkinteger(S, 1);
      if (hi == 0) {
        lua_pushinteger(S, (lua_Integer)rng_next(s));
        return 1;
      }
      break;
    case 2:
      lo = luaL_checkinteger(S, 1);
      hi = luaL_checkinteger(S, 2);
      break;
    default:
      return luaL_error(S, "wrong number of arguments");
  }
  luaL_argcheck(S, lo <= hi, lua_gettop(S), "interval is empty");
  lua_pushinteger(S, (lua_Integer)((uint64_t)lo +
                                   rng_below(s, (uint64_t)hi - (uint64_t)lo)));
  return 1;
}

static int sb_randomseed(lua_State *S) {
  lua_Integer a, b;
  if (lua_isnone(S, 1))
    return luaL_error(S,
                      "math.randomseed needs a seed in a state machine (the "
                      "generator is seeded from the log entry of each call)");
  a = luaL_checkinteger(S, 1);
  b = luaL_optinteger(S, 2, 0);
  sandbox_seed(sandbox_get(S), (uint64_t)a, (uint64_t)b);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Coroutines under one budget                                               */
/* ------------------------------------------------------------------------ */

/* coroutine.create(f): charged SANDBOX_STEP, the most a thread can run
** without its count hook firing. Upvalue 1: the standard create. */
static int sb_create(lua_State *S) {
  sandbox_charge(S, SANDBOX_STEP);
  lua_pushvalue(S, lua_upvalueindex(1));
  lua_insert(S, 1);
  lua_call(S, lua_gettop(S) - 1, 1);
  return 1;
}

/* coroutine.resume: the standard one (upvalue 1), refusing to start and
** stopping on return once the budget is exceeded, so that the resumer does
** not run on after the coroutine was stopped. */
static int sb_resume(lua_State *S) {
  sandbox_check(S);
  lua_pushvalue(S, lua_upvalueindex(1));
  lua_insert(S, 1);
  lua_call(S, lua_gettop(S) - 1, LUA_MULTRET);
  sandbox_check(S);
  return lua_gettop(S);
}

/* The function coroutine.wrap returns. Upvalues: the coroutine, the standard
** resume. Errors propagate with the position of the caller prepended, as
** the standard wrap does. */
static int wrap_call(lua_State *S) {
  int n = lua_gettop(S);
  sandbox_check(S);
  lua_pushvalue(S, lua_upvalueindex(2));
  lua_pushvalue(S, lua_upvalueindex(1));
  lua_rotate(S, 1, 2);
  lua_call(S, n + 1, LUA_MULTRET);
  sandbox_check(S);
  if (lua_toboolean(S, 1)) return lua_gettop(S) - 1;
  lua_settop(S, 2);
  if (lua_type(S, 2) == LUA_TSTRING) {
    luaL_where(S, 1);
    lua_insert(S, 2);
    lua_concat(S, 2);
  }
  return lua_error(S);
}

/* coroutine.wrap(f). Upvalues: the standard create and resume. */
static int sb_wrap(lua_State *S) {
  luaL_checktype(S, 1, LUA_TFUNCTION);
  sandbox_charge(S, SANDBOX_STEP);
  lua_pushvalue(S, lua_upvalueindex(1));
  lua_pushvalue(S, 1);
  lua_call(S, 1, 1);
  lua_pushvalue(S, lua_upvalueindex(2));
  lua_pushcclosure(S, wrap_call, 2);
  return 1;
}

/* ------------------------------------------------------------------------ */
/* xpcall                                                                    */
/* ------------------------------------------------------------------------ */

/* The message handler xpcall installs around the state machine's one
** (upvalue 1). Lua runs a message handler before unwinding, and the budget
** error is raised from inside the count hook, where hooks are off: the
** state machine's handler would run unbudgeted. So once the budget is
** exceeded the handler is skipped and the error passes through. */
static int xpcall_handler(lua_State *S) {
  if (sandbox_get(S)->exceeded) return 1;
  lua_pushvalue(S, lua_upvalueindex(1));
  lua_insert(S, 1);
  lua_call(S, lua_gettop(S) - 1, 1);
  return 1;
}

/* Continuation of xpcall (also reached after a yield inside the call):
** `base` values below the results are not part of them. */
static int xpcall_done(lua_State *S, int status, lua_KContext base) {
  if (status == LUA_OK || status == LUA_YIELD) return lua_gettop(S) - (int)base;
  lua_pushboolean(S, 0);
  lua_insert(S, -2);
  return 2;
}

/* xpcall(f, msgh, ...): the standard contract, with msgh wrapped as above.
** Uses a continuation so that f may yield, as with the standard xpcall. */
static int sb_xpcall(lua_State *S) {
  int nargs = lua_gettop(S) - 2;
  luaL_checktype(S, 2, LUA_TFUNCTION);
  lua_pushvalue(S, 2);
  lua_pushcclosure(S, xpcall_handler, 1);
  lua_replace(S, 2);
  lua_pushboolean(S, 1); /* the first result on success */
  lua_pushvalue(S, 1);
  lua_rotate(S, 3, 2); /* f, msgh, true, f, args... */
  return xpcall_done(S, lua_pcallk(S, nargs, LUA_MULTRET, 2, 2, xpcall_done),
                     2);
}

/* ------------------------------------------------------------------------ */

/* Replace field `name` of the table at t with fn, given the current value
** of the field as upvalue 1 when nup is 1 (the standard function). */
static void replace(lua_State *S, int t, const char *name, lua_CFunction fn,
                    int nup) {
  t = lua_absindex(S, t);
  if (nup) lua_getfield(S, t, name);
  lua_pushcclosure(S, fn, nup);
  lua_setfield(S, t, name);
}

void sandbox_openlib(lua_State *S) {
  int g;
  lua_pushglobaltable(S);
  g = lua_gettop(S);
  replace(S, g, "pairs", sb_pairs, 0);
  replace(S, g, "next", sb_next, 0);
  replace(S, g, "tostring", sb_tostring, 0);
  replace(S, g, "setmetatable", sb_setmetatable, 0);
  replace(S, g, "getmetatable", sb_getmetatable, 0);
  replace(S, g, "xpcall", sb_xpcall, 0);

  lua_getfield(S, g, "table");
  replace(S, -1, "sort", sb_sort, 0);
  lua_pop(S, 1);

  lua_getfield(S, g, "string");
  replace(S, -1, "format", sb_format, 1);
  replace(S, -1, "rep", sb_rep, 1);
  lua_pop(S, 1);

  lua_getfield(S, g, "math");
  replace(S, -1, "random", sb_random, 0);
  replace(S, -1, "randomseed", sb_randomseed, 0);
  lua_pop(S, 1);

  lua_getfield(S, g, "coroutine");
  lua_getfield(S, -1, "create");
  lua_getfield(S, -2, "resume");
  lua_pushcclosure(S, sb_wrap, 2);
  lua_setfield(S, -2, "wrap");
  replace(S, -1, "create", sb_create, 1);
  replace(S, -1, "resume", sb_resume, 1);
  lua_pop(S, 2);
}
