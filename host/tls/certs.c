/*
 * certs.c — writing a cluster's CA and its members', clients' and
 * admins' certificates (`copycat-lua ctl certs`), with OpenSSL.
 *
 * Keys are EC P-256, certificates signed with SHA-256. Each file is
 * written to a temporary name, flushed and renamed, so a server reloading
 * its certificates never reads half a file; keys are made mode 0600
 * before anything is written to them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/tls_int.h"

#define DAY_SECONDS 86400L

static int path_of(char *out, size_t len, const char *dir, const char *name,
                   const char *ext) {
  int n = snprintf(out, len, "%s/%s.%s", dir, name, ext);
  return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Writes what `put` produces to path via path.tmp, with mode. */
static int write_pem(const char *path, int mode, int (*put)(FILE *f, void *obj),
                     void *obj, char *err, size_t errlen) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0 || fchmod(fd, (mode_t)mode) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd);
    return TLS_EFILE;
  }
  FILE *f = fdopen(fd, "w");
  if (!f) {
    close(fd);
    return TLS_ENOMEM;
  }
  int ok = put(f, obj) == 1 && fflush(f) == 0 && fsync(fd) == 0;
  int saved = errno;
  if (fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    if (ok) saved = errno;
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
    unlink(tmp);
    return TLS_EFILE;
  }
  return 0;
}

/* mkdir -p: each missing component of dir, mode 0755. */
static int make_dirs(const char *dir) {
  char p[4096];
  if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *c = p + 1; *c; c++) {
    if (*c != '/') continue;
    *c = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
    *c = '/';
  }
  return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int put_key(FILE *f, void *k) {
  return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
}

static int put_cert(FILE *f, void *x) {
  return PEM_write_X509(f, x);
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
  if (!e) return -1;
  int ok = X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  return ok == 1 ? 0 : -1;
}

/* A certificate for key with subject CN=cn (and OU=ou), valid for the
 * seconds [from, to] relative to now, issued by issuer (NULL: itself). */
static X509 *new_cert(EVP_PKEY *key, const char *cn, const char *ou, long from,
                      long to, X509 *issuer) {
  X509 *x = X509_new();
  BIGNUM *bn = BN_new();
  if (!x || !bn) goto fail;
  if (X509_set_version(x, X509_VERSION_3) != 1) goto fail;
  /* A random 127-bit serial: unique without keeping state. */
  if (BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
    goto fail;
  if (!X509_gmtime_adj(X509_getm_notBefore(x), from) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), to))
    goto fail;
  X509_NAME *name = X509_get_subject_name(x);
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 (const unsigned char *)"copycat-lua", -1, -1,
                                 0) != 1 ||
      (ou &&
       X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                                  (const unsigned char *)ou, -1, -1, 0) != 1) ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 (const unsigned char *)cn, -1, -1, 0) != 1)
    goto fail;
  if (X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) !=
          1 ||
      X509_set_pubkey(x, key) != 1)
    goto fail;
  BN_free(bn);
  return x;
fail:
  BN_free(bn);
  X509_free(x);
  return NULL;
}

int tls_certs_ca(const char *dir, int days, int replace, char *err,
                 size_t errlen) {
  char crt[4096], key[4096];
  if (days <= 0) {
    snprintf(err, errlen,
             "the CA's validity must be a positive number of days");
    return TLS_EFILE;
  }
  if (path_of(crt, sizeof crt, dir, "ca", "crt") < 0 ||
      path_of(key, sizeof key, dir, "ca", "key") < 0) {
    snprintf(err, errlen, "directory name too long: %s", dir);
    return TLS_EFILE;
  }
  if (make_dirs(dir) != 0) {
    snprintf(err, errlen, "cannot make the directory %s: %s", dir,
             strerror(errno));
    return TLS_EFILE;
  }
  if (!replace && access(key, F_OK) == 0) {
    snprintf(err, errlen,
             "%s exists: the cluster already has a CA (replacing it "
             "invalidates every certificate it signed; ask for that "
             "explicitly)",
             key);
    return TLS_EFILE;
  }
  ERR_clear_error();
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = k ? new_cert(k, "copycat-lua cluster CA", NULL, -300,
                         (long)days * DAY_SECONDS, NULL)
              : NULL;
  int rc = TLS_ENOMEM;
  if (x && add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
      add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
      add_ext(x, x, NID_subject_key_identifier, "hash") == 0 &&
      X509_sign(x, k, EVP_sha256()) > 0) {
    rc = write_pem(key, 0600, put_key, k, err, errlen);
    if (rc == 0) rc = write_pem(crt, 0644, put_cert, x, err, errlen);
  } else {
    tls__error(err, errlen, "cannot make the CA");
  }
  ERR_clear_error();
  X509_free(x);
  EVP_PKEY_free(k);
  return rc;
}

