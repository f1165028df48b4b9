/*
 * conn.c — a connection (TCP or Unix socket) carrying frames, and
 * outgoing connects.
 *
 * Reads go straight into the frame reader's buffer. Writes accumulate in
 * `pend` and leave in one write per loop turn: a frame queued while no
 * write is in flight waits for the `corked` prepare handle, which runs
 * once every callback of the turn has had its say and just before the
 * loop polls again (so it adds no waiting, only merges). While a write is
 * in flight (`fly`) frames queue in `pend`; when it completes the two
 * buffers swap, so whatever was queued meanwhile leaves in one write.
 * With TLS (secure.c) `pend` holds plaintext and `fly` the ciphertext
 * made from it; reads go through the TLS layer into the same reader.
 */
#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "net_int.h"
#include "tls/tls.h"

#define READ_CHUNK (64 * 1024)

void net_conn_set_data(net_conn *c, void *data) {
  c->data = data;
}
void *net_conn_data(net_conn *c) {
  return c->data;
}
const char *net_conn_peer(net_conn *c) {
  return c->peer;
}
size_t net_conn_queued(net_conn *c) {
  return c->pend.len + c->fly.len;
}
int net_conn_is_tls(const net_conn *c) {
  return c->tls != NULL;
}

net_conn *net__conn_new(uv_loop_t *loop, const struct net_conn_opts *opts,
                        int is_unix) {
  /* A write to a connection the peer has reset fails with EPIPE, which
   * closes that one connection; left at its default, SIGPIPE would kill the
   * whole process first. (libuv's writes cannot pass MSG_NOSIGNAL.) */
  signal(SIGPIPE, SIG_IGN);
  net_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  uint32_t max_frame =
      opts && opts->max_frame ? opts->max_frame : NET_DEFAULT_MAX_FRAME;
  net_reader_init(&c->reader, max_frame);
  c->max_queue =
      opts && opts->max_queue ? opts->max_queue : NET_DEFAULT_MAX_QUEUE;
  c->is_unix = is_unix;
  if (is_unix)
    uv_pipe_init(loop, &c->h.pipe, 0);
  else
    uv_tcp_init(loop, &c->h.tcp);
  c->h.handle.data = c;
  return c;
}

void net__conn_fill_peer(net_conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  c->peer[0] = '\0';
  if (c->is_unix) { /* the peer of a Unix socket has no address: say so */
    snprintf(c->peer, sizeof c->peer, "unix socket");
    return;
  }
  if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0)
    net__format_addr((struct sockaddr *)&ss, c->peer, sizeof c->peer);
  uv_tcp_nodelay(&c->h.tcp, 1);
}

/* Frees the conn once its last handle (tcp, and drain if used) closed. */
static void on_closed(uv_handle_t *h) {
  net_conn *c = h->data;
  if (--c->open_handles > 0) return;
  if (c->cbs.on_close) c->cbs.on_close(c, c->status, c->reason);
  net_reader_free(&c->reader);
  free(c->pend.buf);
  free(c->fly.buf);
  net__tls_free(c);
  free(c);
}

/* ---- before authentication ---- */

static void preauth_release(net_conn *c) {
  struct net_preauth *pa = c->preauth;
  if (!pa) return;
  c->preauth = NULL;
  pa->count--;
  if (--pa->refs == 0) free(pa);
}

static void on_preauth_timeout(uv_timer_t *t) {
  net_conn *c = t->data;
  char msg[96];
  snprintf(msg, sizeof msg, "no hello accepted within %u ms", c->preauth_ms);
  net__close_with(c, NET_ETIMEDOUT, msg);
}

int net__preauth_begin(net_conn *c, struct net_preauth *pa,
                       const struct net_conn_opts *o) {
  assert(!c->preauth);
  if (o->preauth_max && pa->count >= o->preauth_max) {
    pa->refused++;
    return -1;
  }
  pa->count++;
  pa->refs++;
  c->preauth = pa;
  c->full_max_frame = c->reader.max_frame;
  if (o->preauth_max_frame && o->preauth_max_frame < c->reader.max_frame)
    c->reader.max_frame = o->preauth_max_frame;
  if (o->preauth_ms) {
    uv_timer_init(c->h.handle.loop, &c->preauth_timer);
    c->preauth_timer.data = c;
    c->preauth_timer_active = 1;
    c->preauth_ms = o->preauth_ms;
    uv_timer_start(&c->preauth_timer, on_preauth_timeout, o->preauth_ms, 0);
  }
  return 0;
}

