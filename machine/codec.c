/*
** codec.c - msgpack encoding and decoding of Lua values (copycat.codec).
**
** Format rules (array/map rule, canonical key order, markers, limits) are in
** codec.h and docs/codec.md. This file has three parts:
**   1. scratch memory kept per lua_State (output buffer, map-key arrays);
**   2. the encoder: Lua value -> msgpack through msgpack-c's packer, with map
**      keys sorted into canonical order and errors naming the key path;
**   3. the decoder: a hand-written, bounds-checked reader. It does not use
**      msgpack-c's unpacker, which allocates by declared lengths; here every
**      declared length or count is checked against the bytes that remain
**      before anything is allocated, and nesting is bounded.
** Neither direction ever calls Lua code: metatables are ignored and all
** table access is raw, so encoding is a pure function of the data.
*/
#include "codec.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define SCRATCH_NAME "copycat.codec.scratch"

/* Size of the error buffers of the Lua functions (longer messages, e.g. very
** long key paths, are truncated). */
#define CODEC_ERRLEN 1024

/* Encoder output kept between calls of the Lua-level encode is trimmed back
** when it grew beyond this, so one huge value does not pin memory. */
#define SCRATCH_KEEP ((size_t)1 << 20)

/* The map-key array is freed after an encode that grew it beyond this many
** entries (it is otherwise reused). */
#define SCRATCH_KEYS_KEEP 4096

/* Maps with at most this many keys are sorted by insertion sort. */
#define SMALL_SORT 16

/* A marked array may have holes, but its length (largest key) may not exceed
** 2 * (number of elements) + ARRAY_SLACK: a sparse table such as
** codec.array{[1e9] = 1} must not turn into a gigabyte of nils. */
#define ARRAY_SLACK 16

/* ------------------------------------------------------------------------ */
/* Scratch memory                                                           */
/* ------------------------------------------------------------------------ */

/* Key classes, in canonical map order. */
enum { KEY_BOOL = 0, KEY_NUM = 1, KEY_STR = 2 };

/* A map key copied out of a table so that keys can be sorted, or one step of
** the key path of the value being encoded. String bytes are not copied: the
** table being encoded holds the string and is not modified meanwhile. */
typedef struct KeyRef {
  int cls;   /* KEY_* */
  int isint; /* KEY_NUM: 1 if integer, 0 if float */
  union {
    int b;
    lua_Integer i;
    lua_Number n;
  } v;
  const char *s; /* KEY_STR */
  size_t len;
} KeyRef;

/* Per-lua_State scratch, a full userdata so the garbage collector frees it
** even when a Lua memory error interrupts an encode. */
typedef struct Scratch {
  msgpack_sbuffer sbuf; /* output of the Lua-level encode */
  KeyRef *keys;         /* a stack of key arrays, one segment per open map */
  size_t keycap;
} Scratch;

static int scratch_gc(lua_State *L) {
  Scratch *sc = (Scratch *)lua_touserdata(L, 1);
  msgpack_sbuffer_destroy(&sc->sbuf);
  free(sc->keys);
  sc->keys = NULL;
  sc->keycap = 0;
  return 0;
}

/* Push the state's Scratch (creating it on first use) and return it. */
static Scratch *scratch_push(lua_State *L) {
  Scratch *sc;
  if (lua_getfield(L, LUA_REGISTRYINDEX, SCRATCH_NAME) == LUA_TUSERDATA)
    return (Scratch *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  sc = (Scratch *)lua_newuserdatauv(L, sizeof(Scratch), 0);
  msgpack_sbuffer_init(&sc->sbuf);
  sc->keys = NULL;
  sc->keycap = 0;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, SCRATCH_NAME);
  return sc;
}

/* Push the marker metatable `name`, creating it if needed. */
static void marker_push(lua_State *L, const char *name) {
  if (luaL_getmetatable(L, name) != LUA_TTABLE) {
    lua_pop(L, 1);
    luaL_newmetatable(L, name); /* sets __name = name */
  }
}

/* Append printf-style text to err[0..errlen), always NUL-terminated. */
static void err_append(char *err, size_t errlen, const char *fmt, ...) {
  size_t used;
  va_list ap;
  if (errlen == 0) return;
  used = strnlen(err, errlen - 1);
  va_start(ap, fmt);
  vsnprintf(err + used, errlen - used, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Encoder                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct Enc {
  lua_State *L;
  msgpack_packer pk;
  Scratch *sc;
  size_t nkeys;         /* entries of sc->keys in use */
  const void *array_mt; /* marker metatables (NULL if none exist) */
  const void *map_mt;
  int depth;                         /* tables currently open */
  const void *open[CODEC_MAX_DEPTH]; /* those tables, for cycle detection */
  KeyRef path[CODEC_MAX_DEPTH];      /* path[d]: key of the child of open[d] */
  char *err;
  size_t errlen;
} Enc;

static int is_ident(const char *s, size_t len) {
  size_t i;
  if (len == 0 || len > 40) return 0;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (i > 0 && c >= '0' && c <= '9')))
      return 0;
  }
  return 1;
}