static int read_ca(const char *dir, X509 **x, EVP_PKEY **k, char *err,
                   size_t errlen) {
  char crt[4096], key[4096];
  if (path_of(crt, sizeof crt, dir, "ca", "crt") < 0 ||
      path_of(key, sizeof key, dir, "ca", "key") < 0)
    return TLS_EFILE;
  FILE *f = fopen(crt, "r");
  *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
  if (f) fclose(f);
  f = fopen(key, "r");
  *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
  if (f) fclose(f);
  ERR_clear_error();
  if (*x && *k && X509_check_private_key(*x, *k) == 1) return 0;
  snprintf(err, errlen,
           "cannot read the CA (%s and %s): make one first (ctl certs DIR)",
           crt, key);
  X509_free(*x);
  EVP_PKEY_free(*k);
  *x = NULL;
  *k = NULL;
  ERR_clear_error();
  return TLS_EFILE;
}

int tls_certs_leaf(const char *dir, const char *name, int role, int days,
                   char *err, size_t errlen) {
  char crt[4096], key[4096], san[TLS_NAME_MAX + 8];
  size_t n = strlen(name);
  if (n == 0 || n >= TLS_NAME_MAX ||
      strspn(name,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-."
             "_") != n ||
      strcmp(name, "ca") == 0 || name[0] == '.') {
    snprintf(err, errlen,
             "bad certificate name '%s': use 1 to %d letters, digits, '-', "
             "'.' or '_' (not 'ca')",
             name, TLS_NAME_MAX - 1);
    return TLS_EFILE;
  }
  if (days == 0) {
    snprintf(err, errlen, "a certificate's validity cannot be 0 days");
    return TLS_EFILE;
  }
  if (path_of(crt, sizeof crt, dir, name, "crt") < 0 ||
      path_of(key, sizeof key, dir, name, "key") < 0) {
    snprintf(err, errlen, "directory name too long: %s", dir);
    return TLS_EFILE;
  }
  X509 *ca;
  EVP_PKEY *cak;
  int rc = read_ca(dir, &ca, &cak, err, errlen);
  if (rc < 0) return rc;
  long from = -300, to = (long)days * DAY_SECONDS;
  if (days < 0) from = to - 30 * DAY_SECONDS; /* expired -days days ago */
  const char *ou = role == TLS_ROLE_MEMBER  ? "member"
                   : role == TLS_ROLE_ADMIN ? "admin"
                                            : "client";
  const char *eku =
      role == TLS_ROLE_MEMBER ? "serverAuth,clientAuth" : "clientAuth";
  snprintf(san, sizeof san, "DNS:%s", name);
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = k ? new_cert(k, name, ou, from, to, ca) : NULL;
  rc = TLS_ENOMEM;
  if (x && add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
      add_ext(x, ca, NID_key_usage, "critical,digitalSignature") == 0 &&
      add_ext(x, ca, NID_ext_key_usage, eku) == 0 &&
      add_ext(x, ca, NID_subject_alt_name, san) == 0 &&
      add_ext(x, ca, NID_authority_key_identifier, "keyid") == 0 &&
      X509_sign(x, cak, EVP_sha256()) > 0) {
    rc = write_pem(key, 0600, put_key, k, err, errlen);
    if (rc == 0) rc = write_pem(crt, 0644, put_cert, x, err, errlen);
  } else {
    tls__error(err, errlen, "cannot make the certificate");
  }
  ERR_clear_error();
  X509_free(x);
  EVP_PKEY_free(k);
  X509_free(ca);
  EVP_PKEY_free(cak);
  return rc;
}
