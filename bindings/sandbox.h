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
** rules and the reasons for them.
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

/* One state machine's sandbox. Lives in a full userdata of the host state;
** the sandbox state finds it through its extra space (sandbox_get). */
typedef struct Sandbox {
  lua_State *S;        /* the sandbox's own state; NULL once closed */
  lua_Integer limit;   /* budget of the call in progress */
  lua_Integer used;    /* instructions (and charges) counted so far */
  int step;            /* count-hook interval of the call in progress */
  int exceeded;        /* the call overran its budget: stop everything */
  int busy;            /* a call is in progress (no reentry) */
  int locked;          /* the file has loaded: no new globals */
  uint64_t rng[4];     /* math.random state (xoshiro256**) */
  msgpack_sbuffer buf; /* encoded values crossing between the states */
  lua_Integer budget;  /* per command, query and session_closed */
  lua_Integer setup;   /* for loading the file, snapshot and restore */
  lua_Integer last;    /* instructions counted by the last call */
  size_t mem;          /* bytes allocated by S */
  size_t mem_limit;    /* 0: no limit */
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

/* Reseeds math.random from two 64-bit words (a log entry's index and term). */
void sandbox_seed(Sandbox *sb, uint64_t a, uint64_t b);

/* Replaces, in the global table of S, the functions whose standard versions
** are not deterministic: pairs, next, tostring, setmetatable, getmetatable,
** table.sort, string.format, string.rep, math.random, math.randomseed,
** xpcall, coroutine.create, coroutine.wrap, coroutine.resume
** (sandbox_lib.c). */
void sandbox_openlib(lua_State *S);

/* Builds the environment in the global table of S: a lua_CFunction, to be
** run protected (lua_pcall) in a fresh state whose extra space already
** points to its Sandbox (sandbox_env.c). */
int sandbox_env_open(lua_State *S);

#endif
