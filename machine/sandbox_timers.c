/*
** sandbox_timers.c - replicated timers of a state machine.
**
** sm.schedule(delay_ms, fn, ...) asks for fn(t, ...) to be called once the
** replicated time (ctx.time of machine:advance) reaches the current call's
** time + delay_ms. Timers are part of the state: a snapshot carries them,
** which is why fn must be one of sm.timers (a function cannot be encoded;
** its name in sm.timers can) and why the arguments are encoded with
** copycat.codec when the timer is scheduled.
**
** Two structures, both in the sandbox state so that its allocator (and
** memory limit) covers them:
**   the timers table  id -> {deadline, name, args bytes}: what is pending;
**   the heap          (deadline, id) pairs in a binary min-heap, a userdata:
**                     the firing order, which never depends on addresses.
** sm.cancel removes the id from the table only; the heap entry becomes stale
** and is dropped when it reaches the top, or when stale entries outnumber
** live ones (compaction). Ids come from a counter that only grows and is
** saved in snapshots, so every replica gives the same ids.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "sandbox.h"

/* Fields of an entry of the timers table (integer keys: reading them from
** the host side between calls never allocates). */
enum { E_DEADLINE = 1, E_NAME, E_ARGS };

#define HEAP_MIN 16

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

int sandbox_num_cmp(const SandboxNum *a, const SandboxNum *b) {
  if (a->isint && b->isint) return a->i < b->i ? -1 : a->i > b->i;
  if (!a->isint && !b->isint) return a->n < b->n ? -1 : a->n > b->n;
  if (a->isint) return codec_compare_int_float(a->i, b->n);
  return -codec_compare_int_float(b->i, a->n);
}

void sandbox_num_get(lua_State *S, int idx, SandboxNum *v) {
  v->isint = lua_isinteger(S, idx);
  v->i = v->isint ? lua_tointeger(S, idx) : 0;
  v->n = v->isint ? 0 : lua_tonumber(S, idx);
}

void sandbox_num_push(lua_State *S, const SandboxNum *v) {
  if (v->isint)
    lua_pushinteger(S, v->i);
  else
    lua_pushnumber(S, v->n);
}

/* ------------------------------------------------------------------------ */
/* The heap                                                                 */
/* ------------------------------------------------------------------------ */

static int timer_less(const SandboxTimer *a, const SandboxTimer *b) {
  int c = sandbox_num_cmp(&a->deadline, &b->deadline);
  return c < 0 || (c == 0 && a->id < b->id);
}

static void sift_up(SandboxTimer *h, lua_Integer i) {
  SandboxTimer x = h[i];
  while (i > 0 && timer_less(&x, &h[(i - 1) / 2])) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = x;
}

static void sift_down(SandboxTimer *h, lua_Integer n, lua_Integer i) {
  SandboxTimer x = h[i];
  for (;;) {
    lua_Integer c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && timer_less(&h[c + 1], &h[c])) c++;
    if (!timer_less(&h[c], &x)) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = x;
}

static void heap_pop(Sandbox *sb) {
  sb->heap[0] = sb->heap[--sb->nheap];
  if (sb->nheap > 0) sift_down(sb->heap, sb->nheap, 0);
}

/* Push a new heap userdata of cap entries and return its storage. */
static SandboxTimer *new_heap(lua_State *S, lua_Integer cap) {
  if (cap > (lua_Integer)(((size_t)-1 / 2) / sizeof(SandboxTimer)))
    luaL_error(S, "not enough memory");
  return (SandboxTimer *)lua_newuserdatauv(
      S, (size_t)cap * sizeof(SandboxTimer), 0);
}

/* Make room for one more heap entry (may raise a memory error). */
static void heap_reserve(lua_State *S, Sandbox *sb) {
  SandboxTimer *h;
  lua_Integer cap;
  if (sb->nheap < sb->capheap) return;
  cap = sb->capheap * 2;
  h = new_heap(S, cap);
  memcpy(h, sb->heap, (size_t)sb->nheap * sizeof *h);
  lua_rawseti(S, LUA_REGISTRYINDEX, sb->heap_ref); /* the old one is freed */
  sb->heap = h;
  sb->capheap = cap;
}

