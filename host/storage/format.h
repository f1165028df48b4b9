/*
 * format.h — the on-disk format (docs/storage-format.md is the reference):
 * little-endian integers, fixed magic strings, CRC32C everywhere.
 *
 * Segment file "segment-<first index, 20 digits>":
 *   header (32 bytes)  magic "CCLOGSEG" | u32 version | u32 header size |
 *                      u64 first index | u32 reserved (0) | u32 crc32c(0..28)
 *   records, each starting at a multiple of 8, then zeros to the end.
 * Record (32-byte header, payload padded with zeros to 8, 8-byte end mark):
 *   u32 hcrc = crc32c(bytes 4..32) | u16 magic 0xC3A5 | u8 type | u8 0 |
 *   u32 payload length | u32 pcrc = crc32c(payload) | u64 index | u64 term |
 *   payload | zero padding | "CCRECEND"
 * Seal (ends a segment that the log continues after; 40 bytes):
 *   u32 hcrc | u16 magic 0xC35E | u8 0 | u8 0 | u32 0 | u32 0 |
 *   u64 index of the next segment's first entry | u64 0 | "CCRECEND"
 */
#ifndef COPYCAT_STORAGE_FORMAT_H
#define COPYCAT_STORAGE_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FORMAT_VERSION 1

#define SEG_MAGIC "CCLOGSEG"
#define SEG_HEADER_SIZE 32
#define SEG_PREFIX "segment-"

#define REC_MAGIC 0xC3A5u
#define SEAL_MAGIC 0xC35Eu
#define SEAL_SIZE 40
#define REC_HEADER_SIZE 32
#define REC_END_MARK "CCRECEND" /* every byte has >= 2 bits set */
#define REC_END_SIZE 8
/* Largest payload accepted: bounded so that sizes fit comfortably in u32
 * arithmetic and a corrupt length cannot make us allocate gigabytes. */
#define REC_MAX_PAYLOAD (256u * 1024 * 1024)

/* Little-endian stores and loads. On a little-endian host each is one
 * unaligned move (memcpy of a fixed size compiles to it); elsewhere bytes
 * are assembled one by one. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FORMAT_NATIVE_LE 1
#else
#define FORMAT_NATIVE_LE 0
#endif

static inline void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void put_u32(uint8_t *p, uint32_t v) {
  if (FORMAT_NATIVE_LE) {
    memcpy(p, &v, 4);
    return;
  }
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_u64(uint8_t *p, uint64_t v) {
  if (FORMAT_NATIVE_LE) {
    memcpy(p, &v, 8);
    return;
  }
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t get_u16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t get_u32(const uint8_t *p) {
  uint32_t v = 0;
  if (FORMAT_NATIVE_LE) {
    memcpy(&v, p, 4);
    return v;
  }
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}
static inline uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  if (FORMAT_NATIVE_LE) {
    memcpy(&v, p, 8);
    return v;
  }
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* Bytes a record with `len` bytes of payload takes on disk. */
static inline size_t rec_size(size_t len) {
  return REC_HEADER_SIZE + ((len + 7) & ~(size_t)7) + REC_END_SIZE;
}

/* Encode one record at `out` (rec_size(len) bytes). */
void rec_encode(uint8_t *out, uint64_t index, uint64_t term, uint8_t type,
                const void *payload, uint32_t len);

/* Encode the seal closing a segment whose successor starts at `next`. */
void seal_encode(uint8_t out[SEAL_SIZE], uint64_t next);

/* Encode a segment header for a segment whose first entry is `first`. */
void seg_header_encode(uint8_t out[SEG_HEADER_SIZE], uint64_t first);

/* The file name of the segment starting at `first` ("segment-000..17"). */
void seg_name(char *out, size_t size, uint64_t first);

/* Parse a segment file name; 1 and *first on success, 0 if not one. */
int seg_parse_name(const char *name, uint64_t *first);

/* Called by seg_scan for each valid record, in order; a non-zero return
 * stops the scan and is returned by seg_scan. */
typedef int (*seg_record_fn)(void *ud, uint64_t index, uint64_t term,
                             uint8_t type, const uint8_t *payload, uint32_t len,
                             uint64_t offset);

struct seg_scan {
  uint64_t first;     /* first index, from the header */
  uint64_t last;      /* index of the last valid record (first-1: none) */
  uint64_t last_term; /* its term (prev_term when there is none) */
  size_t end;         /* offset just after the last valid record */
  int torn;           /* 1: bytes after `end` are a torn write to cut */
  int sealed;         /* 1: a seal follows the last record: the log goes
                         on in a segment starting at last + 1 */
};

/*
 * Check the segment image buf[0..size) (the whole file) read from `path`.
 * Records must be valid, indices consecutive from the header's first index,
 * terms non-decreasing from `prev_term`.
 *
 * The first record that is not valid ends the scan. In the last segment
 * (is_last) it is treated as a torn write, and reported with out->torn = 1,
 * only when the evidence fits one: nothing but zeros follows a point inside
 * that record (a write cut short leaves the rest of the preallocated file
 * zero). A complete record with a bad checksum, or any data after the bad
 * one, is corruption: STORE_ECORRUPT with a message naming path and offset.
 * In other segments anything but a clean end (zeros) is corruption.
 * A valid seal after the last record sets out->sealed; only zeros may
 * follow it.
 * Returns 0, STORE_ECORRUPT, STORE_EVERSION, or the callback's value.
 */
int seg_scan(const uint8_t *buf, size_t size, const char *path, int is_last,
             uint64_t prev_term, struct seg_scan *out, seg_record_fn fn,
             void *ud, char *err);

#endif
