/*
** sandbox.c - copycat.core.sandbox: state machines in deterministic sandboxes.
**
**   sandbox.new(source, name, budget, setup_budget [, memory])
**       -> machine | nil, err
**     Creates a Lua state of its own, opens the allow-listed libraries in
**     it, and runs `source` (text only, chunk name "=" .. name) under
**     setup_budget instructions. The file must call state_machine() once and
**     return its result.
**   machine:command(op, args, ctx)          -> true, results... | false, err
**   machine:query(op, args, ctx)            -> true, results... | false, err
**   machine:command_encoded(op, bytes, ctx) -> true, bytes | false, err
**   machine:query_encoded(op, bytes, ctx)   -> true, bytes | false, err
**     Run sm.commands[op] / sm.queries[op] under `budget` (every form
**     returns a third value, "unknown_op", when there is no such handler:
**     false, "unknown command 'x'", "unknown_op"); a query sees the
**     state through a read-only view (sandbox_view.c). The encoded forms
**     take the arguments as copycat.codec bytes and return the results as
**     the bytes of one msgpack array.
**   machine:command_reply(op, bytes, ctx)   -> true, bytes | false, err
**   machine:query_reply(op, bytes, ctx)     -> true, bytes | false, err
**     The same, with the results encoded as the session layer's success
**     reply ([true, r1] or [true, r1, [r2, ...]], see pack_reply): what a
**     server caches and sends without decoding it.
**   machine:session_opened(session, ctx)      -> true | false, err
**   machine:session_closed(session, ctx)      -> true | false, err
**     Call sm.session_opened / sm.session_closed (session handle, c), if
**     defined, under `budget`.
**   machine:advance(ctx)       -> true, fired | false, err, fired
**     Fires the timers due at ctx.time (sandbox_timers.c).
**   machine:next_deadline()    -> the smallest pending deadline | nil
**   machine:events([encoded])  -> {{session =, name =, data =}, ...}
**     The events published since the last call, which clears them; with
**     encoded, each data is the codec bytes of the value published (what
**     a server keeps and sends without decoding it).
**   machine:snapshot([lend])                  -> bytes | nil, err
**   machine:restore(bytes)                    -> true | nil, err
**     bytes = msgpack [1, state, timer counter, timers]: the format version,
**     sm.snapshot()'s value, and the timers (docs/state-machine.md). With
**     lend, snapshot returns a codec view of the machine's own buffer
**     instead of a copy, valid until the next call on the machine;
**     restore takes a string or a codec view (codec_view.c), so a large
**     state is never held twice by the host to be snapshotted or restored.
**   machine:cost()    instructions counted by the last call
**   machine:memory()  bytes allocated by the sandbox state
**   machine:close()   frees the sandbox state (also done by the collector)
**
** ctx = {index =, term =, time =, session =}; index and term are required
** (non-negative integers) for commands, session hooks and advance, optional
** for queries; they seed math.random. time is required by advance, and by
** sm.schedule in the call that uses it. The sandbox rules are in
** sandbox_lib.c and docs/state-machine.md.
*/
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "machine.h"
#include "sandbox.h"

#define SANDBOX_MT "copycat.sandbox"
/* log2 of the bytes the sandbox allocates between collector steps. */
#define SANDBOX_GC_STEPSIZE 8

/* ------------------------------------------------------------------------ */
/* The budget                                                               */
/* ------------------------------------------------------------------------ */

Sandbox *sandbox_get(lua_State *S) {
  return *(Sandbox **)lua_getextraspace(S);
}

static void hook(lua_State *S, lua_Debug *ar);

/* Raise the budget error in thread S and make its hook fire on every
** instruction from now on, so that each instruction run after a pcall that
** caught the error raises it again: only the host's call returns. */
static int stop(lua_State *S) {
  lua_sethook(S, hook, LUA_MASKCOUNT, 1);
  if (sandbox_get(S)->exceeded == SANDBOX_OVER_MEMORY)
    lua_pushliteral(S, SANDBOX_MEMORY_MSG);
  else
    lua_pushliteral(S, SANDBOX_BUDGET_MSG);
  return lua_error(S);
}

/* The count hook of every thread of the sandbox (threads inherit it from
** their creator). It charges the interval it was set with: SANDBOX_STEP, or
** 1 once a call has been stopped; a thread left at 1 by a stopped call is
** put back to the current step. */
static void hook(lua_State *S, lua_Debug *ar) {
  Sandbox *sb = sandbox_get(S);
  int count;
  (void)ar;
  if (!sb->exceeded) {
    count = lua_gethookcount(S);
    sb->used += count;
    if (sb->used < sb->limit) {
      if (count != sb->step) lua_sethook(S, hook, LUA_MASKCOUNT, sb->step);
      return;
    }
    sb->exceeded = SANDBOX_OVER_BUDGET;
  }
  stop(S);
}

