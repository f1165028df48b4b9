/*
 * http_test.c — the request-head parser of the metrics HTTP server:
 * complete, partial, malformed and oversized heads.
 */
#include "harness.h"
#include "metrics/http.h"

static int parse(const char *s, char *method, char *path) {
  return http_parse_head(s, strlen(s), method, 16, path, 64);
}

TEST(complete_requests) {
  char m[16], p[64];
  CHECK_INT(
      parse("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", m, p),
      ==, 0);
  CHECK(strcmp(m, "GET") == 0 && strcmp(p, "/metrics") == 0);
  CHECK_INT(parse("HEAD /metrics?x=1 HTTP/1.0\n\n", m, p), ==, 0);
  CHECK(strcmp(m, "HEAD") == 0 && strcmp(p, "/metrics") == 0);
  CHECK_INT(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", m, p), ==,
            0);
  CHECK(strcmp(m, "POST") == 0 && strcmp(p, "/") == 0);
}

TEST(partial_requests_wait) {
  char m[16], p[64];
  CHECK_INT(parse("", m, p), ==, 1);
  CHECK_INT(parse("GE", m, p), ==, 1);
  CHECK_INT(parse("GET /metr", m, p), ==, 1);
  CHECK_INT(parse("GET /metrics HTTP/1.1\r\n", m, p), ==, 1);
  CHECK_INT(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n", m, p), ==, 1);
}

TEST(garbage_is_refused_early) {
  char m[16], p[64];
  CHECK_INT(parse("\x16\x03\x01", m, p), ==, 400); /* a TLS hello */
  CHECK_INT(parse("get /metrics HTTP/1.1\r\n\r\n", m, p), ==, 400);
  CHECK_INT(parse(" GET", m, p), ==, 400);
  CHECK_INT(parse("GET metrics HTTP/1.1\r\n\r\n", m, p), ==, 400);
  CHECK_INT(parse("GET /metrics HTTP/2.0\r\n\r\n", m, p), ==, 400);
  CHECK_INT(parse("GET /metrics\r\n\r\n", m, p), ==, 400);
  CHECK_INT(parse("GET /a b HTTP/1.1\r\n\r\n", m, p), ==, 400);
  CHECK_INT(parse("GET /m HTTP/1.1\r\nno colon here\r\n\r\n", m, p), ==, 400);
  CHECK_INT(parse("GET /m HTTP/1.1\r\n: empty name\r\n\r\n", m, p), ==, 400);
  CHECK_INT(parse("GET /m HTTP/1.1\r\nX: a\x01\r\n\r\n", m, p), ==, 400);
  CHECK_INT(parse("VERYLONGMETHODNAMEHERE / HTTP/1.1\r\n\r\n", m, p), ==, 400);
  char nul[] = "GET /m HTTP/1.1\r\nX: \0\r\n\r\n";
  CHECK_INT(http_parse_head(nul, sizeof nul - 1, m, 16, p, 64), ==, 400);
}

TEST(oversized_heads) {
  char m[16], p[64];
  static char big[HTTP_HEAD_MAX + 100];
  snprintf(big, sizeof big, "GET /metrics HTTP/1.1\r\nX-Big: ");
  size_t n = strlen(big);
  memset(big + n, 'a', HTTP_HEAD_MAX - n);
  CHECK_INT(http_parse_head(big, HTTP_HEAD_MAX, m, 16, p, 64), ==, 431);
  CHECK_INT(http_parse_head(big, HTTP_HEAD_MAX - 1, m, 16, p, 64), ==, 1);
  /* a long target */
  char t[200] = "GET /";
  memset(t + 5, 'x', 100);
  strcpy(t + 105, " HTTP/1.1\r\n\r\n");
  CHECK_INT(parse(t, m, p), ==, 414);
}

int main(void) {
  RUN(complete_requests);
  RUN(partial_requests_wait);
  RUN(garbage_is_refused_early);
  RUN(oversized_heads);
  return harness_done();
}
