/*
 * notice.c — fuzzes proto_decode_notice, the state hashes, divergence and
 * removal notices a peer sends beside Raft messages. A notice that decodes
 * must encode back to the same notice.
 */
#include <string.h>

#include "fuzz.h"
#include "protocol/protocol.h"

const char fuzz_target_name[] = "notice";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct proto_notice n, n2;
  char err[256];
  err[0] = '\0';
  int is = proto_is_notice(data, size);
  if (proto_decode_notice(data, size, &n, err, sizeof err) != 0) {
    FUZZ_CHECK(err[0] != '\0');
    return 0;
  }
  FUZZ_CHECK(is);
  FUZZ_CHECK(n.type >= PROTO_NOTICE_HASH && n.type <= PROTO_NOTICE_REMOVED);
  FUZZ_CHECK(n.from[0] && memchr(n.from, '\0', sizeof n.from) != NULL);
  FUZZ_CHECK(memchr(n.names, '\0', sizeof n.names) != NULL);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  FUZZ_CHECK(proto_encode_notice(&sb, &n) == 0);
  FUZZ_CHECK(proto_decode_notice(sb.data, sb.size, &n2, err, sizeof err) == 0);
  FUZZ_CHECK(n2.type == n.type && n2.index == n.index && n2.hash == n.hash &&
             n2.majority == n.majority && strcmp(n2.from, n.from) == 0 &&
             strcmp(n2.names, n.names) == 0);
  msgpack_sbuffer_destroy(&sb);
  return 0;
}

static void add_notice(fuzz_add_fn add, void *ud, int type, const char *from,
                       uint64_t index, uint64_t hash, uint64_t majority,
                       const char *names) {
  struct proto_notice n;
  memset(&n, 0, sizeof n);
  n.type = type;
  strcpy(n.from, from);
  n.index = index;
  n.hash = hash;
  n.majority = majority;
  strcpy(n.names, names);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  proto_encode_notice(&sb, &n);
  add(ud, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  add_notice(add, ud, PROTO_NOTICE_HASH, "n2", 10000, 0x0123456789abcdefu, 0,
             "");
  add_notice(add, ud, PROTO_NOTICE_DIVERGED, "n1", 20000, 7, UINT64_MAX,
             "n1,n2,a-member-with-a-longer-name");
  add_notice(add, ud, PROTO_NOTICE_REMOVED, "n1", 12, 0, 0, "");
}