/* Write " at value.a[2]["x y"]" for the first plen steps of the path. */
static void enc_path(Enc *e, int plen) {
  int d;
  err_append(e->err, e->errlen, " at value");
  for (d = 0; d < plen; d++) {
    const KeyRef *k = &e->path[d];
    if (k->cls == KEY_BOOL) {
      err_append(e->err, e->errlen, "[%s]", k->v.b ? "true" : "false");
    } else if (k->cls == KEY_NUM && k->isint) {
      err_append(e->err, e->errlen, "[%lld]", (long long)k->v.i);
    } else if (k->cls == KEY_NUM) {
      err_append(e->err, e->errlen, "[%.17g]", (double)k->v.n);
    } else if (is_ident(k->s, k->len)) {
      err_append(e->err, e->errlen, ".%.*s", (int)k->len, k->s);
    } else {
      size_t i, n = k->len < 32 ? k->len : 32;
      err_append(e->err, e->errlen, "[\"");
      for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k->s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
          err_append(e->err, e->errlen, "%c", c);
        else
          err_append(e->err, e->errlen, "\\%03u", (unsigned)c);
      }
      err_append(e->err, e->errlen, "%s\"]", n < k->len ? "..." : "");
    }
  }
}

/* Record an error: message, then the path of its first plen steps. */
static int enc_fail(Enc *e, int code, int plen, const char *fmt, ...) {
  va_list ap;
  assert(code < 0 && plen >= 0 && plen <= e->depth);
  if (e->errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(e->err, e->errlen, fmt, ap);
    va_end(ap);
    enc_path(e, plen);
  }
  return code;
}

/* Out of C memory while writing the value whose path has plen steps. */
static int enc_nomem(Enc *e, int plen) {
  return enc_fail(e, CODEC_ENOMEM, plen, "out of memory");
}

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates, or code
** points above U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i], cp, min, j, k;
    if (n - i >= 8) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      k = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      k = 2, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      k = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (n - i - 1 < k) return 0;
    for (j = 1; j <= k; j++) {
      unsigned cc = s[i + j];
      if ((cc & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += k + 1;
  }
  return 1;
}

static int enc_string(Enc *e, const char *s, size_t len) {
  if (len > UINT32_MAX)
    return enc_fail(e, CODEC_ETOOBIG, e->depth,
                    "string of %zu bytes is longer than msgpack allows", len);
  if (utf8_valid((const unsigned char *)s, len)) {
    if (msgpack_pack_str(&e->pk, len) || msgpack_pack_str_body(&e->pk, s, len))
      return enc_nomem(e, e->depth);
  } else {
    if (msgpack_pack_bin(&e->pk, len) || msgpack_pack_bin_body(&e->pk, s, len))
      return enc_nomem(e, e->depth);
  }
  return 0;
}

int codec_compare_int_float(lua_Integer i, lua_Number f) {
  lua_Number fl;
  lua_Integer fi;
  if (f >= 0x1p63) return -1;
  if (f < -0x1p63) return 1;
  fl = floor(f); /* -2^63 <= fl < 2^63, so the cast is exact */
  fi = (lua_Integer)fl;
  if (i != fi) return i < fi ? -1 : 1;
  return fl < f ? -1 : 0; /* i == floor(f): i < f iff f has a fraction */
}

/* Canonical key order: class, then value (numbers numerically, strings
** bytewise with a prefix first). Keys of a Lua table are distinct, and Lua
** stores integral floats as integers, so this is a strict total order. */
static int key_cmp(const KeyRef *a, const KeyRef *b) {
  if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
  if (a->cls == KEY_BOOL) return a->v.b - b->v.b;
  if (a->cls == KEY_NUM) {
    if (a->isint && b->isint) return a->v.i < b->v.i ? -1 : a->v.i > b->v.i;
    if (!a->isint && !b->isint) return a->v.n < b->v.n ? -1 : a->v.n > b->v.n;
    if (a->isint) return codec_compare_int_float(a->v.i, b->v.n);
    return -codec_compare_int_float(b->v.i, a->v.n);
  } else {
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, n);
    if (c != 0) return c;
    return a->len < b->len ? -1 : a->len > b->len;
  }
}

static int key_qcmp(const void *a, const void *b) {
  return key_cmp((const KeyRef *)a, (const KeyRef *)b);
}

