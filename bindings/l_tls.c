/*
 * l_tls.c — the Lua face of host/tls.
 *
 *   core.tls.context{ca=, cert=, key=, require_client_cert=} -> ctx | nil, err
 *       ctx:name() -> this side's certificate name ("" without one)
 *       ctx:role() -> "member" | "admin" | "client" | "none"
 *   core.tls.make_ca(dir, days, replace) -> true | nil, err
 *   core.tls.make_cert(dir, name, role, days) -> true | nil, err
 *       role: "member", "client" or "admin"; days < 0: already expired
 *
 * A ctx is passed as opts.tls to core.net.connect / listen and to
 * core.server.start; what uses it keeps its own reference, so the Lua
 * value may be collected.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "l_core.h"
#include "tls/tls.h"

#define TLS_MT "copycat.tls.ctx"

struct ltls {
  struct tls_ctx *ctx;
};

struct tls_ctx *tls_binding_check(lua_State *L, int idx) {
  struct ltls *t = luaL_checkudata(L, idx, TLS_MT);
  return t->ctx;
}

static const char *field(lua_State *L, const char *key) {
  lua_getfield(L, 1, key);
  const char *v = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
  lua_pop(L, 1); /* the string stays alive in the options table */
  return v;
}

static int l_context(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  struct tls_ctx_opts o;
  memset(&o, 0, sizeof o);
  o.ca = field(L, "ca");
  o.cert = field(L, "cert");
  o.key = field(L, "key");
  lua_getfield(L, 1, "require_client_cert");
  o.require_client_cert = lua_toboolean(L, -1);
  lua_pop(L, 1);
  struct ltls *t = lua_newuserdatauv(L, sizeof *t, 0);
  t->ctx = NULL;
  luaL_setmetatable(L, TLS_MT);
  char err[TLS_ERR_MAX + 300];
  if (tls_ctx_new(&o, &t->ctx, err, sizeof err) < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

static int l_gc(lua_State *L) {
  struct ltls *t = luaL_checkudata(L, 1, TLS_MT);
  tls_ctx_unref(t->ctx);
  t->ctx = NULL;
  return 0;
}

static int l_name(lua_State *L) {
  lua_pushstring(L, tls_ctx_name(tls_binding_check(L, 1)));
  return 1;
}

static int l_role(lua_State *L) {
  lua_pushstring(L, tls_role_name(tls_ctx_role(tls_binding_check(L, 1))));
  return 1;
}

static int done(lua_State *L, int rc, const char *err) {
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  luaL_pushfail(L);
  lua_pushstring(L, err);
  return 2;
}

static int l_make_ca(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  lua_Integer days = luaL_checkinteger(L, 2);
  luaL_argcheck(L, days > 0 && days <= 100000, 2, "days must be 1..100000");
  char err[TLS_ERR_MAX + 4200];
  int rc = tls_certs_ca(dir, (int)days, lua_toboolean(L, 3), err, sizeof err);
  return done(L, rc, err);
}

static int l_make_cert(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  const char *name = luaL_checkstring(L, 2);
  static const char *const roles[] = {"member", "client", "admin", NULL};
  static const int role_of[] = {TLS_ROLE_MEMBER, TLS_ROLE_CLIENT,
                                TLS_ROLE_ADMIN};
  int role = role_of[luaL_checkoption(L, 3, NULL, roles)];
  lua_Integer days = luaL_checkinteger(L, 4);
  luaL_argcheck(L, days != 0 && days >= -100000 && days <= 100000, 4,
                "days must be -100000..100000, not 0");
  char err[TLS_ERR_MAX + 4200];
  int rc = tls_certs_leaf(dir, name, role, (int)days, err, sizeof err);
  return done(L, rc, err);
}

int tls_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"name", l_name}, {"role", l_role}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"context", l_context},
                                   {"make_ca", l_make_ca},
                                   {"make_cert", l_make_cert},
                                   {NULL, NULL}};
  if (luaL_newmetatable(L, TLS_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
