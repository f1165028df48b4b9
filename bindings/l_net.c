/*
 * l_net.c — Lua binding of the transport: msgpack values over framed TCP.
 *
 *   core.net.listen(address, on_accept [, opts]) -> listener | nil, err
 *       on_accept(conn) for each new connection (call conn:start soon)
 *   core.net.connect(address, cb [, opts]) -> true | nil, err
 *       cb(conn) once connected, or cb(nil, err)
 *   core.net.is_loopback(address) -> boolean (only this machine can reach it)
 *   listener:address(), listener:close(), listener:set_tls(ctx) (new
 *   connections use ctx; the listener must have been started with TLS)
 *   conn:start(on_message, on_close)  on_message(value); on_close(reason)
 *   conn:send(value) -> true | nil, err     (encoded with copycat.codec)
 *   conn:close([reason [, flush]]), conn:peer(), conn:pause(), conn:resume(),
 *   conn:queued(), conn:tls() -> name, role (of the peer's certificate;
 *   "" and "none" without one) | nil without TLS
 *   opts: { max_frame = bytes, max_queue = bytes, tls = core.tls.context,
 *           tls_expect = member name the server must prove (connect) }
 *
 * A frame that is not exactly one valid msgpack value closes that one
 * connection, naming the peer and the problem in the reason; nothing else
 * is affected. An open connection or listener keeps its userdata alive
 * (anchored in the registry) until it is closed, so a script may drop its
 * reference; an open listener also keeps the program running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "l_core.h"
#include "tls/tls.h"
#include "transport/net.h"

#define CONN_MT "copycat.net.conn"
#define LISTENER_MT "copycat.net.listener"

struct lconn {
  net_conn *c; /* NULL once closed */
  lua_State *L;
  int self_ref, msg_ref, close_ref;
};

struct llistener {
  net_listener *l;
  lua_State *L;
  int accept_ref;
  int self_ref; /* anchors the userdata until close */
  struct net_conn_opts opts;
};

static lua_State *main_thread(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *M = lua_tothread(L, -1);
  lua_pop(L, 1);
  return M;
}

static void read_opts(lua_State *L, int idx, struct net_conn_opts *o) {
  memset(o, 0, sizeof *o);
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "max_frame");
  if (!lua_isnil(L, -1)) {
    lua_Integer v = luaL_checkinteger(L, -1);
    luaL_argcheck(L, v > 0 && v <= UINT32_MAX, idx,
                  "max_frame must be 1..4294967295");
    o->max_frame = (uint32_t)v;
  }
  lua_getfield(L, idx, "max_queue");
  if (!lua_isnil(L, -1)) {
    lua_Integer v = luaL_checkinteger(L, -1);
    luaL_argcheck(L, v > 0, idx, "max_queue must be positive");
    o->max_queue = (size_t)v;
  }
  lua_pop(L, 2);
  lua_getfield(L, idx, "tls");
  if (!lua_isnil(L, -1)) o->tls = tls_binding_check(L, -1);
  lua_getfield(L, idx, "tls_expect");
  /* The string stays alive in the options table while it is used. */
  if (!lua_isnil(L, -1)) o->tls_expect = luaL_checkstring(L, -1);
  lua_pop(L, 2);
}

static void unref(lua_State *L, int *ref) {
  luaL_unref(L, LUA_REGISTRYINDEX, *ref);
  *ref = LUA_NOREF;
}

static void call(lua_State *L, int nargs) {
  if (lua_pcall(L, nargs, 0, 0) != LUA_OK) core_callback_error(L);
}

/* ---- connections ---- */

static void on_frame(net_conn *c, const char *data, size_t len) {
  struct lconn *lc = net_conn_data(c);
  if (!lc) return;
  lua_State *L = lc->L;
  char err[256];
  size_t used = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->msg_ref);
  int rc = codec_unpack_protected(L, data, len, &used, err, sizeof err);
  if (rc == 0 && used != len) {
    lua_pop(L, 1);
    snprintf(err, sizeof err, "%zu bytes after the value", len - used);
    rc = -1;
  }
  if (rc < 0) {
    lua_pop(L, 1);
    char reason[400];
    snprintf(reason, sizeof reason, "malformed frame from %s: %s",
             net_conn_peer(c), err);
    net_conn_close(c, reason);
    return;
  }
  call(L, 1);
}