static void keys_sort(KeyRef *k, size_t n) {
  size_t i, j;
  if (n > SMALL_SORT) {
    qsort(k, n, sizeof *k, key_qcmp);
    return;
  }
  for (i = 1; i < n; i++) {
    KeyRef t = k[i];
    for (j = i; j > 0 && key_cmp(&k[j - 1], &t) > 0; j--)
      k[j] = k[j - 1];
    k[j] = t;
  }
}

/* Make room for `more` keys above e->nkeys. */
static int keys_reserve(Enc *e, size_t more) {
  Scratch *sc = e->sc;
  size_t want = e->nkeys + more, cap;
  KeyRef *nk;
  assert(e->depth >= 1); /* called for the open table */
  if (want <= sc->keycap) return 0;
  cap = sc->keycap ? sc->keycap : 64;
  while (cap < want)
    cap *= 2;
  nk = (KeyRef *)realloc(sc->keys, cap * sizeof *nk);
  if (nk == NULL) return enc_nomem(e, e->depth - 1);
  sc->keys = nk;
  sc->keycap = cap;
  return 0;
}

/* Push a key described by k. */
static void key_push(lua_State *L, const KeyRef *k) {
  if (k->cls == KEY_BOOL)
    lua_pushboolean(L, k->v.b);
  else if (k->cls == KEY_STR)
    lua_pushlstring(L, k->s, k->len);
  else if (k->isint)
    lua_pushinteger(L, k->v.i);
  else
    lua_pushnumber(L, k->v.n);
}

static int enc_key(Enc *e, const KeyRef *k) {
  int rc;
  if (k->cls == KEY_BOOL)
    rc = k->v.b ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk);
  else if (k->cls == KEY_STR)
    return enc_string(e, k->s, k->len);
  else if (k->isint)
    rc = msgpack_pack_int64(&e->pk, (int64_t)k->v.i);
  else
    rc = msgpack_pack_double(&e->pk, (double)k->v.n);
  return rc ? enc_nomem(e, e->depth) : 0;
}

static int enc_value(Enc *e, int idx);

/* First pass over the table at idx, storing nothing: count its keys and
** find the largest, as long as every key is a positive integer. Returns 1
** if all are (then *count and *max describe the table), 0 at the first key
** that is not. Arrays, the common large case, thus need no key array. */
static int scan_indices(lua_State *L, int idx, size_t *count,
                        lua_Integer *max) {
  size_t n = 0;
  lua_Integer m = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_Integer k;
    if (!lua_isinteger(L, -2) || (k = lua_tointeger(L, -2)) < 1) {
      lua_pop(L, 2);
      return 0;
    }
    if (k > m) m = k;
    n++;
    lua_pop(L, 1);
  }
  *count = n;
  *max = m;
  return 1;
}

/* Collect the keys of the table at idx into sc->keys[base..base+*count).
** The table is open (counted in e->depth); errors name its path. */
static int enc_collect(Enc *e, int idx, size_t base, size_t *count) {
  lua_State *L = e->L;
  size_t n = 0;
  assert(e->nkeys == base);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    KeyRef *k;
    int rc = keys_reserve(e, n + 1);
    if (rc) return rc;
    k = &e->sc->keys[base + n];
    switch (lua_type(L, -2)) {
      case LUA_TBOOLEAN:
        k->cls = KEY_BOOL;
        k->v.b = lua_toboolean(L, -2);
        break;
      case LUA_TNUMBER:
        k->cls = KEY_NUM;
        k->isint = lua_isinteger(L, -2);
        if (k->isint)
          k->v.i = lua_tointeger(L, -2);
        else
          k->v.n = lua_tonumber(L, -2);
        break;
      case LUA_TSTRING:
        k->cls = KEY_STR;
        k->s = lua_tolstring(L, -2, &k->len); /* a string: no conversion */
        break;
      default:
        return enc_fail(e, CODEC_EKEY, e->depth - 1,
                        "cannot encode a table key of type %s",
                        luaL_typename(L, -2));
    }
    n++;
    lua_pop(L, 1);
  }
  if (n > UINT32_MAX)
    return enc_fail(e, CODEC_ETOOBIG, e->depth - 1,
                    "table of %zu entries is larger than msgpack allows", n);
  *count = n;
  return 0;
}

static int enc_array(Enc *e, int idx, lua_Integer n) {
  lua_State *L = e->L;
  lua_Integer i;
  KeyRef *step = &e->path[e->depth - 1];
  if (msgpack_pack_array(&e->pk, (size_t)n)) return enc_nomem(e, e->depth - 1);
  step->cls = KEY_NUM;
  step->isint = 1;
  for (i = 1; i <= n; i++) {
    int rc;
    step->v.i = i;
    lua_rawgeti(L, idx, i);
    rc = enc_value(e, lua_gettop(L));
    lua_pop(L, 1);
    if (rc) return rc;
  }
  return 0;
}