int net_conn_preauth(const net_conn *c) {
  return c->preauth != NULL;
}

void net_conn_authenticated(net_conn *c) {
  if (!c->preauth) return;
  preauth_release(c);
  c->reader.max_frame = c->full_max_frame;
  if (c->preauth_timer_active) uv_timer_stop(&c->preauth_timer);
}

static void close_with(net_conn *c, int status, const char *reason) {
  if (c->closing) return;
  c->closing = 1;
  c->status = status;
  snprintf(c->reason, sizeof c->reason, "%s", reason ? reason : "closed");
  uv_read_stop(&c->h.stream);
  preauth_release(c);
  c->open_handles = 1;
  if (c->corked_init) {
    c->open_handles++;
    uv_close((uv_handle_t *)&c->corked, on_closed);
  }
  if (c->drain_active) {
    c->open_handles++;
    uv_close((uv_handle_t *)&c->drain, on_closed);
  }
  if (c->preauth_timer_active) {
    c->open_handles++;
    uv_close((uv_handle_t *)&c->preauth_timer, on_closed);
  }
  uv_close(&c->h.handle, on_closed);
}

void net__close_with(net_conn *c, int status, const char *reason) {
  close_with(c, status, reason);
}

void net_conn_close(net_conn *c, const char *reason) {
  close_with(c, 0, reason);
}

void net_conn_close_after_flush(net_conn *c, const char *reason) {
  if (c->closing) return;
  /* Before its handshake a TLS connection cannot send what is queued;
   * after it, whatever is not being written is still in pend. */
  if ((!c->writing && c->pend.len == 0) ||
      (c->tls && !tls_conn_ready(c->tls))) {
    close_with(c, 0, reason);
    return;
  }
  c->close_after_flush = 1;
  snprintf(c->reason, sizeof c->reason, "%s", reason ? reason : "closed");
  uv_read_stop(&c->h.stream);
}

static void fail(net_conn *c, int status, const char *what) {
  char msg[sizeof c->reason];
  snprintf(msg, sizeof msg, "%s: %s", what, net_strerror(status));
  close_with(c, status, msg);
}

/* ---- writing ---- */

static void flush(net_conn *c);

static void on_write(uv_write_t *req, int status) {
  net_conn *c = req->data;
  c->writing = 0;
  c->fly.len = 0;
  if (c->closing) return;
  if (status < 0) {
    fail(c, status, "write failed");
    return;
  }
  if (c->pend.len > 0 || c->tls) {
    flush(c); /* TLS: there may be handshake bytes to send */
    if (!c->writing && c->close_after_flush) close_with(c, 0, c->reason);
  } else if (c->close_after_flush) {
    close_with(c, 0, c->reason);
  }
}

static void flush(net_conn *c) {
  assert(!c->writing && c->fly.len == 0);
  if (c->closing) return;
  if (c->tls) {
    if (net__tls_fill(c) == 0) return; /* nothing to send yet */
  } else {
    struct net_buf t = c->fly;
    c->fly = c->pend;
    c->pend = t;
    c->pend.len = 0;
  }
  uv_buf_t b = uv_buf_init(c->fly.buf, (unsigned)c->fly.len);
  c->wreq.data = c;
  int rc = uv_write(&c->wreq, &c->h.stream, &b, 1, on_write);
  if (rc < 0) {
    c->fly.len = 0;
    fail(c, rc, "write failed");
    return;
  }
  c->writing = 1;
}

void net__flush(net_conn *c) {
  if (!c->writing) flush(c);
}

static void on_corked(uv_prepare_t *h) {
  net_conn *c = h->data;
  uv_prepare_stop(h);
  c->corked_active = 0;
  if (!c->writing && !c->closing && c->pend.len > 0) flush(c);
}

