/*
 * listen.c — accepting connections, and address helpers.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "net.h"
#include "net_int.h"
#include "tls/tls.h"

struct net_listener {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  int is_unix;
  net_accept_cb cb;
  void *data;
  struct net_conn_opts opts;
  struct net_preauth *preauth; /* NULL: no preauth bounds */
  char address[NET_UNIX_PATH_MAX + 8];
};

int net__unix_path(const char *address, char *out) {
  if (strncmp(address, "unix:", 5) != 0) return 0;
  size_t n = strlen(address + 5);
  if (n == 0 || n >= NET_UNIX_PATH_MAX) return NET_EADDR;
  memcpy(out, address + 5, n + 1);
  return 1;
}

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

int net_address_is_loopback(const char *address) {
  char host[256];
  int port;
  struct sockaddr_storage ss;
  if (strncmp(address, "unix:", 5) == 0) return 1;
  if (net_split_address(address, host, sizeof host, &port) < 0 ||
      net__parse_ip(host, port, &ss) < 0)
    return 0;
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
  return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

static void on_connection(uv_stream_t *server, int status) {
  net_listener *l = server->data;
  if (status < 0) return; /* e.g. EMFILE: the client will retry */
  net_conn *c = net__conn_new(server->loop, &l->opts, l->is_unix);
  if (!c) return;
  if (uv_accept(server, &c->h.stream) < 0) {
    net_conn_close(c, "accept failed");
    return;
  }
  net__conn_fill_peer(c);
  if (l->preauth && net__preauth_begin(c, l->preauth, &l->opts) < 0) {
    net_conn_close(c, "too many connections that have not said hello");
    return;
  }
  if (l->opts.tls && net__tls_attach(c, l->opts.tls, 1, NULL) < 0) {
    net_conn_close(c, "out of memory");
    return;
  }
  l->cb(l, c);
}

/* Binds, makes the socket file 0600, then listens: nobody else can connect
 * in between, because a socket that is not listening refuses connections.
 * libuv removes the socket file on close; one left by a process that
 * died makes the next bind fail, so whoever owns the path removes a stale
 * one first. */
static int listen_unix(uv_loop_t *loop, const char *address, const char *path,
                       const struct net_conn_opts *opts, net_accept_cb cb,
                       void *data, net_listener **out, char *err,
                       size_t errlen) {
  net_listener *l = calloc(1, sizeof *l);
  if (!l) return UV_ENOMEM;
  l->cb = cb;
  l->data = data;
  l->is_unix = 1;
  if (opts) l->opts = *opts;
  l->opts.tls = NULL; /* a Unix socket is trusted by its file mode */
  l->opts.tls_expect = NULL;
  uv_pipe_init(loop, &l->h.pipe, 0);
  l->h.handle.data = l;
  int rc = uv_pipe_bind(&l->h.pipe, path);
  if (rc == 0 && chmod(path, S_IRUSR | S_IWUSR) != 0) rc = UV_EPERM;
  if (rc == 0) rc = uv_listen(&l->h.stream, 64, on_connection);
  if (rc < 0) {
    snprintf(err, errlen, "cannot listen on %s: %s%s", address, uv_strerror(rc),
             rc == UV_EADDRINUSE ? " (the socket file exists: is another "
                                   "server using it? If not, remove it)"
                                 : "");
    uv_close(&l->h.handle, (uv_close_cb)free);
    return rc;
  }
  snprintf(l->address, sizeof l->address, "%s", address);
  *out = l;
  return 0;
}

int net_listen(uv_loop_t *loop, const char *address,
               const struct net_conn_opts *opts, net_accept_cb cb, void *data,
               net_listener **out, char *err, size_t errlen) {
  char host[256];
  int port, rc;
  struct sockaddr_storage ss;
  *out = NULL;
  char path[NET_UNIX_PATH_MAX];
  int is_unix = net__unix_path(address, path);
  if (is_unix < 0) {
    snprintf(err, errlen,
             "cannot listen on '%s': a Unix socket path must be 1 to %d "
             "bytes long",
             address, NET_UNIX_PATH_MAX - 1);
    return NET_EADDR;
  }
  if (is_unix)
    return listen_unix(loop, address, path, opts, cb, data, out, err, errlen);
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
  l->opts.tls_expect = NULL;
  if (l->opts.preauth_max_frame || l->opts.preauth_ms || l->opts.preauth_max) {
    l->preauth = calloc(1, sizeof *l->preauth);
    if (!l->preauth) {
      free(l);
      return UV_ENOMEM;
    }
    l->preauth->refs = 1;
  }
  if (l->opts.tls) tls_ctx_ref(l->opts.tls);
  uv_tcp_init(loop, &l->h.tcp);
  l->h.handle.data = l;
  rc = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen(&l->h.stream, 511, on_connection);
  if (rc < 0) {
    snprintf(err, errlen, "cannot listen on %s: %s%s", address, uv_strerror(rc),
             rc == UV_EADDRINUSE
                 ? " (another process uses this port: stop it or pick "
                   "another address)"
                 : "");
    tls_ctx_unref(l->opts.tls);
    free(l->preauth);
    uv_close(&l->h.handle, (uv_close_cb)free);
    return rc;
  }
  int len = sizeof ss;
  uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss, &len);
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

void net_listener_set_tls(net_listener *l, struct tls_ctx *tls) {
  assert(!l->is_unix);
  if (tls) tls_ctx_ref(tls);
  tls_ctx_unref(l->opts.tls);
  l->opts.tls = tls;
}

uint64_t net_listener_refused(const net_listener *l) {
  return l->preauth ? l->preauth->refused : 0;
}

void net_listener_close(net_listener *l) {
  tls_ctx_unref(l->opts.tls);
  l->opts.tls = NULL;
  if (l->preauth && --l->preauth->refs == 0) free(l->preauth);
  l->preauth = NULL;
  uv_close(&l->h.handle, (uv_close_cb)free);
}
