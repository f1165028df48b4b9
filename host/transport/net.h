/*
 * net.h — TCP transport: length-prefixed frames over libuv streams.
 *
 * An address is "host:port", or "unix:PATH" for a Unix socket (the admin
 * channel uses one). A Unix socket is created with mode 0600, before it
 * accepts anything, so only its owner can connect.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes (one
 * msgpack value, by the protocol's convention; this layer does not look
 * inside). Frames longer than the connection's max_frame close the
 * connection before anything is allocated for them.
 *
 * Writes are coalesced: frames queued while a write is in flight go out
 * together in the next write, so a burst of small messages costs one
 * system call, not one each. Every connection has TCP_NODELAY set.
 *
 * TLS (host/tls): a connection or listener given a tls_ctx in its options
 * runs TLS over the stream (secure.c); frames, writes and callbacks are
 * the same, and frames only flow once the handshake has verified the
 * peer. A handshake or record failure closes the connection with
 * NET_ETLS and the reason. net_conn_tls_name/role say who the peer
 * proved to be.
 *
 * Ownership: the transport allocates each net_conn and frees it after its
 * on_close callback has returned; the user must forget the pointer there.
 * Every callback runs on the loop thread.
 */
#ifndef COPYCAT_NET_H
#define COPYCAT_NET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define NET_DEFAULT_MAX_FRAME (64u << 20) /* 64 MiB */
#define NET_DEFAULT_MAX_QUEUE (256u << 20)

/* Error codes beyond libuv's (which are negative errno values). */
#define NET_ETOOBIG (-20001)   /* frame larger than max_frame */
#define NET_EQUEUE (-20002)    /* outgoing queue over max_queue */
#define NET_ECLOSED (-20003)   /* connection already closing */
#define NET_EADDR (-20004)     /* address not of the form host:port */
#define NET_ETLS (-20005)      /* TLS handshake, verification or record */
#define NET_ETIMEDOUT (-20006) /* not authenticated within preauth_ms */

/* Longest Unix socket path, with its NUL (the size of sun_path). */
#define NET_UNIX_PATH_MAX 108

const char *net_strerror(int code);

/* ---- frame reader (frame.c): pure, no I/O, unit-tested on its own ---- */

struct net_reader {
  char *buf;
  size_t len; /* bytes held */
  size_t off; /* start of the first unconsumed frame */
  size_t cap;
  uint32_t max_frame;
};

void net_reader_init(struct net_reader *r, uint32_t max_frame);
void net_reader_free(struct net_reader *r);
/* Appends n bytes. Returns 0 or UV_ENOMEM. */
int net_reader_feed(struct net_reader *r, const char *data, size_t n);
/* Sets *frame and *len to the next complete frame and returns 1; returns 0 when
 * more bytes are needed; NET_ETOOBIG when the next frame's declared length
 * exceeds max_frame. The frame stays valid until the next feed or next. */
int net_reader_next(struct net_reader *r, const char **frame, size_t *len);

/* Makes room for at least min more bytes and returns where to put them
 * (*avail: how many fit), so a socket can read straight into the reader.
 * Returns NULL on out-of-memory. Follow with net_reader_commit. */
char *net_reader_space(struct net_reader *r, size_t min, size_t *avail);
void net_reader_commit(struct net_reader *r, size_t n);
/* True if a complete frame (or an over-limit prefix) is buffered. */
int net_reader_ready(const struct net_reader *r);

/* Writes the 4-byte big-endian prefix for a frame of len bytes. */
void net_put_prefix(char out[4], uint32_t len);

/* ---- addresses ---- */

/* Parses "host:port" or "[v6]:port" into host (NUL-terminated, at most
 * hostlen-1 bytes) and port. Returns 0 or NET_EADDR. */
int net_split_address(const char *addr, char *host, size_t hostlen, int *port);

/* 1 if only this machine can reach address: "unix:PATH", 127.0.0.0/8,
 * ::1 or "localhost"; 0 for anything else (0.0.0.0, other IPs, names). */
int net_address_is_loopback(const char *address);

/* ---- connections (conn.c) ---- */

typedef struct net_conn net_conn;

struct net_conn_cbs {
  /* A complete frame arrived; data is valid only during the call. */
  void (*on_frame)(net_conn *c, const char *data, size_t len);
  /* The connection is closed: status 0 for a close we asked for, UV_EOF
   * when the peer closed, otherwise the error; reason is a human sentence.
   * The conn is freed when this returns. */
  void (*on_close)(net_conn *c, int status, const char *reason);
};

struct tls_ctx;

