/* tls_int.h — what the files of host/tls share; not for other modules. */
#ifndef COPYCAT_TLS_INT_H
#define COPYCAT_TLS_INT_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls/tls.h"

struct tls_ctx {
  SSL_CTX *ssl;
  int refs;
  char name[TLS_NAME_MAX]; /* of this side's certificate, "" if none */
  int role;
};

/* The name of certificate x (first SAN DNS entry, else subject CN) into
 * out; "" when it has neither or the name is too long or holds a NUL. */
void tls__cert_name(X509 *x, char *out, size_t len);
/* TLS_ROLE_MEMBER, TLS_ROLE_ADMIN or TLS_ROLE_CLIENT (see tls.h). */
int tls__cert_role(X509 *x);
/* The newest OpenSSL error of this thread as "prefix: reason" in out (and
 * clears the queue); just prefix when there is none. */
void tls__error(char *out, size_t len, const char *prefix);

#endif
