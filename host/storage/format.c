/*
 * format.c — encoding of segment headers and log records, and the scan that
 * checks a segment file at start-up and tells a torn tail from corruption.
 */
#include "storage/format.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/crc32c.h"
#include "storage/error.h"

/* What the operator can do about a damaged file. */
#define REMEDY_CORRUPT                                                    \
  "This server's log cannot be trusted: restore the data directory from " \
  "a backup, or move it away and let the server rejoin the cluster to "   \
  "receive the log again from the other members."

const char *store_strerror(int code) {
  switch (code) {
    case STORE_OK:
      return "ok";
    case STORE_EIO:
      return "I/O error";
    case STORE_ENOSPC:
      return "no space left on device";
    case STORE_ECORRUPT:
      return "corrupt data";
    case STORE_EVERSION:
      return "unknown format version";
    case STORE_EMISSING:
      return "missing file";
    case STORE_ELOCKED:
      return "data directory in use";
    case STORE_EFAILED:
      return "store stopped after a write error";
    case STORE_EINVAL:
      return "invalid argument";
    case STORE_ENOMEM:
      return "out of memory";
    case STORE_ECLOSED:
      return "store closed";
    case STORE_ERANGE:
      return "entries not in the log";
  }
  return "unknown error";
}

void store_errf(char *err, const char *fmt, ...) {
  if (!err) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, STORE_ERR_MAX, fmt, ap);
  va_end(ap);
}

int store_errno_code(int errnum) {
  if (errnum == ENOSPC || errnum == EDQUOT) return STORE_ENOSPC;
  if (errnum == ENOMEM) return STORE_ENOMEM;
  return STORE_EIO;
}

void rec_encode(uint8_t *out, uint64_t index, uint64_t term, uint8_t type,
                const void *payload, uint32_t len) {
  size_t padded = (len + 7) & ~(size_t)7;
  assert(index > 0 && len <= REC_MAX_PAYLOAD);
  put_u16(out + 4, REC_MAGIC);
  out[6] = type;
  out[7] = 0;
  put_u32(out + 8, len);
  put_u32(out + 12, crc32c(0, payload, len));
  put_u64(out + 16, index);
  put_u64(out + 24, term);
  put_u32(out, crc32c(0, out + 4, REC_HEADER_SIZE - 4));
  if (len) memcpy(out + REC_HEADER_SIZE, payload, len);
  if (padded > len) memset(out + REC_HEADER_SIZE + len, 0, padded - len);
  memcpy(out + REC_HEADER_SIZE + padded, REC_END_MARK, REC_END_SIZE);
}

void seal_encode(uint8_t out[SEAL_SIZE], uint64_t next) {
  memset(out, 0, SEAL_SIZE);
  put_u16(out + 4, SEAL_MAGIC);
  put_u64(out + 16, next);
  put_u32(out, crc32c(0, out + 4, REC_HEADER_SIZE - 4));
  memcpy(out + REC_HEADER_SIZE, REC_END_MARK, REC_END_SIZE);
}

void seg_header_encode(uint8_t out[SEG_HEADER_SIZE], uint64_t first) {
  memcpy(out, SEG_MAGIC, 8);
  put_u32(out + 8, FORMAT_VERSION);
  put_u32(out + 12, SEG_HEADER_SIZE);
  put_u64(out + 16, first);
  put_u32(out + 24, 0);
  put_u32(out + 28, crc32c(0, out, 28));
}

void seg_name(char *out, size_t size, uint64_t first) {
  snprintf(out, size, SEG_PREFIX "%020" PRIu64, first);
}

int seg_parse_name(const char *name, uint64_t *first) {
  size_t plen = strlen(SEG_PREFIX);
  if (strncmp(name, SEG_PREFIX, plen) != 0) return 0;
  const char *d = name + plen;
  if (strlen(d) != 20) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 20; i++) {
    if (d[i] < '0' || d[i] > '9') return 0;
    v = v * 10 + (uint64_t)(d[i] - '0');
  }
  *first = v;
  return 1;
}

/* Offset just after the last non-zero byte of buf[from..size), or `from`
 * when all of it is zero. */
static size_t data_end(const uint8_t *buf, size_t from, size_t size) {
  size_t z = size;
  while (z > from && buf[z - 1] == 0)
    z--;
  return z;
}

static int all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

static int corrupt(char *err, const char *path, size_t off, const char *what) {
  store_errf(err, "%s: %s at offset %zu. %s", path, what, off, REMEDY_CORRUPT);
  return STORE_ECORRUPT;
}

static int check_header(const uint8_t *buf, size_t size, const char *path,
                        uint64_t *first, char *err) {
  if (size < SEG_HEADER_SIZE)
    return corrupt(err, path, size, "file shorter than its 32-byte header");
  if (memcmp(buf, SEG_MAGIC, 8) != 0)
    return corrupt(err, path, 0, "not a log segment (bad magic)");
  if (get_u32(buf + 28) != crc32c(0, buf, 28))
    return corrupt(err, path, 0, "segment header checksum mismatch");
  uint32_t version = get_u32(buf + 8);
  if (version != FORMAT_VERSION) {
    store_errf(err,
               "%s: segment format version %u at offset 8, this program "
               "reads version %d. Run the copycat-lua release that wrote "
               "this data directory, or move the directory away.",
               path, version, FORMAT_VERSION);
    return STORE_EVERSION;
  }
  *first = get_u64(buf + 16);
  if (get_u32(buf + 12) != SEG_HEADER_SIZE || *first == 0)
    return corrupt(err, path, 12, "impossible segment header fields");
  return 0;
}

