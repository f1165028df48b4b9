/*
** codec_view.c - bytes lent to Lua without a copy (copycat.codec views).
**
** A snapshot of a large state is one msgpack value of the size of the
** state. Making a Lua string of it, and then of its parts, would hold the
** state two or three times at once while it is restored or written. A
** view is a userdata naming bytes that live elsewhere: a mapped snapshot
** file lent for the time of one call (codec_view_push, codec_view_close),
** the sandbox's snapshot buffer until its next call, or a Lua string (kept
** alive by the view). Views made from a view (split, payload) borrow the
** same bytes and end with the first view's loan.
**
**   codec.split(bytes) -> {view, ...}   the encodings of the elements of
**       the array that bytes encode, in order
**   codec.payload(bytes) -> view        the bytes of the string (str or
**       bin) that bytes encode
**   #view                               its length in bytes
**
** Everything that takes bytes (codec.decode, these, the sandbox's restore)
** takes a string or an open view; a closed view raises "... lent for a call
** that has returned" instead of reading memory that may be gone.
*/
#include "codec.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>

typedef struct CodecView {
  const char *p;
  size_t len;
  /* The view the bytes were lent to (itself for that one), kept alive by
  ** this view's user value; the loan is open while root->open. */
  struct CodecView *root;
  int open;
} CodecView;

static CodecView *view_new(lua_State *L, const char *p, size_t len) {
  CodecView *v = (CodecView *)lua_newuserdatauv(L, sizeof *v, 1);
  v->p = p;
  v->len = len;
  v->root = v;
  v->open = 1;
  luaL_setmetatable(L, CODEC_VIEW_MT);
  return v;
}

static int view_len(lua_State *L) {
  CodecView *v = (CodecView *)luaL_checkudata(L, 1, CODEC_VIEW_MT);
  lua_pushinteger(L, (lua_Integer)(v->root->open ? v->len : 0));
  return 1;
}

static int view_tostring(lua_State *L) {
  CodecView *v = (CodecView *)luaL_checkudata(L, 1, CODEC_VIEW_MT);
  if (v->root->open)
    lua_pushfstring(L, "copycat.codec.view (%I bytes)", (LUAI_UACINT)v->len);
  else
    lua_pushliteral(L, "copycat.codec.view (closed)");
  return 1;
}