void sandbox_charge(lua_State *S, lua_Integer units) {
  Sandbox *sb = sandbox_get(S);
  if (units > 0 && !sb->exceeded) {
    sb->used = units > sb->limit - sb->used ? sb->limit : sb->used + units;
    if (sb->used >= sb->limit) sb->exceeded = SANDBOX_OVER_BUDGET;
  }
  sandbox_check(S);
}

void sandbox_check(lua_State *S) {
  if (sandbox_get(S)->exceeded) stop(S);
}

/* Allocator of the sandbox state: realloc under an optional limit.
**
** A growth over the limit returns NULL; Lua then collects all garbage
** (an emergency collection, which runs no finalizer) and asks again for
** the same block. Refused a second time, the live heap really is over the
** limit: during a call, the call is then stopped like one over its budget
** (SANDBOX_OVER_MEMORY: every later growth is refused and the count hook
** stops the thread at its next count), so the state machine cannot catch
** the error with pcall and carry on. Frees and shrinks always succeed. */
static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  Sandbox *sb = (Sandbox *)ud;
  size_t old = ptr ? osize : 0;
  void *p;
  if (nsize == 0) {
    free(ptr);
    sb->mem -= old;
    return NULL;
  }
  if (nsize > old && sb->busy && sb->exceeded == SANDBOX_OVER_MEMORY)
    return NULL;
  if (sb->mem_limit && nsize > old && sb->mem - old + nsize > sb->mem_limit) {
    if (sb->busy) {
      if (sb->refused_pending && sb->refused_ptr == ptr &&
          sb->refused_size == nsize) {
        if (sb->exceeded == SANDBOX_RUNNING) sb->exceeded = SANDBOX_OVER_MEMORY;
      }
      sb->refused_ptr = ptr;
      sb->refused_size = nsize;
      sb->refused_pending = 1;
    }
    return NULL;
  }
  p = realloc(ptr, nsize);
  if (p) {
    sb->mem = sb->mem - old + nsize;
    if (nsize > old) sb->refused_pending = 0;
  }
  return p;
}

/* ------------------------------------------------------------------------ */
/* Calls into the sandbox                                                   */
/* ------------------------------------------------------------------------ */

/* Indexed by SANDBOX_* kind. */
static const char *const kind_names[] = {
    "load",           "command", "query",    "session_opened",
    "session_closed", "timer",   "snapshot", "restore"};

/* What the host asks for; lives on the host's C stack during the call. */
typedef struct Call {
  int kind;
  const char *op; /* COMMAND, QUERY: handler name; LOAD: chunk name */
  size_t oplen;
  const char *in; /* encoded arguments / snapshot; LOAD: source */
  size_t inlen;
  int has_args;
  lua_Integer index, term, session;
  lua_Integer timer; /* TIMER: the timer's id */
  SandboxNum time;
  int has_index, has_term, has_session, has_time;
  int reply;      /* COMMAND, QUERY: encode the results as the session reply */
  int nres;       /* out: number of results encoded in sb->buf */
  int unknown_op; /* out: COMMAND, QUERY: failed for want of the handler */
} Call;

/* Decode c->in and push it, or raise an error naming `what`. */
static void push_decoded(lua_State *S, const Call *c, const char *what) {
  char err[256];
  size_t used;
  if (codec_unpack(S, c->in, c->inlen, &used, err, sizeof err) != 0)
    luaL_error(S, "cannot decode the %s: %s", what, err);
  if (used != c->inlen)
    luaL_error(S, "cannot decode the %s: %d trailing bytes", what,
               (int)(c->inlen - used));
}

/* Push the table handlers receive: {args, op, index, term, time, session},
** session being a session handle. */
static void push_ctx(lua_State *S, const Call *c) {
  lua_createtable(S, 0, 6);
  if (c->has_args) {
    push_decoded(S, c, "arguments");
    lua_setfield(S, -2, "args");
  }
  if (c->op && c->kind != SANDBOX_LOAD) {
    lua_pushlstring(S, c->op, c->oplen);
    lua_setfield(S, -2, "op");
  }
  if (c->has_index) {
    lua_pushinteger(S, c->index);
    lua_setfield(S, -2, "index");
  }
  if (c->has_term) {
    lua_pushinteger(S, c->term);
    lua_setfield(S, -2, "term");
  }
  if (c->has_time) {
    sandbox_num_push(S, &c->time);
    lua_setfield(S, -2, "time");
  }
  if (c->has_session) {
    sandbox_push_session(S, c->session);
    lua_setfield(S, -2, "session");
  }
}