int seg_scan(const uint8_t *buf, size_t size, const char *path, int is_last,
             uint64_t prev_term, struct seg_scan *out, seg_record_fn fn,
             void *ud, char *err) {
  uint64_t first = 0;
  int rc = check_header(buf, size, path, &first, err);
  if (rc) return rc;
  out->first = first;
  out->last = first - 1;
  out->last_term = prev_term;
  out->torn = 0;
  out->sealed = 0;
  size_t pos = SEG_HEADER_SIZE;
  for (;;) {
    out->end = pos;
    if (pos >= size) return 0;
    const uint8_t *h = buf + pos;
    size_t left = size - pos;
    size_t hlen = left < REC_HEADER_SIZE ? left : REC_HEADER_SIZE;
    size_t z; /* end of non-zero data from pos */
    if (all_zero(h, hlen)) {
      /* The normal end: the rest of the preallocated file is zero. */
      z = data_end(buf, pos, size);
      if (z == pos) return 0;
      if (!is_last)
        return corrupt(err, path, pos, "unexpected data after the last record");
      out->torn = 1;
      return 0;
    }
    int hcrc_ok = hlen == REC_HEADER_SIZE &&
                  get_u32(h) == crc32c(0, h + 4, REC_HEADER_SIZE - 4);
    if (hcrc_ok && get_u16(h + 4) == SEAL_MAGIC) {
      /* A seal: written once the next segment exists. */
      static const uint8_t zero[24] = {0};
      if (get_u64(h + 16) != out->last + 1 || memcmp(h + 6, zero, 10) != 0 ||
          get_u64(h + 24) != 0)
        return corrupt(err, path, pos, "seal with impossible fields");
      if (SEAL_SIZE <= left &&
          memcmp(h + REC_HEADER_SIZE, REC_END_MARK, REC_END_SIZE) == 0) {
        if (data_end(buf, pos + SEAL_SIZE, size) > pos + SEAL_SIZE)
          return corrupt(err, path, pos + SEAL_SIZE,
                         "data after the segment's seal");
        out->sealed = 1;
        return 0;
      }
      /* A seal cut short can only be the last thing written. */
      if (is_last && data_end(buf, pos, size) < pos + SEAL_SIZE) {
        out->torn = 1;
        return 0;
      }
      return corrupt(err, path, pos, "damaged seal");
    }
    int header_ok = hlen == REC_HEADER_SIZE &&
                    get_u32(h) == crc32c(0, h + 4, REC_HEADER_SIZE - 4) &&
                    get_u16(h + 4) == REC_MAGIC && h[7] == 0 &&
                    get_u32(h + 8) <= REC_MAX_PAYLOAD;
    size_t full = 0;
    if (header_ok) {
      uint32_t len = get_u32(h + 8);
      uint64_t index = get_u64(h + 16), term = get_u64(h + 24);
      full = rec_size(len);
      /* A header whose checksum holds was written whole: wrong contents
       * there are damage, never a torn write. */
      if (index != out->last + 1) {
        char what[128];
        snprintf(what, sizeof what,
                 "record holds index %" PRIu64 " where %" PRIu64
                 " was expected",
                 index, out->last + 1);
        return corrupt(err, path, pos, what);
      }
      if (term < out->last_term)
        return corrupt(err, path, pos, "record term goes backwards");
      size_t padded = (len + 7) & ~(size_t)7;
      if (full <= left &&
          get_u32(h + 12) == crc32c(0, h + REC_HEADER_SIZE, len) &&
          all_zero(h + REC_HEADER_SIZE + len, padded - len) &&
          memcmp(h + REC_HEADER_SIZE + padded, REC_END_MARK, REC_END_SIZE) ==
              0) {
        if (fn) {
          rc = fn(ud, index, term, h[6], h + REC_HEADER_SIZE, len, pos);
          if (rc) return rc;
        }
        out->last = index;
        out->last_term = term;
        pos += full;
        continue;
      }
    }
    /* An invalid record at pos. */
    if (!is_last)
      return corrupt(err, path, pos, "damaged record (checksum mismatch)");
    z = data_end(buf, pos, size);
    size_t limit = header_ok ? pos + full : pos + REC_HEADER_SIZE;
    if (z < limit) {
      /* Zeros (or the end of the file) from a point inside this record on:
       * what a write cut short by a crash leaves. */
      out->torn = 1;
      return 0;
    }
    return corrupt(err, path, pos,
                   header_ok ? "complete record with a payload checksum "
                               "mismatch"
                             : "damaged record header followed by more data");
  }
}