static void on_close(net_conn *c, int status, const char *reason) {
  struct lconn *lc = net_conn_data(c);
  if (!lc) return; /* collected: nobody to tell */
  lua_State *L = lc->L;
  lc->c = NULL;
  int cref = lc->close_ref;
  lc->close_ref = LUA_NOREF;
  unref(L, &lc->msg_ref);
  if (cref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, cref);
    luaL_unref(L, LUA_REGISTRYINDEX, cref);
    lua_pushstring(L, reason);
    unref(L, &lc->self_ref); /* the function on the stack keeps what it needs */
    call(L, 1);
  } else {
    unref(L, &lc->self_ref);
  }
}

/* Pushes a userdata for a new connection, anchored while open. */
static struct lconn *push_conn(lua_State *L, net_conn *c) {
  struct lconn *lc = lua_newuserdatauv(L, sizeof *lc, 0);
  lc->c = c;
  lc->L = main_thread(L);
  lc->msg_ref = lc->close_ref = LUA_NOREF;
  luaL_setmetatable(L, CONN_MT);
  lua_pushvalue(L, -1);
  lc->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  net_conn_set_data(c, lc);
  return lc;
}

static struct lconn *check_conn(lua_State *L) {
  return luaL_checkudata(L, 1, CONN_MT);
}

static struct lconn *check_open(lua_State *L) {
  struct lconn *lc = check_conn(L);
  if (!lc->c) luaL_error(L, "connection is closed");
  return lc;
}

static int l_start(lua_State *L) {
  struct lconn *lc = check_open(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  if (lc->msg_ref != LUA_NOREF)
    return luaL_error(L, "connection already started");
  lua_pushvalue(L, 2);
  lc->msg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 3);
  lc->close_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  static const struct net_conn_cbs cbs = {on_frame, on_close};
  net_conn_start(lc->c, &cbs);
  return 0;
}

static int l_send(lua_State *L) {
  struct lconn *lc = check_conn(L);
  luaL_checkany(L, 2);
  if (!lc->c) {
    luaL_pushfail(L);
    lua_pushliteral(L, "connection is closed");
    return 2;
  }
  msgpack_sbuffer buf;
  msgpack_sbuffer_init(&buf);
  char err[256];
  int rc = codec_pack(L, 2, &buf, err, sizeof err);
  if (rc < 0) {
    msgpack_sbuffer_destroy(&buf);
    return luaL_error(L, "%s", err);
  }
  rc = net_conn_send(lc->c, buf.data, buf.size);
  msgpack_sbuffer_destroy(&buf);
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, net_strerror(rc));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_close(lua_State *L) {
  struct lconn *lc = check_conn(L);
  const char *reason = luaL_optstring(L, 2, "closed by this side");
  if (!lc->c) return 0;
  if (lua_toboolean(L, 3)) /* a last reply must reach the peer first */
    net_conn_close_after_flush(lc->c, reason);
  else
    net_conn_close(lc->c, reason);
  return 0;
}

static int l_peer(lua_State *L) {
  struct lconn *lc = check_conn(L);
  if (!lc->c) return 0;
  lua_pushstring(L, net_conn_peer(lc->c));
  return 1;
}

static int l_pause(lua_State *L) {
  struct lconn *lc = check_conn(L);
  if (lc->c) net_conn_pause(lc->c);
  return 0;
}

static int l_resume(lua_State *L) {
  struct lconn *lc = check_conn(L);
  if (lc->c) net_conn_resume(lc->c);
  return 0;
}

static int l_queued(lua_State *L) {
  struct lconn *lc = check_conn(L);
  lua_pushinteger(L, lc->c ? (lua_Integer)net_conn_queued(lc->c) : 0);
  return 1;
}

static int l_tls(lua_State *L) {
  struct lconn *lc = check_conn(L);
  if (!lc->c || !net_conn_is_tls(lc->c)) return 0;
  lua_pushstring(L, net_conn_tls_name(lc->c));
  lua_pushstring(L, tls_role_name(net_conn_tls_role(lc->c)));
  return 2;
}

static int l_conn_gc(lua_State *L) {
  struct lconn *lc = check_conn(L);
  if (lc->c) { /* only at lua_close: open conns are anchored */
    net_conn_set_data(lc->c, NULL);
    net_conn_close(lc->c, "program exit");
    lc->c = NULL;
  }
  return 0;
}