/* Encode the values from stack index `first` to the top as one msgpack
** array into sb->buf (which no longer holds the arguments: they have been
** decoded). */
static void pack_results(lua_State *S, Call *c, int first, const char *what) {
  Sandbox *sb = sandbox_get(S);
  msgpack_packer pk;
  char err[256];
  int i, n = lua_gettop(S) - first + 1;
  sb->buf.size = 0;
  msgpack_packer_init(&pk, &sb->buf, msgpack_sbuffer_write);
  if (msgpack_pack_array(&pk, (size_t)n) != 0) luaL_error(S, "out of memory");
  for (i = 0; i < n; i++)
    if (codec_pack(S, first + i, &sb->buf, err, sizeof err) != 0)
      luaL_error(S,
                 "%s returned a value that cannot be encoded (result %d: %s)",
                 what, i + 1, err);
  c->nres = n;
}

/* Encode the values from stack index `first` to the top into sb->buf as the
** success reply of the session layer (lua/copycat/sessions.lua), byte for
** byte what copycat.codec makes of the table that layer would build:
**   {true, r1}                          one result (nil: {true})
**   {true, r1, codec.array{r2, ...}}    more: the rest as an array whose
**                                       trailing nils are dropped
** and, when r1 is nil, that table has keys 1 and 3 only: a map. A rest
** with more holes than codec.array allows is encoded with them. */
static void pack_reply(lua_State *S, Call *c, int first, const char *what) {
  Sandbox *sb = sandbox_get(S);
  msgpack_packer pk;
  char err[256];
  int i, top = lua_gettop(S), n = top - first + 1, last = top;
  int r1 = n > 0 && !lua_isnil(S, first);
  sb->buf.size = 0;
  msgpack_packer_init(&pk, &sb->buf, msgpack_sbuffer_write);
  if (n <= 1) {
    msgpack_pack_array(&pk, r1 ? 2 : 1);
    msgpack_pack_true(&pk);
  } else if (r1) {
    msgpack_pack_array(&pk, 3);
    msgpack_pack_true(&pk);
  } else {
    msgpack_pack_map(&pk, 2);
    msgpack_pack_int64(&pk, 1);
    msgpack_pack_true(&pk);
  }
  if (r1 && codec_pack(S, first, &sb->buf, err, sizeof err) != 0)
    luaL_error(S, "%s returned a value that cannot be encoded (result 1: %s)",
               what, err);
  if (n > 1) {
    if (!r1) msgpack_pack_int64(&pk, 3);
    while (last > first && lua_isnil(S, last))
      last--;
    if (msgpack_pack_array(&pk, (size_t)(last - first)) != 0)
      luaL_error(S, "out of memory");
    for (i = first + 1; i <= last; i++)
      if (codec_pack(S, i, &sb->buf, err, sizeof err) != 0)
        luaL_error(S,
                   "%s returned a value that cannot be encoded (result %d: "
                   "%s)",
                   what, i - first + 1, err);
  }
  c->nres = n;
}

static int do_load(lua_State *S, Call *c) {
  if (c->inlen > 0 && c->in[0] == LUA_SIGNATURE[0])
    return luaL_error(S,
                      "%s: precompiled chunks are not accepted (a state "
                      "machine is loaded from source)",
                      c->op + 1);
  if (luaL_loadbufferx(S, c->in, c->inlen, c->op, "t") != LUA_OK)
    return lua_error(S);
  lua_call(S, 0, 1); /* 1: what the file returned */
  lua_getfield(S, LUA_REGISTRYINDEX, SANDBOX_VALIDATE_KEY);
  lua_pushvalue(S, 1);
  lua_getfield(S, LUA_REGISTRYINDEX, SANDBOX_SM_KEY);
  lua_pushstring(S, c->op + 1); /* the name without '=' */
  lua_call(S, 3, 0);
  sandbox_get(S)->locked = 1;
  return 0;
}

/* Runs in a protected call: 1 the handler, 2 the Call. The view is set up
** in here so that whatever was swapped before an error is undone. */
static int query_body(lua_State *S) {
  Call *c = (Call *)lua_touserdata(S, 2);
  sandbox_view_begin(S, 1);
  lua_pushvalue(S, 1);
  push_ctx(S, c);
  lua_call(S, 1, LUA_MULTRET);
  return lua_gettop(S) - 2;
}

/* A query (stack: 1 sm, 2 sm.queries, 3 the handler) with a read-only
** view of the state (sandbox_view.c). */
static int do_query(lua_State *S, Call *c, const char *name) {
  int status;
  sandbox_view_prepare(S, c->op, c->oplen);
  lua_pushcfunction(S, query_body);
  lua_pushvalue(S, 3);
  lua_pushlightuserdata(S, c);
  status = lua_pcall(S, 2, LUA_MULTRET, 0);
  if (sandbox_view_end(S, 4, status != LUA_OK) || status != LUA_OK)
    return lua_error(S); /* the assignment's message, or the query's */
  (c->reply ? pack_reply : pack_results)(S, c, 4, name);
  return 0;
}

