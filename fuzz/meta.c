/*
 * meta.c — fuzzes meta_decode, which reads the metadata file (term, vote,
 * configuration) at start-up (host/storage/meta.c).
 *
 * Input: one flags byte, then the file image. Flags bit 0: set the length
 * field and the trailing checksum to match the image first, so mutations
 * reach the field checks behind them. The decoder must return 0 with a
 * vote and configuration inside the image, or an error with a message.
 */
#include <string.h>

#include "fuzz.h"
#include "storage/crc32c.h"
#include "storage/error.h"
#include "storage/format.h"
#include "storage/meta.h"
#include "raft/raft.h"

const char fuzz_target_name[] = "meta";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t n = size - 1;
  uint8_t *img = malloc(n ? n : 1);
  FUZZ_CHECK(img != NULL);
  memcpy(img, data + 1, n);
  if ((data[0] & 1) && n >= META_HEADER_SIZE + 4) {
    put_u32(img + 12, (uint32_t)n);
    put_u32(img + n - 4, crc32c(0, img, n - 4));
  }
  struct store_meta m;
  char err[STORE_ERR_MAX];
  err[0] = '\0';
  int rc = meta_decode(img, n, "metadata-fuzz", &m, err);
  if (rc == 0) {
    size_t vlen = strlen(m.vote);
    FUZZ_CHECK(META_HEADER_SIZE + vlen + m.config_len + 4 == n);
    FUZZ_CHECK(memcmp(m.vote, img + META_HEADER_SIZE, vlen) == 0);
    if (m.config_len) fuzz_touch(m.config, m.config_len);
    /* What start-up does with the configuration bytes. */
    struct raft_conf c;
    if (m.config_len) (void)raft_conf_decode(&c, m.config, m.config_len);
    uint8_t *again;
    size_t alen;
    FUZZ_CHECK(meta_encode(&m, &again, &alen) == 0);
    FUZZ_CHECK(alen == n && memcmp(again, img, n) == 0);
    free(again);
    meta_free(&m);
  } else {
    FUZZ_CHECK(rc == STORE_ECORRUPT || rc == STORE_EVERSION ||
               rc == STORE_ENOMEM);
    FUZZ_CHECK(err[0] != '\0' || rc == STORE_ENOMEM);
  }
  free(img);
  return 0;
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  static const struct {
    uint64_t term;
    const char *vote;
    uint64_t ci;
    int conf;
  } seeds[] = {{0, "", 0, 0}, {7, "alpha", 0, 0}, {9, "bravo", 3, 1}};
  struct raft_conf c;
  memset(&c, 0, sizeof c);
  raft_conf_add(&c, "alpha", "127.0.0.1:7001", RAFT_ACTIVE);
  raft_conf_add(&c, "bravo", "", RAFT_PASSIVE);
  struct raft_buf *cb = raft_conf_encode(&c);
  for (size_t i = 0; cb && i < sizeof seeds / sizeof *seeds; i++) {
    struct store_meta m;
    if (meta_copy(&m, seeds[i].term, seeds[i].vote, seeds[i].ci,
                  seeds[i].conf ? cb->data : NULL,
                  seeds[i].conf ? cb->len : 0) != 0)
      continue;
    uint8_t *buf;
    size_t len;
    if (meta_encode(&m, &buf, &len) == 0) {
      uint8_t *b = malloc(len + 1);
      if (b) {
        b[0] = (uint8_t)(i & 1);
        memcpy(b + 1, buf, len);
        add(ud, b, len + 1);
        free(b);
      }
      free(buf);
    }
    meta_free(&m);
  }
  raft_buf_unref(cb);
}
