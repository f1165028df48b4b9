/* Frame reader and address parsing (host/transport/frame.c). */
#include <string.h>

#include "harness.h"
#include "transport/net.h"

/* Builds a stream of frames "a", "", "hello world" (with prefixes). */
static size_t sample_stream(char *out) {
  const char *bodies[] = {"a", "", "hello world"};
  size_t n = 0;
  for (int i = 0; i < 3; i++) {
    size_t len = strlen(bodies[i]);
    net_put_prefix(out + n, (uint32_t)len);
    memcpy(out + n + 4, bodies[i], len);
    n += 4 + len;
  }
  return n;
}

static int collect(struct net_reader *r, char out[][32], int *count) {
  const char *f;
  size_t len;
  int rc;
  while ((rc = net_reader_next(r, &f, &len)) == 1) {
    memcpy(out[*count], f, len);
    out[*count][len] = '\0';
    (*count)++;
  }
  return rc;
}

static void check_sample(char got[][32], int count) {
  CHECK_INT(count, ==, 3);
  CHECK(strcmp(got[0], "a") == 0);
  CHECK(strcmp(got[1], "") == 0);
  CHECK(strcmp(got[2], "hello world") == 0);
}

TEST(frames_split_at_every_offset_decode_the_same) {
  char stream[64];
  size_t n = sample_stream(stream);
  for (size_t cut = 0; cut <= n; cut++) {
    struct net_reader r;
    net_reader_init(&r, 1024);
    char got[3][32];
    int count = 0;
    CHECK_INT(net_reader_feed(&r, stream, cut), ==, 0);
    CHECK_INT(collect(&r, got, &count), ==, 0);
    CHECK_INT(net_reader_feed(&r, stream + cut, n - cut), ==, 0);
    CHECK_INT(collect(&r, got, &count), ==, 0);
    check_sample(got, count);
    net_reader_free(&r);
  }
}

TEST(frames_fed_byte_by_byte_decode_the_same) {
  char stream[64];
  size_t n = sample_stream(stream);
  struct net_reader r;
  net_reader_init(&r, 1024);
  char got[3][32];
  int count = 0;
  for (size_t i = 0; i < n; i++) {
    CHECK_INT(net_reader_feed(&r, stream + i, 1), ==, 0);
    CHECK_INT(collect(&r, got, &count), ==, 0);
  }
  check_sample(got, count);
  net_reader_free(&r);
}

TEST(frame_of_exactly_the_limit_is_accepted) {
  static char stream[4 + 100];
  net_put_prefix(stream, 100);
  memset(stream + 4, 'x', 100);
  struct net_reader r;
  net_reader_init(&r, 100);
  CHECK_INT(net_reader_feed(&r, stream, sizeof stream), ==, 0);
  const char *f;
  size_t len;
  CHECK_INT(net_reader_next(&r, &f, &len), ==, 1);
  CHECK_INT(len, ==, 100);
  net_reader_free(&r);
}

TEST(frame_over_the_limit_is_refused_from_its_prefix_alone) {
  char prefix[4];
  net_put_prefix(prefix, 101);
  struct net_reader r;
  net_reader_init(&r, 100);
  CHECK_INT(net_reader_feed(&r, prefix, 4), ==, 0);
  CHECK(net_reader_ready(&r));
  const char *f;
  size_t len;
  CHECK_INT(net_reader_next(&r, &f, &len), ==, NET_ETOOBIG);
  net_reader_free(&r);
}

TEST(four_gib_prefix_is_refused_without_allocating) {
  const char prefix[4] = {(char)0xff, (char)0xff, (char)0xff, (char)0xff};
  struct net_reader r;
  net_reader_init(&r, 0); /* default limit */
  CHECK_INT(net_reader_feed(&r, prefix, 4), ==, 0);
  const char *f;
  size_t len;
  CHECK_INT(net_reader_next(&r, &f, &len), ==, NET_ETOOBIG);
  CHECK_INT(r.cap, <=, 4096);
  net_reader_free(&r);
}

TEST(incomplete_prefix_waits_for_more) {
  struct net_reader r;
  net_reader_init(&r, 100);
  CHECK_INT(net_reader_feed(&r, "\0\0", 2), ==, 0);
  CHECK(!net_reader_ready(&r));
  const char *f;
  size_t len;
  CHECK_INT(net_reader_next(&r, &f, &len), ==, 0);
  net_reader_free(&r);
}

TEST(addresses_split_into_host_and_port) {
  char host[64];
  int port;
  CHECK_INT(net_split_address("127.0.0.1:5001", host, sizeof host, &port), ==,
            0);
  CHECK(strcmp(host, "127.0.0.1") == 0);
  CHECK_INT(port, ==, 5001);
  CHECK_INT(net_split_address("[::1]:80", host, sizeof host, &port), ==, 0);
  CHECK(strcmp(host, "::1") == 0);
  CHECK_INT(port, ==, 80);
  CHECK_INT(net_split_address("localhost:0", host, sizeof host, &port), ==, 0);
  CHECK_INT(port, ==, 0);
}

TEST(malformed_addresses_are_refused) {
  char host[64];
  int port;
  const char *bad[] = {"",           "5001",      "host:",     ":5001",
                       "host:70000", "host:-1",   "host:12ab", "[::1]5001",
                       "::1:5001",   "[::1:5001", "h:1:2"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_INT(net_split_address(bad[i], host, sizeof host, &port), ==,
              NET_EADDR);
  char small[4];
  CHECK_INT(net_split_address("127.0.0.1:1", small, sizeof small, &port), ==,
            NET_EADDR);
}

int main(void) {
  RUN(frames_split_at_every_offset_decode_the_same);
  RUN(frames_fed_byte_by_byte_decode_the_same);
  RUN(frame_of_exactly_the_limit_is_accepted);
  RUN(frame_over_the_limit_is_refused_from_its_prefix_alone);
  RUN(four_gib_prefix_is_refused_without_allocating);
  RUN(incomplete_prefix_waits_for_more);
  RUN(addresses_split_into_host_and_port);
  RUN(malformed_addresses_are_refused);
  return harness_done();
}
