/*
** sandbox_session.c - session handles and the events state machines publish.
**
** A session handle is a plain table {id = <integer>} whose shared metatable
** gives it one method, publish(name, data). c.session, the first argument
** of sm.session_opened/sm.session_closed and sm.session(id) are handles.
** Publishing encodes the event with copycat.codec at once (so a value that
** cannot be sent is an error in the handler that published it) and appends
** it to a buffer outside the sandbox state, as session, name, the length
** of the data (4 bytes, big-endian) and the data; machine:events()
** decodes the buffer into the host state, or hands each data over as its
** bytes (machine:events(true)). The buffer is not state: a failed call keeps
** what it published (its state changes stay too), and snapshots ignore it.
** Which sessions are open is for the host's session layer to know: it drops
** events for sessions that are not.
*/
#include <assert.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "sandbox.h"

/* The id of a session, from the value at idx: an integer > 0, or raise. */
static lua_Integer check_id(lua_State *S, int idx, const char *fn) {
  int isint;
  lua_Integer id = lua_tointegerx(S, idx, &isint);
  if (!isint || lua_type(S, idx) != LUA_TNUMBER || id <= 0)
    luaL_error(S, "%s: the session id must be an integer > 0 (got %s)", fn,
               lua_type(S, idx) == LUA_TNUMBER ? "a number out of range"
                                               : luaL_typename(S, idx));
  return id;
}

/* Encode the value at idx into the events buffer. */
static int append(lua_State *S, Sandbox *sb, int idx, char *err, size_t len) {
  return codec_pack(S, idx, &sb->events, err, len);
}

static void put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

/* session:publish(name, data): queue the event for the session's client. */
static int session_publish(lua_State *S) {
  Sandbox *sb = sandbox_get(S);
  size_t size = sb->events.size, nlen, dlen_at, dlen;
  char err[256];
  switch (sb->kind) {
    case SANDBOX_QUERY:
      return luaL_error(S, "publish is not allowed in a query");
    case SANDBOX_LOAD:
      return luaL_error(S, "publish is not allowed while the file loads");
    case SANDBOX_SNAPSHOT:
      return luaL_error(S, "publish is not allowed in sm.snapshot");
    case SANDBOX_RESTORE:
      return luaL_error(S, "publish is not allowed in sm.restore");
    default:
      break;
  }
  if (lua_type(S, 1) != LUA_TTABLE)
    return luaL_error(S,
                      "publish: call it as a method, session:publish(name, "
                      "data)");
  lua_settop(S, 3);
  lua_getfield(S, 1, "id");
  lua_pushinteger(S, check_id(S, 4, "publish")); /* 5: 5.0 becomes 5 */
  if (lua_type(S, 2) != LUA_TSTRING || (lua_tolstring(S, 2, &nlen), nlen == 0))
    return luaL_error(S,
                      "publish: the event name must be a non-empty string "
                      "(got %s)",
                      lua_type(S, 2) == LUA_TSTRING ? "an empty string"
                                                    : luaL_typename(S, 2));
  if (append(S, sb, 5, err, sizeof err) != 0 ||
      append(S, sb, 2, err, sizeof err) != 0 ||
      msgpack_sbuffer_write(&sb->events, "\0\0\0\0", 4) != 0)
    goto nomem;
  dlen_at = sb->events.size - 4;
  if (append(S, sb, 3, err, sizeof err) != 0) {
    sb->events.size = size;
    return luaL_error(S, "publish: cannot encode the event data (%s)", err);
  }
  dlen = sb->events.size - dlen_at - 4;
  if (dlen > UINT32_MAX) {
    sb->events.size = size;
    return luaL_error(S, "publish: the event data is too large");
  }
  put_u32((unsigned char *)sb->events.data + dlen_at, (uint32_t)dlen);
  sb->nevents++;
  /* Encoding is C work: charge it like string.rep, one unit per 64 bytes. */
  sandbox_charge(S, (lua_Integer)((sb->events.size - size) / 64));
  return 0;
nomem:
  sb->events.size = size;
  return luaL_error(S, "not enough memory");
}

static int session_tostring(lua_State *S) {
  lua_getfield(S, 1, "id");
  lua_pushfstring(S, "session %s",
                  lua_type(S, -1) == LUA_TNUMBER ? lua_tostring(S, -1) : "?");
  return 1;
}

void sandbox_session_open(lua_State *S) {
  luaL_newmetatable(S, SANDBOX_SESSION_MT);
  lua_createtable(S, 0, 1);
  lua_pushcfunction(S, session_publish);
  lua_setfield(S, -2, "publish");
  lua_setfield(S, -2, "__index");
  lua_pushcfunction(S, session_tostring);
  lua_setfield(S, -2, "__tostring");
  lua_pushliteral(S, "session"); /* getmetatable's answer; cannot be changed */
  lua_setfield(S, -2, "__metatable");
  lua_pop(S, 1);
}

void sandbox_push_session(lua_State *S, lua_Integer id) {
  lua_createtable(S, 0, 1);
  lua_pushinteger(S, id);
  lua_setfield(S, -2, "id");
  luaL_setmetatable(S, SANDBOX_SESSION_MT);
}

/* sm.session(id): a handle for any session. */
int sandbox_sm_session(lua_State *S) {
  sandbox_push_session(S, check_id(S, 1, "sm.session"));
  return 1;
}

int sandbox_events_take(lua_State *L, Sandbox *sb, int encoded) {
  lua_Integer i;
  size_t pos = 0, used, dlen;
  char err[256];
  int f;
  lua_createtable(L, sb->nevents < 1 << 20 ? (int)sb->nevents : 1 << 20, 0);
  for (i = 1; i <= sb->nevents; i++) {
    lua_createtable(L, 0, 3);
    for (f = 0; f < 2; f++) { /* session, name */
      if (codec_unpack(L, sb->events.data + pos, sb->events.size - pos, &used,
                       err, sizeof err) != 0)
        return luaL_error(L, "copycat.sandbox: corrupt event buffer: %s", err);
      pos += used;
      lua_setfield(L, -2, f == 0 ? "session" : "name");
    }
    assert(sb->events.size - pos >= 4);
    dlen = get_u32((const unsigned char *)sb->events.data + pos);
    pos += 4;
    assert(dlen <= sb->events.size - pos);
    if (encoded) {
      lua_pushlstring(L, sb->events.data + pos, dlen);
    } else if (codec_unpack(L, sb->events.data + pos, dlen, &used, err,
                            sizeof err) != 0) {
      return luaL_error(L, "copycat.sandbox: corrupt event buffer: %s", err);
    }
    assert(encoded || used == dlen);
    pos += dlen;
    lua_setfield(L, -2, "data");
    lua_rawseti(L, -2, i);
  }
  assert(pos == sb->events.size);
  sb->events.size = 0;
  sb->nevents = 0;
  return 1;
}