/* Is timer id pending? Never allocates: usable from the host side. */
static int is_live(Sandbox *sb, lua_Integer id) {
  lua_State *S = sb->S;
  int t;
  lua_rawgeti(S, LUA_REGISTRYINDEX, sb->timers_ref);
  t = lua_rawgeti(S, -1, id);
  lua_pop(S, 2);
  return t != LUA_TNIL;
}

/* Drop cancelled entries from the top of the heap. */
static void drop_stale(Sandbox *sb) {
  while (sb->nheap > 0 && !is_live(sb, sb->heap[0].id))
    heap_pop(sb);
}

/* Rebuild the heap without its cancelled entries, once they outnumber the
** live ones (so the heap stays O(pending timers)). Not charged: how many
** stale entries there are depends on history (a restored heap has none),
** and budgets must not; the work is O(1) amortized per cancel. */
static void compact(Sandbox *sb) {
  lua_Integer i, n = 0;
  if (sb->nheap <= HEAP_MIN || sb->nheap <= 2 * sb->ntimers) return;
  for (i = 0; i < sb->nheap; i++)
    if (is_live(sb, sb->heap[i].id)) sb->heap[n++] = sb->heap[i];
  sb->nheap = n;
  for (i = n / 2 - 1; i >= 0; i--)
    sift_down(sb->heap, n, i);
}

void sandbox_timers_open(lua_State *S) {
  Sandbox *sb = sandbox_get(S);
  sb->heap = new_heap(S, HEAP_MIN);
  sb->capheap = HEAP_MIN;
  sb->heap_ref = luaL_ref(S, LUA_REGISTRYINDEX);
  lua_newtable(S);
  sb->timers_ref = luaL_ref(S, LUA_REGISTRYINDEX);
}

/* ------------------------------------------------------------------------ */
/* sm.schedule and sm.cancel                                                */
/* ------------------------------------------------------------------------ */

/* Raise unless the call in progress may change timers: commands, timers,
** session_opened and session_closed (they are applied on every replica;
** queries run on one, and loading, snapshot and restore are not log
** entries). */
static void refuse_outside_log(lua_State *S, Sandbox *sb, const char *fn) {
  switch (sb->kind) {
    case SANDBOX_QUERY:
      luaL_error(S, "%s is not allowed in a query", fn);
      break;
    case SANDBOX_LOAD:
      luaL_error(S, "%s is not allowed while the file loads", fn);
      break;
    case SANDBOX_SNAPSHOT:
      luaL_error(S, "%s is not allowed in sm.snapshot", fn);
      break;
    case SANDBOX_RESTORE:
      luaL_error(S, "%s is not allowed in sm.restore", fn);
      break;
    default:
      break;
  }
}

/* Is a[0..alen) bytewise before b[0..blen)? */
static int bytes_less(const char *a, size_t alen, const char *b, size_t blen) {
  int c = memcmp(a, b, alen < blen ? alen : blen);
  return c < 0 || (c == 0 && alen < blen);
}

/* Push the name under which the function at idx is stored in sm.timers; of
** several names, the first bytewise (load forbids that; sm.timers changed
** later still gives the same name on every replica). */
static void push_timer_name(lua_State *S, int idx) {
  size_t blen = 0, len;
  const char *best = NULL, *k;
  lua_Integer n = 0;
  lua_getfield(S, LUA_REGISTRYINDEX, SANDBOX_SM_KEY);
  if (lua_getfield(S, -1, "timers") == LUA_TTABLE) {
    lua_pushnil(S);
    while (lua_next(S, -2)) {
      n++;
      if (lua_type(S, -2) == LUA_TSTRING && lua_rawequal(S, -1, idx)) {
        k = lua_tolstring(S, -2, &len); /* anchored in sm.timers */
        if (!best || bytes_less(k, len, best, blen)) {
          best = k;
          blen = len;
        }
      }
      lua_pop(S, 1);
    }
  }
  sandbox_charge(S, n);
  if (!best)
    luaL_error(S,
               "sm.schedule: the function must be one of sm.timers (timers "
               "must survive snapshots)");
  lua_pushlstring(S, best, blen);
  lua_replace(S, -3);
  lua_pop(S, 1);
}

