/* TLS connections over memory (host/tls): handshakes, verification of
 * names, roles and dates, partial input and damaged records. Two
 * tls_conns talk by handing each other their output, in chunks. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tls/tls.h"

static char dir[64], other[80], path[8][200];

static const char *file(int slot, const char *d, const char *name,
                        const char *ext) {
  snprintf(path[slot], sizeof path[slot], "%s/%s.%s", d, name, ext);
  return path[slot];
}

/* A context with ca from cadir, and name's certificate from certdir. */
static struct tls_ctx *ctx_of(const char *cadir, const char *certdir,
                              const char *name, int require) {
  struct tls_ctx_opts o = {.ca = file(0, cadir, "ca", "crt"),
                           .require_client_cert = require};
  if (name) {
    o.cert = file(1, certdir, name, "crt");
    o.key = file(2, certdir, name, "key");
  }
  struct tls_ctx *c = NULL;
  char err[512];
  int rc = tls_ctx_new(&o, &c, err, sizeof err);
  if (rc < 0) printf("    tls_ctx_new: %s\n", err);
  CHECK_INT(rc, ==, 0);
  return c;
}

struct side {
  struct tls_conn *t;
  char plain[256];
  size_t plain_len;
  int rc; /* last tls_conn_read result < 0, or 0 */
};

/* Moves a's output into b, `chunk` bytes per feed, then lets b read. */
static void move(struct side *a, struct side *b, size_t chunk) {
  char buf[32768];
  size_t n = tls_conn_take(a->t, buf, sizeof buf);
  for (size_t off = 0; off < n; off += chunk) {
    size_t k = n - off < chunk ? n - off : chunk;
    CHECK_INT(tls_conn_feed(b->t, buf + off, k), ==, 0);
    for (;;) {
      int got = tls_conn_read(b->t, b->plain + b->plain_len,
                              sizeof b->plain - b->plain_len);
      if (got <= 0) {
        if (got < 0) b->rc = got;
        break;
      }
      b->plain_len += (size_t)got;
    }
  }
}

/* Runs the handshake between a dialing and an accepting side. */
static void pump(struct side *d, struct side *a, size_t chunk) {
  CHECK_INT(tls_conn_read(d->t, d->plain, 0), ==, 0); /* ClientHello */
  for (int i = 0; i < 20; i++) {
    move(d, a, chunk);
    move(a, d, chunk);
    if (tls_conn_pending(d->t) == 0 && tls_conn_pending(a->t) == 0) break;
  }
}

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/copycat-tls-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  snprintf(other, sizeof other, "%s/other", dir);
  char err[512];
  CHECK_INT(tls_certs_ca(dir, 30, 0, err, sizeof err), ==, 0);
  CHECK_INT(tls_certs_ca(dir, 30, 0, err, sizeof err), ==, TLS_EFILE);
  CHECK(strstr(err, "already has a CA") != NULL);
  CHECK_INT(tls_certs_leaf(dir, "n1", TLS_ROLE_MEMBER, 10, err, sizeof err), ==,
            0);
  CHECK_INT(tls_certs_leaf(dir, "n2", TLS_ROLE_MEMBER, 10, err, sizeof err), ==,
            0);
  CHECK_INT(tls_certs_leaf(dir, "cl", TLS_ROLE_CLIENT, 10, err, sizeof err), ==,
            0);
  CHECK_INT(tls_certs_leaf(dir, "admin", TLS_ROLE_ADMIN, 10, err, sizeof err),
            ==, 0);
  CHECK_INT(tls_certs_leaf(dir, "old", TLS_ROLE_MEMBER, -1, err, sizeof err),
            ==, 0);
  CHECK_INT(tls_certs_leaf(dir, "a,b", TLS_ROLE_MEMBER, 1, err, sizeof err), ==,
            TLS_EFILE);
  CHECK_INT(tls_certs_ca(other, 30, 0, err, sizeof err), ==, 0);
  CHECK_INT(tls_certs_leaf(other, "n1", TLS_ROLE_MEMBER, 10, err, sizeof err),
            ==, 0);
}

