/*
 * http.h — a minimal HTTP/1.1 server on libuv, for the metrics page.
 *
 * One request per connection: the server reads the request head (request
 * line and headers, at most HTTP_HEAD_MAX bytes), asks the handler for the
 * response, sends it with "Connection: close" and closes. It never reads a
 * request body. What it refuses:
 *   - a malformed request line or header block: 400, then close;
 *   - a head over HTTP_HEAD_MAX bytes: 431, then close;
 *   - a method other than GET or HEAD: 405 (the handler is not called);
 *   - a connection idle for HTTP_IDLE_MS or more than HTTP_MAX_CONNS open:
 *     closed without an answer.
 * Whatever a client sends, the server only closes that connection.
 * Everything runs on the loop thread.
 */
#ifndef COPYCAT_HTTP_H
#define COPYCAT_HTTP_H

#include <stddef.h>
#include <uv.h>

#define HTTP_HEAD_MAX 8192
#define HTTP_IDLE_MS 10000
#define HTTP_MAX_CONNS 32

/* Fills the response to GET `path` (without the query string): returns the
 * status code, sets *body to a malloc'd buffer of *len bytes (freed by the
 * server; NULL for an empty body) and *ctype to a static content type. */
typedef int (*http_handler)(void *data, const char *path, char **body,
                            size_t *len, const char **ctype);

struct http_server;

/* Listens on "IP:PORT" ("[v6]:port", "localhost:port"). 0, or a negative
 * code with a sentence in err. Ignores SIGPIPE for the process: a scraper
 * that hangs up mid-response must not end the server. */
int http_listen(uv_loop_t *loop, const char *address, http_handler handler,
                void *data, struct http_server **out, char *err, size_t errlen);
/* The bound address (useful with port 0). */
const char *http_address(const struct http_server *h);
/* Closes the listener and every connection; cb(data) once all is closed. */
void http_close(struct http_server *h, void (*cb)(void *data), void *data);

/* Parses a request head (pure; for tests): returns 0 and fills method and
 * path (query string removed) when the head is complete, 1 if more bytes
 * are needed, or an HTTP status (400, 431) if it can never be valid. */
int http_parse_head(const char *buf, size_t len, char *method, size_t mlen,
                    char *path, size_t plen);

#endif
