/*
** sandbox.h - the deterministic Lua state a state machine runs in.
**
** Every state machine gets a lua_State of its own (never the host's): only
** allow-listed libraries are opened in it, and the few standard functions
** whose results differ between processes are replaced by deterministic
** ones (sandbox_lib.c). Values cross between the host state and the sandbox
** only as copycat.codec bytes, so a state machine sees exactly what a replica
** decodes from the log, and nothing of the host leaks in.
**
** Every call into the sandbox runs under an instruction budget counted by a
** count hook; the count is shared by all coroutines of the sandbox, and once
** exceeded the call cannot recover (see sandbox_stop). The user-visible
** module is copycat.core.sandbox (sandbox.c); docs/state-machine.md has the
** rules and the reasons for them. Session handles and published events live
** in sandbox_session.c, replicated timers in sandbox_timers.c.
*/
#ifndef COPYCAT_SANDBOX_H
#define COPYCAT_SANDBOX_H

#include <stdint.h>

#include <lua.h>
#include <msgpack.h>

/* Instructions between two calls of the count hook: the granularity of the
** budget. Creating a coroutine is charged this much, which bounds what a
** thread can run between its last hook call and its end. */
#define SANDBOX_STEP 1000

/* Registry keys of the sandbox state: the state machine table made by
** state_machine(), and the function that checks what the file returned,
** validate(result, sm, name). */
#define SANDBOX_SM_KEY "copycat.sandbox.sm"
#define SANDBOX_VALIDATE_KEY "copycat.sandbox.validate"

/* The message of the error that stops a call whose budget is spent. */
#define SANDBOX_BUDGET_MSG "instruction budget exceeded"
/* ... and of one that ran the sandbox's heap over its memory limit. */
#define SANDBOX_MEMORY_MSG "memory limit exceeded"
/* The code a command or query returns after its message when the state
** machine has no handler of that name (the session layer's code). */
#define SANDBOX_UNKNOWN_OP "unknown_op"

/* Values of Sandbox.exceeded: why the call in progress is stopped. */
enum { SANDBOX_RUNNING = 0, SANDBOX_OVER_BUDGET, SANDBOX_OVER_MEMORY };

/* Registry key of the metatable shared by session handles. */
#define SANDBOX_SESSION_MT "copycat.sandbox.session"

/* Most timers one machine:advance call fires; the rest wait for the next. */
#define SANDBOX_MAX_FIRINGS 10000

/* What the call in progress is: decides what publish, sm.schedule and
** sm.cancel may do. */
enum {
  SANDBOX_LOAD,
  SANDBOX_COMMAND,
  SANDBOX_QUERY,
  SANDBOX_SESSION_OPENED,
  SANDBOX_SESSION_CLOSED,
  SANDBOX_TIMER,
  SANDBOX_SNAPSHOT,
  SANDBOX_RESTORE
};

/* A Lua number kept exactly: an integer or a float, as Lua has them. Times
** and deadlines are kept this way so that an integer time stays an integer
** in the handler's context and in snapshots. */
typedef struct SandboxNum {
  int isint;
  lua_Integer i; /* isint */
  lua_Number n;  /* !isint */
} SandboxNum;

/* A pending timer in the deadline heap: (deadline, id) is its place in the
** firing order. What it calls lives in the timers table of the sandbox
** state, keyed by id; an id missing there is a cancelled timer whose heap
** entry has not been dropped yet. */
typedef struct SandboxTimer {
  SandboxNum deadline;
  lua_Integer id;
} SandboxTimer;

