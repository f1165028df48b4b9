/* net_int.h — what conn.c and listen.c share; not for other modules. */
#ifndef COPYCAT_NET_INT_H
#define COPYCAT_NET_INT_H

#include "net.h"

struct net_buf {
  char *buf;
  size_t len, cap;
};

/* Unauthenticated connections of one listener: shared by the listener
 * and those connections, freed by whichever lets go last. */
struct net_preauth {
  unsigned count;   /* connections still unauthenticated */
  unsigned refs;    /* the listener (while open) + count */
  uint64_t refused; /* closed on arrival: count was at the cap */
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
  /* Writes what was queued during a loop turn, just before the loop
   * waits for I/O again: one write per connection and turn. */
  uv_prepare_t corked;
  size_t max_queue;
  int writing, closing, close_after_flush, paused, drain_active;
  int corked_init, corked_active;
  int open_handles; /* handles still closing */
  int status;
  char reason[192];
  /* Until authenticated (listen.c): the listener's tally, the frame
   * limit that applies afterwards, and the deadline timer. */
  struct net_preauth *preauth;
  uint32_t full_max_frame;
  uv_timer_t preauth_timer;
  int preauth_timer_active;
  unsigned preauth_ms;
  struct tls_conn *tls; /* NULL for plain TCP and Unix sockets */
  char *tls_in;         /* ciphertext read from the socket (TLS only) */
};

net_conn *net__conn_new(uv_loop_t *loop, const struct net_conn_opts *opts,
                        int is_unix);
void net__conn_fill_peer(net_conn *c);
/* secure.c: TLS under a conn. net__tls_attach: 0 or UV_ENOMEM. */
int net__tls_attach(net_conn *c, struct tls_ctx *ctx, int accept,
                    const char *expect);
/* Ciphertext buffer for the next read, of *len bytes (NULL: no memory). */
char *net__tls_rbuf(net_conn *c, size_t *len);
/* n bytes of ciphertext arrived in the read buffer (n may be 0 to start
 * the handshake): decrypts into the frame reader, sends what TLS has to
 * say. 0, or the conn is being closed (nonzero). */
int net__tls_input(net_conn *c, size_t n);
/* Encrypts pend (once the handshake is done) and moves the ciphertext to
 * fly; returns the bytes now in fly. */
size_t net__tls_fill(net_conn *c);
void net__tls_free(net_conn *c);
/* listen.c: puts an accepted conn under the listener's preauth bounds;
 * 0, or -1 when the cap is reached (the caller closes it). */
int net__preauth_begin(net_conn *c, struct net_preauth *pa,
                       const struct net_conn_opts *o);
/* conn.c: closes with status and reason (no-op when already closing). */
void net__close_with(net_conn *c, int status, const char *reason);
void net__flush(net_conn *c);
int net__reserve(struct net_buf *b, size_t more);
/* Parses an IP literal ("localhost" counts as 127.0.0.1). 0 or error. */
int net__parse_ip(const char *host, int port, struct sockaddr_storage *ss);
void net__format_addr(const struct sockaddr *sa, char *out, size_t len);
/* For "unix:PATH": the path (NUL-terminated in out, which must hold at
 * least NET_UNIX_PATH_MAX bytes) and 1; 0 for any other address; NET_EADDR
 * if the path is empty or too long for a socket address. */
int net__unix_path(const char *address, char *out);

#endif