struct net_conn_opts {
  uint32_t max_frame; /* 0: NET_DEFAULT_MAX_FRAME */
  size_t max_queue;   /* 0: NET_DEFAULT_MAX_QUEUE */
  /* Listeners: bounds on a connection until net_conn_authenticated (the
   * TLS handshake and the hello both count). preauth_max_frame: largest
   * frame before that (0: max_frame); preauth_ms: a connection not
   * authenticated by then is closed with NET_ETIMEDOUT (0: never);
   * preauth_max: most connections not yet authenticated at once, more are
   * closed as they arrive (0: no cap; net_listener_refused counts them). */
  uint32_t preauth_max_frame;
  unsigned preauth_ms;
  unsigned preauth_max;
  /* TLS (not for unix: addresses): NULL for plain TCP. A listener or
   * connect takes its own reference. tls_expect: for net_connect, the
   * member name the server's certificate must carry (NULL: any member). */
  struct tls_ctx *tls;
  const char *tls_expect;
};

void net_conn_set_data(net_conn *c, void *data);
void *net_conn_data(net_conn *c);
/* The peer's address as "ip:port" (empty if unknown). */
const char *net_conn_peer(net_conn *c);
/* 1 if the connection runs TLS. */
int net_conn_is_tls(const net_conn *c);
/* The name and role (TLS_ROLE_*, host/tls/tls.h) of the certificate the
 * peer proved to hold; "" and TLS_ROLE_NONE without TLS or certificate. */
const char *net_conn_tls_name(const net_conn *c);
int net_conn_tls_role(const net_conn *c);
/* The peer is authenticated (its hello was accepted): the listener's
 * preauth bounds no longer apply to c. Idempotent; a no-op for a conn
 * without them. */
void net_conn_authenticated(net_conn *c);
/* 1 while c is under its listener's preauth bounds. */
int net_conn_preauth(const net_conn *c);
/* Queues one frame. Returns 0, NET_ECLOSED, NET_ETOOBIG or NET_EQUEUE (the
 * peer is not reading: the connection is then closed). */
int net_conn_send(net_conn *c, const void *data, size_t len);
/* Bytes queued and not yet written. */
size_t net_conn_queued(net_conn *c);
/* Stops / restarts reading (back-pressure towards the peer). */
void net_conn_pause(net_conn *c);
void net_conn_resume(net_conn *c);
/* Starts closing; on_close follows with status 0 and this reason. Safe to
 * call more than once; queued frames are dropped. */
void net_conn_close(net_conn *c, const char *reason);
/* Closes after the queued frames have been written (for a last error
 * reply before hanging up). */
void net_conn_close_after_flush(net_conn *c, const char *reason);

/* ---- outgoing connections ---- */

/* Called once: with a conn on success (start it with net_conn_start), or
 * with NULL and an error code and reason. */
typedef void (*net_connect_cb)(void *data, net_conn *c, int status,
                               const char *reason);

/* Connects to "host:port" (an IP literal, or a name resolved with
 * getaddrinfo). Returns 0 or an error (then cb is never called). */
int net_connect(uv_loop_t *loop, const char *address,
                const struct net_conn_opts *opts, net_connect_cb cb,
                void *data);

/* Begins delivering frames to cbs. Until then nothing is read. */
void net_conn_start(net_conn *c, const struct net_conn_cbs *cbs);

/* ---- listeners ---- */

typedef struct net_listener net_listener;

/* A new connection: start it with net_conn_start (or close it). */
typedef void (*net_accept_cb)(net_listener *l, net_conn *c);

/* Listens on "host:port" (port 0 picks a free one) or "unix:PATH" (the
 * socket file must not exist; it is made mode 0600). Returns 0 or an error
 * code with a sentence in err (e.g. the address is in use). */
int net_listen(uv_loop_t *loop, const char *address,
               const struct net_conn_opts *opts, net_accept_cb cb, void *data,
               net_listener **out, char *err, size_t errlen);
void *net_listener_data(net_listener *l);
/* Replaces the TLS context new connections get (NULL: plain; the
 * listener must have been started with TLS). Connections already
 * accepted keep theirs. */
void net_listener_set_tls(net_listener *l, struct tls_ctx *tls);
/* Connections closed on arrival because preauth_max were unauthenticated. */
uint64_t net_listener_refused(const net_listener *l);
/* The bound address as "ip:port" (or "unix:PATH"). */
const char *net_listener_address(net_listener *l);
/* Stops listening and frees the listener (asynchronously). */
void net_listener_close(net_listener *l);

#endif
