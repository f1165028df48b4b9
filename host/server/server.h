/*
 * server.h — one copycat-lua server: the Raft core, the durable store, the
 * transport and a state machine, wired together on one libuv loop.
 *
 * The server carries out the core's outputs (docs/raft.md): it makes the
 * hard state durable before sending the messages that depend on it, hands
 * new entries to the store (whose worker thread writes them while the loop
 * goes on) and reports them durable to the core only when the store says
 * so, sends messages to peers, applies committed entries to the state
 * machine in log order and answers the clients that proposed them.
 *
 * The state machine is reached through struct server_sm (the Lua binding
 * implements it): every call happens on the loop thread, in log order.
 */
#ifndef COPYCAT_SERVER_H
#define COPYCAT_SERVER_H

#include <msgpack.h>
#include <stdint.h>
#include <uv.h>

#include "logger.h"
#include "raft/raft.h"

struct server;

#define SERVER_DEFAULT_MAX_REQUEST (2u << 20) /* 2 MiB */

/* Where a snapshot's bytes go, in order, as the state machine produces
 * them (to the snapshot file, with no copy of the whole in memory):
 * write(ctx, p, n) takes the next n bytes (n may be 0; p is only read
 * during the call) and returns 0, or -1 when they could not be kept. After
 * -1 the snapshot stops: the state machine calls write no more and returns
 * -1 without logging a failure of its own, since the sink's owner knows
 * what went wrong (the store's message) and reports it. */
struct server_sink {
  int (*write)(void *ctx, const void *p, size_t n);
  void *ctx;
};

struct server_sm {
  void *data;
  /* Apply committed entry `payload` (msgpack [time, kind, ...], see
   * docs/sessions.md) at index/term. Appends the reply for the client that
   * proposed it to out (one msgpack array [ok, value_or_message, code?]),
   * and the events to push to connected clients to events: zero or more
   * msgpack arrays ["event", session, seq, name, data], back to back. */
  void (*apply)(void *data, uint64_t index, uint64_t term, const void *payload,
                size_t len, msgpack_sbuffer *out, msgpack_sbuffer *events);
  /* Run a query (msgpack [op, args]) for session (0: none) with the state
   * applied up to index; append [ok, result_or_message, code?] to out. */
  void (*query)(void *data, const void *req, size_t len, uint64_t session,
                uint64_t index, msgpack_sbuffer *out);
  /* Write the state machine's snapshot bytes to out, piece by piece as
   * they are produced; 0 or -1 (the handler failed, logged by the state
   * machine; or out's write failed, see struct server_sink). Also called in
   * a forked child process (see server/snapshot.c), so it must not rely on
   * the event loop. */
  int (*snapshot)(void *data, const struct server_sink *out);
  /* In that child, before snapshot: stop anything that could run code
   * touching the event loop (the Lua garbage collector's finalizers). May
   * be NULL. */
  void (*child_prepare)(void *data);
  /* The hash of the state (the canonical encoding of what a snapshot
   * holds) in *out; 0 or -1. Equal states hash equal on every replica.
   * May be NULL (no divergence checks). */
  int (*hash)(void *data, uint64_t *out);
  /* snapshot and hash at once: the snapshot bytes to out (as snapshot
   * writes them) and, in *hash, exactly what hash would give for the same
   * state, from one encoding of it. May be NULL. Called in a forked
   * child. */
  int (*snapshot_hash)(void *data, const struct server_sink *out,
                       uint64_t *hash);
  /* Replace the state with a snapshot; 0 or -1. */
  int (*restore)(void *data, const void *snap, size_t len);
  /* Nonzero while replicated time must advance on an idle cluster (open
   * sessions to expire, timers to fire). May be NULL (never). */
  int (*wants_time)(void *data);
  /* Something an operator wants to know happened ("leader", "config",
   * "role"), with a human sentence. May be NULL. */
  void (*notify)(void *data, const char *event, const char *detail);
};

struct server_opts {
  const char *name;           /* explicit member name, unique in the cluster */
  const char *address;        /* peers (and clients, unless client_address) */
  const char *client_address; /* NULL: clients use address */
  const char *data_dir;       /* NULL with memory = 1 */
  const char *cluster;        /* cluster id; peers of another id are refused */
  int memory;                 /* keep the log in memory only (explicit) */
  unsigned tick_ms;           /* core tick; default 10 */
  unsigned election_ms;       /* default 500 */
  unsigned heartbeat_ms;      /* default 50 */
  uint64_t snapshot_entries;  /* take a snapshot every N applied; 0: 100000 */
  uint64_t snapshot_bytes;    /* ...or every M bytes applied; 0: 64 MiB */
  /* Largest client request (a frame) served; larger ones are refused with
   * an error. 0: SERVER_DEFAULT_MAX_REQUEST. Decoding a request's
   * arguments can take many times its size in memory (an array of empty
   * arrays: ~70 bytes per byte), so this bounds what one request costs. */
  uint32_t max_request;
  /* Before its hello is accepted (docs/security.md): a connection that
   * has not completed it after hello_timeout_ms is closed (0: 5000), and a
   * listener keeps at most max_unauthenticated such connections (0: 256);
   * frames are at most 64 KiB until then. */
  unsigned hello_timeout_ms;
  unsigned max_unauthenticated;
  /* A client whose hello carries this token holds admin rights (NULL or
   * "": none; at most 255 bytes). */
  const char *admin_token;
  /* Hash the state every N applied entries and compare the replicas'
   * hashes (host/server/agree.h); 0: 100000, negative: never. Every member
   * should use the same N (only common multiples are compared). */
  int64_t hash_interval;
  uint64_t seed;    /* election randomness */
  unsigned time_ms; /* an idle leader commits the passing of time this often
                       while wants_time says so; default 200 */

