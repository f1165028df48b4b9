/*
 * http_head.c — fuzzes http_parse_head, which reads the request head of
 * every connection to the metrics address (host/metrics/http.c).
 *
 * The server parses the bytes received so far after every read, so each
 * input is parsed whole and at a few of its prefixes, with the buffer
 * sizes the server uses. A result is 0 (method and path filled, the path
 * starting with '/'), 1 (need more; never past HTTP_HEAD_MAX bytes), or
 * one of the statuses 400, 414, 431; once a prefix gets a final answer
 * the server stops reading, so only what prefixes give is checked.
 */
#include <string.h>

#include "fuzz.h"
#include "metrics/http.h"

const char fuzz_target_name[] = "http_head";

static void parse(const uint8_t *data, size_t len) {
  char method[16], path[1024];
  /* Exact-size copy: the parser must not read past len. */
  char *buf = calloc(1, len ? len : 1);
  FUZZ_CHECK(buf != NULL);
  if (len) memcpy(buf, data, len);
  int rc = http_parse_head(buf, len, method, sizeof method, path, sizeof path);
  free(buf);
  FUZZ_CHECK(rc == 0 || rc == 1 || rc == 400 || rc == 414 || rc == 431);
  if (rc == 1) FUZZ_CHECK(len < HTTP_HEAD_MAX);
  if (rc == 0) {
    FUZZ_CHECK(memchr(method, '\0', sizeof method) != NULL);
    FUZZ_CHECK(memchr(path, '\0', sizeof path) != NULL);
    FUZZ_CHECK(method[0] >= 'A' && method[0] <= 'Z' && path[0] == '/');
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parse(data, size);
  if (size > 1) {
    parse(data, size / 2);
    parse(data, size - 1);
  }
  return 0;
}

void fuzz_seeds(fuzz_add_fn add, void *ud) {
  static const char *const heads[] = {
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nAccept: */*\r\n\r\n",
      "HEAD /metrics?x=1#y HTTP/1.0\n\n",
      "GET / HTTP/1.1\r\nUser-Agent: Prometheus/2.45\r\nX-Scrape:\t1\r\n\r\n",
      "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
      "GET /metrics HTTP/1.1\r\nHost: a\r\n",
  };
  for (size_t i = 0; i < sizeof heads / sizeof *heads; i++)
    add(ud, heads[i], strlen(heads[i]));
}
