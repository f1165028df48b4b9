/*
 * l_watch.c — timers and signal watchers on the libuv default loop.
 *
 *   core.timer(ms, repeat_ms, fn) -> handle   fn() after ms, then every
 *                                             repeat_ms (0: once)
 *   core.signal(signame, fn)       -> handle  fn(signame) on each delivery
 *   handle:stop()                             stop; safe to call twice
 *   handle:active()                           true while it may still fire
 *
 * Callbacks run on the main Lua thread in protected mode; the Lua runtime
 * (lua/copycat/runtime.lua) wraps user functions in tasks, so an error here
 * means the runtime itself failed: it is reported and the program exits 1.
 *
 * Lifetime: the uv handle is malloc'd apart from the userdata because libuv
 * owns it until its close callback runs. While a watcher is active its
 * userdata is anchored in the registry, so a timer nobody holds still
 * fires; once stopped (or fired, for a one-shot) it is released and the
 * garbage collector closes it.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <lauxlib.h>
#include <lua.h>

#include "l_core.h"

#define WATCH_MT "copycat.watch"

struct watch {
  union {
    uv_handle_t handle;
    uv_timer_t timer;
    uv_signal_t signal;
  } u;
  lua_State *L;   /* the main thread: callbacks always run there */
  int fn_ref;     /* the callback, LUA_NOREF once released */
  int self_ref;   /* anchors the userdata while active */
  int signum;     /* for signal watchers, 0 for timers */
  uint64_t due;   /* timers: next deadline, uv_hrtime() ns */
  uint64_t every; /* repeating timers: period in ns, 0 for one-shot */
};

static const struct {
  const char *name;
  int num;
} signals[] = {{"SIGINT", SIGINT},   {"SIGTERM", SIGTERM}, {"SIGHUP", SIGHUP},
               {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {NULL, 0}};

static struct watch **check_watch(lua_State *L) {
  return (struct watch **)luaL_checkudata(L, 1, WATCH_MT);
}

static void release(struct watch *w) {
  if (w->self_ref != LUA_NOREF) {
    luaL_unref(w->L, LUA_REGISTRYINDEX, w->self_ref);
    w->self_ref = LUA_NOREF;
  }
}

static void call(struct watch *w, int nargs) {
  lua_State *L = w->L;
  if (lua_pcall(L, nargs, 0, 0) != LUA_OK) core_callback_error(L);
}

static void on_timer(uv_timer_t *h) {
  struct watch *w = h->data;
  if (w->fn_ref == LUA_NOREF) return;
  /* libuv's loop clock is coarse (a few ms): never fire before the
   * deadline as core.now() sees it, so sleep(ms) always lasts ms. */
  uint64_t now = uv_hrtime();
  if (w->due > now) {
    uv_timer_start(h, on_timer, (w->due - now + 999999) / 1000000, 0);
    return;
  }
  if (w->every) {
    /* Re-arm from the deadline, not from now: no drift. After a long
     * stall, skip the missed periods rather than firing in a burst. */
    w->due += w->every;
    if (w->due <= now) w->due = now + w->every;
    uv_timer_start(h, on_timer, (w->due - now + 999999) / 1000000, 0);
  }
  lua_rawgeti(w->L, LUA_REGISTRYINDEX, w->fn_ref);
  /* A one-shot timer is inactive now: let the collector have it. The
   * function stays alive on the stack for the call. */
  if (!uv_is_active(&w->u.handle)) release(w);
  call(w, 0);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct watch *w = h->data;
  if (w->fn_ref == LUA_NOREF) return;
  lua_rawgeti(w->L, LUA_REGISTRYINDEX, w->fn_ref);
  const char *name = "?";
  for (int i = 0; signals[i].name; i++)
    if (signals[i].num == signum) name = signals[i].name;
  lua_pushstring(w->L, name);
  call(w, 1);
}

/* Creates the userdata, anchors it and the callback at stack index fn. */
static struct watch *new_watch(lua_State *L, int fn) {
  luaL_checktype(L, fn, LUA_TFUNCTION);
  struct watch **ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  struct watch *w = calloc(1, sizeof *w);
  if (!w) luaL_error(L, "out of memory");
  *ud = w;
  luaL_setmetatable(L, WATCH_MT);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  w->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, fn);
  w->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  w->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  w->u.handle.data = w;
  return w;
}

static int l_timer(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  lua_Number rep = luaL_optnumber(L, 2, 0);
  luaL_argcheck(L, ms >= 0 && ms < 1e12, 1, "delay must be 0 or more ms");
  luaL_argcheck(L, rep >= 0 && rep < 1e12, 2, "repeat must be 0 or more ms");
  struct watch *w = new_watch(L, 3);
  uv_loop_t *loop = uv_default_loop();
  uv_timer_init(loop, &w->u.timer);
  /* The loop's clock is cached at the start of each turn; a timer started
   * after long work in this turn would otherwise fire early. */
  uv_update_time(loop);
  /* libuv counts whole milliseconds; round up so sleep(0.5) still waits.
   * Repeats are re-armed by on_timer against exact deadlines. */
  uint64_t first = (uint64_t)ms + ((lua_Number)(uint64_t)ms < ms);
  w->due = uv_hrtime() + (uint64_t)(ms * 1e6);
  w->every = (uint64_t)(rep * 1e6);
  uv_timer_start(&w->u.timer, on_timer, first, 0);
  return 1;
}

static int l_signal(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int signum = 0;
  for (int i = 0; signals[i].name; i++)
    if (strcmp(signals[i].name, name) == 0) signum = signals[i].num;
  if (!signum)
    return luaL_argerror(
        L, 1, "expected SIGINT, SIGTERM, SIGHUP, SIGUSR1 or SIGUSR2");
  struct watch *w = new_watch(L, 2);
  w->signum = signum;
  uv_signal_init(uv_default_loop(), &w->u.signal);
  int rc = uv_signal_start(&w->u.signal, on_signal, signum);
  if (rc < 0)
    return luaL_error(L, "cannot watch %s: %s", name, uv_strerror(rc));
  /* A signal watcher alone must not keep the program running. */
  uv_unref(&w->u.handle);
  return 1;
}

static void stop(struct watch *w) {
  if (w->signum)
    uv_signal_stop(&w->u.signal);
  else
    uv_timer_stop(&w->u.timer);
  release(w);
}

static int l_stop(lua_State *L) {
  struct watch *w = *check_watch(L);
  if (w) stop(w);
  return 0;
}

static int l_active(lua_State *L) {
  struct watch *w = *check_watch(L);
  lua_pushboolean(L,
                  w && w->self_ref != LUA_NOREF && uv_is_active(&w->u.handle));
  return 1;
}

static void on_close(uv_handle_t *h) {
  free(h->data);
}

static int l_gc(lua_State *L) {
  struct watch **ud = check_watch(L);
  struct watch *w = *ud;
  if (!w) return 0;
  *ud = NULL;
  stop(w);
  luaL_unref(L, LUA_REGISTRYINDEX, w->fn_ref);
  w->fn_ref = LUA_NOREF;
  uv_close(&w->u.handle, on_close);
  return 0;
}

int watch_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"stop", l_stop}, {"active", l_active}, {NULL, NULL}};
  if (luaL_newmetatable(L, WATCH_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_timer);
  lua_setfield(L, -2, "timer");
  lua_pushcfunction(L, l_signal);
  lua_setfield(L, -2, "signal");
  return 0;
}
