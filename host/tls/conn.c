/*
 * conn.c — one TLS connection over two memory BIOs: the transport feeds
 * the ciphertext it read and writes out the ciphertext produced, so
 * OpenSSL never sees a socket and never waits.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "tls/tls_int.h"

struct tls_conn {
  SSL *ssl; /* owns rbio and wbio */
  BIO *rbio, *wbio;
  int accept, ready, failed;
  char expect[TLS_NAME_MAX];
  char peer_name[TLS_NAME_MAX];
  int peer_role;
  char err[TLS_ERR_MAX];
};

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int accept,
                              const char *expect) {
  assert(ctx);
  if (expect && strlen(expect) >= TLS_NAME_MAX) return NULL;
  struct tls_conn *t = OPENSSL_zalloc(sizeof *t);
  if (!t) return NULL;
  t->accept = accept;
  if (expect) snprintf(t->expect, sizeof t->expect, "%s", expect);
  t->ssl = SSL_new(ctx->ssl);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) {
    SSL_free(t->ssl);
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    OPENSSL_free(t);
    ERR_clear_error();
    return NULL;
  }
  /* An empty input BIO means "more to come", not end of file. */
  BIO_set_mem_eof_return(t->rbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  if (accept)
    SSL_set_accept_state(t->ssl);
  else
    SSL_set_connect_state(t->ssl);
  return t;
}

void tls_conn_free(struct tls_conn *t) {
  if (!t) return;
  SSL_free(t->ssl);
  OPENSSL_free(t);
}

int tls_conn_feed(struct tls_conn *t, const char *data, size_t n) {
  if (n == 0) return 0;
  assert(n <= INT32_MAX);
  if (BIO_write(t->rbio, data, (int)n) != (int)n) {
    ERR_clear_error();
    return TLS_ENOMEM;
  }
  return 0;
}

static int fail(struct tls_conn *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct tls_conn *t, const char *fmt, ...) {
  t->failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->err, sizeof t->err, fmt, ap);
  va_end(ap);
  return TLS_EPROTO;
}

/* Why the handshake failed: our own verification of the peer's chain says
 * most (expired, unknown CA); otherwise OpenSSL's error queue, which holds
 * the alert the peer sent us. */
static int handshake_failed(struct tls_conn *t) {
  long v = SSL_get_verify_result(t->ssl);
  if (v == X509_V_ERR_INVALID_PURPOSE && !t->accept) {
    ERR_clear_error();
    return fail(t,
                "TLS handshake failed: the server's certificate is not a "
                "member certificate of the cluster (no serverAuth usage)");
  }
  if (v != X509_V_OK) {
    ERR_clear_error();
    return fail(t, "TLS handshake failed: the peer's certificate: %s",
                X509_verify_cert_error_string(v));
  }
  tls__error(t->err, sizeof t->err, "TLS handshake failed");
  t->failed = 1;
  return TLS_EPROTO;
}

/* After the handshake: who the peer is, and whether it may be it. */
static int check_peer(struct tls_conn *t) {
  X509 *x = SSL_get0_peer_certificate(t->ssl);
  if (!x) {
    if (!t->accept)
      return fail(t, "%s", "TLS: the server presented no certificate");
    return 0; /* a client without a certificate, if the context allows */
  }
  tls__cert_name(x, t->peer_name, sizeof t->peer_name);
  t->peer_role = tls__cert_role(x);
  if (t->accept) return 0;
  if (t->peer_role != TLS_ROLE_MEMBER)
    return fail(t,
                "TLS: the server's certificate ('%s') is not a member "
                "certificate of the cluster (no serverAuth usage)",
                t->peer_name);
  if (t->expect[0] && strcmp(t->expect, t->peer_name) != 0)
    return fail(t,
                "TLS: expected member '%s', the server's certificate names "
                "'%s'",
                t->expect, t->peer_name);
  return 0;
}

int tls_conn_read(struct tls_conn *t, char *buf, size_t cap) {
  if (t->failed) return TLS_EPROTO;
  ERR_clear_error();
  if (!t->ready) {
    int rc = SSL_do_handshake(t->ssl);
    if (rc != 1) {
      int e = SSL_get_error(t->ssl, rc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
      return handshake_failed(t);
    }
    if (check_peer(t) < 0) return TLS_EPROTO;
    t->ready = 1;
  }
  if (cap == 0) return 0;
  int n = SSL_read(t->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
  if (n > 0) return n;
  int e = SSL_get_error(t->ssl, n);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  if (e == SSL_ERROR_ZERO_RETURN)
    return fail(t, "%s", "the peer closed the TLS session");
  tls__error(t->err, sizeof t->err, "TLS error");
  t->failed = 1;
  return TLS_EPROTO;
}

int tls_conn_ready(const struct tls_conn *t) {
  return t->ready && !t->failed;
}

int tls_conn_write(struct tls_conn *t, const char *data, size_t n) {
  if (!t->ready || t->failed) return TLS_EPROTO;
  ERR_clear_error();
  while (n > 0) {
    /* The output BIO grows as needed, so a write only fails for memory
     * or a broken session. */
    int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
    int w = SSL_write(t->ssl, data, chunk);
    if (w <= 0) {
      tls__error(t->err, sizeof t->err, "TLS write failed");
      t->failed = 1;
      return TLS_EPROTO;
    }
    data += w;
    n -= (size_t)w;
  }
  return 0;
}

size_t tls_conn_pending(const struct tls_conn *t) {
  return BIO_ctrl_pending(t->wbio);
}

size_t tls_conn_take(struct tls_conn *t, char *buf, size_t cap) {
  if (cap == 0) return 0;
  int n = BIO_read(t->wbio, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
  return n > 0 ? (size_t)n : 0;
}

const char *tls_conn_error(const struct tls_conn *t) {
  return t->err;
}

const char *tls_conn_peer_name(const struct tls_conn *t) {
  return t->peer_name;
}

int tls_conn_peer_role(const struct tls_conn *t) {
  return t->peer_role;
}
