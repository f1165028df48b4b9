/*
 * http.c — the minimal HTTP/1.1 server described in http.h.
 *
 * A connection goes through: reading the head -> writing the response ->
 * shutdown (FIN sent) -> draining what the client still sends until it
 * closes or the linger timer fires -> closed. Draining before closing
 * keeps the kernel from answering unread input with a reset, which could
 * destroy the response before the client has read it.
 */
#include "metrics/http.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/net.h"

#define LINGER_MS 2000

struct hconn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wr;
  uv_shutdown_t sd;
  struct http_server *h;
  struct hconn *next, *prev;
  int answered; /* the response is on its way: input is discarded */
  int closing;
  int open_handles;
  char *out; /* the response being written */
  size_t len;
  char buf[HTTP_HEAD_MAX];
};

struct http_server {
  uv_tcp_t tcp;
  http_handler handler;
  void *data;
  struct hconn *conns;
  unsigned nconns;
  int closing, listener_open;
  void (*close_cb)(void *);
  void *close_data;
  char address[80];
};

/* ---- parsing ---- */

static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

int http_parse_head(const char *buf, size_t len, char *method, size_t mlen,
                    char *path, size_t plen) {
  const unsigned char *p = (const unsigned char *)buf;
  /* Garbage is refused as soon as it shows: the method is upper-case
   * letters followed by a space. */
  size_t m = 0;
  while (m < len && p[m] >= 'A' && p[m] <= 'Z')
    m++;
  if (m < len && (p[m] != ' ' || m == 0)) return 400;
  if (m >= mlen && m < len) return 400;
  const unsigned char *nl = memchr(p, '\n', len);
  if (!nl) return len >= HTTP_HEAD_MAX ? 431 : 1;
  /* The request line: METHOD SP target SP HTTP/1.x [CR] LF */
  size_t line = (size_t)(nl - p);
  if (line > 0 && p[line - 1] == '\r') line--;
  const unsigned char *t = p + m + 1, *end = p + line;
  const unsigned char *sp = memchr(t, ' ', (size_t)(end - t));
  if (!sp || t >= end || *t != '/') return 400;
  if (end - sp != 9 || memcmp(sp + 1, "HTTP/1.", 7) != 0 || sp[8] < '0' ||
      sp[8] > '9')
    return 400;
  size_t tlen = (size_t)(sp - t);
  for (size_t i = 0; i < tlen; i++)
    if (t[i] <= 0x20 || t[i] >= 0x7F) return 400;
  /* The headers, up to an empty line. */
  const unsigned char *q = nl + 1, *stop = p + len;
  for (;;) {
    const unsigned char *e = memchr(q, '\n', (size_t)(stop - q));
    if (!e) return len >= HTTP_HEAD_MAX ? 431 : 1;
    size_t hl = (size_t)(e - q);
    if (hl > 0 && q[hl - 1] == '\r') hl--;
    if (hl == 0) break; /* end of the head */
    size_t k = 0;
    while (k < hl && is_tchar(q[k]))
      k++;
    if (k == 0 || k >= hl || q[k] != ':') return 400;
    for (size_t i = k; i < hl; i++)
      if ((q[i] < 0x20 && q[i] != '\t') || q[i] == 0x7F) return 400;
    q = e + 1;
  }
  if ((size_t)(q - p) > HTTP_HEAD_MAX) return 431;
  memcpy(method, p, m);
  method[m] = '\0';
  size_t plain = 0;
  while (plain < tlen && t[plain] != '?' && t[plain] != '#')
    plain++;
  if (plain >= plen) return 414;
  memcpy(path, t, plain);
  path[plain] = '\0';
  return 0;
}

/* ---- connections ---- */

static void conn_closed(uv_handle_t *hd) {
  struct hconn *c = hd->data;
  if (--c->open_handles > 0) return;
  struct http_server *h = c->h;
  if (c->prev)
    c->prev->next = c->next;
  else
    h->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  h->nconns--;
  free(c->out);
  free(c);
  if (h->closing && !h->listener_open && !h->conns) {
    void (*cb)(void *) = h->close_cb;
    void *data = h->close_data;
    free(h);
    if (cb) cb(data);
  }
}

static void conn_close(struct hconn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
  uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void on_timeout(uv_timer_t *t) {
  conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *sd, int status) {
  struct hconn *c = sd->data;
  if (status < 0) conn_close(c);
  /* else: keep draining until EOF or the linger timer */
}

static void on_written(uv_write_t *wr, int status) {
  struct hconn *c = wr->data;
  free(c->out);
  c->out = NULL;
  if (c->closing) return;
  c->sd.data = c;
  if (status < 0 ||
      uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_timeout, LINGER_MS, 0);
}

static const char *reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Internal Server Error";
  }
}

