/*
 * gateway.c — the gateway's lifecycle: H2O's configuration and context on
 * the server's libuv loop, the listeners, accepting connections (at most
 * GW_MAX_CONNS open), TLS, and closing.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/gw_int.h"
#include "tls/tls.h"
#include "tls/tls_int.h"

struct gw_handler {
  h2o_handler_t super;
  struct gw *g;
};

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  struct gw_handler *h = (struct gw_handler *)self;
  return gw_route(h->g, req);
}

struct gw_sock {
  uv_tcp_t tcp;
  struct gw *g;
  struct gw_sock *next, *prev; /* in g->socks */
};

static void on_sock_closed(uv_handle_t *h) {
  struct gw_sock *s = (struct gw_sock *)h;
  struct gw *g = s->g;
  g->conns--;
  if (s->prev)
    s->prev->next = s->next;
  else if (g->socks == s)
    g->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  free(s);
}

static void on_accept(uv_stream_t *server, int status) {
  struct gw_listener *l = (struct gw_listener *)server;
  struct gw *g = l->g;
  if (status < 0 || g->closing) return;
  struct gw_sock *s = calloc(1, sizeof *s);
  if (!s) return;
  s->g = g;
  uv_tcp_init(g->loop, &s->tcp);
  g->conns++;
  s->next = g->socks;
  if (g->socks) g->socks->prev = s;
  g->socks = s;
  if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0 ||
      g->conns > GW_MAX_CONNS) {
    uv_close((uv_handle_t *)&s->tcp, on_sock_closed);
    return;
  }
  uv_tcp_nodelay(&s->tcp, 1);
  h2o_socket_t *sock =
      h2o_uv_socket_create((uv_stream_t *)&s->tcp, on_sock_closed);
  h2o_accept(&l->accept, sock);
}

static int listen_one(struct gw *g, const char *address, int metrics_only,
                      char *err, size_t errlen) {
  struct gw_listener *l = &g->lis[g->nlis];
  char host[GW_ADDR_MAX];
  int port;
  if (net_split_address(address, host, sizeof host, &port) < 0) {
    snprintf(err, errlen, "bad HTTP address '%s': expected HOST:PORT", address);
    return -1;
  }
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
    snprintf(err, errlen,
             "bad HTTP address '%s': the host must be an IP address or "
             "localhost",
             address);
    return -1;
  }
  l->g = g;
  l->metrics_only = metrics_only;
  uv_tcp_init(g->loop, &l->tcp);
  l->open = 1;
  g->nlis++;
  int rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&l->tcp, 128, on_accept);
  if (rc < 0) {
    snprintf(err, errlen, "cannot serve %s on %s: %s",
             metrics_only ? "metrics" : "HTTP", address, uv_strerror(rc));
    return -1;
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  char ip[64] = "";
  uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &blen);
  if (bound.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof ip);
    snprintf(l->address, sizeof l->address, "[%s]:%d", ip,
             ntohs(((struct sockaddr_in6 *)&bound)->sin6_port));
  } else {
    uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof ip);
    snprintf(l->address, sizeof l->address, "%s:%d", ip,
             ntohs(((struct sockaddr_in *)&bound)->sin_port));
  }
  l->accept.ctx = &g->ctx;
  l->accept.hosts = metrics_only ? g->metrics_hosts : g->config.hosts;
  /* The metrics page stays plain HTTP (docs/tls.md), the API does not. */
  l->accept.ssl_ctx = g->tls && !metrics_only ? g->tls->ssl : NULL;
  return 0;
}

/* H2O's own handles (the context's timers and its wake-up queue) must not
 * keep the loop alive once the server is gone: H2O 2.2 cannot close them
 * while connections may still use them. */
struct handle_set {
  uv_handle_t **h;
  size_t n, cap;
  int collect;
};

static void walk(uv_handle_t *h, void *arg) {
  struct handle_set *set = arg;
  if (set->collect) {
    if (set->n == set->cap) {
      size_t cap = set->cap ? set->cap * 2 : 64;
      uv_handle_t **p = realloc(set->h, cap * sizeof *p);
      if (!p) return;
      set->h = p;
      set->cap = cap;
    }
    set->h[set->n++] = h;
    return;
  }
  for (size_t i = 0; i < set->n; i++)
    if (set->h[i] == h) return;
  uv_unref(h);
}

static void context_init(struct gw *g) {
  struct handle_set set = {.collect = 1};
  uv_walk(g->loop, walk, &set);
  h2o_context_init(&g->ctx, g->loop, &g->config);
  set.collect = 0;
  uv_walk(g->loop, walk, &set);
  free(set.h);
}