/* deadline = now + delay, with Lua's arithmetic (integer if both are),
** refusing integer overflow and non-finite results. */
static void add_delay(lua_State *S, const SandboxNum *now,
                      const SandboxNum *delay, SandboxNum *deadline) {
  if (now->isint && delay->isint) {
    if (now->i > 0 && delay->i > LUA_MAXINTEGER - now->i)
      luaL_error(S, "sm.schedule: the deadline is out of range");
    deadline->isint = 1;
    deadline->i = now->i + delay->i;
    return;
  }
  deadline->isint = 0;
  deadline->n = (now->isint ? (lua_Number)now->i : now->n) +
                (delay->isint ? (lua_Number)delay->i : delay->n);
  if (!isfinite(deadline->n))
    luaL_error(S, "sm.schedule: the deadline is not a finite number");
}

int sandbox_sm_schedule(lua_State *S) {
  Sandbox *sb = sandbox_get(S);
  SandboxNum delay, deadline;
  SandboxTimer *slot;
  msgpack_packer pk;
  char err[256];
  int i, nargs = lua_gettop(S) - 2;
  lua_Integer id;
  refuse_outside_log(S, sb, "sm.schedule");
  if (lua_type(S, 1) == LUA_TNUMBER) sandbox_num_get(S, 1, &delay);
  if (lua_type(S, 1) != LUA_TNUMBER || (delay.isint && delay.i < 0) ||
      (!delay.isint && !(delay.n >= 0 && delay.n <= HUGE_VAL)))
    return luaL_error(S, "sm.schedule: delay_ms must be a number >= 0 (got %s)",
                      lua_type(S, 1) == LUA_TNUMBER ? "a negative number or NaN"
                                                    : luaL_typename(S, 1));
  if (lua_type(S, 2) != LUA_TFUNCTION)
    return luaL_error(S,
                      "sm.schedule: the function must be one of sm.timers "
                      "(got %s)",
                      luaL_typename(S, 2));
  if (!sb->has_now)
    return luaL_error(S,
                      "sm.schedule: this call has no time (ctx.time), so "
                      "there is no deadline to count from");
  add_delay(S, &sb->now, &delay, &deadline);
  push_timer_name(S, 2);
  sb->tmp.size = 0;
  msgpack_packer_init(&pk, &sb->tmp, msgpack_sbuffer_write);
  if (msgpack_pack_array(&pk, (size_t)nargs) != 0)
    return luaL_error(S, "not enough memory");
  for (i = 1; i <= nargs; i++)
    if (codec_pack(S, 2 + i, &sb->tmp, err, sizeof err) != 0)
      return luaL_error(
          S, "sm.schedule: timer argument %d cannot be encoded (%s)", i, err);
  sandbox_charge(S, (lua_Integer)(sb->tmp.size / 64));
  heap_reserve(S, sb);
  id = sb->timer_seq + 1;
  lua_rawgeti(S, LUA_REGISTRYINDEX, sb->timers_ref);
  lua_createtable(S, 3, 0);
  sandbox_num_push(S, &deadline);
  lua_rawseti(S, -2, E_DEADLINE);
  lua_pushvalue(S, -3); /* the name */
  lua_rawseti(S, -2, E_NAME);
  lua_pushlstring(S, sb->tmp.data, sb->tmp.size);
  lua_rawseti(S, -2, E_ARGS);
  lua_rawseti(S, -2, id);
  /* Nothing below can fail. */
  sb->timer_seq = id;
  sb->ntimers++;
  slot = &sb->heap[sb->nheap++];
  slot->deadline = deadline;
  slot->id = id;
  sift_up(sb->heap, sb->nheap - 1);
  lua_pushinteger(S, id);
  return 1;
}

int sandbox_sm_cancel(lua_State *S) {
  Sandbox *sb = sandbox_get(S);
  int isint;
  lua_Integer id = lua_tointegerx(S, 1, &isint);
  refuse_outside_log(S, sb, "sm.cancel");
  if (!isint)
    return luaL_error(S, "sm.cancel: the timer id must be an integer (got %s)",
                      luaL_typename(S, 1));
  lua_rawgeti(S, LUA_REGISTRYINDEX, sb->timers_ref);
  if (lua_rawgeti(S, -1, id) == LUA_TNIL) {
    lua_pushboolean(S, 0);
    return 1;
  }
  lua_pop(S, 1);
  lua_pushnil(S);
  lua_rawseti(S, -2, id);
  sb->ntimers--;
  compact(sb);
  lua_pushboolean(S, 1);
  return 1;
}