static int do_handler(lua_State *S, Call *c) {
  const char *what = kind_names[c->kind];
  char name[96];
  lua_getfield(S, LUA_REGISTRYINDEX, SANDBOX_SM_KEY); /* 1 */
  lua_getfield(S, 1, c->kind == SANDBOX_COMMAND ? "commands" : "queries");
  snprintf(name, sizeof name, "%s '%.64s%s'", what, c->op,
           c->oplen > 64 ? "..." : "");
  if (!lua_istable(S, 2)) {
    c->unknown_op = 1;
    return luaL_error(S, "unknown %s (sm.%s is not a table)", name,
                      c->kind == SANDBOX_COMMAND ? "commands" : "queries");
  }
  lua_pushlstring(S, c->op, c->oplen);
  if (lua_gettable(S, 2) != LUA_TFUNCTION) { /* 3 */
    c->unknown_op = 1;
    return luaL_error(S, "unknown %s", name);
  }
  if (c->kind == SANDBOX_QUERY) return do_query(S, c, name);
  push_ctx(S, c);
  lua_call(S, 1, LUA_MULTRET);
  (c->reply ? pack_reply : pack_results)(S, c, 3, name);
  return 0;
}

/* sm.session_opened / sm.session_closed (session handle, c), if defined. */
static int do_session_hook(lua_State *S, Call *c) {
  lua_getfield(S, LUA_REGISTRYINDEX, SANDBOX_SM_KEY);
  if (lua_getfield(S, 1, kind_names[c->kind]) == LUA_TNIL) return 0;
  sandbox_push_session(S, c->session);
  push_ctx(S, c);
  lua_call(S, 2, 0);
  return 0;
}

/* The snapshot: [1, state, timer counter, timers] (docs/state-machine.md),
** state being sm.snapshot()'s value, or nil for a machine that has timers
** but no sm.snapshot. */
static int do_snapshot(lua_State *S, Call *c) {
  Sandbox *sb = sandbox_get(S);
  msgpack_packer pk;
  char err[256];
  (void)c;
  lua_getfield(S, LUA_REGISTRYINDEX, SANDBOX_SM_KEY); /* 1 */
  lua_getfield(S, 1, "snapshot");                     /* 2 */
  if (lua_isnil(S, 2) && lua_getfield(S, 1, "timers") != LUA_TTABLE)
    return luaL_error(S, "the state machine has no sm.snapshot");
  lua_settop(S, 2);
  if (!lua_isnil(S, 2)) lua_call(S, 0, 1); /* 2: the state */
  sb->buf.size = 0;
  msgpack_packer_init(&pk, &sb->buf, msgpack_sbuffer_write);
  if (msgpack_pack_array(&pk, 4) != 0 || msgpack_pack_int(&pk, 1) != 0)
    return luaL_error(S, "not enough memory");
  if (codec_pack(S, 2, &sb->buf, err, sizeof err) != 0)
    return luaL_error(S,
                      "sm.snapshot returned a value that cannot be encoded "
                      "(result 1: %s)",
                      err);
  sandbox_timers_pack(S, &sb->buf);
  return 0;
}

/* Replace the state and the timers with those of the snapshot c->in. The
** timers change only once sm.restore has returned. */
static int do_restore(lua_State *S, Call *c) {
  size_t pos = 0;
  lua_Integer n;
  lua_getfield(S, LUA_REGISTRYINDEX, SANDBOX_SM_KEY); /* 1 */
  lua_getfield(S, 1, "restore");                      /* 2 */
  if (lua_isnil(S, 2) && lua_getfield(S, 1, "timers") != LUA_TTABLE)
    return luaL_error(S, "the state machine has no sm.restore");
  lua_settop(S, 2);
  if (!sandbox_array_header(c->in, c->inlen, &n, &pos)) {
    push_decoded(S, c, "snapshot"); /* a decoding error says why */
    n = -1;
  }
  if (n != 4)
    return luaL_error(S,
                      "cannot decode the snapshot: not a state machine "
                      "snapshot (an array of 4 values: version, state, timer "
                      "counter, timers)");
  sandbox_decode_next(S, c->in, c->inlen, &pos); /* 3: version */
  if (!lua_isinteger(S, 3) || lua_tointeger(S, 3) != 1)
    return luaL_error(S,
                      "cannot decode the snapshot: unsupported snapshot "
                      "version (this build reads version 1)");
  sandbox_decode_next(S, c->in, c->inlen, &pos);   /* 4: state */
  sandbox_timers_unpack(S, c->in, c->inlen, &pos); /* 5..8 */
  if (pos != c->inlen)
    return luaL_error(S, "cannot decode the snapshot: %I trailing bytes",
                      (LUAI_UACINT)(c->inlen - pos));
  if (!lua_isnil(S, 2)) {
    lua_pushvalue(S, 2);
    lua_pushvalue(S, 4);
    lua_call(S, 1, 0);
  } else if (!lua_isnil(S, 4)) {
    return luaL_error(S, "the state machine has no sm.restore");
  }
  sandbox_timers_install(S);
  return 0;
}