static void view_metatable(lua_State *L) {
  if (luaL_newmetatable(L, CODEC_VIEW_MT)) {
    lua_pushcfunction(L, view_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, view_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "copycat.codec.view");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

void codec_view_push(lua_State *L, const void *p, size_t len) {
  view_metatable(L);
  view_new(L, (const char *)p, len);
}

void codec_view_close(lua_State *L, int idx) {
  CodecView *v = (CodecView *)luaL_testudata(L, idx, CODEC_VIEW_MT);
  assert(v != NULL && v->root == v);
  if (v) v->open = 0;
}

const char *codec_tobytes(lua_State *L, int idx, size_t *len) {
  CodecView *v;
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tolstring(L, idx, len);
  v = (CodecView *)luaL_testudata(L, idx, CODEC_VIEW_MT);
  if (!v || !v->root->open) return NULL;
  *len = v->len;
  return v->p ? v->p : "";
}

const char *codec_bytes(lua_State *L, int idx, size_t *len, const char *fn) {
  CodecView *v;
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tolstring(L, idx, len);
  v = (CodecView *)luaL_testudata(L, idx, CODEC_VIEW_MT);
  if (!v)
    luaL_error(L, "%s: expected bytes (a string or a codec view), got %s", fn,
               luaL_typename(L, idx));
  else if (!v->root->open)
    luaL_error(L,
               "%s: the view's bytes were lent for a call that has returned "
               "(copy what must outlive it)",
               fn);
  *len = v->len;
  return v->p ? v->p : "";
}

/* A view of p[0..len) inside the bytes at idx (a string or a view), which
** it keeps alive. */
static void sub_view(lua_State *L, int idx, const char *p, size_t len) {
  CodecView *parent = (CodecView *)luaL_testudata(L, idx, CODEC_VIEW_MT);
  CodecView *v = view_new(L, p, len);
  if (parent) {
    v->root = parent->root;
    if (parent->root == parent)
      lua_pushvalue(L, idx);
    else
      lua_getiuservalue(L, idx, 1);
  } else {
    lua_pushvalue(L, idx); /* the string, immutable: open for good */
  }
  lua_setiuservalue(L, -2, 1);
}

static uint64_t rd_be(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  size_t i;
  for (i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* The size in *size of the one msgpack value at p[0..len), by its structure
** alone (lengths and counts; what the bytes mean is left to the decoder).
** 0, or a message in err and -1. */
static int skip_value(const unsigned char *p, size_t len, size_t *size,
                      char *err, size_t errlen) {
  size_t pos = 0;
  uint64_t items = 1; /* values still to step over */
  while (items > 0) {
    unsigned b;
    size_t at = pos, field = 0;
    uint64_t body = 0, per = 0; /* per: items per counted element */
    items--;
    if (pos >= len) goto truncated;
    b = p[pos++];
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) continue;
    if (b <= 0x8f) {
      items += 2 * (uint64_t)(b & 0x0f);
    } else if (b <= 0x9f) {
      items += b & 0x0f;
    } else if (b <= 0xbf) {
      body = b & 0x1f;
    } else {
      switch (b) {
        case 0xc4:
        case 0xd9:
          field = 1;
          break;
        case 0xc5:
        case 0xda:
          field = 2;
          break;
        case 0xc6:
        case 0xdb:
          field = 4;
          break;
        case 0xc7:
          field = 1, body = 1;
          break;
        case 0xc8:
          field = 2, body = 1;
          break;
        case 0xc9:
          field = 4, body = 1;
          break;
        case 0xca:
          body = 4;
          break;
        case 0xcb:
          body = 8;
          break;
        case 0xcc:
        case 0xd0:
          body = 1;
          break;
        case 0xcd:
        case 0xd1:
          body = 2;
          break;
        case 0xce:
        case 0xd2:
          body = 4;
          break;
        case 0xcf:
        case 0xd3:
          body = 8;
          break;
        case 0xd4:
          body = 2;
          break;
        case 0xd5:
          body = 3;
          break;
        case 0xd6:
          body = 5;
          break;
        case 0xd7:
          body = 9;
          break;
        case 0xd8:
          body = 17;
          break;
        case 0xdc:
          field = 2, per = 1;
          break;
        case 0xdd:
          field = 4, per = 1;
          break;
        case 0xde:
          field = 2, per = 2;
          break;
        case 0xdf:
          field = 4, per = 2;
          break;
        default:
          snprintf(err, errlen, "invalid msgpack byte 0x%02x at offset %zu", b,
                   at);
          return -1;
      }
    }
    if (field) {
      uint64_t n;
      if (len - pos < field) goto truncated;
      n = rd_be(p + pos, field);
      pos += field;
      if (per)
        items += per * n;
      else
        body += n;
    }
    if (len - pos < body) goto truncated;
    pos += (size_t)body;
    /* Every value takes at least a byte. */
    if (items > len - pos) goto truncated;
    continue;
  truncated:
    snprintf(err, errlen,
             "truncated input: the value at offset %zu does not end within "
             "the %zu bytes",
             at, len);
    return -1;
  }
  *size = pos;
  return 0;
}

/* codec.split(bytes) -> {view, ...} */
static int l_split(lua_State *L) {
  char err[256];
  size_t len, pos, n, i, hdr, size;
  const char *s = codec_bytes(L, 1, &len, "copycat.codec.split");
  const unsigned char *u = (const unsigned char *)s;
  if (len >= 1 && (u[0] & 0xf0) == 0x90) {
    n = u[0] & 0x0f, hdr = 1;
  } else if (len >= 3 && u[0] == 0xdc) {
    n = (size_t)rd_be(u + 1, 2), hdr = 3;
  } else if (len >= 5 && u[0] == 0xdd) {
    n = (size_t)rd_be(u + 1, 4), hdr = 5;
  } else {
    return luaL_error(L,
                      "copycat.codec.split: the bytes do not encode an "
                      "array");
  }
  if (n > len - hdr)
    return luaL_error(L,
                      "copycat.codec.split: truncated input: an array of %I "
                      "elements in %I bytes",
                      (LUAI_UACINT)n, (LUAI_UACINT)len);
  lua_createtable(L, (int)n, 0);
  for (i = 0, pos = hdr; i < n; i++, pos += size) {
    if (skip_value(u + pos, len - pos, &size, err, sizeof err) != 0)
      return luaL_error(L, "copycat.codec.split: element %I: %s",
                        (LUAI_UACINT)(i + 1), err);
    sub_view(L, 1, s + pos, size);
    lua_rawseti(L, -2, (lua_Integer)(i + 1));
  }
  if (pos != len)
    return luaL_error(L,
                      "copycat.codec.split: trailing bytes: the array ends at "
                      "offset %I but the input has %I bytes",
                      (LUAI_UACINT)pos, (LUAI_UACINT)len);
  return 1;
}

/* codec.payload(bytes) -> view */
static int l_payload(lua_State *L) {
  size_t len, field = 0, n = 0;
  const char *s = codec_bytes(L, 1, &len, "copycat.codec.payload");
  const unsigned char *u = (const unsigned char *)s;
  if (len >= 1 && u[0] >= 0xa0 && u[0] <= 0xbf) {
    n = u[0] & 0x1f;
  } else if (len >= 1 && (u[0] == 0xc4 || u[0] == 0xd9)) {
    field = 1;
  } else if (len >= 1 && (u[0] == 0xc5 || u[0] == 0xda)) {
    field = 2;
  } else if (len >= 1 && (u[0] == 0xc6 || u[0] == 0xdb)) {
    field = 4;
  } else {
    return luaL_error(L,
                      "copycat.codec.payload: the bytes do not encode a "
                      "string");
  }
  if (field) {
    if (len - 1 < field)
      return luaL_error(L, "copycat.codec.payload: truncated input");
    n = (size_t)rd_be(u + 1, field);
  }
  if (len - 1 - field != n)
    return luaL_error(L,
                      "copycat.codec.payload: a string of %I bytes in %I "
                      "bytes of input",
                      (LUAI_UACINT)n, (LUAI_UACINT)(len - 1 - field));
  sub_view(L, 1, s + 1 + field, n);
  return 1;
}

void codec_view_open(lua_State *L) {
  view_metatable(L);
  lua_pushcfunction(L, l_split);
  lua_setfield(L, -2, "split");
  lua_pushcfunction(L, l_payload);
  lua_setfield(L, -2, "payload");
}
