/*
 * mp.c — the bounds-checked msgpack reader (see mp.h).
 */
#include <string.h>

#include "mp.h"

void mp_reader_init(struct mp_reader *r, const void *data, size_t len) {
  r->p = data;
  r->end = r->p + len;
}

size_t mp_left(const struct mp_reader *r) {
  return (size_t)(r->end - r->p);
}

static int need(struct mp_reader *r, size_t n) {
  return mp_left(r) >= n ? 0 : MP_ETRUNC;
}

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* Reads a header byte plus a big-endian size of `width` bytes. */
static int sized(struct mp_reader *r, int width, uint64_t *v) {
  if (need(r, 1 + (size_t)width) < 0) return MP_ETRUNC;
  *v = be(r->p + 1, width);
  r->p += 1 + width;
  return 0;
}

static int container(struct mp_reader *r, uint32_t *n, unsigned fix_base,
                     unsigned char c16, unsigned char c32, size_t per) {
  if (need(r, 1) < 0) return MP_ETRUNC;
  unsigned char b = r->p[0];
  uint64_t v;
  if ((b & 0xf0) == fix_base) {
    v = b & 0x0f;
    r->p++;
  } else if (b == c16) {
    if (sized(r, 2, &v) < 0) return MP_ETRUNC;
  } else if (b == c32) {
    if (sized(r, 4, &v) < 0) return MP_ETRUNC;
  } else {
    return MP_EFORMAT;
  }
  if (v > mp_left(r) / per) return MP_ETRUNC;
  *n = (uint32_t)v;
  return 0;
}

int mp_read_array(struct mp_reader *r, uint32_t *n) {
  return container(r, n, 0x90, 0xdc, 0xdd, 1);
}

int mp_read_map(struct mp_reader *r, uint32_t *n) {
  return container(r, n, 0x80, 0xde, 0xdf, 2);
}

int mp_read_uint(struct mp_reader *r, uint64_t *v) {
  if (need(r, 1) < 0) return MP_ETRUNC;
  unsigned char b = r->p[0];
  if (b <= 0x7f) {
    *v = b;
    r->p++;
    return 0;
  }
  int width;
  bool sign = false;
  switch (b) {
    case 0xcc:
      width = 1;
      break;
    case 0xcd:
      width = 2;
      break;
    case 0xce:
      width = 4;
      break;
    case 0xcf:
      width = 8;
      break;
    case 0xd0:
      width = 1;
      sign = true;
      break;
    case 0xd1:
      width = 2;
      sign = true;
      break;
    case 0xd2:
      width = 4;
      sign = true;
      break;
    case 0xd3:
      width = 8;
      sign = true;
      break;
    default:
      return MP_EFORMAT;
  }
  uint64_t x;
  if (sized(r, width, &x) < 0) return MP_ETRUNC;
  if (sign && (x >> (width * 8 - 1)) & 1) return MP_EFORMAT; /* negative */
  *v = x;
  return 0;
}

int mp_read_bool(struct mp_reader *r, bool *v) {
  if (need(r, 1) < 0) return MP_ETRUNC;
  if (r->p[0] != 0xc2 && r->p[0] != 0xc3) return MP_EFORMAT;
  *v = r->p[0] == 0xc3;
  r->p++;
  return 0;
}

int mp_read_bytes(struct mp_reader *r, const void **data, uint32_t *len) {
  if (need(r, 1) < 0) return MP_ETRUNC;
  unsigned char b = r->p[0];
  uint64_t n;
  if ((b & 0xe0) == 0xa0) {
    n = b & 0x1f;
    r->p++;
  } else if (b == 0xd9 || b == 0xc4) {
    if (sized(r, 1, &n) < 0) return MP_ETRUNC;
  } else if (b == 0xda || b == 0xc5) {
    if (sized(r, 2, &n) < 0) return MP_ETRUNC;
  } else if (b == 0xdb || b == 0xc6) {
    if (sized(r, 4, &n) < 0) return MP_ETRUNC;
  } else {
    return MP_EFORMAT;
  }
  if (n > mp_left(r)) return MP_ETRUNC;
  *data = r->p;
  *len = (uint32_t)n;
  r->p += n;
  return 0;
}

int mp_read_name(struct mp_reader *r, char *out, size_t max) {
  const void *data;
  uint32_t len;
  int rc = mp_read_bytes(r, &data, &len);
  if (rc < 0) return rc;
  if (len >= max || memchr(data, '\0', len)) return MP_EFORMAT;
  memcpy(out, data, len);
  out[len] = '\0';
  return 0;
}

int mp_read_nil(struct mp_reader *r) {
  if (need(r, 1) < 0 || r->p[0] != 0xc0) return 0;
  r->p++;
  return 1;
}

/* Bytes of payload after a header byte b, or -1 for containers (whose
 * element count goes to *count) and unknown bytes (*count = -1). */
static int skip_one(struct mp_reader *r, uint64_t *count) {
  unsigned char b = r->p[0];
  uint64_t v;
  *count = 0;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
    r->p++;
    return 0;
  }
  if ((b & 0xf0) == 0x80 || (b & 0xf0) == 0x90) {
    *count = (uint64_t)(b & 0x0f) * ((b & 0xf0) == 0x80 ? 2 : 1);
    r->p++;
    return 0;
  }
  if ((b & 0xe0) == 0xa0) {
    v = b & 0x1f;
    r->p++;
  } else {
    switch (b) {
      case 0xcc:
      case 0xd0:
        v = 1;
        r->p++;
        break;
      case 0xcd:
      case 0xd1:
        v = 2;
        r->p++;
        break;
      case 0xca:
      case 0xce:
      case 0xd2:
        v = 4;
        r->p++;
        break;
      case 0xcb:
      case 0xcf:
      case 0xd3:
        v = 8;
        r->p++;
        break;
      case 0xd9:
      case 0xc4:
        if (sized(r, 1, &v) < 0) return MP_ETRUNC;
        break;
      case 0xda:
      case 0xc5:
        if (sized(r, 2, &v) < 0) return MP_ETRUNC;
        break;
      case 0xdb:
      case 0xc6:
        if (sized(r, 4, &v) < 0) return MP_ETRUNC;
        break;
      case 0xdc:
        if (sized(r, 2, count) < 0) return MP_ETRUNC;
        return 0;
      case 0xdd:
        if (sized(r, 4, count) < 0) return MP_ETRUNC;
        return 0;
      case 0xde:
        if (sized(r, 2, count) < 0) return MP_ETRUNC;
        *count *= 2;
        return 0;
      case 0xdf:
        if (sized(r, 4, count) < 0) return MP_ETRUNC;
        *count *= 2;
        return 0;
      default:
        return MP_EFORMAT; /* ext types and 0xc1 */
    }
  }
  if (v > mp_left(r)) return MP_ETRUNC;
  r->p += v;
  return 0;
}

int mp_skip(struct mp_reader *r) {
  uint64_t todo[64];
  int depth = 0;
  todo[0] = 1;
  while (depth >= 0) {
    if (todo[depth] == 0) {
      depth--;
      continue;
    }
    todo[depth]--;
    if (need(r, 1) < 0) return MP_ETRUNC;
    uint64_t count;
    int rc = skip_one(r, &count);
    if (rc < 0) return rc;
    if (count > 0) {
      if (count > mp_left(r)) return MP_ETRUNC;
      if (++depth >= 64) return MP_EFORMAT;
      todo[depth] = count;
    }
  }
  return 0;
}