/* Writes pend before the loop next polls (now, if that cannot be set
 * up). A write in flight takes pend along when it completes. */
static void cork(net_conn *c) {
  if (c->writing || c->corked_active) return;
  if (!c->corked_init) {
    if (uv_prepare_init(c->h.handle.loop, &c->corked) < 0) {
      flush(c);
      return;
    }
    c->corked.data = c;
    c->corked_init = 1;
  }
  uv_prepare_start(&c->corked, on_corked);
  c->corked_active = 1;
}

int net__reserve(struct net_buf *b, size_t more) {
  if (b->cap - b->len >= more) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < more)
    cap *= 2;
  char *p = realloc(b->buf, cap);
  if (!p) return UV_ENOMEM;
  b->buf = p;
  b->cap = cap;
  return 0;
}

int net_conn_send(net_conn *c, const void *data, size_t len) {
  if (c->closing || c->close_after_flush) return NET_ECLOSED;
  if (len > c->reader.max_frame) return NET_ETOOBIG;
  if (net_conn_queued(c) + 4 + len > c->max_queue) {
    close_with(c, NET_EQUEUE, net_strerror(NET_EQUEUE));
    return NET_EQUEUE;
  }
  int rc = net__reserve(&c->pend, 4 + len);
  if (rc < 0) return rc;
  net_put_prefix(c->pend.buf + c->pend.len, (uint32_t)len);
  memcpy(c->pend.buf + c->pend.len + 4, data, len);
  c->pend.len += 4 + len;
  cork(c);
  return 0;
}

/* ---- reading ---- */

/* Hands every buffered complete frame to on_frame, unless paused or
 * closing (either may happen inside on_frame). */