/* Runs in S under lua_pcall; the Call is the light userdata argument. */
static int dispatch(lua_State *S) {
  Call *c = (Call *)lua_touserdata(S, 1);
  int n;
  lua_settop(S, 0);
  switch (c->kind) {
    case SANDBOX_LOAD:
      return do_load(S, c);
    case SANDBOX_COMMAND:
    case SANDBOX_QUERY:
      return do_handler(S, c);
    case SANDBOX_SESSION_OPENED:
    case SANDBOX_SESSION_CLOSED:
      return do_session_hook(S, c);
    case SANDBOX_TIMER:
      n = sandbox_timer_take(S, c->timer, &c->time, c->index, c->term);
      lua_call(S, n, 0);
      return 0;
    case SANDBOX_SNAPSHOT:
      return do_snapshot(S, c);
    default:
      assert(c->kind == SANDBOX_RESTORE);
      return do_restore(S, c);
  }
}

/* Run c in the sandbox under `budget` instructions. Returns 1 on success;
** otherwise pushes the error message onto L and returns 0. */
static int run(lua_State *L, Sandbox *sb, Call *c, lua_Integer budget) {
  lua_State *S = sb->S;
  int status;
  assert(S != NULL && !sb->busy && budget > 0);
  sb->busy = 1;
  sb->used = 0;
  sb->exceeded = SANDBOX_RUNNING;
  sb->refused_pending = 0;
  sb->limit = budget;
  sb->step = budget < SANDBOX_STEP ? (int)budget : SANDBOX_STEP;
  sb->kind = c->kind;
  sb->has_now = c->has_time;
  sb->now = c->time;
  /* Timers fired by one advance share its entry: the id tells them apart. */
  sandbox_seed(sb, (uint64_t)c->index,
               (uint64_t)c->term ^ (uint64_t)c->timer * 0x9e3779b97f4a7c15u);
  lua_sethook(S, hook, LUA_MASKCOUNT, sb->step);
  lua_settop(S, 0);
  lua_pushcfunction(S, dispatch);
  lua_pushlightuserdata(S, c);
  status = lua_pcall(S, 1, 0, 0);
  sb->busy = 0;
  sb->last = sb->used;
  if (sb->exceeded == SANDBOX_OVER_MEMORY) {
    /* Whatever the state machine did with the error, the call failed; the
     * garbage it left goes now rather than at the next collection. */
    lua_settop(S, 0);
    lua_gc(S, LUA_GCCOLLECT);
    lua_pushfstring(L, "%s (%I bytes)", SANDBOX_MEMORY_MSG,
                    (LUAI_UACINT)sb->mem_limit);
    return 0;
  }
  if (sb->exceeded) {
    /* Whatever the state machine did with the error, the call failed. */
    lua_settop(S, 0);
    lua_pushfstring(L, "%s (%I instructions)", SANDBOX_BUDGET_MSG,
                    (LUAI_UACINT)budget);
    return 0;
  }
  if (status == LUA_OK) return 1;
  switch (lua_type(S, -1)) {
    case LUA_TSTRING: {
      size_t len;
      const char *msg = lua_tolstring(S, -1, &len);
      lua_pushlstring(L, msg, len);
      break;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(S, -1))
        lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(S, -1));
      else
        lua_pushfstring(L, "%f", (LUAI_UACNUMBER)lua_tonumber(S, -1));
      break;
    default:
      lua_pushfstring(L, "(error object is a %s value)", luaL_typename(S, -1));
  }
  lua_settop(S, 0);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Host side                                                                */
/* ------------------------------------------------------------------------ */

/* Close the view of sb->buf that snapshot(true) lent, if one is out: the
** call about to run may reuse or free the buffer. */
static void end_loan(lua_State *L, Sandbox *sb) {
  if (sb->lent_ref == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, sb->lent_ref);
  codec_view_close(L, -1);
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, sb->lent_ref);
  sb->lent_ref = LUA_NOREF;
}

static Sandbox *check_open(lua_State *L) {
  Sandbox *sb = (Sandbox *)luaL_checkudata(L, 1, SANDBOX_MT);
  if (sb->S == NULL) luaL_error(L, "the state machine is closed");
  if (sb->busy) luaL_error(L, "the state machine is busy");
  end_loan(L, sb);
  return sb;
}

