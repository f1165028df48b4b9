/*
 * convert.c — JSON (jansson) to msgpack and back, for command arguments
 * and results. Pure: no I/O, no state.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/gw_int.h"

#define MAX_DEPTH 64

static void pack_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

void gw_pack_json(msgpack_packer *pk, const json_t *j) {
  switch (json_typeof(j)) {
    case JSON_OBJECT: {
      const char *k;
      json_t *v;
      msgpack_pack_map(pk, json_object_size(j));
      json_object_foreach((json_t *)(uintptr_t)j, k, v) {
        pack_str(pk, k, strlen(k));
        gw_pack_json(pk, v);
      }
      break;
    }
    case JSON_ARRAY: {
      size_t i;
      json_t *v;
      msgpack_pack_array(pk, json_array_size(j));
      json_array_foreach(j, i, v) gw_pack_json(pk, v);
      break;
    }
    case JSON_STRING:
      pack_str(pk, json_string_value(j), json_string_length(j));
      break;
    case JSON_INTEGER:
      msgpack_pack_int64(pk, json_integer_value(j));
      break;
    case JSON_REAL:
      msgpack_pack_double(pk, json_real_value(j));
      break;
    case JSON_TRUE:
      msgpack_pack_true(pk);
      break;
    case JSON_FALSE:
      msgpack_pack_false(pk);
      break;
    default:
      msgpack_pack_nil(pk);
      break;
  }
}

/* A string or binary: JSON text when it is UTF-8, else {"base64": ...}. */
static json_t *bytes(const char *p, size_t n) {
  json_t *s = json_stringn(p, n); /* NULL unless valid UTF-8 */
  if (s) return s;
  size_t cap = 4 * ((n + 2) / 3) + 1;
  unsigned char *b = malloc(cap);
  if (!b) return NULL;
  int len = EVP_EncodeBlock(b, (const unsigned char *)p, (int)n);
  json_t *o = json_pack("{s:s%}", "base64", (const char *)b, (size_t)len);
  free(b);
  return o;
}

static json_t *of(const msgpack_object *o, int depth) {
  if (depth > MAX_DEPTH) return NULL;
  switch (o->type) {
    case MSGPACK_OBJECT_NIL:
      return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
      return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      if (o->via.u64 > (uint64_t)INT64_MAX)
        return json_real((double)o->via.u64);
      return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
      double d = o->via.f64;
      if (d != d || d > 1.7976931348623157e308 || d < -1.7976931348623157e308)
        return json_null(); /* JSON has no NaN or infinities */
      return json_real(d);
    }
    case MSGPACK_OBJECT_STR:
      return bytes(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
      return bytes(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
      json_t *a = json_array();
      for (uint32_t i = 0; a && i < o->via.array.size; i++) {
        json_t *v = of(&o->via.array.ptr[i], depth + 1);
        if (!v || json_array_append_new(a, v) < 0) {
          json_decref(a);
          return NULL;
        }
      }
      return a;
    }
    case MSGPACK_OBJECT_MAP: {
      json_t *m = json_object();
      for (uint32_t i = 0; m && i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        char key[64];
        json_t *v = of(&o->via.map.ptr[i].val, depth + 1);
        if (!v) {
          json_decref(m);
          return NULL;
        }
        int rc;
        if (k->type == MSGPACK_OBJECT_STR) {
          rc = json_object_setn_new(m, k->via.str.ptr, k->via.str.size, v);
        } else if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
          snprintf(key, sizeof key, "%llu", (unsigned long long)k->via.u64);
          rc = json_object_set_new(m, key, v);
        } else if (k->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
          snprintf(key, sizeof key, "%lld", (long long)k->via.i64);
          rc = json_object_set_new(m, key, v);
        } else {
          json_t *kj = of(k, depth + 1);
          char *text =
              kj ? json_dumps(kj, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
          rc = text ? json_object_set_new(m, text, v) : -1;
          if (!text) json_decref(v);
          free(text);
          json_decref(kj);
        }
        if (rc < 0) {
          json_decref(m);
          return NULL;
        }
      }
      return m;
    }
    default:
      return json_null();
  }
}

json_t *gw_json_of(const msgpack_object *o) {
  return of(o, 0);
}