static void deliver(net_conn *c) {
  const char *frame;
  size_t len;
  while (!c->closing && !c->paused) {
    int rc = net_reader_next(&c->reader, &frame, &len);
    if (rc == 0) return;
    if (rc < 0) {
      char msg[96];
      snprintf(msg, sizeof msg, "frame larger than the limit of %u bytes",
               (unsigned)c->reader.max_frame);
      close_with(c, rc, msg);
      return;
    }
    c->cbs.on_frame(c, frame, len);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  net_conn *c = h->data;
  size_t avail = 0;
  char *p = c->tls ? net__tls_rbuf(c, &avail)
                   : net_reader_space(&c->reader, READ_CHUNK, &avail);
  *buf = uv_buf_init(p, p ? (unsigned)avail : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  net_conn *c = s->data;
  if (nread > 0 && c->tls) {
    if (net__tls_input(c, (size_t)nread) == 0) deliver(c);
  } else if (nread > 0) {
    net_reader_commit(&c->reader, (size_t)nread);
    deliver(c);
  } else if (nread == UV_EOF) {
    close_with(c, UV_EOF, "peer closed the connection");
  } else if (nread == UV_ENOBUFS) {
    close_with(c, UV_ENOMEM, "out of memory reading from peer");
  } else if (nread < 0) {
    fail(c, (int)nread, "read failed");
  }
}

static void on_drain(uv_idle_t *h) {
  net_conn *c = h->data;
  uv_idle_stop(h);
  deliver(c);
}

void net_conn_start(net_conn *c, const struct net_conn_cbs *cbs) {
  assert(cbs && cbs->on_frame && cbs->on_close);
  c->cbs = *cbs;
  if (c->closing) return;
  int rc = uv_read_start(&c->h.stream, on_alloc, on_read);
  if (rc < 0) {
    fail(c, rc, "cannot read");
    return;
  }
  if (c->tls) net__tls_input(c, 0); /* the dialing side speaks first */
}

void net_conn_pause(net_conn *c) {
  if (c->paused || c->closing) return;
  c->paused = 1;
  uv_read_stop(&c->h.stream);
}

void net_conn_resume(net_conn *c) {
  if (!c->paused || c->closing) return;
  c->paused = 0;
  if (!c->close_after_flush) uv_read_start(&c->h.stream, on_alloc, on_read);
  /* Frames already buffered would wait for the next read: hand them over
   * on the next loop turn (not now: the caller may be inside on_frame). */
  if (net_reader_ready(&c->reader)) {
    if (!c->drain_active) {
      uv_idle_init(c->h.handle.loop, &c->drain);
      c->drain.data = c;
      c->drain_active = 1;
    }
    uv_idle_start(&c->drain, on_drain);
  }
}

/* ---- connecting ---- */

struct connect_req {
  uv_connect_t req;
  uv_getaddrinfo_t gai;
  net_conn *c;
  net_connect_cb cb;
  void *data;
  char address[128];
  int status;
  char reason[400];
  struct tls_ctx *tls; /* a reference, until connected */
  char expect[TLS_NAME_MAX];
};

static void on_failed_conn_closed(uv_handle_t *h) {
  net_conn *c = h->data;
  struct connect_req *r = c->data;
  r->cb(r->data, NULL, r->status, r->reason);
  tls_ctx_unref(r->tls);
  net_reader_free(&c->reader);
  free(c);
  free(r);
}

static void connect_failed(struct connect_req *r, int status) {
  r->status = status;
  snprintf(r->reason, sizeof r->reason, "cannot connect to %s: %s", r->address,
           net_strerror(status));
  r->c->data = r;
  uv_close(&r->c->h.handle, on_failed_conn_closed);
}

static void on_connect(uv_connect_t *req, int status) {
  struct connect_req *r = req->data;
  if (status < 0) {
    connect_failed(r, status);
    return;
  }
  net_conn *c = r->c;
  net__conn_fill_peer(c);
  if (r->tls && net__tls_attach(c, r->tls, 0, r->expect) < 0) {
    tls_ctx_unref(r->tls);
    r->tls = NULL;
    connect_failed(r, UV_ENOMEM);
    return;
  }
  tls_ctx_unref(r->tls);
  r->cb(r->data, c, 0, NULL);
  free(r);
}

static void start_connect(struct connect_req *r, const struct sockaddr *sa) {
  r->req.data = r;
  int rc = uv_tcp_connect(&r->req, &r->c->h.tcp, sa, on_connect);
  if (rc < 0) connect_failed(r, rc);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai) {
  struct connect_req *r = g->data;
  if (status < 0 || !ai) {
    connect_failed(r, status < 0 ? status : UV_EAI_NONAME);
  } else {
    start_connect(r, ai->ai_addr);
  }
  uv_freeaddrinfo(ai);
}

int net_connect(uv_loop_t *loop, const char *address,
                const struct net_conn_opts *opts, net_connect_cb cb,
                void *data) {
  char host[256];
  int port = 0;
  char path[NET_UNIX_PATH_MAX];
  int is_unix = net__unix_path(address, path);
  if (is_unix < 0 ||
      (!is_unix && net_split_address(address, host, sizeof host, &port) < 0))
    return NET_EADDR;
  struct connect_req *r = calloc(1, sizeof *r);
  if (!r) return UV_ENOMEM;
  r->c = net__conn_new(loop, opts, is_unix);
  if (!r->c) {
    free(r);
    return UV_ENOMEM;
  }
  r->cb = cb;
  r->data = data;
  snprintf(r->address, sizeof r->address, "%s", address);
  if (opts && opts->tls && !is_unix) {
    r->tls = opts->tls;
    tls_ctx_ref(r->tls);
    if (opts->tls_expect)
      snprintf(r->expect, sizeof r->expect, "%s", opts->tls_expect);
  }
  if (is_unix) {
    r->req.data = r;
    uv_pipe_connect(&r->req, &r->c->h.pipe, path, on_connect);
    return 0;
  }
  struct sockaddr_storage ss;
  if (net__parse_ip(host, port, &ss) == 0) {
    start_connect(r, (struct sockaddr *)&ss);
    return 0;
  }
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%d", port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  r->gai.data = r;
  int rc = uv_getaddrinfo(loop, &r->gai, on_resolved, host, portstr, &hints);
  if (rc < 0) connect_failed(r, rc);
  return 0;
}
