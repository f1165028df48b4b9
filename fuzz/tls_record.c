/*
 * tls_record.c — fuzzes the accepting side of a TLS connection (host/tls),
 * which reads whatever a stranger sends before anything is verified. The
 * bytes are fed in two pieces; the connection must either wait for more or
 * fail with TLS_EPROTO and a reason, never hand out plaintext (no
 * handshake can complete without the peer's key schedule) and never
 * crash. The certificates are made once, in a temporary directory.
 */
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "tls/tls.h"

const char fuzz_target_name[] = "tls_record";
static char dir[64];
static struct tls_ctx *server, *client;

static void remove_dir(void) {
  const char *names[] = {"ca.crt", "ca.key", "n1.crt", "n1.key"};
  char p[128];
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  rmdir(dir);
}

static void init(void) {
  if (server) return;
  char err[512], ca[96], crt[96], key[96];
  snprintf(dir, sizeof dir, "/tmp/copycat-fuzz-tls-XXXXXX");
  FUZZ_CHECK(mkdtemp(dir) != NULL);
  atexit(remove_dir);
  FUZZ_CHECK(tls_certs_ca(dir, 2, 0, err, sizeof err) == 0);
  FUZZ_CHECK(tls_certs_leaf(dir, "n1", TLS_ROLE_MEMBER, 2, err, sizeof err) ==
             0);
  snprintf(ca, sizeof ca, "%s/ca.crt", dir);
  snprintf(crt, sizeof crt, "%s/n1.crt", dir);
  snprintf(key, sizeof key, "%s/n1.key", dir);
  struct tls_ctx_opts so = {.ca = ca, .cert = crt, .key = key};
  struct tls_ctx_opts co = {.ca = ca};
  FUZZ_CHECK(tls_ctx_new(&so, &server, err, sizeof err) == 0);
  FUZZ_CHECK(tls_ctx_new(&co, &client, err, sizeof err) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init();
  struct tls_conn *t = tls_conn_new(server, 1, NULL);
  FUZZ_CHECK(t != NULL);
  size_t half = size / 2;
  char buf[4096];
  int rc = 0;
  for (int piece = 0; piece < 2 && rc == 0; piece++) {
    const uint8_t *p = piece ? data + half : data;
    size_t n = piece ? size - half : half;
    FUZZ_CHECK(tls_conn_feed(t, (const char *)p, n) == 0);
    rc = tls_conn_read(t, buf, sizeof buf);
  }
  FUZZ_CHECK(rc == 0 || rc == TLS_EPROTO);
  FUZZ_CHECK(!tls_conn_ready(t));
  if (rc == TLS_EPROTO) FUZZ_CHECK(tls_conn_error(t)[0] != '\0');
  char out[8192];
  while (tls_conn_take(t, out, sizeof out) > 0) {
  }
  tls_conn_free(t);
  return 0;
}

/* A real ClientHello, and it cut short. */
void fuzz_seeds(fuzz_add_fn add, void *ud) {
  init();
  struct tls_conn *c = tls_conn_new(client, 0, "n1");
  FUZZ_CHECK(c != NULL);
  char buf[4096];
  FUZZ_CHECK(tls_conn_read(c, buf, 0) == 0);
  size_t n = tls_conn_take(c, buf, sizeof buf);
  FUZZ_CHECK(n > 0);
  add(ud, buf, n);
  add(ud, buf, n / 2);
  add(ud, buf, 5);
  tls_conn_free(c);
}
