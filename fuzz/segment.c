/*
 * segment.c — fuzzes seg_scan, which checks every log segment file at
 * start-up (host/storage/format.c); a file may be torn or corrupt.
 *
 * Input: one flags byte, then the file image. Flags bit 0: recompute the
 * header's and each record's checksums first, so that mutations reach the
 * checks behind them; bit 1: scan as the last segment (torn tails allowed);
 * bits 2..7: the previous segment's last term. The scan must return 0 or a
 * store error with a message, report only records inside the image, and
 * end (out.end) inside the image.
 */
#include <string.h>

#include "fuzz.h"
#include "storage/crc32c.h"
#include "storage/error.h"
#include "storage/format.h"

const char fuzz_target_name[] = "segment";

struct seen {
  const uint8_t *buf;
  size_t size;
  uint64_t next;
};

static int on_record(void *ud, uint64_t index, uint64_t term, uint8_t type,
                     const uint8_t *payload, uint32_t len, uint64_t offset) {
  struct seen *s = ud;
  (void)term;
  (void)type;
  FUZZ_CHECK(index == s->next);
  FUZZ_CHECK(offset + REC_HEADER_SIZE + len <= s->size);
  FUZZ_CHECK(payload == s->buf + offset + REC_HEADER_SIZE);
  fuzz_touch(payload, len);
  s->next++;
  return 0;
}

static void fix_checksums(uint8_t *b, size_t size) {
  if (size < SEG_HEADER_SIZE) return;
  put_u32(b + 28, crc32c(0, b, 28));
  size_t pos = SEG_HEADER_SIZE;
  while (size - pos >= REC_HEADER_SIZE) {
    uint8_t *h = b + pos;
    uint16_t magic = get_u16(h + 4);
    if (magic == REC_MAGIC) {
      uint32_t len = get_u32(h + 8);
      if (len <= REC_MAX_PAYLOAD && rec_size(len) <= size - pos) {
        put_u32(h + 12, crc32c(0, h + REC_HEADER_SIZE, len));
        put_u32(h, crc32c(0, h + 4, REC_HEADER_SIZE - 4));
        pos += rec_size(len);
        continue;
      }
      put_u32(h, crc32c(0, h + 4, REC_HEADER_SIZE - 4));
      return;
    }
    if (magic == SEAL_MAGIC) put_u32(h, crc32c(0, h + 4, REC_HEADER_SIZE - 4));
    return;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t flags = data[0];
  size_t n = size - 1;
  uint8_t *img = malloc(n ? n : 1);
  FUZZ_CHECK(img != NULL);
  memcpy(img, data + 1, n);
  if (flags & 1) fix_checksums(img, n);
  struct seg_scan out;
  struct seen s = {img, n, 0};
  char err[STORE_ERR_MAX];
  err[0] = '\0';
  if (n >= SEG_HEADER_SIZE) s.next = get_u64(img + 16);
  int rc = seg_scan(img, n, "segment-fuzz", (flags >> 1) & 1, flags >> 2, &out,
                    on_record, &s, err);
  if (rc == 0) {
    FUZZ_CHECK(out.end <= n && out.end >= SEG_HEADER_SIZE);
    FUZZ_CHECK(out.last + 1 == s.next);
    FUZZ_CHECK(!(out.torn && out.sealed));
  } else {
    FUZZ_CHECK(rc == STORE_ECORRUPT || rc == STORE_EVERSION);
    FUZZ_CHECK(err[0] != '\0');
  }
  free(img);
  return 0;
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  static const char *const payloads[] = {"", "x", "\x93\x01\xa1\x63\xc0",
                                         "a payload of twenty-three"};
  uint8_t buf[1 + SEG_HEADER_SIZE + 4 * 80 + SEAL_SIZE + 64];
  for (int variant = 0; variant < 4; variant++) {
    size_t n = 0;
    buf[n++] = (uint8_t)(variant & 2); /* is_last for variants 2, 3 */
    seg_header_encode(buf + n, 5);
    n += SEG_HEADER_SIZE;
    for (int i = 0; i < 4; i++) {
      uint32_t len = (uint32_t)strlen(payloads[i]);
      rec_encode(buf + n, 5 + (uint64_t)i, 2 + (uint64_t)i / 2,
                 (uint8_t)(1 + i % 3), payloads[i], len);
      n += rec_size(len);
    }
    if (variant == 1) {
      seal_encode(buf + n, 9);
      n += SEAL_SIZE;
    }
    if (variant >= 2) { /* preallocated zeros after the records */
      memset(buf + n, 0, 64);
      n += 64;
    }
    if (variant == 3) n -= 64 + 20; /* torn inside the last record */
    add(ud, buf, n);
  }
}