/* Sends the response and moves the connection to the draining state. */
static void respond(struct hconn *c, int status, const char *ctype,
                    const char *body, size_t blen, int head_only) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: "
                   "%zu\r\nConnection: close\r\n%s\r\n",
                   status, reason(status), ctype, blen,
                   status == 405 ? "Allow: GET, HEAD\r\n" : "");
  if (head_only) blen = 0;
  c->answered = 1;
  c->out = malloc((size_t)n + blen);
  if (!c->out) {
    conn_close(c);
    return;
  }
  memcpy(c->out, head, (size_t)n);
  if (blen) memcpy(c->out + n, body, blen);
  uv_buf_t b = uv_buf_init(c->out, (unsigned)((size_t)n + blen));
  c->wr.data = c;
  if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
    free(c->out);
    c->out = NULL;
    conn_close(c);
  }
}

static void respond_text(struct hconn *c, int status, const char *text) {
  respond(c, status, "text/plain; charset=utf-8", text, strlen(text), 0);
}

static void serve(struct hconn *c) {
  char method[16], path[1024];
  int rc =
      http_parse_head(c->buf, c->len, method, sizeof method, path, sizeof path);
  if (rc == 1) return; /* wait for more */
  if (rc != 0) {
    respond_text(c, rc,
                 rc == 400   ? "malformed HTTP request\n"
                 : rc == 414 ? "request target too long\n"
                             : "request head too large\n");
    return;
  }
  int head_only = strcmp(method, "HEAD") == 0;
  if (!head_only && strcmp(method, "GET") != 0) {
    respond_text(c, 405, "only GET is served here\n");
    return;
  }
  char *body = NULL;
  size_t blen = 0;
  const char *ctype = "text/plain; charset=utf-8";
  int status = c->h->handler(c->h->data, path, &body, &blen, &ctype);
  if (!body) blen = 0;
  respond(c, status, ctype, body, blen, head_only);
  free(body);
}

static void on_alloc(uv_handle_t *hd, size_t want, uv_buf_t *b) {
  struct hconn *c = hd->data;
  (void)want;
  /* Once answered (always so when the buffer is full) the head is no
   * longer needed: what the client still sends is read over it. */
  if (c->answered || c->len >= sizeof c->buf)
    *b = uv_buf_init(c->buf, sizeof c->buf);
  else
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct hconn *c = s->data;
  (void)b;
  if (n < 0) {
    conn_close(c);
    return;
  }
  if (n == 0 || c->answered || c->closing) return;
  c->len += (size_t)n;
  serve(c);
}

static void on_connection(uv_stream_t *ls, int status) {
  struct http_server *h = ls->data;
  if (status < 0 || h->closing) return;
  struct hconn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->h = h;
  uv_tcp_init(ls->loop, &c->tcp);
  uv_timer_init(ls->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->next = h->conns;
  if (h->conns) h->conns->prev = c;
  h->conns = c;
  h->nconns++;
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0 || h->nconns > HTTP_MAX_CONNS ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_timeout, HTTP_IDLE_MS, 0);
}

/* ---- the listener ---- */

int http_listen(uv_loop_t *loop, const char *address, http_handler handler,
                void *data, struct http_server **out, char *err,
                size_t errlen) {
  char host[64];
  int port;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  *out = NULL;
  if (net_split_address(address, host, sizeof host, &port) < 0 ||
      (uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port,
                   (struct sockaddr_in *)&ss) != 0 &&
       uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)) {
    snprintf(err, errlen,
             "bad metrics address '%s': expected IP:PORT, e.g. "
             "127.0.0.1:9100",
             address);
    return -1;
  }
  struct http_server *h = calloc(1, sizeof *h);
  if (!h) return UV_ENOMEM;
  h->handler = handler;
  h->data = data;
  uv_tcp_init(loop, &h->tcp);
  h->tcp.data = h;
  int rc = uv_tcp_bind(&h->tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&h->tcp, 64, on_connection);
  if (rc < 0) {
    snprintf(err, errlen, "cannot serve metrics on %s: %s", address,
             uv_strerror(rc));
    uv_close((uv_handle_t *)&h->tcp, (uv_close_cb)free);
    return rc;
  }
  h->listener_open = 1;
  int len = sizeof ss;
  char ip[64] = "";
  uv_tcp_getsockname(&h->tcp, (struct sockaddr *)&ss, &len);
  if (ss.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
    snprintf(h->address, sizeof h->address, "[%s]:%d", ip,
             ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
  } else {
    uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
    snprintf(h->address, sizeof h->address, "%s:%d", ip,
             ntohs(((struct sockaddr_in *)&ss)->sin_port));
  }
  signal(SIGPIPE, SIG_IGN);
  *out = h;
  return 0;
}

const char *http_address(const struct http_server *h) {
  return h->address;
}

static void listener_closed(uv_handle_t *hd) {
  struct http_server *h = hd->data;
  h->listener_open = 0;
  if (!h->conns) {
    void (*cb)(void *) = h->close_cb;
    void *data = h->close_data;
    free(h);
    if (cb) cb(data);
  }
}

void http_close(struct http_server *h, void (*cb)(void *data), void *data) {
  if (h->closing) return;
  h->closing = 1;
  h->close_cb = cb;
  h->close_data = data;
  for (struct hconn *c = h->conns; c; c = c->next)
    conn_close(c);
  uv_close((uv_handle_t *)&h->tcp, listener_closed);
}