/* ---- connecting ---- */

struct connect_ctx {
  lua_State *L;
  int cb_ref;
};

static void on_connected(void *data, net_conn *c, int status,
                         const char *reason) {
  struct connect_ctx *ctx = data;
  lua_State *L = ctx->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->cb_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, ctx->cb_ref);
  free(ctx);
  if (c) {
    push_conn(L, c);
    call(L, 1);
  } else {
    (void)status;
    lua_pushnil(L);
    lua_pushstring(L, reason);
    call(L, 2);
  }
}

static int l_connect(lua_State *L) {
  const char *address = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  struct net_conn_opts opts;
  read_opts(L, 3, &opts);
  struct connect_ctx *ctx = malloc(sizeof *ctx);
  if (!ctx) return luaL_error(L, "out of memory");
  ctx->L = main_thread(L);
  lua_pushvalue(L, 2);
  ctx->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  int rc = net_connect(uv_default_loop(), address, &opts, on_connected, ctx);
  if (rc < 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, ctx->cb_ref);
    free(ctx);
    luaL_pushfail(L);
    lua_pushfstring(L, "cannot connect to '%s': %s", address, net_strerror(rc));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- listening ---- */

static void on_accept(net_listener *l, net_conn *c) {
  struct llistener *ll = net_listener_data(l);
  lua_State *L = ll->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ll->accept_ref);
  push_conn(L, c);
  call(L, 1);
}

static int l_listen(lua_State *L) {
  const char *address = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  struct llistener *ll = lua_newuserdatauv(L, sizeof *ll, 0);
  memset(ll, 0, sizeof *ll);
  ll->accept_ref = ll->self_ref = LUA_NOREF;
  luaL_setmetatable(L, LISTENER_MT);
  read_opts(L, 3, &ll->opts);
  ll->L = main_thread(L);
  char err[256];
  int rc = net_listen(uv_default_loop(), address, &ll->opts, on_accept, ll,
                      &ll->l, err, sizeof err);
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushvalue(L, 2);
  ll->accept_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* A listener keeps serving when the script drops its reference. */
  lua_pushvalue(L, -1);
  ll->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static struct llistener *check_listener(lua_State *L) {
  return luaL_checkudata(L, 1, LISTENER_MT);
}

static int l_listener_address(lua_State *L) {
  struct llistener *ll = check_listener(L);
  if (!ll->l) return 0;
  lua_pushstring(L, net_listener_address(ll->l));
  return 1;
}

static int l_is_loopback(lua_State *L) {
  lua_pushboolean(L, net_address_is_loopback(luaL_checkstring(L, 1)));
  return 1;
}

static int l_listener_set_tls(lua_State *L) {
  struct llistener *ll = check_listener(L);
  struct tls_ctx *ctx = tls_binding_check(L, 2);
  if (!ll->l) return 0;
  if (!ll->opts.tls) return luaL_error(L, "this listener does not use TLS");
  net_listener_set_tls(ll->l, ctx);
  ll->opts.tls = ctx; /* only compared with NULL from now on */
  return 0;
}

static int l_listener_close(lua_State *L) {
  struct llistener *ll = check_listener(L);
  if (ll->l) {
    net_listener_close(ll->l);
    ll->l = NULL;
    unref(L, &ll->accept_ref);
    unref(L, &ll->self_ref);
  }
  return 0;
}

int net_open(lua_State *L) {
  static const luaL_Reg conn_methods[] = {
      {"start", l_start},   {"send", l_send},   {"close", l_close},
      {"peer", l_peer},     {"pause", l_pause}, {"resume", l_resume},
      {"queued", l_queued}, {"tls", l_tls},     {NULL, NULL}};
  static const luaL_Reg listener_methods[] = {{"address", l_listener_address},
                                              {"set_tls", l_listener_set_tls},
                                              {"close", l_listener_close},
                                              {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"connect", l_connect},
                                   {"listen", l_listen},
                                   {"is_loopback", l_is_loopback},
                                   {NULL, NULL}};
  if (luaL_newmetatable(L, CONN_MT)) {
    luaL_newlib(L, conn_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_conn_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LISTENER_MT)) {
    luaL_newlib(L, listener_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_listener_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