/* Collect, sort and write the keys of the table at idx, each followed by
** its value. Called with the table already counted in e->depth. */
static int enc_map(Enc *e, int idx) {
  lua_State *L = e->L;
  size_t base = e->nkeys, count, i;
  int rc = enc_collect(e, idx, base, &count);
  if (rc) return rc;
  e->nkeys = base + count;
  if (msgpack_pack_map(&e->pk, count)) return enc_nomem(e, e->depth - 1);
  /* An empty map may come before any key array exists (keys NULL). */
  if (count > 1) keys_sort(e->sc->keys + base, count);
  for (i = 0; i < count; i++) {
    /* Copy: a nested map may realloc sc->keys. */
    KeyRef k = e->sc->keys[base + i];
    e->path[e->depth - 1] = k;
    if ((rc = enc_key(e, &k))) return rc;
    key_push(L, &k);
    lua_rawget(L, idx);
    rc = enc_value(e, lua_gettop(L));
    lua_pop(L, 1);
    if (rc) return rc;
  }
  e->nkeys = base;
  return 0;
}

/* A table marked as array failed scan_indices: name its first bad key. */
static int enc_bad_index(Enc *e, int idx) {
  size_t base = e->nkeys, count, i;
  int rc = enc_collect(e, idx, base, &count);
  if (rc) return rc;
  for (i = 0; i < count; i++) {
    const KeyRef *k = &e->sc->keys[base + i];
    if (!(k->cls == KEY_NUM && k->isint && k->v.i >= 1)) break;
  }
  assert(i < count);
  e->path[e->depth - 1] = e->sc->keys[base + i];
  return enc_fail(e, CODEC_EKEY, e->depth,
                  "table marked as array has a key that is not a positive "
                  "integer");
}

static int enc_table(Enc *e, int idx) {
  lua_State *L = e->L;
  const void *self = lua_topointer(L, idx);
  const void *mt = NULL;
  size_t count = 0;
  lua_Integer max = 0;
  int d, rc, indices;
  if (e->depth >= CODEC_MAX_DEPTH)
    return enc_fail(e, CODEC_EDEPTH, e->depth, "nesting deeper than %d tables",
                    CODEC_MAX_DEPTH);
  for (d = 0; d < e->depth; d++) {
    if (e->open[d] == self) {
      enc_fail(e, CODEC_ECYCLE, e->depth, "cycle: a table contains itself");
      err_append(e->err, e->errlen, " (the same table as");
      enc_path(e, d);
      err_append(e->err, e->errlen, ")");
      return CODEC_ECYCLE;
    }
  }
  if (!lua_checkstack(L, 4))
    return enc_fail(e, CODEC_ENOMEM, e->depth, "Lua stack overflow");
  if (lua_getmetatable(L, idx)) {
    mt = lua_topointer(L, -1);
    lua_pop(L, 1);
  }
  e->open[e->depth++] = self;
  if (mt != NULL && mt == e->map_mt) {
    rc = enc_map(e, idx);
  } else {
    indices = scan_indices(L, idx, &count, &max);
    if (mt != NULL && mt == e->array_mt) {
      if (!indices) return enc_bad_index(e, idx);
      if ((size_t)max > 2 * count + ARRAY_SLACK || (uint64_t)max > UINT32_MAX)
        return enc_fail(e, CODEC_EKEY, e->depth - 1,
                        "table marked as array is too sparse (%zu elements, "
                        "largest index %lld)",
                        count, (long long)max);
      rc = enc_array(e, idx, max);
    } else if (indices && count > 0 && (size_t)max == count) {
      rc = enc_array(e, idx, max);
    } else {
      rc = enc_map(e, idx);
    }
  }
  if (rc) return rc;
  e->depth--;
  return 0;
}

static int enc_value(Enc *e, int idx) {
  lua_State *L = e->L;
  int rc = 0;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      rc = msgpack_pack_nil(&e->pk);
      break;
    case LUA_TBOOLEAN:
      rc = lua_toboolean(L, idx) ? msgpack_pack_true(&e->pk)
                                 : msgpack_pack_false(&e->pk);
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx))
        rc = msgpack_pack_int64(&e->pk, (int64_t)lua_tointeger(L, idx));
      else
        rc = msgpack_pack_double(&e->pk, (double)lua_tonumber(L, idx));
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      return enc_string(e, s, len);
    }
    case LUA_TTABLE:
      return enc_table(e, idx);
    default:
      return enc_fail(e, CODEC_ETYPE, e->depth, "cannot encode a %s",
                      luaL_typename(L, idx));
  }
  return rc ? enc_nomem(e, e->depth) : 0;
}