/* ------------------------------------------------------------------------ */
/* Firing                                                                   */
/* ------------------------------------------------------------------------ */

int sandbox_timer_due(Sandbox *sb, const SandboxNum *time, lua_Integer *id) {
  drop_stale(sb);
  if (sb->nheap == 0 || sandbox_num_cmp(&sb->heap[0].deadline, time) > 0)
    return 0;
  *id = sb->heap[0].id;
  heap_pop(sb);
  return 1;
}

int sandbox_timer_next(Sandbox *sb, SandboxNum *deadline) {
  drop_stale(sb);
  if (sb->nheap == 0) return 0;
  *deadline = sb->heap[0].deadline;
  return 1;
}

size_t sandbox_timer_name(Sandbox *sb, lua_Integer id, char *buf, size_t size) {
  lua_State *S = sb->S;
  size_t len = 0, full;
  const char *s = "";
  lua_rawgeti(S, LUA_REGISTRYINDEX, sb->timers_ref);
  if (lua_rawgeti(S, -1, id) == LUA_TTABLE &&
      lua_rawgeti(S, -1, E_NAME) == LUA_TSTRING)
    s = lua_tolstring(S, -1, &len); /* a string: no conversion, no alloc */
  full = len;
  if (len >= size) len = size - 1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  lua_settop(S, 0);
  return full;
}

int sandbox_array_header(const char *p, size_t len, lua_Integer *n,
                         size_t *hdr) {
  const unsigned char *u = (const unsigned char *)p;
  if (len >= 1 && (u[0] & 0xf0) == 0x90) {
    *n = u[0] & 0x0f;
    *hdr = 1;
  } else if (len >= 3 && u[0] == 0xdc) {
    *n = (lua_Integer)u[1] << 8 | u[2];
    *hdr = 3;
  } else if (len >= 5 && u[0] == 0xdd) {
    *n = (lua_Integer)u[1] << 24 | (lua_Integer)u[2] << 16 |
         (lua_Integer)u[3] << 8 | u[4];
    *hdr = 5;
  } else {
    return 0;
  }
  return 1;
}

/* Push the values of the msgpack array in[0..len) (encoded by schedule, or
** checked by restore); returns how many. */
static int push_args(lua_State *S, const char *in, size_t len) {
  lua_Integer n, i;
  size_t pos, used;
  char err[256];
  if (!sandbox_array_header(in, len, &n, &pos))
    luaL_error(S, "corrupt timer arguments");
  luaL_checkstack(S, (int)(n < 1000000 ? n : 1000000) + 1,
                  "too many timer arguments");
  for (i = 0; i < n; i++) {
    if (codec_unpack(S, in + pos, len - pos, &used, err, sizeof err) != 0)
      luaL_error(S, "corrupt timer arguments: %s", err);
    pos += used;
  }
  return (int)n;
}

int sandbox_timer_take(lua_State *S, lua_Integer id, const SandboxNum *time,
                       lua_Integer index, lua_Integer term) {
  Sandbox *sb = sandbox_get(S);
  size_t len;
  const char *args;
  int base, n;
  lua_rawgeti(S, LUA_REGISTRYINDEX, sb->timers_ref);
  base = lua_gettop(S);                       /* base: timers table */
  if (lua_rawgeti(S, base, id) != LUA_TTABLE) /* base + 1: entry */
    return luaL_error(S, "timer %I is not pending", (LUAI_UACINT)id);
  lua_pushnil(S);
  lua_rawseti(S, base, id); /* consumed, whatever happens next */
  sb->ntimers--;
  lua_rawgeti(S, base + 1, E_NAME); /* base + 2 */
  lua_getfield(S, LUA_REGISTRYINDEX, SANDBOX_SM_KEY);
  if (lua_getfield(S, base + 3, "timers") != LUA_TTABLE) /* base + 4 */
    return luaL_error(S, "timer '%s' is not one of sm.timers any more",
                      lua_tostring(S, base + 2));
  lua_pushvalue(S, base + 2);
  if (lua_rawget(S, base + 4) != LUA_TFUNCTION)
    return luaL_error(S, "timer '%s' is not one of sm.timers any more",
                      lua_tostring(S, base + 2));
  lua_replace(S, base); /* base: the function */
  lua_settop(S, base + 2);
  lua_createtable(S, 0, 6); /* base + 3: t */
  sandbox_num_push(S, time);
  lua_setfield(S, -2, "time");
  lua_pushinteger(S, index);
  lua_setfield(S, -2, "index");
  lua_pushinteger(S, term);
  lua_setfield(S, -2, "term");
  lua_rawgeti(S, base + 1, E_DEADLINE);
  lua_setfield(S, -2, "deadline");
  lua_pushinteger(S, id);
  lua_setfield(S, -2, "id");
  lua_pushvalue(S, base + 2);
  lua_setfield(S, -2, "name");
  lua_rawgeti(S, base + 1, E_ARGS); /* base + 4, anchors the bytes */
  args = lua_tolstring(S, base + 4, &len);
  n = push_args(S, args, len);
  lua_remove(S, base + 4);
  lua_remove(S, base + 2);
  lua_remove(S, base + 1);
  return n + 1;
}

