/*
 * ctx.c — TLS contexts: the CA, this side's certificate and key, and the
 * names and roles certificates carry.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/tls_int.h"

const char *tls_role_name(int role) {
  switch (role) {
    case TLS_ROLE_CLIENT:
      return "client";
    case TLS_ROLE_ADMIN:
      return "admin";
    case TLS_ROLE_MEMBER:
      return "member";
    default:
      return "none";
  }
}

void tls__error(char *out, size_t len, const char *prefix) {
  unsigned long e = ERR_get_error();
  unsigned long next;
  /* The last error in the queue is the most specific one. */
  while ((next = ERR_get_error()) != 0)
    e = next;
  if (!e) {
    snprintf(out, len, "%s", prefix);
    return;
  }
  char reason[200];
  ERR_error_string_n(e, reason, sizeof reason);
  /* "error:0A000086:SSL routines::certificate verify failed": keep what
   * follows the last "::" or ':' for the sentence. */
  const char *r = ERR_reason_error_string(e);
  snprintf(out, len, "%s: %s", prefix, r ? r : reason);
}

/* Copies an ASN1 string that is a plausible name: no NUL, fits. */
static int copy_name(const ASN1_STRING *s, char *out, size_t len) {
  const unsigned char *d = ASN1_STRING_get0_data(s);
  int n = ASN1_STRING_length(s);
  if (n <= 0 || (size_t)n >= len || memchr(d, '\0', (size_t)n)) return -1;
  memcpy(out, d, (size_t)n);
  out[n] = '\0';
  return 0;
}

void tls__cert_name(X509 *x, char *out, size_t len) {
  out[0] = '\0';
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  if (gens) {
    int found = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens) && !found; i++) {
      const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
      if (g->type == GEN_DNS) found = copy_name(g->d.dNSName, out, len) == 0;
    }
    GENERAL_NAMES_free(gens);
    if (found) return;
    out[0] = '\0';
  }
  const X509_NAME *subj = X509_get_subject_name(x);
  int at = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
  if (at < 0) return;
  const X509_NAME_ENTRY *e = X509_NAME_get_entry(subj, at);
  if (copy_name(X509_NAME_ENTRY_get_data(e), out, len) < 0) out[0] = '\0';
}

int tls__cert_role(X509 *x) {
  /* Without the extension OpenSSL allows every purpose: only an explicit
   * serverAuth makes a member. */
  uint32_t flags = X509_get_extension_flags(x);
  if ((flags & EXFLAG_XKUSAGE) &&
      (X509_get_extended_key_usage(x) & XKU_SSL_SERVER))
    return TLS_ROLE_MEMBER;
  const X509_NAME *subj = X509_get_subject_name(x);
  int at = -1;
  while ((at = X509_NAME_get_index_by_NID(subj, NID_organizationalUnitName,
                                          at)) >= 0) {
    char ou[32];
    const X509_NAME_ENTRY *e = X509_NAME_get_entry(subj, at);
    if (copy_name(X509_NAME_ENTRY_get_data(e), ou, sizeof ou) == 0 &&
        strcmp(ou, "admin") == 0)
      return TLS_ROLE_ADMIN;
  }
  return TLS_ROLE_CLIENT;
}

static int file_error(char *err, size_t errlen, const char *what,
                      const char *path) {
  char msg[TLS_ERR_MAX + 64];
  snprintf(msg, sizeof msg, "cannot use the %s %s", what, path);
  tls__error(err, errlen, msg);
  return TLS_EFILE;
}

int tls_ctx_new(const struct tls_ctx_opts *o, struct tls_ctx **out, char *err,
                size_t errlen) {
  *out = NULL;
  if (!o->ca || !o->ca[0]) {
    snprintf(err, errlen, "TLS needs the CA certificate file (tls ca)");
    return TLS_EFILE;
  }
  if (!o->cert != !o->key) {
    snprintf(err, errlen,
             "TLS: give both a certificate and its key, or neither");
    return TLS_EFILE;
  }
  ERR_clear_error();
  struct tls_ctx *c = OPENSSL_zalloc(sizeof *c);
  if (!c) return TLS_ENOMEM;
  c->refs = 1;
  c->ssl = SSL_CTX_new(TLS_method());
  int rc = 0;
  if (!c->ssl) {
    rc = TLS_ENOMEM;
    goto fail;
  }
  /* Both ends are ours: TLS 1.3 only, no session tickets (no resumption:
   * every connection proves its certificate). Record buffers are kept
   * (SSL_MODE_RELEASE_BUFFERS would free and allocate them per record). */
  SSL_CTX_set_min_proto_version(c->ssl, TLS1_3_VERSION);
  SSL_CTX_set_num_tickets(c->ssl, 0);
  /* AES-128-GCM first: as strong as needed here and cheaper per byte
   * than AES-256 (AES-NI); the others remain for peers without it. */
  SSL_CTX_set_ciphersuites(c->ssl,
                           "TLS_AES_128_GCM_SHA256:"
                           "TLS_CHACHA20_POLY1305_SHA256:"
                           "TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_verify(
      c->ssl,
      SSL_VERIFY_PEER |
          (o->require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
      NULL);
  if (SSL_CTX_load_verify_file(c->ssl, o->ca) != 1) {
    rc = file_error(err, errlen, "CA certificate file", o->ca);
    goto fail;
  }
  if (o->cert) {
    if (SSL_CTX_use_certificate_chain_file(c->ssl, o->cert) != 1) {
      rc = file_error(err, errlen, "certificate file", o->cert);
      goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ssl, o->key, SSL_FILETYPE_PEM) != 1) {
      rc = file_error(err, errlen, "key file", o->key);
      goto fail;
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
      snprintf(err, errlen, "the key %s does not belong to the certificate %s",
               o->key, o->cert);
      rc = TLS_EFILE;
      goto fail;
    }
    X509 *x = SSL_CTX_get0_certificate(c->ssl);
    assert(x);
    tls__cert_name(x, c->name, sizeof c->name);
    c->role = tls__cert_role(x);
  }
  ERR_clear_error();
  *out = c;
  return 0;
fail:
  ERR_clear_error();
  if (rc == TLS_ENOMEM) snprintf(err, errlen, "TLS: out of memory");
  SSL_CTX_free(c->ssl);
  OPENSSL_free(c);
  return rc;
}

void tls_ctx_ref(struct tls_ctx *c) {
  assert(c->refs > 0);
  c->refs++;
}

void tls_ctx_unref(struct tls_ctx *c) {
  if (!c) return;
  assert(c->refs > 0);
  if (--c->refs > 0) return;
  /* Connections hold their own reference on the SSL_CTX. */
  SSL_CTX_free(c->ssl);
  OPENSSL_free(c);
}

const char *tls_ctx_name(const struct tls_ctx *c) {
  return c->name;
}

int tls_ctx_role(const struct tls_ctx *c) {
  return c->role;
}