TEST(certificates_carry_names_roles_and_private_keys) {
  setup();
  struct tls_ctx *m = ctx_of(dir, dir, "n1", 0);
  CHECK(strcmp(tls_ctx_name(m), "n1") == 0);
  CHECK_INT(tls_ctx_role(m), ==, TLS_ROLE_MEMBER);
  struct tls_ctx *a = ctx_of(dir, dir, "admin", 0);
  CHECK_INT(tls_ctx_role(a), ==, TLS_ROLE_ADMIN);
  struct tls_ctx *c = ctx_of(dir, dir, "cl", 0);
  CHECK_INT(tls_ctx_role(c), ==, TLS_ROLE_CLIENT);
  tls_ctx_unref(m);
  tls_ctx_unref(a);
  tls_ctx_unref(c);
  /* A key is its owner's only: mode 0600. */
  CHECK(access(file(3, dir, "n1", "key"), R_OK) == 0);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "test \"$(stat -c %%a %s)\" = 600",
           file(3, dir, "n1", "key"));
  CHECK_INT(system(cmd), ==, 0);
  /* A key that is not the certificate's is refused with both names. */
  struct tls_ctx_opts o = {.ca = file(0, dir, "ca", "crt"),
                           .cert = file(1, dir, "n1", "crt"),
                           .key = file(2, dir, "n2", "key")};
  struct tls_ctx *bad = NULL;
  char err[512];
  CHECK_INT(tls_ctx_new(&o, &bad, err, sizeof err), ==, TLS_EFILE);
  CHECK(strstr(err, "does not belong") || strstr(err, "mismatch"));
  o.key = "/nonexistent.key";
  CHECK_INT(tls_ctx_new(&o, &bad, err, sizeof err), ==, TLS_EFILE);
  CHECK(strstr(err, "/nonexistent.key") != NULL);
}

/* A member dials a member, expecting `expect`; returns the sides. */
static void dial(struct tls_ctx *dc, struct tls_ctx *ac, const char *expect,
                 size_t chunk, struct side *d, struct side *a) {
  memset(d, 0, sizeof *d);
  memset(a, 0, sizeof *a);
  d->t = tls_conn_new(dc, 0, expect);
  a->t = tls_conn_new(ac, 1, NULL);
  CHECK(d->t && a->t);
  pump(d, a, chunk);
}

static void done(struct side *d, struct side *a) {
  tls_conn_free(d->t);
  tls_conn_free(a->t);
}

TEST(members_verify_each_other_byte_by_byte) {
  struct tls_ctx *c1 = ctx_of(dir, dir, "n1", 0);
  struct tls_ctx *c2 = ctx_of(dir, dir, "n2", 0);
  struct side d, a;
  dial(c1, c2, "n2", 1, &d, &a); /* one byte per feed */
  CHECK(tls_conn_ready(d.t) && tls_conn_ready(a.t));
  CHECK(strcmp(tls_conn_peer_name(d.t), "n2") == 0);
  CHECK(strcmp(tls_conn_peer_name(a.t), "n1") == 0);
  CHECK_INT(tls_conn_peer_role(a.t), ==, TLS_ROLE_MEMBER);
  /* Data both ways, split across feeds. */
  CHECK_INT(tls_conn_write(d.t, "hello", 5), ==, 0);
  CHECK_INT(tls_conn_write(d.t, " world", 6), ==, 0);
  move(&d, &a, 3);
  CHECK_INT(a.plain_len, ==, 11);
  CHECK(memcmp(a.plain, "hello world", 11) == 0);
  CHECK_INT(tls_conn_write(a.t, "ok", 2), ==, 0);
  move(&a, &d, 7);
  CHECK_INT(d.plain_len, ==, 2);
  done(&d, &a);
  tls_ctx_unref(c1);
  tls_ctx_unref(c2);
}

TEST(a_dialed_server_must_have_the_expected_member_name) {
  struct tls_ctx *c1 = ctx_of(dir, dir, "n1", 0);
  struct tls_ctx *c2 = ctx_of(dir, dir, "n2", 0);
  struct side d, a;
  dial(c1, c2, "n3", 512, &d, &a);
  CHECK_INT(d.rc, ==, TLS_EPROTO);
  CHECK(!tls_conn_ready(d.t));
  CHECK(strstr(tls_conn_error(d.t), "expected member 'n3'") != NULL);
  CHECK_INT(tls_conn_write(d.t, "x", 0), ==, TLS_EPROTO);
  done(&d, &a);
  /* A client certificate cannot pose as a server. */
  struct tls_ctx *cl = ctx_of(dir, dir, "cl", 0);
  dial(c1, cl, NULL, 512, &d, &a);
  CHECK(!tls_conn_ready(d.t) || d.rc < 0);
  CHECK(strstr(tls_conn_error(d.t), "not a member certificate") != NULL);
  done(&d, &a);
  tls_ctx_unref(c1);
  tls_ctx_unref(c2);
  tls_ctx_unref(cl);
}