  /* Observability: docs/metrics.md, docs/logging.md. */
  const char *metrics_address; /* NULL: no metrics page */
  /* The HTTP/JSON API (docs/http.md), /metrics included; NULL: none. */
  const char *http_address;
  const char *log_level;  /* error|warn|info|debug; NULL: info */
  const char *log_format; /* kv|json; NULL: kv */

  /* TLS (docs/tls.md): NULL for plain TCP. The server takes a reference;
   * its certificate must be the member certificate of `name`. Peers and
   * clients then connect with TLS only; a peer's hello must name the
   * member its certificate names. */
  struct tls_ctx *tls;

  const struct server_sm *sm;
};

/* Creates the server: opens (and locks) the data directory, loads what is
 * durable, restores the newest snapshot into the state machine and starts
 * listening. Returns 0 or a negative code with a sentence in err. */
int server_start(uv_loop_t *loop, const struct server_opts *o,
                 struct server **out, char *err, size_t errlen);

/* Writes the initial configuration of a new cluster (every initial member
 * calls it with the same list). Error if this server already has a log. */
int server_bootstrap(struct server *s, const struct raft_conf *conf, char *err,
                     size_t errlen);

/* Stops serving, closes connections, finishes pending writes, unlocks the
 * data directory; cb(data) when everything is closed. */
void server_stop(struct server *s, void (*cb)(void *data), void *data);

/* Replaces the TLS context (a certificate reload): new connections, in
 * and out, use ctx; established ones go on with theirs. Returns 0, or -1
 * with a sentence in err (the server has no TLS, or ctx's certificate is
 * not this member's). */
int server_set_tls(struct server *s, struct tls_ctx *ctx, char *err,
                   size_t errlen);

/* Status, for server:status(). */
struct server_status {
  int role;
  uint64_t term, commit, applied, last_index, first_index, snapshot_index;
  uint64_t config_index; /* index of the configuration in effect */
  const char *leader;    /* name, "" if unknown */
  const struct raft_conf *conf;
  int removed; /* this server learned it is no longer a member */
  uint64_t snapshot_failed_index; /* the last snapshot that failed, or 0 */
  /* Diverged (agree.h): the index checked, this server's hash there, the
   * majority's, and the members that hold it ("a,b"). */
  int diverged;
  uint64_t diverged_index, diverged_hash, majority_hash;
  const char *majority;
};
void server_status(const struct server *s, struct server_status *st);
/* The leader's address, "" if unknown. Every server also accepts clients
 * on its peer address, so this is where a redirected client goes. */
const char *server_leader_address(const struct server *s);

/* What an operator sees beyond server_status (host/server/progress.c). */
struct server_progress {
  uint64_t commit_term; /* term of the entry at the commit index, 0 if gone */
  int leader_ready;     /* leads, and an entry of its term has committed */
  int have_peers;       /* this server leads: match and next are filled */
  unsigned election_ms; /* silence after which a member is unreachable */
  struct {
    uint64_t match, next;
    /* Contact: known for the members this server expects to hear from
     * (on the leader every member it replicates to, i.e. all but RESERVE
     * ones; on a follower only the leader). silent_ms counts from the
     * member's last Raft message, or from when it was added if it never
     * sent one (heard = 0); unreachable once that reaches election_ms. */
    int contact_known, heard, unreachable;
    uint64_t silent_ms;
  } peer[RAFT_MAX_MEMBERS]; /* parallel to server_status.conf->m */
};
void server_progress(const struct server *s, struct server_progress *p);

/* Takes a snapshot now (if anything was applied since the last one and is
 * durable here). Returns 0 with *index the newest snapshot's index (which
 * is the old one when there was nothing new), -1 when the state machine
 * or the disk failed (logged), or -2 while a child process is writing a
 * snapshot (try again once its snapshot_taken line is out). */
int server_snapshot_now(struct server *s, uint64_t *index);

/* Starts a snapshot of what is applied (in a child process when the store
 * has files, so that serving goes on) and returns at once: 0 with *target
 * the index it covers (the newest snapshot's when nothing new can be
 * covered yet); it is taken once server_status says snapshot_index >=
 * *target, and failed if snapshot_failed_index reaches *target. -1 and -2
 * as server_snapshot_now. */
int server_snapshot_begin(struct server *s, uint64_t *target);
/* The newest snapshot's file (for a backup): 0 with its path and index,
 * or -1 when there is none (no snapshot yet, or a memory-only store). */
int server_snapshot_file(const struct server *s, char *path, size_t size,
                         uint64_t *index);

/* Membership and leadership, from an operator or a joining server's
 * request. 0 or a RAFT_E* code. */
int server_change(struct server *s, const char *name, const char *address,
                  int type);
int server_remove(struct server *s, const char *name);
int server_transfer(struct server *s, const char *name);

/* ---- observability (docs/metrics.md, docs/logging.md) ---- */

/* The number of open client sessions, shown as copycat_sessions. The
 * sessions live in the layer above (Lua), which sets it on change. */
void server_metrics_set_sessions(struct server *s, uint64_t n);
/* The metrics page (Prometheus text 0.0.4) as a malloc'd NUL-terminated
 * string of *len bytes, or NULL when out of memory. */
char *server_metrics_render(struct server *s, size_t *len);
/* The address the metrics page is served on (the metrics address, else
 * the HTTP address), or NULL. */
const char *server_metrics_address(const struct server *s);
/* The address the HTTP API is served on, or NULL. */
const char *server_http_address(const struct server *s);
/* This server's logger (level, format, name), for the layers above. */
const struct logger *server_logger(const struct server *s);

#endif
