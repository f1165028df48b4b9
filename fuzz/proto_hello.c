/*
 * proto_hello.c — fuzzes proto_decode_hello, the first frame of every
 * connection (peer or client), read before anything is known about the
 * other side. A hello that decodes must encode back to the same hello.
 */
#include <string.h>

#include "fuzz.h"
#include "protocol/protocol.h"

const char fuzz_target_name[] = "proto_hello";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct proto_hello h, h2;
  char err[256];
  err[0] = '\0';
  int rc = proto_decode_hello(data, size, &h, err, sizeof err);
  if (rc != 0) {
    FUZZ_CHECK(rc == PROTO_EFORMAT || rc == PROTO_EVERSION);
    FUZZ_CHECK(err[0] != '\0');
    return 0;
  }
  FUZZ_CHECK(h.version == PROTO_VERSION);
  FUZZ_CHECK(h.role == PROTO_SERVER || h.role == PROTO_CLIENT);
  FUZZ_CHECK(memchr(h.cluster, '\0', sizeof h.cluster) != NULL);
  FUZZ_CHECK(memchr(h.name, '\0', sizeof h.name) != NULL);
  FUZZ_CHECK(memchr(h.address, '\0', sizeof h.address) != NULL);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  FUZZ_CHECK(proto_encode_hello(&sb, &h) == 0);
  FUZZ_CHECK(proto_decode_hello(sb.data, sb.size, &h2, err, sizeof err) == 0);
  FUZZ_CHECK(h2.version == h.version && h2.role == h.role &&
             strcmp(h2.cluster, h.cluster) == 0 &&
             strcmp(h2.name, h.name) == 0 &&
             strcmp(h2.address, h.address) == 0);
  msgpack_sbuffer_destroy(&sb);
  return 0;
}

static void add_hello(fuzz_add_fn add, void *ud, uint64_t version,
                      const char *cluster, int role, const char *name,
                      const char *address) {
  struct proto_hello h;
  memset(&h, 0, sizeof h);
  h.version = version;
  h.role = role;
  strcpy(h.cluster, cluster);
  strcpy(h.name, name);
  strcpy(h.address, address);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  proto_encode_hello(&sb, &h);
  add(ud, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  add_hello(add, ud, PROTO_VERSION, "kv", PROTO_SERVER, "alpha",
            "127.0.0.1:7001");
  add_hello(add, ud, PROTO_VERSION, "kv", PROTO_CLIENT, "", "");
  add_hello(add, ud, PROTO_VERSION, "a-cluster-with-a-longer-name",
            PROTO_SERVER, "server-with-a-long-name-0123456789",
            "[2001:db8::1]:65535");
  add_hello(add, ud, 2, "kv", PROTO_SERVER, "alpha", "127.0.0.1:7001");
}