/* One state machine's sandbox. Lives in a full userdata of the host state;
** the sandbox state finds it through its extra space (sandbox_get). */
typedef struct Sandbox {
  lua_State *S;      /* the sandbox's own state; NULL once closed */
  lua_Integer limit; /* budget of the call in progress */
  lua_Integer used;  /* instructions (and charges) counted so far */
  int step;          /* count-hook interval of the call in progress */
  int exceeded; /* SANDBOX_OVER_*: the call overran a limit, stop everything */
  int busy;     /* a call is in progress (no reentry) */
  int locked;   /* the file has loaded: no new globals */
  uint64_t rng[4];     /* math.random state (xoshiro256**) */
  msgpack_sbuffer buf; /* encoded values crossing between the states */
  lua_Integer budget;  /* per command, query and session_closed */
  lua_Integer setup;   /* for loading the file, snapshot and restore */
  lua_Integer last;    /* instructions counted by the last call */
  size_t mem;          /* bytes allocated by S */
  size_t mem_limit;    /* 0: no limit */
  /* A growth the allocator refused during a call, kept until the retry
  ** Lua makes after its emergency collection (same block, same size):
  ** refused again, the call is over its memory limit. */
  const void *refused_ptr;
  size_t refused_size;
  int refused_pending;
  int kind;       /* SANDBOX_* kind of the call in progress */
  int has_now;    /* the call in progress has a time: */
  SandboxNum now; /* ctx.time, the base of sm.schedule's deadlines */
  /* Timers (sandbox_timers.c). The heap's storage is a userdata of S
  ** anchored in S's registry at heap_ref (so S's allocator and memory limit
  ** cover it); the timers table (id -> {deadline, name, args}) at
  ** timers_ref. nheap counts heap entries, cancelled ones included. */
  SandboxTimer *heap;
  lua_Integer nheap, capheap;
  lua_Integer ntimers;   /* pending timers */
  lua_Integer timer_seq; /* the last timer id given (snapshotted) */
  int heap_ref, timers_ref;
  msgpack_sbuffer tmp; /* scratch for encoding timer arguments */
  /* Events published and not yet taken by machine:events(), encoded as
  ** (session id, name, data) triples of copycat.codec values. Plain C
  ** memory: never part of the state, so it survives failed calls. */
  msgpack_sbuffer events;
  lua_Integer nevents;
  /* The view of buf that machine:snapshot(true) lent (a reference in the
  ** host state's registry), closed before the next call reuses buf;
  ** LUA_NOREF when none is out. */
  int lent_ref;
} Sandbox;

/* The Sandbox that owns S (any thread of it). */
Sandbox *sandbox_get(lua_State *S);

/* Counts units against the call's budget; past it, stops the call like the
** count hook does (does not return then). For C functions whose cost is not
** made of VM instructions (sorting, collecting keys, string.rep). */
void sandbox_charge(lua_State *S, lua_Integer units);

/* If the budget is exceeded, stop the calling thread: raise the budget error
** and make its count hook fire on every instruction, so that a pcall in the
** state machine cannot catch the error and carry on. Returns otherwise. */
void sandbox_check(lua_State *S);

/* Exact order of two numbers (-1, 0, 1), integers and floats together;
** NaN is never stored (sm.schedule refuses it). */
int sandbox_num_cmp(const SandboxNum *a, const SandboxNum *b);

/* Read the number at idx (which must be a number) / push it. */
void sandbox_num_get(lua_State *S, int idx, SandboxNum *v);
void sandbox_num_push(lua_State *S, const SandboxNum *v);

/* Reseeds math.random from two 64-bit words (a log entry's index and term). */
void sandbox_seed(Sandbox *sb, uint64_t a, uint64_t b);

/* Replaces, in the global table of S, the functions whose standard versions
** are not deterministic: pairs, next, tostring, setmetatable, getmetatable,
** table.sort, string.format, string.rep, math.random, math.randomseed,
** xpcall, coroutine.create, coroutine.wrap, coroutine.resume
** (sandbox_lib.c). */
void sandbox_openlib(lua_State *S);

