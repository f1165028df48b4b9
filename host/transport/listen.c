/*
 * listen.c — accepting connections, and address helpers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "net_int.h"

struct net_listener {
  uv_tcp_t tcp;
  net_accept_cb cb;
  void *data;
  struct net_conn_opts opts;
  char address[64];
};

int net__parse_ip(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return NET_EADDR;
}

void net__format_addr(const struct sockaddr *sa, char *out, size_t len) {
  char ip[64] = "";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    uv_ip4_name(in, ip, sizeof ip);
    port = ntohs(in->sin_port);
    snprintf(out, len, "%s:%d", ip, port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(in6, ip, sizeof ip);
    port = ntohs(in6->sin6_port);
    snprintf(out, len, "[%s]:%d", ip, port);
  } else {
    snprintf(out, len, "?");
  }
}

static void on_connection(uv_stream_t *server, int status) {
  net_listener *l = server->data;
  if (status < 0) return; /* e.g. EMFILE: the client will retry */
  net_conn *c = net__conn_new(server->loop, &l->opts);
  if (!c) return;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    net_conn_close(c, "accept failed");
    return;
  }
  net__conn_fill_peer(c);
  l->cb(l, c);
}

int net_listen(uv_loop_t *loop, const char *address,
               const struct net_conn_opts *opts, net_accept_cb cb, void *data,
               net_listener **out, char *err, size_t errlen) {
  char host[256];
  int port, rc;
  struct sockaddr_storage ss;
  *out = NULL;
  if (net_split_address(address, host, sizeof host, &port) < 0 ||
      net__parse_ip(host, port, &ss) < 0) {
    snprintf(err, errlen,
             "cannot listen on '%s': expected IP:PORT, e.g. 127.0.0.1:5001",
             address);
    return NET_EADDR;
  }
  net_listener *l = calloc(1, sizeof *l);
  if (!l) return UV_ENOMEM;
  l->cb = cb;
  l->data = data;
  if (opts) l->opts = *opts;
  uv_tcp_init(loop, &l->tcp);
  l->tcp.data = l;
  rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
  if (rc < 0) {
    snprintf(err, errlen, "cannot listen on %s: %s%s", address, uv_strerror(rc),
             rc == UV_EADDRINUSE
                 ? " (another process uses this port: stop it or pick "
                   "another address)"
                 : "");
    uv_close((uv_handle_t *)&l->tcp, (uv_close_cb)free);
    return rc;
  }
  int len = sizeof ss;
  uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
  net__format_addr((struct sockaddr *)&ss, l->address, sizeof l->address);
  *out = l;
  return 0;
}

void *net_listener_data(net_listener *l) {
  return l->data;
}

const char *net_listener_address(net_listener *l) {
  return l->address;
}

void net_listener_close(net_listener *l) {
  uv_close((uv_handle_t *)&l->tcp, (uv_close_cb)free);
}
