/*
 * l_core.c — the module table of `copycat.core`.
 *
 *   core.now()        monotonic time in milliseconds (float, sub-ms)
 *   core.run()        run the loop until nothing is pending (plain Lua only;
 *                     the copycat-lua binary runs the loop itself)
 *   core.exit(code)   ask the program to stop with status code: the loop is
 *                     stopped and the caller's process exits once the
 *                     current callback returns
 *   core.timer, core.signal      see l_watch.c
 *   core.codec        msgpack encode/decode, see codec.h
 *   core.net          framed msgpack over TCP, see l_net.c
 *   core.tls          TLS contexts and certificate files, see l_tls.c
 *   core.sandbox      deterministic state-machine sandboxes, see
 *                   machine/sandbox.c
 *   core.backup       backup files (snapshot save, status, restore), see
 *                     l_backup.c
 *   core.version      the copycat-lua version string
 */
#include <stdio.h>
#include <uv.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "l_core.h"
#include "machine.h"
#include "version.h"

#define EXIT_KEY "copycat.exit_status"

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e6);
  return 1;
}

static int l_run(lua_State *L) {
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  lua_pushinteger(L, core_exit_status(L));
  return 1;
}

static int l_exit(lua_State *L) {
  lua_Integer code = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, code >= 0 && code <= 255, 1, "exit status must be 0..255");
  lua_pushinteger(L, code);
  lua_setfield(L, LUA_REGISTRYINDEX, EXIT_KEY);
  uv_stop(uv_default_loop());
  return 0;
}

int core_exit_status(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, EXIT_KEY);
  int status = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : -1;
  lua_pop(L, 1);
  return status;
}

void core_callback_error(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "copycat-lua: internal error in a callback: %s\n",
          msg ? msg : "(error object is not a string)");
  fflush(stderr);
  lua_pop(L, 1);
  lua_pushinteger(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, EXIT_KEY);
  uv_stop(uv_default_loop());
}

int luaopen_copycat_core(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"now", l_now}, {"run", l_run}, {"exit", l_exit}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  lua_pushliteral(L, COPYCAT_VERSION);
  lua_setfield(L, -2, "version");
  watch_open(L);
  codec_open(L);
  lua_setfield(L, -2, "codec");
  net_open(L);
  lua_setfield(L, -2, "net");
  tls_open(L);
  lua_setfield(L, -2, "tls");
  server_open(L);
  lua_setfield(L, -2, "server");
  sandbox_open(L);
  lua_setfield(L, -2, "sandbox");
  backup_open(L);
  lua_setfield(L, -2, "backup");
  return 1;
}