/* The encoder proper; sc, array_mt and map_mt come from the caller. */
static int pack_with(lua_State *L, int idx, msgpack_sbuffer *out, Scratch *sc,
                     const void *array_mt, const void *map_mt, char *err,
                     size_t errlen) {
  Enc e;
  int top = lua_gettop(L), rc;
  size_t size0 = out->size;
  e.L = L;
  e.sc = sc;
  e.nkeys = 0;
  e.array_mt = array_mt;
  e.map_mt = map_mt;
  e.depth = 0;
  e.err = err;
  e.errlen = errlen;
  if (errlen > 0) err[0] = '\0';
  msgpack_packer_init(&e.pk, out, msgpack_sbuffer_write);
  rc = enc_value(&e, lua_absindex(L, idx));
  lua_settop(L, top);
  if (sc->keycap > SCRATCH_KEYS_KEEP) {
    free(sc->keys);
    sc->keys = NULL;
    sc->keycap = 0;
  }
  if (rc) out->size = size0;
  assert(rc != 0 || e.depth == 0);
  return rc;
}

static const void *registry_ptr(lua_State *L, const char *name) {
  const void *p;
  lua_getfield(L, LUA_REGISTRYINDEX, name);
  p = lua_istable(L, -1) ? lua_topointer(L, -1) : NULL;
  lua_pop(L, 1);
  return p;
}