static void on_listener_closed(uv_handle_t *h) {
  struct gw_listener *l = (struct gw_listener *)h;
  gw__closed_one(l->g);
}

static void on_retry_closed(uv_handle_t *h) {
  gw__closed_one(h->data);
}

int gw_start(uv_loop_t *loop, const struct gw_opts *o, struct gw **out,
             char *err, size_t errlen) {
  struct gw *g = calloc(1, sizeof *g);
  if (!g) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  signal(SIGPIPE, SIG_IGN); /* a caller that hangs up must not end us */
  g->loop = loop;
  g->o = *o;
  g->server = o->server;
  if (o->log)
    g->log = *o->log;
  else
    logger_init(&g->log);
  if (!g->o.election_ms) g->o.election_ms = 500;
  snprintf(g->upstream, sizeof g->upstream, "%s", o->upstream);
  snprintf(g->leader, sizeof g->leader, "%s", o->upstream);
  snprintf(g->cluster, sizeof g->cluster, "%s",
           o->cluster ? o->cluster : "copycat");
  g->tls = o->tls;
  if (g->tls) {
    tls_ctx_ref(g->tls);
    h2o_ssl_register_alpn_protocols(g->tls->ssl, h2o_http2_alpn_protocols);
  }
  h2o_config_init(&g->config);
  g->config.server_name = h2o_iovec_init(H2O_STRLIT("copycat-lua"));
  /* Bodies up to twice the native limit reach the handler, which refuses
   * those over it with a JSON error; H2O refuses larger ones itself. */
  g->config.max_request_entity_size = 2 * (size_t)o->max_request + 4096;
  h2o_hostconf_t *host = h2o_config_register_host(
      &g->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
  struct gw_handler *h =
      (struct gw_handler *)h2o_create_handler(path, sizeof *h);
  h->super.on_req = on_req;
  h->g = g;
  g->metrics_hosts[0] = host;
  g->metrics_hosts[1] = NULL;
  context_init(g);
  uv_timer_init(loop, &g->retry);
  g->retry.data = g;
  uv_timer_init(loop, &g->own.keepalive);
  g->own.keepalive.data = g;
  for (int i = 0; i < GW_MAX_LISTENERS && o->address[i]; i++) {
    if (listen_one(g, o->address[i], o->metrics_only[i], err, errlen) < 0) {
      gw_close(g, NULL, NULL);
      return -1;
    }
  }
  *out = g;
  return 0;
}

const char *gw_address(const struct gw *g, int i) {
  return g && i < g->nlis ? g->lis[i].address : NULL;
}

void gw_set_tls(struct gw *g, struct tls_ctx *tls) {
  if (!g->tls || !tls) return;
  tls_ctx_ref(tls);
  h2o_ssl_register_alpn_protocols(tls->ssl, h2o_http2_alpn_protocols);
  for (int i = 0; i < g->nlis; i++)
    if (!g->lis[i].metrics_only) g->lis[i].accept.ssl_ctx = tls->ssl;
  tls_ctx_unref(g->tls);
  g->tls = tls;
}

void gw__closed_one(struct gw *g) {
  if (--g->closing_handles > 0) return;
  void (*cb)(void *) = g->close_cb;
  void *data = g->close_data;
  /* H2O's context and the HTTP connections still open are left to the
   * process's exit: H2O 2.2 cannot close its connections on demand. */
  if (cb) cb(data);
}

static void on_ka_closed(uv_handle_t *h) {
  gw__closed_one(h->data);
}

void gw_close(struct gw *g, void (*cb)(void *data), void *data) {
  if (g->closing) return;
  g->closing = 1;
  g->close_cb = cb;
  g->close_data = data;
  g->closing_handles = 1 + g->nlis + 2;
  gw_streams_close_all(g);
  gw_own_close(g);
  gw_calls_fail_all(g, CPROTO_ESTOPPING, "server is stopping");
  gw_ups_close_all(g);
  /* Open HTTP connections end with the process (or their idle timeout). */
  for (struct gw_sock *s = g->socks; s; s = s->next)
    uv_unref((uv_handle_t *)&s->tcp);
  for (int i = 0; i < g->nlis; i++)
    uv_close((uv_handle_t *)&g->lis[i].tcp, on_listener_closed);
  uv_close((uv_handle_t *)&g->retry, on_retry_closed);
  uv_close((uv_handle_t *)&g->own.keepalive, on_ka_closed);
  if (g->tls) tls_ctx_unref(g->tls);
  g->tls = NULL;
  gw__closed_one(g); /* the 1 above: cb runs once all handles closed */
}