/* sandbox_view.c: queries see the state read-only. prepare makes the
** query's bookkeeping, begin wraps what the handler at fn reaches, end
** undoes it (see the file), unview/wrap convert one value at idx. */
void sandbox_view_open(lua_State *S);
void sandbox_view_prepare(lua_State *S, const char *name, size_t len);
void sandbox_view_begin(lua_State *S, int fn);
int sandbox_view_end(lua_State *S, int first, int failed);
int sandbox_view_unview(lua_State *S, int idx);
void sandbox_view_wrap(lua_State *S, int idx);

/* Builds the environment in the global table of S: a lua_CFunction, to be
** run protected (lua_pcall) in a fresh state whose extra space already
** points to its Sandbox (sandbox_env.c). */
int sandbox_env_open(lua_State *S);

/* Session handles and events (sandbox_session.c). sandbox_session_open
** creates the handle metatable in S's registry; sandbox_push_session pushes
** a new handle {id = id}; sandbox_sm_session is sm.session(id). Run in S. */
void sandbox_session_open(lua_State *S);
void sandbox_push_session(lua_State *S, lua_Integer id);
int sandbox_sm_session(lua_State *S);

/* Host side: push the events buffered in sb onto L as an array of
** {session =, name =, data =} and clear the buffer. Returns 1. With
** encoded set, data is the copycat.codec bytes of the value published (a
** string), not the value. */
int sandbox_events_take(lua_State *L, Sandbox *sb, int encoded);

/* Timers (sandbox_timers.c). Run in S unless said otherwise. */
void sandbox_timers_open(lua_State *S); /* the heap and the timers table */
int sandbox_sm_schedule(lua_State *S);  /* sm.schedule(delay_ms, fn, ...) */
int sandbox_sm_cancel(lua_State *S);    /* sm.cancel(id) */

/* Host side, between calls (never allocates in S): the id of the first
** pending timer, in (deadline, id) order, whose deadline is <= *time,
** removed from the heap (the call that fires it consumes it); 0 if none. */
int sandbox_timer_due(Sandbox *sb, const SandboxNum *time, lua_Integer *id);

/* Host side, between calls: the smallest pending deadline; 0 if none. */
int sandbox_timer_next(Sandbox *sb, SandboxNum *deadline);

/* Consume pending timer `id` and push its function, its context table
** t = {time, index, term, deadline, id, name} and its arguments. Returns
** the number of values pushed after the function. */
int sandbox_timer_take(lua_State *S, lua_Integer id, const SandboxNum *time,
                       lua_Integer index, lua_Integer term);

/* Host side, between calls (never allocates in S): copy the name of pending
** timer `id` into buf (truncated to size - 1 bytes; "" if not pending) and
** return its full length. */
size_t sandbox_timer_name(Sandbox *sb, lua_Integer id, char *buf, size_t size);

/* Decode the value at in[*pos..len) onto S's stack and advance *pos; raise
** "cannot decode the snapshot: ..." if it does not decode. */
void sandbox_decode_next(lua_State *S, const char *in, size_t len, size_t *pos);

/* The msgpack array header at p[0..len): sets *n (elements) and *hdr (its
** size in bytes) and returns 1, or returns 0 if p holds no array header. */
int sandbox_array_header(const char *p, size_t len, lua_Integer *n,
                         size_t *hdr);

/* Append to out the timer part of a snapshot: the timer counter, then the
** array of pending timers [id, deadline, name, args] in id order. */
void sandbox_timers_pack(lua_State *S, msgpack_sbuffer *out);

/* Read what sandbox_timers_pack wrote from in[*pos..len) (already checked
** to decode), checking it against sm.timers; pushes a pending replacement
** (four values: timers table, heap userdata, counter, count) and advances
** *pos. sandbox_timers_install then makes it the
** machine's timers, popping the four values: it cannot fail, so a restore
** whose sm.restore raised leaves the old timers in place. */
void sandbox_timers_unpack(lua_State *S, const char *in, size_t len,
                           size_t *pos);
void sandbox_timers_install(lua_State *S);

#endif