int codec_pack(lua_State *L, int idx, msgpack_sbuffer *out, char *err,
               size_t errlen) {
  Scratch *sc;
  int rc;
  idx = lua_absindex(L, idx);
  sc = scratch_push(L); /* stays on the stack, anchored, while we encode */
  rc = pack_with(L, idx, out, sc, registry_ptr(L, CODEC_ARRAY_MT),
                 registry_ptr(L, CODEC_MAP_MT), err, errlen);
  lua_pop(L, 1);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Decoder                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct Dec {
  lua_State *L;
  const unsigned char *p;
  size_t len, pos;
  int depth;
  char *err;
  size_t errlen;
} Dec;

static int dec_fail(Dec *d, int code, const char *fmt, ...) {
  va_list ap;
  if (d->errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(d->err, d->errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* Check that n more bytes are available for `what` (starting at d->pos). */
static int need(Dec *d, size_t n, const char *what, size_t at) {
  if (d->len - d->pos >= n) return 0;
  return dec_fail(d, CODEC_ETRUNC,
                  "truncated input: %s at offset %zu needs %zu more bytes, "
                  "%zu remain",
                  what, at, n, d->len - d->pos);
}

static uint64_t rd_be(const unsigned char *p, int n) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* Read an n-byte big-endian length/count field for the item at `at`. */
static int rd_len(Dec *d, int n, const char *what, size_t at, size_t *out) {
  int rc = need(d, (size_t)n, what, at);
  if (rc) return rc;
  *out = (size_t)rd_be(d->p + d->pos, n);
  d->pos += (size_t)n;
  return 0;
}

static int dec_value(Dec *d);

static int dec_bytes(Dec *d, size_t n, const char *what, size_t at) {
  int rc = need(d, n, what, at);
  if (rc) return rc;
  lua_pushlstring(d->L, (const char *)d->p + d->pos, n);
  d->pos += n;
  return 0;
}

static int dec_enter(Dec *d, size_t at) {
  if (d->depth >= CODEC_MAX_DEPTH)
    return dec_fail(d, CODEC_EDEPTH,
                    "nesting deeper than %d tables at offset %zu",
                    CODEC_MAX_DEPTH, at);
  if (!lua_checkstack(d->L, 4))
    return dec_fail(d, CODEC_ENOMEM, "Lua stack overflow at offset %zu", at);
  d->depth++;
  return 0;
}

static void set_marker(lua_State *L, const char *name) {
  marker_push(L, name);
  lua_setmetatable(L, -2);
}

static int dec_array(Dec *d, size_t n, size_t at) {
  lua_State *L = d->L;
  size_t i;
  int rc, holes = (n == 0);
  /* Every element takes at least one byte. */
  if (n > d->len - d->pos)
    return dec_fail(d, CODEC_ETRUNC,
                    "truncated input: array of %zu elements declared at offset "
                    "%zu, but only %zu bytes remain",
                    n, at, d->len - d->pos);
  if ((rc = dec_enter(d, at))) return rc;
  lua_createtable(L, n > INT_MAX ? INT_MAX : (int)n, 0);
  for (i = 1; i <= n; i++) {
    if ((rc = dec_value(d))) return rc;
    if (lua_isnil(L, -1)) {
      holes = 1;
      lua_pop(L, 1);
    } else {
      lua_rawseti(L, -2, (lua_Integer)i);
    }
  }
  /* {} and tables with holes would otherwise re-encode as maps. */
  if (holes) set_marker(L, CODEC_ARRAY_MT);
  d->depth--;
  return 0;
}

/* Decode a map key and push it. Integral floats become integers, as Lua
** itself would store them. */
static int dec_key(Dec *d) {
  lua_State *L = d->L;
  size_t at = d->pos;
  unsigned b;
  int rc;
  if ((rc = need(d, 1, "map key", at))) return rc;
  b = d->p[at];
  if (b == 0xc0 || (b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf))
    return dec_fail(d, CODEC_EKEY,
                    "map key at offset %zu is %s; keys must be strings, "
                    "numbers or booleans",
                    at, b == 0xc0 ? "nil" : "an array or map");
  if ((rc = dec_value(d))) return rc;
  if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
    lua_Number f = lua_tonumber(L, -1);
    lua_Integer i;
    if (f != f)
      return dec_fail(d, CODEC_EKEY, "map key at offset %zu is NaN", at);
    if (floor(f) == f && lua_numbertointeger(f, &i)) {
      lua_pop(L, 1);
      lua_pushinteger(L, i);
    }
  }
  return 0;
}

static int dec_map(Dec *d, size_t n, size_t at) {
  lua_State *L = d->L;
  size_t i, count = 0, npos = 0;
  lua_Integer max = 0;
  int rc;
  /* Every pair takes at least two bytes. */
  if (n > (d->len - d->pos) / 2)
    return dec_fail(d, CODEC_ETRUNC,
                    "truncated input: map of %zu pairs declared at offset %zu, "
                    "but only %zu bytes remain",
                    n, at, d->len - d->pos);
  if ((rc = dec_enter(d, at))) return rc;
  lua_createtable(L, 0, n > INT_MAX ? INT_MAX : (int)n);
  for (i = 0; i < n; i++) {
    size_t kat = d->pos;
    if ((rc = dec_key(d))) return rc;
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) != LUA_TNIL)
      return dec_fail(d, CODEC_EKEY, "duplicate map key at offset %zu", kat);
    lua_pop(L, 1);
    if ((rc = dec_value(d))) return rc;
    if (lua_isnil(L, -1)) { /* Lua cannot hold it: the pair is dropped */
      lua_pop(L, 2);
      continue;
    }
    if (lua_isinteger(L, -2)) {
      lua_Integer k = lua_tointeger(L, -2);
      if (k >= 1) {
        npos++;
        if (k > max) max = k;
      }
    }
    lua_rawset(L, -3);
    count++;
  }
  /* A map with keys 1..n would otherwise re-encode as an array. */
  if (count > 0 && npos == count && (size_t)max == count)
    set_marker(L, CODEC_MAP_MT);
  d->depth--;
  return 0;
}

static int dec_ext(Dec *d, unsigned b, size_t at) {
  return dec_fail(d, CODEC_EFORMAT,
                  "ext type values are not supported (type byte 0x%02x at "
                  "offset %zu)",
                  b, at);
}

static int dec_value(Dec *d) {
  lua_State *L = d->L;
  size_t at = d->pos, n;
  unsigned b;
  int rc;
  if ((rc = need(d, 1, "value", at))) return rc;
  b = d->p[d->pos++];
  if (b <= 0x7f) {
    lua_pushinteger(L, (lua_Integer)b);
    return 0;
  }
  if (b >= 0xe0) {
    lua_pushinteger(L, (lua_Integer)b - 0x100);
    return 0;
  }
  if (b <= 0x8f) return dec_map(d, b & 0x0f, at);
  if (b <= 0x9f) return dec_array(d, b & 0x0f, at);
  if (b <= 0xbf) return dec_bytes(d, b & 0x1f, "str", at);
  switch (b) {
    case 0xc0:
      lua_pushnil(L);
      return 0;
    case 0xc2:
    case 0xc3:
      lua_pushboolean(L, b == 0xc3);
      return 0;
    case 0xc4:
    case 0xc5:
    case 0xc6:
      if ((rc = rd_len(d, 1 << (b - 0xc4), "bin", at, &n))) return rc;
      return dec_bytes(d, n, "bin", at);
    case 0xd9:
    case 0xda:
    case 0xdb:
      if ((rc = rd_len(d, 1 << (b - 0xd9), "str", at, &n))) return rc;
      return dec_bytes(d, n, "str", at);
    case 0xdc:
    case 0xdd:
      if ((rc = rd_len(d, b == 0xdc ? 2 : 4, "array", at, &n))) return rc;
      return dec_array(d, n, at);
    case 0xde:
    case 0xdf:
      if ((rc = rd_len(d, b == 0xde ? 2 : 4, "map", at, &n))) return rc;
      return dec_map(d, n, at);
    case 0xca: {
      uint32_t u;
      float f;
      if ((rc = need(d, 4, "float32", at))) return rc;
      u = (uint32_t)rd_be(d->p + d->pos, 4);
      memcpy(&f, &u, 4);
      d->pos += 4;
      lua_pushnumber(L, (lua_Number)f);
      return 0;
    }
    case 0xcb: {
      uint64_t u;
      double f;
      if ((rc = need(d, 8, "float64", at))) return rc;
      u = rd_be(d->p + d->pos, 8);
      memcpy(&f, &u, 8);
      d->pos += 8;
      lua_pushnumber(L, (lua_Number)f);
      return 0;
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
      int w = 1 << (b - 0xcc);
      uint64_t u;
      if ((rc = need(d, (size_t)w, "uint", at))) return rc;
      u = rd_be(d->p + d->pos, w);
      if (u > (uint64_t)LUA_MAXINTEGER)
        return dec_fail(d, CODEC_EFORMAT,
                        "integer %llu at offset %zu is above math.maxinteger",
                        (unsigned long long)u, at);
      d->pos += (size_t)w;
      lua_pushinteger(L, (lua_Integer)u);
      return 0;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
      int w = 1 << (b - 0xd0);
      uint64_t u, sign;
      if ((rc = need(d, (size_t)w, "int", at))) return rc;
      u = rd_be(d->p + d->pos, w);
      d->pos += (size_t)w;
      /* Sign-extend without relying on implementation-defined casts. */
      sign = (uint64_t)1 << (8 * w - 1);
      if (u & sign)
        lua_pushinteger(L, -(lua_Integer)(~u & (sign - 1)) - 1);
      else
        lua_pushinteger(L, (lua_Integer)u);
      return 0;
    }
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return dec_ext(d, b, at);
    default:
      assert(b == 0xc1);
      return dec_fail(d, CODEC_EFORMAT,
                      "invalid type byte 0xc1 at offset %zu (never used by "
                      "msgpack)",
                      at);
  }
}

int codec_unpack(lua_State *L, const char *buf, size_t len, size_t *used,
                 char *err, size_t errlen) {
  Dec d;
  int top = lua_gettop(L), rc;
  d.L = L;
  d.p = (const unsigned char *)buf;
  d.len = len;
  d.pos = 0;
  d.depth = 0;
  d.err = err;
  d.errlen = errlen;
  if (errlen > 0) err[0] = '\0';
  *used = 0;
  if (!lua_checkstack(L, 4))
    return dec_fail(&d, CODEC_ENOMEM, "Lua stack overflow");
  rc = dec_value(&d);
  if (rc) {
    lua_settop(L, top);
    return rc;
  }
  assert(d.depth == 0 && d.pos <= len && lua_gettop(L) == top + 1);
  *used = d.pos;
  return 0;
}

/* codec_unpack_protected: codec_unpack run inside lua_pcall. */
typedef struct UnpackCall {
  const char *buf;
  size_t len, *used;
  char *err;
  size_t errlen;
  int rc;
} UnpackCall;

static int unpack_call(lua_State *L) {
  UnpackCall *c = (UnpackCall *)lua_touserdata(L, 1);
  lua_pop(L, 1);
  c->rc = codec_unpack(L, c->buf, c->len, c->used, c->err, c->errlen);
  if (c->rc != 0) lua_pushnil(L);
  return 1;
}

int codec_unpack_protected(lua_State *L, const char *buf, size_t len,
                           size_t *used, char *err, size_t errlen) {
  UnpackCall c;
  c.buf = buf;
  c.len = len;
  c.used = used;
  c.err = err;
  c.errlen = errlen;
  c.rc = 0;
  *used = 0;
  if (errlen > 0) err[0] = '\0';
  if (!lua_checkstack(L, 3)) {
    if (errlen > 0) snprintf(err, errlen, "Lua stack overflow");
    return CODEC_ENOMEM;
  }
  lua_pushcfunction(L, unpack_call); /* a light C function: no allocation */
  lua_pushlightuserdata(L, &c);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    if (errlen > 0)
      snprintf(err, errlen,
               "not enough memory to decode %zu bytes (the decoded value "
               "would take much more than its encoding)",
               len);
    lua_pop(L, 1);
    *used = 0;
    return CODEC_ENOMEM;
  }
  if (c.rc != 0) {
    lua_pop(L, 1);
    return c.rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Lua functions                                                            */
/* ------------------------------------------------------------------------ */

/* encode(value) -> string. Upvalues: scratch, array marker, map marker. */
static int l_encode(lua_State *L) {
  Scratch *sc = (Scratch *)lua_touserdata(L, lua_upvalueindex(1));
  char err[CODEC_ERRLEN];
  int rc;
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  sc->sbuf.size = 0;
  rc = pack_with(L, 1, &sc->sbuf, sc, lua_topointer(L, lua_upvalueindex(2)),
                 lua_topointer(L, lua_upvalueindex(3)), err, sizeof err);
  if (rc) return luaL_error(L, "copycat.codec.encode: %s", err);
  lua_pushlstring(L, sc->sbuf.data, sc->sbuf.size);
  if (sc->sbuf.alloc > SCRATCH_KEEP) {
    msgpack_sbuffer_destroy(&sc->sbuf);
    msgpack_sbuffer_init(&sc->sbuf);
  }
  return 1;
}

/* decode(bytes) -> value. The whole of bytes (a string or a view) must be
** exactly one value. */
static int l_decode(lua_State *L) {
  char err[CODEC_ERRLEN];
  size_t len, used;
  const char *s;
  int rc;
  s = codec_bytes(L, 1, &len, "copycat.codec.decode");
  rc = codec_unpack(L, s, len, &used, err, sizeof err);
  if (rc) return luaL_error(L, "copycat.codec.decode: %s", err);
  if (used != len) {
    snprintf(err, sizeof err,
             "trailing bytes: the value ends at offset %zu but the input "
             "has %zu bytes",
             used, len);
    return luaL_error(L, "copycat.codec.decode: %s", err);
  }
  return 1;
}

/* header(bytes) -> string: what encode writes before the bytes of a string
** holding these bytes (a str header if they are UTF-8, else a bin header),
** so that header(s) .. s == encode(s) without building the encoding of a
** large s. */
static int l_header(lua_State *L) {
  size_t len;
  const char *s = codec_bytes(L, 1, &len, "copycat.codec.header");
  unsigned char h[5];
  size_t n;
  int str;
  if (len > UINT32_MAX)
    return luaL_error(L,
                      "copycat.codec.header: a string of %I bytes is longer "
                      "than msgpack allows",
                      (LUAI_UACINT)len);
  str = utf8_valid((const unsigned char *)s, len);
  /* The forms msgpack_pack_str / msgpack_pack_bin choose (smallest). */
  if (str && len < 32) {
    h[0] = (unsigned char)(0xa0 | len), n = 1;
  } else if (len < 256) {
    h[0] = str ? 0xd9 : 0xc4, h[1] = (unsigned char)len, n = 2;
  } else if (len < 65536) {
    h[0] = str ? 0xda : 0xc5, n = 3;
    h[1] = (unsigned char)(len >> 8), h[2] = (unsigned char)len;
  } else {
    h[0] = str ? 0xdb : 0xc6, n = 5;
    h[1] = (unsigned char)(len >> 24), h[2] = (unsigned char)(len >> 16);
    h[3] = (unsigned char)(len >> 8), h[4] = (unsigned char)len;
  }
  lua_pushlstring(L, (const char *)h, n);
  return 1;
}

/* array([t]) / map([t]): mark t (or a new table) and return it. */
static int mark(lua_State *L, int mtidx) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  } else {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(mtidx));
  lua_setmetatable(L, 1);
  return 1;
}

