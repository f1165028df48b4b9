/*
 * tls.h — TLS for the transport: OpenSSL 3 behind memory BIOs, so that the
 * libuv stream (host/transport) moves the bytes and nothing here ever
 * blocks or touches a socket.
 *
 * A tls_ctx holds the cluster's CA, and optionally this side's certificate
 * and key. One context serves both directions: a server accepts with it
 * and dials its peers with it (presenting its member certificate), a
 * client dials with it. Contexts are reference counted; a connection keeps
 * the context it was made with, so replacing the context (a reload) leaves
 * existing connections as they are.
 *
 * Names and roles (docs/tls.md): the name of a certificate is its first
 * SAN DNS entry, or else its subject CN. A certificate whose extended key
 * usage names serverAuth is a member certificate (role TLS_ROLE_MEMBER)
 * and its name is the member name; any other certificate from the CA is a
 * client certificate, with role TLS_ROLE_ADMIN if its subject OU is
 * "admin", else TLS_ROLE_CLIENT.
 *
 * A tls_conn is one connection's state machine: ciphertext in (feed),
 * plaintext out (read), plaintext in (write), ciphertext out (take). The
 * handshake runs inside read. What is verified: the peer's chain up to
 * the CA and its validity dates (OpenSSL); on the dialing side, that the
 * server's certificate is a member certificate and, when a name is
 * expected, that it carries that name; on the accepting side, a client
 * certificate is optional unless the context requires one.
 */
#ifndef COPYCAT_TLS_H
#define COPYCAT_TLS_H

#include <stddef.h>

#define TLS_NAME_MAX 64 /* longest certificate name kept, with its NUL */
#define TLS_ERR_MAX 256

/* Roles of a peer's certificate. */
enum {
  TLS_ROLE_NONE = 0, /* no certificate (or no TLS) */
  TLS_ROLE_CLIENT,
  TLS_ROLE_ADMIN,
  TLS_ROLE_MEMBER
};

/* Error codes. */
#define TLS_EPROTO (-21001) /* handshake, verification or record failure */
#define TLS_ENOMEM (-21002)
#define TLS_EFILE (-21003) /* a certificate or key file cannot be used */

const char *tls_role_name(int role);

/* ---- contexts (ctx.c) ---- */

struct tls_ctx;

struct tls_ctx_opts {
  const char *ca;          /* PEM file of the CA certificate(s); required */
  const char *cert;        /* PEM certificate of this side, or NULL */
  const char *key;         /* its private key, or NULL (with cert = NULL) */
  int require_client_cert; /* accepting side: refuse peers without one */
};

/* Loads the files. Returns 0 or TLS_EFILE with a sentence in err naming
 * the file and the problem (missing, not PEM, key does not match). */
int tls_ctx_new(const struct tls_ctx_opts *o, struct tls_ctx **out, char *err,
                size_t errlen);
void tls_ctx_ref(struct tls_ctx *c);
void tls_ctx_unref(struct tls_ctx *c);
/* This side's own certificate name ("" without a certificate). */
const char *tls_ctx_name(const struct tls_ctx *c);
/* This side's own certificate role (TLS_ROLE_NONE without one). */
int tls_ctx_role(const struct tls_ctx *c);

/* ---- connections (conn.c) ---- */

struct tls_conn;

/* A connection over ctx. accept: 1 for the accepting side, 0 for the
 * dialing side. expect: for the dialing side, the member name the server
 * must prove (NULL or "": any member of the CA). NULL when out of memory. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int accept,
                              const char *expect);
void tls_conn_free(struct tls_conn *t);

/* Hands over n bytes of ciphertext from the socket. 0 or TLS_ENOMEM. */
int tls_conn_feed(struct tls_conn *t, const char *data, size_t n);
/* Advances the handshake and decrypts: returns the number of plaintext
 * bytes put in buf (> 0), 0 when more ciphertext is needed, or TLS_EPROTO
 * (tls_conn_error says why; output may hold an alert for the peer). */
int tls_conn_read(struct tls_conn *t, char *buf, size_t cap);
/* 1 once the handshake has completed and the peer was verified. */
int tls_conn_ready(const struct tls_conn *t);
/* Encrypts n bytes (only once ready). 0, TLS_ENOMEM or TLS_EPROTO. */
int tls_conn_write(struct tls_conn *t, const char *data, size_t n);
/* Ciphertext waiting to go to the socket, and taking it (up to cap bytes;
 * returns how many were copied). */
size_t tls_conn_pending(const struct tls_conn *t);
size_t tls_conn_take(struct tls_conn *t, char *buf, size_t cap);
/* Why the connection failed, as a sentence ("" if it did not). */
const char *tls_conn_error(const struct tls_conn *t);
/* The verified peer certificate's name ("" if none) and role. */
const char *tls_conn_peer_name(const struct tls_conn *t);
int tls_conn_peer_role(const struct tls_conn *t);

/* ---- certificate generation (certs.c) ---- */

/* Writes a new CA (making dir if needed): dir/ca.crt and dir/ca.key
 * (0600), EC P-256, valid for
 * `days` days from now. Refuses (TLS_EFILE) when dir/ca.key exists and
 * replace is 0. */
int tls_certs_ca(const char *dir, int days, int replace, char *err,
                 size_t errlen);
/* Writes dir/NAME.crt and dir/NAME.key (0600), signed by dir/ca.*, for a
 * certificate with `role` (TLS_ROLE_MEMBER, TLS_ROLE_CLIENT or
 * TLS_ROLE_ADMIN). Valid from now for `days` days; a negative `days`
 * makes a certificate that expired -days days ago (for tests). */
int tls_certs_leaf(const char *dir, const char *name, int role, int days,
                   char *err, size_t errlen);

#endif