/* ------------------------------------------------------------------------ */
/* Snapshots                                                                */
/* ------------------------------------------------------------------------ */

static int id_cmp(const void *a, const void *b) {
  lua_Integer x = *(const lua_Integer *)a, y = *(const lua_Integer *)b;
  return x < y ? -1 : x > y;
}

/* codec_pack the value on top of S into out and pop it. */
static void pack_top(lua_State *S, msgpack_sbuffer *out) {
  char err[256];
  if (codec_pack(S, -1, out, err, sizeof err) != 0)
    luaL_error(S, "cannot encode the timers: %s", err);
  lua_pop(S, 1);
}

void sandbox_timers_pack(lua_State *S, msgpack_sbuffer *out) {
  Sandbox *sb = sandbox_get(S);
  msgpack_packer pk;
  lua_Integer *ids, i, n = 0;
  int tbl;
  size_t len;
  const char *args;
  msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
  sandbox_charge(S, sb->ntimers); /* not nheap: that depends on history */
  lua_pushinteger(S, sb->timer_seq);
  pack_top(S, out);
  ids = (lua_Integer *)lua_newuserdatauv(
      S, (size_t)sb->ntimers * sizeof *ids + 1, 0);
  for (i = 0; i < sb->nheap; i++)
    if (is_live(sb, sb->heap[i].id)) ids[n++] = sb->heap[i].id;
  qsort(ids, (size_t)n, sizeof *ids, id_cmp);
  lua_rawgeti(S, LUA_REGISTRYINDEX, sb->timers_ref);
  tbl = lua_gettop(S);
  if (msgpack_pack_array(&pk, (size_t)n) != 0)
    luaL_error(S, "not enough memory");
  for (i = 0; i < n; i++) {
    lua_rawgeti(S, tbl, ids[i]);
    if (msgpack_pack_array(&pk, 4) != 0) luaL_error(S, "not enough memory");
    lua_pushinteger(S, ids[i]);
    pack_top(S, out);
    lua_rawgeti(S, -1, E_DEADLINE);
    pack_top(S, out);
    lua_rawgeti(S, -1, E_NAME);
    pack_top(S, out);
    lua_rawgeti(S, -1, E_ARGS);
    args = lua_tolstring(S, -1, &len);
    if (msgpack_sbuffer_write(out, args, len) != 0)
      luaL_error(S, "not enough memory");
    lua_pop(S, 2);
  }
  lua_pop(S, 2);
}

void sandbox_decode_next(lua_State *S, const char *in, size_t len,
                         size_t *pos) {
  char err[256];
  size_t used;
  if (codec_unpack(S, in + *pos, len - *pos, &used, err, sizeof err) != 0)
    luaL_error(S, "cannot decode the snapshot: %s (in the value at byte %I)",
               err, (LUAI_UACINT)*pos);
  *pos += used;
}

/* The array header at in[*pos..len), skipped; raises unless it is one of
** `want` elements (any count when want < 0). */
static lua_Integer expect_array(lua_State *S, const char *in, size_t len,
                                size_t *pos, lua_Integer want,
                                const char *what) {
  lua_Integer n = 0;
  size_t hdr = 0; /* luaL_error does not return */
  if (*pos >= len || !sandbox_array_header(in + *pos, len - *pos, &n, &hdr) ||
      (want >= 0 && n != want))
    luaL_error(S, "cannot restore the timers: %s is not %s", what,
               want >= 0 ? "an array of 4 values" : "an array");
  *pos += hdr;
  return n;
}