static void close_state(Sandbox *sb) {
  if (sb->S) {
    lua_close(sb->S);
    sb->S = NULL;
  }
}

static int m_gc(lua_State *L) {
  Sandbox *sb = (Sandbox *)luaL_checkudata(L, 1, SANDBOX_MT);
  end_loan(L, sb);
  close_state(sb);
  msgpack_sbuffer_destroy(&sb->buf);
  msgpack_sbuffer_init(&sb->buf);
  msgpack_sbuffer_destroy(&sb->tmp);
  msgpack_sbuffer_init(&sb->tmp);
  msgpack_sbuffer_destroy(&sb->events);
  msgpack_sbuffer_init(&sb->events);
  sb->nevents = 0;
  return 0;
}

static int m_close(lua_State *L) {
  Sandbox *sb = (Sandbox *)luaL_checkudata(L, 1, SANDBOX_MT);
  if (sb->busy) return luaL_error(L, "the state machine is busy");
  close_state(sb);
  return 0;
}

/* Read an optional integer field of the table at idx into *v. */
static int ctx_integer(lua_State *L, int idx, const char *field, lua_Integer *v,
                       int required, lua_Integer min) {
  int isint, t = lua_getfield(L, idx, field);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    if (required)
      return luaL_error(L, "ctx.%s is required (an integer >= %I)", field,
                        (LUAI_UACINT)min);
    return 0;
  }
  *v = lua_tointegerx(L, -1, &isint);
  if (t != LUA_TNUMBER || !isint || *v < min)
    return luaL_error(L, "ctx.%s must be an integer >= %I (got %s)", field,
                      (LUAI_UACINT)min, luaL_typename(L, -1));
  lua_pop(L, 1);
  return 1;
}

/* Fill c's context fields from the ctx table at idx. */
static void read_ctx(lua_State *L, int idx, Call *c, int required) {
  int t;
  if (lua_isnoneornil(L, idx) && !required) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  c->has_index = ctx_integer(L, idx, "index", &c->index, required, 0);
  c->has_term = ctx_integer(L, idx, "term", &c->term, required, 0);
  c->has_session = ctx_integer(L, idx, "session", &c->session, 0, 1);
  t = lua_getfield(L, idx, "time");
  if (t == LUA_TNUMBER) {
    c->has_time = 1;
    sandbox_num_get(L, -1, &c->time);
    if (!c->time.isint && c->time.n != c->time.n)
      luaL_error(L, "ctx.time must be a number of milliseconds (got NaN)");
  } else if (t != LUA_TNIL) {
    luaL_error(L, "ctx.time must be a number of milliseconds (got %s)",
               luaL_typename(L, -1));
  }
  lua_pop(L, 1);
}

/* Push the results encoded in sb->buf (one msgpack array of c->nres). */
static int push_results(lua_State *L, Sandbox *sb, const Call *c) {
  size_t off = c->nres < 16 ? 1 : c->nres < 65536 ? 3 : 5, used;
  char err[256];
  int i;
  luaL_checkstack(L, c->nres + 1, "too many results");
  lua_pushboolean(L, 1);
  for (i = 0; i < c->nres; i++) {
    if (codec_unpack(L, sb->buf.data + off, sb->buf.size - off, &used, err,
                     sizeof err) != 0)
      return luaL_error(L, "copycat.sandbox: %s", err);
    off += used;
  }
  return c->nres + 1;
}

