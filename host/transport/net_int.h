/* net_int.h — what conn.c and listen.c share; not for other modules. */
#ifndef COPYCAT_NET_INT_H
#define COPYCAT_NET_INT_H

#include "net.h"

struct net_buf {
  char *buf;
  size_t len, cap;
};

struct net_conn {
  uv_tcp_t tcp;
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

net_conn *net__conn_new(uv_loop_t *loop, const struct net_conn_opts *opts);
void net__conn_fill_peer(net_conn *c);
/* Parses an IP literal ("localhost" counts as 127.0.0.1). 0 or error. */
int net__parse_ip(const char *host, int port, struct sockaddr_storage *ss);
void net__format_addr(const struct sockaddr *sa, char *out, size_t len);

#endif