void sandbox_timers_unpack(lua_State *S, const char *in, size_t len,
                           size_t *pos) {
  lua_Integer seq, n, i, prev = 0, id;
  size_t start;
  int isint, tbl, heap, timers;
  SandboxTimer *h;
  sandbox_decode_next(S, in, len, pos);
  seq = lua_tointegerx(S, -1, &isint);
  if (!isint || seq < 0)
    luaL_error(S,
               "cannot restore the timers: the timer counter is not an "
               "integer >= 0");
  lua_pop(S, 1);
  n = expect_array(S, in, len, pos, -1, "the list of timers");
  if (n > (lua_Integer)(len - *pos)) /* each timer takes bytes */
    luaL_error(S, "cannot restore the timers: truncated snapshot");
  sandbox_charge(S, n);
  lua_getfield(S, LUA_REGISTRYINDEX, SANDBOX_SM_KEY);
  lua_getfield(S, -1, "timers");
  lua_remove(S, -2);
  timers = lua_gettop(S);
  lua_createtable(S, 0, (int)(n < 1 << 20 ? n : 1 << 20));
  tbl = lua_gettop(S);
  h = new_heap(S, n > HEAP_MIN ? n : HEAP_MIN);
  heap = lua_gettop(S);
  for (i = 0; i < n; i++) {
    expect_array(S, in, len, pos, 4, "a timer");
    sandbox_decode_next(S, in, len, pos);
    id = lua_tointegerx(S, -1, &isint);
    if (!isint || id <= prev || id > seq)
      luaL_error(S,
                 "cannot restore the timers: timer ids must increase and "
                 "not exceed the timer counter");
    lua_pop(S, 1);
    prev = id;
    lua_createtable(S, 3, 0);
    sandbox_decode_next(S, in, len, pos);
    if (lua_type(S, -1) != LUA_TNUMBER ||
        lua_tonumber(S, -1) != lua_tonumber(S, -1))
      luaL_error(S, "cannot restore the timers: timer %I has no deadline",
                 (LUAI_UACINT)id);
    sandbox_num_get(S, -1, &h[i].deadline);
    h[i].id = id;
    lua_rawseti(S, -2, E_DEADLINE);
    sandbox_decode_next(S, in, len, pos);
    if (lua_type(S, -1) != LUA_TSTRING)
      luaL_error(S, "cannot restore the timers: timer %I has no name",
                 (LUAI_UACINT)id);
    lua_pushvalue(S, -1);
    if (lua_type(S, timers) != LUA_TTABLE ||
        lua_rawget(S, timers) != LUA_TFUNCTION)
      luaL_error(S,
                 "cannot restore the timers: timer %I calls '%s', which is "
                 "not one of sm.timers",
                 (LUAI_UACINT)id, lua_tostring(S, -2));
    lua_pop(S, 1);
    lua_rawseti(S, -2, E_NAME);
    start = *pos;
    expect_array(S, in, len, pos, -1, "a timer's arguments");
    *pos = start;
    sandbox_decode_next(S, in, len, pos); /* checks the whole array */
    lua_pop(S, 1);
    lua_pushlstring(S, in + start, *pos - start);
    lua_rawseti(S, -2, E_ARGS);
    lua_rawseti(S, tbl, id);
    sift_up(h, i);
  }
  lua_settop(S, heap);
  lua_remove(S, timers);
  lua_pushinteger(S, seq);
  lua_pushinteger(S, n);
}

void sandbox_timers_install(lua_State *S) {
  Sandbox *sb = sandbox_get(S);
  lua_Integer n = lua_tointeger(S, -1);
  sb->timer_seq = lua_tointeger(S, -2);
  sb->heap = (SandboxTimer *)lua_touserdata(S, -3);
  sb->capheap = (lua_Integer)(lua_rawlen(S, -3) / sizeof(SandboxTimer));
  sb->nheap = sb->ntimers = n;
  lua_pop(S, 2);
  lua_rawseti(S, LUA_REGISTRYINDEX, sb->heap_ref);
  lua_rawseti(S, LUA_REGISTRYINDEX, sb->timers_ref);
}
