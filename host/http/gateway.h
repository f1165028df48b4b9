/*
 * gateway.h — the HTTP/JSON API of a server (docs/http.md), on H2O
 * (libh2o, built on libuv) with JSON by jansson.
 *
 * The gateway runs on the server's loop. Status, members, readiness and
 * metrics it reads from the server directly (server.h). Commands, queries
 * and sessions it turns into requests of the native client protocol
 * (docs/protocol.md) sent over client connections to the members,
 * starting with this server's own address and following redirects to
 * the leader, so an HTTP caller never sees "not leader": any member
 * answers any request.
 *
 * Everything runs on the loop thread. Whatever a caller sends, the
 * gateway answers it or closes that one connection; it never stops the
 * server.
 */
#ifndef COPYCAT_HTTP_GATEWAY_H
#define COPYCAT_HTTP_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct server;
struct tls_ctx;
struct logger;

#define GW_MAX_LISTENERS 2

struct gw_opts {
  /* Where to listen ("HOST:PORT", port 0 picks one): up to
   * GW_MAX_LISTENERS addresses, NULL-terminated or full. */
  const char *address[GW_MAX_LISTENERS];
  /* Only /metrics (and /health) on address[i] when metrics_only[i]. */
  int metrics_only[GW_MAX_LISTENERS];
  /* The server's native address (the gateway's first upstream). */
  const char *upstream;
  const char *cluster;
  /* NULL: plain HTTP and plain upstream connections. Otherwise the
   * server's member context: the HTTP listeners speak TLS with its
   * certificate, upstream connections present it. A reference is kept. */
  struct tls_ctx *tls;
  uint32_t max_request; /* bytes; the native protocol's limit */
  unsigned election_ms; /* how long a request may wait for a leader */
  struct server *server;
  const struct logger *log;
};

struct gw;

/* Starts listening. 0, or -1 with a sentence in err. */
int gw_start(uv_loop_t *loop, const struct gw_opts *o, struct gw **out,
             char *err, size_t errlen);
/* The bound address of listener i ("ip:port"), NULL if none. */
const char *gw_address(const struct gw *g, int i);
/* Replaces the TLS context (a certificate reload): new connections use it. */
void gw_set_tls(struct gw *g, struct tls_ctx *tls);
/* Stops listening, fails what is in flight, closes upstream connections;
 * cb(data) once the handles are closed. */
void gw_close(struct gw *g, void (*cb)(void *data), void *data);

#endif
