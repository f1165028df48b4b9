/*
 * frame.c — fuzzes the length-prefixed framing of host/transport (the
 * net_reader that splits every connection's byte stream into frames).
 *
 * Input: 2 bytes of max_frame (0: the default), 1 byte seeding how the
 * stream is cut into reads, then the stream. The stream is fed in chunks,
 * alternately through net_reader_feed and net_reader_space/commit (the way
 * a socket reads), frames are taken after every chunk, and the result must
 * equal a straightforward parse of the whole stream: the same frames in
 * order, then either a partial frame left over or NET_ETOOBIG exactly where
 * a declared length exceeds max_frame. net_reader_ready must agree with
 * net_reader_next.
 */
#include <string.h>

#include "fuzz.h"
#include "transport/net.h"

const char fuzz_target_name[] = "frame";

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  uint32_t max_frame = (uint32_t)data[0] << 8 | data[1];
  unsigned cut = data[2] | 1u;
  const uint8_t *s = data + 3;
  size_t len = size - 3;
  uint32_t limit = max_frame ? max_frame : NET_DEFAULT_MAX_FRAME;

  struct net_reader r;
  net_reader_init(&r, max_frame);
  size_t fed = 0, expect = 0; /* offset of the next expected frame */
  int too_big = 0, chunk_no = 0;
  while (fed < len && !too_big) {
    size_t n = 1 + (cut * 31u + (unsigned)chunk_no * 17u) % 23u;
    if (chunk_no % 7 == 6) n = len - fed; /* sometimes the rest at once */
    if (n > len - fed) n = len - fed;
    if (chunk_no++ % 2) {
      FUZZ_CHECK(net_reader_feed(&r, (const char *)s + fed, n) == 0);
    } else {
      size_t avail = 0;
      char *p = net_reader_space(&r, n, &avail);
      FUZZ_CHECK(p != NULL && avail >= n);
      memcpy(p, s + fed, n);
      net_reader_commit(&r, n);
    }
    fed += n;
    for (;;) {
      const char *f;
      size_t flen;
      int ready = net_reader_ready(&r);
      int rc = net_reader_next(&r, &f, &flen);
      FUZZ_CHECK(ready == (rc != 0));
      /* The reference parse of s[expect .. fed). */
      if (fed - expect < 4) {
        FUZZ_CHECK(rc == 0);
        break;
      }
      uint32_t want = be32(s + expect);
      if (want > limit) {
        FUZZ_CHECK(rc == NET_ETOOBIG);
        too_big = 1;
        break;
      }
      if (fed - expect - 4 < want) {
        FUZZ_CHECK(rc == 0);
        break;
      }
      FUZZ_CHECK(rc == 1 && flen == want);
      FUZZ_CHECK(memcmp(f, s + expect + 4, want) == 0);
      expect += 4 + (size_t)want;
    }
  }
  net_reader_free(&r);
  return 0;
}

static void add_stream(fuzz_add_fn add, void *ud, uint16_t max, uint8_t cut,
                       const char *const *bodies, size_t nb) {
  uint8_t buf[1024];
  size_t n = 0;
  buf[n++] = (uint8_t)(max >> 8);
  buf[n++] = (uint8_t)max;
  buf[n++] = cut;
  for (size_t i = 0; i < nb; i++) {
    size_t bl = strlen(bodies[i]);
    net_put_prefix((char *)buf + n, (uint32_t)bl);
    memcpy(buf + n + 4, bodies[i], bl);
    n += 4 + bl;
  }
  add(ud, buf, n);
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  static const char *const a[] = {"a", "", "hello world"};
  static const char *const b[] = {
      "\x96\xa7"
      "copycat\x01\xa2kv\xa6server\xa5"
      "alpha\xae"
      "127.0.0.1:7001",
      "\x94\x09\x07\xa5"
      "alpha\xa5"
      "bravo"};
  static const char *const c[] = {
      "0123456789012345678901234567890123456789012345678901234567890123"};
  add_stream(add, ud, 0, 1, a, 3);
  add_stream(add, ud, 100, 5, b, 2);
  add_stream(add, ud, 64, 9, c, 1);  /* exactly the limit */
  add_stream(add, ud, 63, 13, c, 1); /* one byte over */
}
