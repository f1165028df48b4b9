/*
** codec.h - msgpack encoding and decoding of Lua values (copycat.codec).
**
** The full format contract is in docs/codec.md; in short:
**
**   nil, false, true      msgpack nil, false, true
**   integer               the smallest msgpack int form holding the value
**   float                 always float64, bit for bit (NaN payload, -0.0, inf)
**   string                str if valid UTF-8, otherwise bin (both decode to a
**                         Lua string, so every byte string round-trips)
**   table                 array or map, by this rule:
**     - marked with codec.array(t): array of length max(positive integer
**       key), holes encoded as nil; any other key is an error;
**     - marked with codec.map(t): map;
**     - otherwise: array if its keys are exactly 1..n with n >= 1, else map
**       (so an unmarked empty table is an empty map).
**   Map keys are written in canonical order: booleans (false < true), then
**   numbers (integers and floats together, numerically), then strings
**   (bytewise), so equal tables always encode to identical bytes whatever
**   their insertion history. Keys of other types are an error.
**
** Decoding is bounds-checked and never trusts a declared length: a count or
** length larger than the remaining input is rejected before anything is
** allocated. Empty arrays and arrays with nil elements decode to tables
** marked as arrays; non-empty maps whose keys are exactly 1..n decode to
** tables marked as maps; everything else decodes unmarked. Hence
** encode(decode(b)) == b for every b that encode can produce.
**
** Not representable (error): functions, userdata, threads, cycles, nesting
** deeper than CODEC_MAX_DEPTH tables, ext types, the byte 0xc1, uint64 values
** above math.maxinteger, map keys that are nil, NaN or tables, duplicate
** map keys, trailing bytes (Lua decode only).
*/
#ifndef COPYCAT_CODEC_H
#define COPYCAT_CODEC_H

#include <stddef.h>

#include <lua.h>
#include <msgpack.h>

/* Deepest nesting of tables (arrays/maps) that encode and decode accept. A
** scalar at the top level has depth 0; {} has depth 1; {{}} depth 2. */
#define CODEC_MAX_DEPTH 100

/* Registry names of the marker metatables (shared by every copy of the
** module loaded into one lua_State). */
#define CODEC_ARRAY_MT "copycat.codec.array"
#define CODEC_MAP_MT "copycat.codec.map"
/* Registry name of the metatable of views (codec_view.c). */
#define CODEC_VIEW_MT "copycat.codec.view"

/* Error codes (all negative). */
#define CODEC_ETYPE (-1)   /* value of a type that has no encoding */
#define CODEC_EDEPTH (-2)  /* nesting deeper than CODEC_MAX_DEPTH */
#define CODEC_ECYCLE (-3)  /* a table contains itself */
#define CODEC_EKEY (-4)    /* map key not representable / duplicate */
#define CODEC_ENOMEM (-5)  /* output buffer could not grow */
#define CODEC_ETRUNC (-6)  /* input ends before the value does */
#define CODEC_EFORMAT (-7) /* invalid, unsupported or out-of-range input */
#define CODEC_ETOOBIG (-8) /* string/array/map longer than msgpack allows */

/* Exact order of an integer and a float that is not NaN (-1, 0, 1): the
** rule canonical map keys and the sandbox's pairs order both follow. */
int codec_compare_int_float(lua_Integer i, lua_Number f);

/* Push the module table {encode, decode, array, map, is_array, is_map,
** MAX_DEPTH} onto L's stack and return 1. Creates the marker metatables in
** the registry if they do not exist yet. */
int codec_open(lua_State *L);

/* Also usable as a standalone Lua module (require "copycat.codec"). */
int luaopen_copycat_codec(lua_State *L);

/* Append the msgpack encoding of the value at stack index idx to *out.
** Returns 0 on success. On failure returns a negative CODEC_E* code, writes a
** NUL-terminated message naming the problem and the key path of the
** offending value (e.g. "cannot encode a function at value.a[2]") into
** err[0..errlen) when errlen > 0, and restores out->size to what it was.
** Never calls Lua code (metatables are ignored, access is raw); the stack is
** left as it was. Like any Lua API function it may raise a Lua memory error,
** so call it where such an error can propagate (inside a protected call or a
** C function called from Lua); the encoder keeps no C-heap state across
** that, only *out (the caller's) may have grown. */
int codec_pack(lua_State *L, int idx, msgpack_sbuffer *out, char *err,
               size_t errlen);

/* Decode ONE msgpack value from buf[0..len) and push it as a Lua value.
** On success returns 0, sets *used to the number of bytes consumed (bytes
** after the value are left for the caller, who decides whether they are an
** error) and has pushed exactly one value. On failure returns a negative
** CODEC_E* code, writes a message with the byte offset into err, pushes
** nothing and sets *used to 0. Never reads outside buf[0..len), never
** allocates more than a small multiple of len. May raise a Lua memory error
** like any Lua API function. */
int codec_unpack(lua_State *L, const char *buf, size_t len, size_t *used,
                 char *err, size_t errlen);

/* codec_unpack in a protected call, for callers outside any (libuv
** callbacks, the server's apply and query): a Lua memory error while
** decoding becomes CODEC_ENOMEM with a message instead of a panic. A small
** input can decode into a large value (about 72 bytes of Lua heap for
** each byte 0x90, an empty table), so bytes from a peer or a client can
** exhaust memory that their size alone would not. */
int codec_unpack_protected(lua_State *L, const char *buf, size_t len,
                           size_t *used, char *err, size_t errlen);

/* Views (codec_view.c): bytes lent to Lua without a copy. Push a view of
** p[0..len), which must stay valid and unchanged until codec_view_close is
** called on it (at stack index idx); from then on the view, and every view
** made from it, raises when used. */
void codec_view_push(lua_State *L, const void *p, size_t len);
void codec_view_close(lua_State *L, int idx);
/* The bytes of the string or open view at idx (length in *len), or NULL
** for anything else or a closed view. Never raises. */
const char *codec_tobytes(lua_State *L, int idx, size_t *len);
/* codec_tobytes, raising an error that names fn instead of returning NULL. */
const char *codec_bytes(lua_State *L, int idx, size_t *len, const char *fn);
/* Add split and payload to the module table on top of L's stack. */
void codec_view_open(lua_State *L);
#endif
