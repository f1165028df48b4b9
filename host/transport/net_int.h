/* net_int.h — what conn.c and listen.c share; not for other modules. */
#ifndef COPYCAT_NET_INT_H
#define COPYCAT_NET_INT_H

#include "net.h"

struct net_buf {
  char *buf;
  size_t len, cap;
};

struct net_conn {
  union { /* a TCP socket, or a Unix socket for "unix:PATH" addresses */
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  int is_unix;
  struct net_conn_cbs cbs;
  struct net_reader reader;
  void *data;
  char peer[64];
  struct net_buf pend; /* queued, not yet handed to the kernel */
  struct net_buf fly;  /* being written */
  uv_write_t wreq;
  uv_idle_t drain; /* delivers buffered frames after a resume */
  size_t max_queue;
  int writing, closing, close_after_flush, paused, drain_active;
  int open_handles; /* handles still closing */
  int status;
  char reason[192];
};

net_conn *net__conn_new(uv_loop_t *loop, const struct net_conn_opts *opts,
                        int is_unix);
void net__conn_fill_peer(net_conn *c);
/* Parses an IP literal ("localhost" counts as 127.0.0.1). 0 or error. */
int net__parse_ip(const char *host, int port, struct sockaddr_storage *ss);
void net__format_addr(const struct sockaddr *sa, char *out, size_t len);
/* For "unix:PATH": the path (NUL-terminated in out, which must hold at
 * least NET_UNIX_PATH_MAX bytes) and 1; 0 for any other address; NET_EADDR
 * if the path is empty or too long for a socket address. */
int net__unix_path(const char *address, char *out);

#endif