static int fail(lua_State *L, int ok_value) {
  if (ok_value)
    lua_pushboolean(L, 0);
  else
    lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

/* A failed command or query: false, err, plus the code "unknown_op" when
** the machine has no such handler (a stable code for the session layer,
** whatever the message says). */
static int fail_call(lua_State *L, const Call *c) {
  fail(L, 1);
  if (!c->unknown_op) return 2;
  lua_pushliteral(L, SANDBOX_UNKNOWN_OP);
  return 3;
}

/* machine:command/query(op, args, ctx) */
static int call_values(lua_State *L, int kind) {
  Sandbox *sb = check_open(L);
  Call c;
  char err[256];
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.op = luaL_checklstring(L, 2, &c.oplen);
  lua_settop(L, 4); /* absent args are nil */
  read_ctx(L, 4, &c, kind == SANDBOX_COMMAND);
  sb->buf.size = 0;
  if (codec_pack(L, 3, &sb->buf, err, sizeof err) != 0)
    return luaL_error(L, "cannot encode the arguments: %s", err);
  c.has_args = 1;
  c.in = sb->buf.data;
  c.inlen = sb->buf.size;
  if (!run(L, sb, &c, sb->budget)) return fail_call(L, &c);
  return push_results(L, sb, &c);
}

/* machine:command_encoded/query_encoded(op, bytes, ctx), and
** command_reply/query_reply (reply set) */
static int call_encoded(lua_State *L, int kind, int reply) {
  Sandbox *sb = check_open(L);
  Call c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.reply = reply;
  c.op = luaL_checklstring(L, 2, &c.oplen);
  c.in = luaL_checklstring(L, 3, &c.inlen);
  c.has_args = 1;
  read_ctx(L, 4, &c, kind == SANDBOX_COMMAND);
  if (!run(L, sb, &c, sb->budget)) return fail_call(L, &c);
  lua_pushboolean(L, 1);
  lua_pushlstring(L, sb->buf.data, sb->buf.size);
  return 2;
}

static int m_command(lua_State *L) {
  return call_values(L, SANDBOX_COMMAND);
}

static int m_query(lua_State *L) {
  return call_values(L, SANDBOX_QUERY);
}

static int m_command_encoded(lua_State *L) {
  return call_encoded(L, SANDBOX_COMMAND, 0);
}

static int m_query_encoded(lua_State *L) {
  return call_encoded(L, SANDBOX_QUERY, 0);
}

static int m_command_reply(lua_State *L) {
  return call_encoded(L, SANDBOX_COMMAND, 1);
}

static int m_query_reply(lua_State *L) {
  return call_encoded(L, SANDBOX_QUERY, 1);
}

/* machine:session_opened/session_closed(session, ctx) */
static int session_hook(lua_State *L, int kind) {
  Sandbox *sb = check_open(L);
  Call c;
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.session = luaL_checkinteger(L, 2);
  luaL_argcheck(L, c.session > 0, 2, "session id must be an integer > 0");
  read_ctx(L, 3, &c, 1);
  c.has_session = 1;
  if (!run(L, sb, &c, sb->budget)) return fail(L, 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int m_session_opened(lua_State *L) {
  return session_hook(L, SANDBOX_SESSION_OPENED);
}

static int m_session_closed(lua_State *L) {
  return session_hook(L, SANDBOX_SESSION_CLOSED);
}

/* machine:advance(ctx): fire the timers due at ctx.time, in (deadline, id)
** order, each under its own budget, at most SANDBOX_MAX_FIRINGS of them.
** Every due timer fires even after one failed; the first failure is
** reported. */
static int m_advance(lua_State *L) {
  Sandbox *sb = check_open(L);
  Call c;
  lua_Integer id, fired = 0, total = 0;
  char name[68];
  int failed = 0;
  memset(&c, 0, sizeof c);
  c.kind = SANDBOX_TIMER;
  read_ctx(L, 2, &c, 1);
  if (!c.has_time)
    return luaL_error(L, "ctx.time is required (a number of milliseconds)");
  c.has_session = 0;
  lua_settop(L, 2);
  while (fired < SANDBOX_MAX_FIRINGS && sandbox_timer_due(sb, &c.time, &id)) {
    size_t len = sandbox_timer_name(sb, id, name, 65);
    if (len > 64) memcpy(name + 64, "...", 4);
    c.timer = id;
    fired++;
    if (run(L, sb, &c, sb->budget)) {
      total += sb->last;
      continue;
    }
    total += sb->last;
    if (failed) {
      lua_pop(L, 1);
      continue;
    }
    failed = 1;
    lua_pushfstring(L, "timer '%s' (id %I): ", name, (LUAI_UACINT)id);
    lua_insert(L, -2);
    lua_concat(L, 2); /* 3: the first error */
  }
  sb->last = total;
  lua_pushboolean(L, !failed);
  if (failed) lua_insert(L, 3);
  lua_pushinteger(L, fired);
  return failed ? 3 : 2;
}

/* machine:events([encoded]) -> {{session =, name =, data =}, ...} */
static int m_events(lua_State *L) {
  Sandbox *sb = (Sandbox *)luaL_checkudata(L, 1, SANDBOX_MT);
  return sandbox_events_take(L, sb, lua_toboolean(L, 2));
}

/* machine:next_deadline() -> the smallest pending deadline, or nil */
static int m_next_deadline(lua_State *L) {
  Sandbox *sb = check_open(L);
  SandboxNum d;
  if (sandbox_timer_next(sb, &d))
    sandbox_num_push(L, &d);
  else
    lua_pushnil(L);
  return 1;
}

static int m_snapshot(lua_State *L) {
  Sandbox *sb = check_open(L);
  int lend = lua_toboolean(L, 2);
  Call c;
  memset(&c, 0, sizeof c);
  c.kind = SANDBOX_SNAPSHOT;
  lua_settop(L, 1);
  if (!run(L, sb, &c, sb->setup)) return fail(L, 0);
  if (!lend) {
    lua_pushlstring(L, sb->buf.data, sb->buf.size);
    return 1;
  }
  codec_view_push(L, sb->buf.data, sb->buf.size);
  lua_pushvalue(L, 1); /* the view keeps the machine, and buf, alive */
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, -1);
  sb->lent_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int m_restore(lua_State *L) {
  Sandbox *sb = check_open(L);
  Call c;
  memset(&c, 0, sizeof c);
  c.kind = SANDBOX_RESTORE;
  c.in = codec_bytes(L, 2, &c.inlen, "machine:restore");
  if (!run(L, sb, &c, sb->setup)) return fail(L, 0);
  lua_pushboolean(L, 1);
  return 1;
}

static int m_cost(lua_State *L) {
  Sandbox *sb = (Sandbox *)luaL_checkudata(L, 1, SANDBOX_MT);
  lua_pushinteger(L, sb->last);
  return 1;
}

static int m_memory(lua_State *L) {
  Sandbox *sb = (Sandbox *)luaL_checkudata(L, 1, SANDBOX_MT);
  lua_pushinteger(L, (lua_Integer)sb->mem);
  return 1;
}

static lua_Integer check_budget(lua_State *L, int idx) {
  lua_Integer b = luaL_checkinteger(L, idx);
  luaL_argcheck(L, b > 0 && b <= (lua_Integer)1 << 62, idx,
                "budget must be an integer in 1..2^62");
  return b;
}

/* sandbox.new(source, name, budget, setup_budget [, memory]) */
static int l_new(lua_State *L) {
  Sandbox *sb;
  Call c;
  lua_State *S;
  size_t len;
  const char *src = luaL_checklstring(L, 1, &len);
  const char *name = luaL_checkstring(L, 2);
  lua_Integer budget = check_budget(L, 3), setup = check_budget(L, 4);
  lua_Integer memory = luaL_optinteger(L, 5, 0);
  luaL_argcheck(L, memory >= 0, 5, "memory limit must be >= 0 (0: none)");
  lua_settop(L, 5);
  lua_pushfstring(L, "=%s", name); /* 6: chunk name */
  sb = (Sandbox *)lua_newuserdatauv(L, sizeof *sb, 0);
  memset(sb, 0, sizeof *sb);
  sb->lent_ref = LUA_NOREF;
  msgpack_sbuffer_init(&sb->buf);
  msgpack_sbuffer_init(&sb->tmp);
  msgpack_sbuffer_init(&sb->events);
  luaL_setmetatable(L, SANDBOX_MT);
  sb->budget = budget;
  sb->setup = setup;
  sb->mem_limit = (size_t)memory;
  S = lua_newstate(sb_alloc, sb);
  if (S == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "not enough memory for a state machine");
    return 2;
  }
  *(Sandbox **)lua_getextraspace(S) = sb;
  sb->S = S;
  /* Small collector steps: with Lua's default (a step per 8 KiB
  ** allocated, doing that much work at once) a state of a few MiB under
  ** constant writes had one call in a few hundred run 5-20 ms of
  ** collection, and that call held up the whole server's loop. A step
  ** per 256 bytes does the same work in pieces of well under a
  ** millisecond, at no measured cost in throughput. */
  lua_gc(S, LUA_GCINC, 0, 0, SANDBOX_GC_STEPSIZE);
  lua_pushcfunction(S, sandbox_env_open);
  if (lua_pcall(S, 0, 0, 0) != LUA_OK) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot create a state machine: %s",
                    lua_isstring(S, -1) ? lua_tostring(S, -1) : "?");
    close_state(sb);
    return 2;
  }
  memset(&c, 0, sizeof c);
  c.kind = SANDBOX_LOAD;
  c.op = lua_tostring(L, 6);
  c.in = src;
  c.inlen = len;
  if (!run(L, sb, &c, setup)) {
    close_state(sb);
    return fail(L, 0);
  }
  return 1;
}

int sandbox_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"command", m_command},
                                     {"query", m_query},
                                     {"command_encoded", m_command_encoded},
                                     {"query_encoded", m_query_encoded},
                                     {"command_reply", m_command_reply},
                                     {"query_reply", m_query_reply},
                                     {"session_opened", m_session_opened},
                                     {"session_closed", m_session_closed},
                                     {"advance", m_advance},
                                     {"events", m_events},
                                     {"next_deadline", m_next_deadline},
                                     {"snapshot", m_snapshot},
                                     {"restore", m_restore},
                                     {"cost", m_cost},
                                     {"memory", m_memory},
                                     {"close", m_close},
                                     {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"new", l_new}, {NULL, NULL}};
  if (luaL_newmetatable(L, SANDBOX_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, m_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushinteger(L, SANDBOX_STEP);
  lua_setfield(L, -2, "STEP");
  lua_pushinteger(L, SANDBOX_MAX_FIRINGS);
  lua_setfield(L, -2, "MAX_FIRINGS");
  return 1;
}