TEST(expired_and_foreign_certificates_are_refused) {
  struct tls_ctx *srv = ctx_of(dir, dir, "n1", 0);
  struct tls_ctx *old = ctx_of(dir, dir, "old", 0);
  struct side d, a;
  dial(old, srv, "n1", 512, &d, &a);
  CHECK_INT(a.rc, ==, TLS_EPROTO);
  CHECK(!tls_conn_ready(a.t));
  CHECK(strstr(tls_conn_error(a.t), "expired") != NULL);
  done(&d, &a);
  /* Signed by another CA, under the same member name. */
  struct tls_ctx *foreign = ctx_of(other, other, "n1", 0);
  dial(foreign, srv, NULL, 512, &d, &a);
  CHECK(!tls_conn_ready(a.t));
  CHECK(d.rc < 0 || a.rc < 0);
  done(&d, &a);
  tls_ctx_unref(srv);
  tls_ctx_unref(old);
  tls_ctx_unref(foreign);
}

TEST(client_certificates_are_optional_unless_required) {
  struct tls_ctx *srv = ctx_of(dir, dir, "n1", 0);
  struct tls_ctx *strict = ctx_of(dir, dir, "n1", 1);
  struct tls_ctx *anon = ctx_of(dir, dir, NULL, 0);
  struct side d, a;
  dial(anon, srv, NULL, 512, &d, &a);
  CHECK(tls_conn_ready(a.t));
  CHECK_INT(tls_conn_peer_role(a.t), ==, TLS_ROLE_NONE);
  CHECK(strcmp(tls_conn_peer_name(a.t), "") == 0);
  done(&d, &a);
  dial(anon, strict, NULL, 512, &d, &a);
  CHECK(!tls_conn_ready(a.t));
  CHECK_INT(a.rc, ==, TLS_EPROTO);
  done(&d, &a);
  tls_ctx_unref(srv);
  tls_ctx_unref(strict);
  tls_ctx_unref(anon);
}

TEST(damaged_records_fail_the_session_and_nothing_else) {
  struct tls_ctx *c1 = ctx_of(dir, dir, "n1", 0);
  struct tls_ctx *c2 = ctx_of(dir, dir, "n2", 0);
  struct side d, a;
  dial(c1, c2, "n2", 512, &d, &a);
  CHECK(tls_conn_ready(a.t));
  char buf[4096];
  CHECK_INT(tls_conn_write(d.t, "secret", 6), ==, 0);
  size_t n = tls_conn_take(d.t, buf, sizeof buf);
  CHECK(n > 10);
  buf[n - 3] ^= 0x40; /* flip a bit of the record's tag */
  CHECK_INT(tls_conn_feed(a.t, buf, n), ==, 0);
  CHECK_INT(tls_conn_read(a.t, a.plain, sizeof a.plain), ==, TLS_EPROTO);
  CHECK(tls_conn_error(a.t)[0] != '\0');
  CHECK_INT(tls_conn_read(a.t, a.plain, sizeof a.plain), ==, TLS_EPROTO);
  done(&d, &a);
  /* Garbage instead of a ClientHello. */
  struct tls_conn *t = tls_conn_new(c2, 1, NULL);
  CHECK(t);
  memset(buf, 0x16, 64);
  CHECK_INT(tls_conn_feed(t, buf, 64), ==, 0);
  CHECK_INT(tls_conn_read(t, buf, sizeof buf), ==, TLS_EPROTO);
  tls_conn_free(t);
  tls_ctx_unref(c1);
  tls_ctx_unref(c2);
}

int main(void) {
  RUN(certificates_carry_names_roles_and_private_keys);
  RUN(members_verify_each_other_byte_by_byte);
  RUN(a_dialed_server_must_have_the_expected_member_name);
  RUN(expired_and_foreign_certificates_are_refused);
  RUN(client_certificates_are_optional_unless_required);
  RUN(damaged_records_fail_the_session_and_nothing_else);
  char cmd[100];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (dir[0]) system(cmd);
  return harness_done();
}
