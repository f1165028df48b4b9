/*
 * raft_conf.c — fuzzes raft_conf_decode: configurations arrive from peers
 * inside snapshot messages and RAFT_CONFIG entries, and from disk in the
 * metadata and snapshot files. The encoding is canonical, so a
 * configuration that decodes must encode to exactly the input.
 */
#include <string.h>

#include "fuzz.h"
#include "raft/raft.h"

const char fuzz_target_name[] = "raft_conf";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct raft_conf c;
  int rc = raft_conf_decode(&c, data, size);
  if (rc != 0) {
    FUZZ_CHECK(rc == RAFT_EINVAL);
    return 0;
  }
  FUZZ_CHECK(c.n <= RAFT_MAX_MEMBERS);
  for (unsigned i = 0; i < c.n; i++) {
    FUZZ_CHECK(c.m[i].name[0] != '\0');
    FUZZ_CHECK(raft_conf_find(&c, c.m[i].name) == (int)i);
  }
  struct raft_buf *b = raft_conf_encode(&c);
  FUZZ_CHECK(b != NULL);
  FUZZ_CHECK(b->len == size && memcmp(b->data, data, size) == 0);
  raft_buf_unref(b);
  return 0;
}

static void add_conf(fuzz_add_fn add, void *ud, const struct raft_conf *c) {
  struct raft_buf *b = raft_conf_encode(c);
  if (b) add(ud, b->data, b->len);
  raft_buf_unref(b);
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  struct raft_conf c;
  memset(&c, 0, sizeof c);
  add_conf(add, ud, &c);
  raft_conf_add(&c, "alpha", "127.0.0.1:7001", RAFT_ACTIVE);
  add_conf(add, ud, &c);
  raft_conf_add(&c, "bravo", "", RAFT_PASSIVE);
  raft_conf_add(&c, "charlie", "[::1]:7003", RAFT_RESERVE);
  add_conf(add, ud, &c);
  memset(&c, 0, sizeof c);
  for (int i = 0; i < RAFT_MAX_MEMBERS; i++) {
    char name[RAFT_NAME_MAX], addr[RAFT_ADDR_MAX];
    snprintf(name, sizeof name, "member-%02d-%0*d", i, 40, i);
    snprintf(addr, sizeof addr, "host-%02d.example:%d", i, 7000 + i);
    raft_conf_add(&c, name, addr, RAFT_ACTIVE + i % 3);
  }
  add_conf(add, ud, &c);
}
