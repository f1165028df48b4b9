/*
 * secure.c — TLS under a connection: the stream's bytes go through a
 * tls_conn (host/tls) and the framing above is unchanged.
 *
 * Reads land in a ciphertext buffer of the conn's own; each read is fed
 * to TLS and every plaintext byte it yields goes into the frame reader.
 * Writes: the plaintext queued in `pend` is encrypted just before a write
 * (once the handshake is done) and the ciphertext is what `fly` holds.
 * Nothing here blocks: the handshake advances only as bytes arrive.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "net.h"
#include "net_int.h"
#include "tls/tls.h"

#define TLS_READ_CHUNK (64 * 1024)
#define PLAIN_CHUNK (16 * 1024) /* one TLS record's worth at least */

int net__tls_attach(net_conn *c, struct tls_ctx *ctx, int accept,
                    const char *expect) {
  assert(!c->tls && !c->is_unix);
  c->tls = tls_conn_new(ctx, accept, expect);
  return c->tls ? 0 : UV_ENOMEM;
}

void net__tls_free(net_conn *c) {
  tls_conn_free(c->tls);
  c->tls = NULL;
  free(c->tls_in);
  c->tls_in = NULL;
}

char *net__tls_rbuf(net_conn *c, size_t *len) {
  if (!c->tls_in) c->tls_in = malloc(TLS_READ_CHUNK);
  *len = c->tls_in ? TLS_READ_CHUNK : 0;
  return c->tls_in;
}

/* A failed session: the alert TLS wrote for the peer goes out if the
 * socket takes it now (best effort), then the connection closes. */
static void tls_failed(net_conn *c) {
  char alert[512];
  size_t n = tls_conn_take(c->tls, alert, sizeof alert);
  if (n > 0 && !c->writing) {
    uv_buf_t b = uv_buf_init(alert, (unsigned)n);
    uv_try_write(&c->h.stream, &b, 1);
  }
  net__close_with(c, NET_ETLS, tls_conn_error(c->tls));
}

int net__tls_input(net_conn *c, size_t n) {
  if (c->closing) return 1;
  if (tls_conn_feed(c->tls, c->tls_in, n) < 0) {
    net__close_with(c, UV_ENOMEM, "out of memory reading from peer");
    return 1;
  }
  for (;;) {
    size_t avail = 0;
    char *p = net_reader_space(&c->reader, PLAIN_CHUNK, &avail);
    if (!p) {
      net__close_with(c, UV_ENOMEM, "out of memory reading from peer");
      return 1;
    }
    int got = tls_conn_read(c->tls, p, avail);
    if (got == 0) break;
    if (got < 0) {
      tls_failed(c);
      return 1;
    }
    net_reader_commit(&c->reader, (size_t)got);
  }
  /* Handshake messages to answer, or frames queued before the handshake
   * completed, can go now. */
  net__flush(c);
  return c->closing;
}

size_t net__tls_fill(net_conn *c) {
  assert(c->fly.len == 0);
  if (c->pend.len > 0 && tls_conn_ready(c->tls)) {
    if (tls_conn_write(c->tls, c->pend.buf, c->pend.len) < 0) {
      tls_failed(c);
      return 0;
    }
    c->pend.len = 0;
  }
  size_t n = tls_conn_pending(c->tls);
  if (n == 0) return 0;
  if (net__reserve(&c->fly, n) < 0) {
    net__close_with(c, UV_ENOMEM, "out of memory writing to peer");
    return 0;
  }
  c->fly.len = tls_conn_take(c->tls, c->fly.buf, n);
  return c->fly.len;
}

int net_conn_tls_role(const net_conn *c) {
  return c->tls ? tls_conn_peer_role(c->tls) : TLS_ROLE_NONE;
}

const char *net_conn_tls_name(const net_conn *c) {
  return c->tls ? tls_conn_peer_name(c->tls) : "";
}