static int l_array(lua_State *L) {
  return mark(L, 1);
}

static int l_map(lua_State *L) {
  return mark(L, 2);
}

static int is_marked(lua_State *L, int mtidx) {
  int yes = 0;
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
    yes = lua_rawequal(L, -1, lua_upvalueindex(mtidx));
    lua_pop(L, 1);
  }
  lua_pushboolean(L, yes);
  return 1;
}

static int l_is_array(lua_State *L) {
  return is_marked(L, 1);
}

static int l_is_map(lua_State *L) {
  return is_marked(L, 2);
}

int codec_open(lua_State *L) {
  lua_createtable(L, 0, 8);
  /* encode: scratch, array mt, map mt */
  scratch_push(L);
  marker_push(L, CODEC_ARRAY_MT);
  marker_push(L, CODEC_MAP_MT);
  lua_pushcclosure(L, l_encode, 3);
  lua_setfield(L, -2, "encode");
  lua_pushcfunction(L, l_decode);
  lua_setfield(L, -2, "decode");
  lua_pushcfunction(L, l_header);
  lua_setfield(L, -2, "header");
  codec_view_open(L);
  {
    static const struct {
      const char *name;
      lua_CFunction fn;
    } marked[] = {{"array", l_array},
                  {"map", l_map},
                  {"is_array", l_is_array},
                  {"is_map", l_is_map}};
    size_t i;
    for (i = 0; i < sizeof marked / sizeof marked[0]; i++) {
      marker_push(L, CODEC_ARRAY_MT);
      marker_push(L, CODEC_MAP_MT);
      lua_pushcclosure(L, marked[i].fn, 2);
      lua_setfield(L, -2, marked[i].name);
    }
  }
  lua_pushinteger(L, CODEC_MAX_DEPTH);
  lua_setfield(L, -2, "MAX_DEPTH");
  return 1;
}

int luaopen_copycat_codec(lua_State *L) {
  return codec_open(L);
}
