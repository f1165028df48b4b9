/* server_int.h — what the server's files share; not for other modules. */
#ifndef COPYCAT_SERVER_INT_H
#define COPYCAT_SERVER_INT_H

#include "logger.h"
#include "http/gateway.h"
#include "metrics/prom.h"
#include "protocol/client.h"
#include "protocol/mp.h"
#include "protocol/protocol.h"
#include "server/agree.h"
#include "server/server.h"
#include "storage/store.h"
#include "tls/tls.h"
#include "transport/net.h"

#define SERVER_MAX_PEERS RAFT_MAX_MEMBERS

/* When a progress line was last written for the snapshot transfer of
 * `index` (transfer.c). */
struct transfer_log {
  uint64_t index, logged_ms;
};

/* Our connection to one other member, used to send it messages. */
struct peer {
  char name[RAFT_NAME_MAX];
  char address[RAFT_ADDR_MAX];
  net_conn *conn;      /* NULL while disconnected */
  int connecting;      /* a connect is under way */
  int ready;           /* hello accepted by the peer */
  unsigned backoff_ms; /* next reconnect delay */
  uint64_t retry_at;   /* loop time (ms) before which we do not redial */
  int in_use;
  int learned; /* from a hello, not (yet) in our configuration */
  struct server *conn_owner;
  /* Contact, for the operator (progress.c): loop time (ms) of the last
   * Raft message received from this member, valid once heard is set;
   * until then, the time it was added is the baseline. */
  int heard;
  uint64_t heard_ms, added_ms;
  struct transfer_log snap_out; /* a snapshot we send it */
};

/* A client request waiting for its entry to be applied. */
struct pending {
  uint64_t index, term;
  int admin;      /* a membership change: reply ["ok", id] once committed */
  int command;    /* a client's command (counted in the metrics) */
  net_conn *conn; /* NULL once the client went away */
  uint64_t id;
  struct pending *next;
};

/* A query waiting for its read index (linearizable, lease) or for this
 * server to apply what its client has already seen (min_index). */
struct pending_read {
  uint64_t ctx;       /* the core's read context; 0 for sequential */
  uint64_t index;     /* read index, once the core confirmed it */
  uint64_t min_index; /* the client has seen this index */
  uint64_t session;
  int ready;    /* the read index is known (or not needed) */
  int redirect; /* the core refused: tell the client to go elsewhere */
  net_conn *conn;
  uint64_t id;
  struct raft_buf *req; /* msgpack [op, args] */
  struct pending_read *next;
};

/* A keep-alive waiting for the next batch to be proposed. */
struct ka_wait {
  net_conn *conn;
  uint64_t id;
};

/* Per incoming connection state. */
struct inconn {
  struct server *s;
  net_conn *conn;
  int role; /* 0 until the hello arrived */
  char name[RAFT_NAME_MAX];
  uint64_t session; /* the client session last named here; events go here */
  /* Who the peer proved to be with its TLS certificate (at the hello):
   * "" and TLS_ROLE_NONE without TLS or without a certificate. For a
   * server (role PROTO_SERVER) under TLS, name equals cert_name. */
  char cert_name[TLS_NAME_MAX];
  int cert_role;
  /* While serving a request a member forwarded (forward.c): the rights
   * it vouches the original client held. */
  int forwarding, forward_admin;
  int drop_logged; /* a dropped Raft message was logged (trust.c) */
  int token_admin; /* the hello carried the server's admin token */
  struct inconn *next, *prev;
};

/* Why a Raft message was dropped (trust.c). */
enum { TRUST_DROP_SENDER = 0, TRUST_DROP_NOT_MEMBER, TRUST_DROP_REASONS };
/* Why a connection was closed before its hello (trust.c). */
enum {
  TRUST_PREAUTH_TIMEOUT = 0,
  TRUST_PREAUTH_OVERSIZED,
  TRUST_PREAUTH_REASONS
};
#define SERVER_PREAUTH_MAX_FRAME (64u << 10) /* before the hello */

/* Outcomes of client requests, for the metrics (metrics.c). */
enum { METRICS_OK = 0, METRICS_ERROR, METRICS_REDIRECT, METRICS_OUTCOMES };

/* Counters and histograms (loop thread only); the gauges are read from
 * the core when the page is rendered. */
struct server_metrics {
  uint64_t leader_changes, elections_started, elections_won;
  uint64_t commands[METRICS_OUTCOMES], queries[METRICS_OUTCOMES];
  uint64_t sessions;
  uint64_t written_bytes;
  uint64_t raft_dropped[TRUST_DROP_REASONS];      /* trust.c */
  uint64_t admin_denied;                          /* trust.c */
  uint64_t preauth_closed[TRUST_PREAUTH_REASONS]; /* trust.c */
  uint64_t preauth_logged_ms, preauth_unlogged;
  struct prom_hist batch_entries, fsync_seconds;
  struct prom_hist snap_bytes[2], snap_seconds[2]; /* taken, installed */
  /* what the change detection (note_changes) last saw */
  char last_leader[RAFT_NAME_MAX];
  uint64_t last_leader_term, last_election_term;
  struct raft_conf last_conf;
};

/* A snapshot being written by a forked child (snapshot.c). */
struct snap_child {
  int pid;        /* 0: none */
  uv_pipe_t pipe; /* the child's report ("ok" or an error), then EOF */
  uint64_t index, term;
  uint64_t t0;   /* uv_hrtime() at the fork */
  int closing;   /* the pipe of a child that failed to start */
  int loading;   /* the written file is being read back (thread pool) */
  int with_hash; /* the child also reports the state hash of index */
  uv_work_t load_req;
  struct store_snapshot loaded;
  int load_rc;
  char load_err[STORE_ERR_MAX];
  char msg[512];
  size_t msglen;
};

struct server {
  uv_loop_t *loop;
  struct logger log; /* this server's log configuration */
  struct server_metrics metrics;
  struct gw *http;       /* the HTTP API and metrics page, or NULL */
  int http_metrics_only; /* its first listener serves metrics only */
  struct server_opts o;
  char name[RAFT_NAME_MAX];
  char address[RAFT_ADDR_MAX];
  char cluster[PROTO_CLUSTER_MAX];
  struct raft *raft;
  struct store *store;
  net_listener *listener, *client_listener;
  struct tls_ctx *tls;               /* NULL: plain TCP; a reference */
  char admin_token[PROTO_TOKEN_MAX]; /* "": none (trust.c) */
  uv_timer_t tick;
  /* Runs server__process once the loop turn's I/O callbacks are done
   * (server__process_soon): requests and messages that arrived together
   * become one batch of entries, one store write, one message per peer. */
  uv_check_t soon;
  struct peer peers[SERVER_MAX_PEERS];
  struct inconn *inconns;
  struct pending *pending, *pending_tail;
  struct pending_read *reads;
  uint64_t next_read_ctx;
  uint64_t last_time; /* leader's command timestamps never go back */
  uint64_t applied, last_snapshot;
  uint64_t snap_attempt; /* index of the last snapshot tried (or taken) */
  uint64_t snap_failed;  /* index of the last snapshot that failed */
  uint64_t bytes_since_snapshot; /* payload bytes applied since then */
  char leader[RAFT_NAME_MAX];
  int role;
  uint64_t config_index; /* configuration last reported */
  /* Loop time (ms) of the last change of role or leader: the silence of a
   * member is counted from no earlier (progress.c), since before that
   * this server did not expect to hear from it. */
  uint64_t view_since_ms;
  int in_ready; /* re-entrancy guard for process_ready */
  int stopping, failed;
  void (*stop_cb)(void *);
  void *stop_data;
  int closing_handles;
  msgpack_sbuffer scratch;
  /* The snapshot being received from the leader: chunks go straight to
   * its temporary file (storage/snap.h); NULL when none is. */
  struct snap_writer *snap_in;
  struct transfer_log snap_in_log;
  msgpack_sbuffer events; /* events produced by the entry being applied */
  /* Reply before events: the index being applied, and the last index
   * whose waiting clients were answered (clients__applied). */
  uint64_t applying, replied;
  /* Keep-alives gathered since the last batch (sessions.c). */
  msgpack_sbuffer ka;
  uint32_t ka_n;
  struct ka_wait *ka_waits;
  size_t ka_cap;
  uint64_t last_propose_ms; /* loop time of our last proposal */
  uint64_t tick_start_ms;   /* monotonic ms when ticking started */
  uint64_t ticks;           /* ticks given to the core since then */
  struct snap_child child;
  struct agree agree; /* state hashes, divergence, removal (agree.c) */
  struct fwd *fwds;   /* requests forwarded to the leader (forward.c) */
  uint64_t next_fid;
};

/* Seconds since uv_hrtime() read t0. */
static inline double server__seconds_since(uint64_t t0) {
  return (double)(uv_hrtime() - t0) / 1e9;
}

/* server.c */
/* Logs a storage failure (op, msg) with what the operator must do, and
 * tells the state machine's notify hook. The caller sets s->failed. */
void server__storage_failed(struct server *s, const char *op, const char *msg);
/* "active", "passive" or "reserve". */
const char *server__type_name(int type);

/* ready.c */
void server__process(struct server *s);
/* The tick timer's callback: ticks due are given to the core, then the
 * sessions' keep-alives, then server__process. */
void server__on_tick(uv_timer_t *t);
/* server__process later in this loop turn, after every I/O callback of
 * the turn (so what they fed the core is handled together). */
void server__process_soon(struct server *s);
/* An info line with the formatted text as its msg field, and the same
 * (event, text) to the state machine's notify hook. Prefer structured
 * lines (logger_begin ... logger_end on s->log). */
void server__log(struct server *s, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Logs a membership or leadership request (verb "change", "remove",
 * "transfer") and the core's answer rc; nothing when rc says another
 * member leads. address may be NULL, type 0. */
void server__log_request(struct server *s, const char *verb, const char *name,
                         const char *address, int type, int rc);
/* The state machine's notify hook, if any (event, human detail). */
void server__notify(struct server *s, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* metrics.c */
void metrics__init(struct server *s);
/* Starts the HTTP gateway (host/http) on http_address and/or
 * metrics_address (that one serves /metrics and /health only); 0 or -1
 * with a sentence in err. */
int metrics__listen(struct server *s, const char *http_address,
                    const char *metrics_address, char *err, size_t errlen);
void metrics__command(struct server *s, int outcome);
void metrics__query(struct server *s, int outcome);
/* kind 0: taken here, 1: installed from the leader. */
void metrics__snapshot(struct server *s, int kind, size_t bytes,
                       double seconds);
/* note_changes saw this role/leader/term: counts elections and leader
 * changes, and logs them. */
void metrics__observe_role(struct server *s, int old_role, int role,
                           uint64_t term);
void metrics__observe_leader(struct server *s, const char *leader,
                             uint64_t term);
void server__catch_up(struct server *s);

/* The bookkeeping once a snapshot of index/term (bytes of state) is
 * durable and installed in the store; `secs` it took. */
void server__snapshot_taken(struct server *s, uint64_t index, uint64_t term,
                            size_t bytes, double secs, int forked);
/* store_close, counted as one of the closing handles. */
void server__close_store(struct server *s);
/* One of the handles closed while stopping; the last one frees s. */
void server__closed_one(struct server *s);
/* Logs a failed snapshot. */
void server__snapshot_failed(struct server *s, uint64_t index, uint64_t term,
                             const char *msg);

/* snapshot_take.c */
/* Takes a snapshot at s->applied: in a forked child when may_fork and the
 * store has files, in process otherwise. 0 (taken, started, nothing to
 * take, or a child still busy) or -1 (it failed). */
int snapshot__take(struct server *s, int may_fork);

/* snapshot_install.c */
/* Restores the state machine from snapshot ss, mapped from its file for
 * the time of the call. 0 or -1. */
int snapshot__restore(struct server *s, const struct store_snapshot *ss);
/* One chunk of the snapshot the leader sends, written as it arrives. */
void snapshot__receive_chunk(struct server *s, const struct raft_chunk_recv *c);
/* The core says the received snapshot is complete: finish, check and
 * restore it; sets s->failed when it cannot. */
void snapshot__install(struct server *s, const struct raft_ready *rd);

/* snapshot.c */
/* with_hash: the child also computes the state hash of `index` (one
 * encoding for both; sm->snapshot_hash) and hands it to agree__hashed. */
int snapshot__fork(struct server *s, uint64_t index, uint64_t term,
                   int with_hash);
/* At hash index `index` (s->applied == index): when a snapshot is due
 * within half a threshold anyway, starts it now in a child that also
 * computes the hash, so one fork serves both. 0: started; -1: not now
 * (the caller forks for the hash alone). */
int server__snapshot_with_hash(struct server *s, uint64_t index);
int snapshot__busy(const struct server *s);
/* Ends a running child; returns 1 when the store must stay open until the
 * snapshot being read back is done (snapshot.c then closes it). */
int snapshot__stop(struct server *s);

/* peers.c */
void peers__sync(struct server *s);
void peers__send(struct server *s, const struct raft_msg *m);
/* Sends an encoded frame (a notice) to member `to`, if connected. */
void peers__send_frame(struct server *s, const char *to, const char *data,
                       size_t len);
void peers__close_all(struct server *s);
int peers__accept(struct server *s, net_conn *c);
/* Milliseconds since member `name` last sent us a Raft message (or, when
 * it never did, since it was added: *heard = 0), counted from no earlier
 * than loop time `floor_ms`. -1 for no such peer. */
int peers__silence(const struct server *s, const char *name, uint64_t floor_ms,
                   uint64_t *ms, int *heard);

/* peers.c, for transfer.c: member name's transfer log, NULL if none. */
struct transfer_log *peers__snap_log(struct server *s, const char *name);

/* transfer.c: progress lines (at most one a second per transfer) of a
 * snapshot of `index` sent to member `to` (bytes of total so far) or
 * received from the leader (bytes so far). */
void transfer__sent(struct server *s, const char *to, uint64_t index,
                    uint64_t bytes, uint64_t total);
void transfer__received(struct server *s, uint64_t index, uint64_t bytes);

/* forward.c: client requests a follower relays to the leader. */
/* Forwards the request (or redirects when the leader cannot be reached)
 * and returns 1, or returns 0 when this server serves it itself. id_at
 * and rest: offsets of the id and of what follows it in data. */
int forward__request(struct inconn *ic, const char *verb, uint64_t id,
                     const char *data, size_t len, size_t id_at, size_t rest);
/* A ["forward", admin, request] frame from a member (leader side). */
int forward__is(const char *data, size_t len);
void forward__serve(struct inconn *ic, const char *data, size_t len);
/* An answer on our connection to the leader: 1 if it was one (relayed). */
int forward__reply(struct server *s, const char *data, size_t len);
void forward__peer_lost(struct server *s, const char *name);
void forward__conn_gone(struct server *s, net_conn *c);
void forward__free(struct server *s);
/* peers.c: whether our connection to member name is up. */
int peers__ready(const struct server *s, const char *name);
/* trust.c */
/* 0 if the Raft message m may be stepped: its sender is the member ic
 * authenticated as and a member of the configuration (or this server
 * knows none yet); else -1, counted and logged once per connection. */
int trust__raft_sender(struct inconn *ic, const struct raft_msg *m);
void trust__metrics(struct server *s, struct prom_buf *b);
/* Whether ic holds admin rights (membership and leadership requests). */
int trust__may_admin(const struct inconn *ic);
/* 0 if ic may send the admin request `verb`; else -1 after answering
 * request id with the error code "denied" (counted and logged). */
int trust__admin_check(struct inconn *ic, uint64_t id, const char *verb);
/* A client's hello token: 0 (none, or the server's: ic->token_admin set)
 * or -1 with why (a wrong token refuses the hello). */
int trust__hello_token(struct inconn *ic, const char *token, char *why,
                       size_t whylen);
/* The preauth bounds of the server's listeners, into o. */
void trust__listen_opts(const struct server *s, struct net_conn_opts *o);
/* A connection without an accepted hello closed (status, reason): counts
 * and logs (at most a line a second) the ones the bounds closed. */
void trust__preauth_closed(struct server *s, net_conn *c, int status,
                           const char *reason);

/* clients.c */
void clients__request(struct inconn *ic, const char *data, size_t len);
void clients__applied(struct server *s, uint64_t index, uint64_t term,
                      const char *reply, size_t len);
void clients__reads_ready(struct server *s, const struct raft_read_result *r,
                          size_t n);
void clients__serve_reads(struct server *s);
void clients__conn_gone(struct server *s, net_conn *c);
void clients__fail_all(struct server *s, enum cproto_code code,
                       const char *why);
/* ["error", id, msg, code] to c (nothing when c is NULL). */
void clients__reply_error(net_conn *c, uint64_t id, enum cproto_code code,
                          const char *msg);
/* The error for a core's refusal rc (not RAFT_ENOTLEADER: redirect). */
void clients__reply_raft_error(net_conn *c, uint64_t id, int rc);
void clients__redirect(struct server *s, net_conn *c, uint64_t id);
void clients__add_pending(struct server *s, net_conn *c, uint64_t id,
                          uint64_t index, int admin);

/* sessions.c */
/* Proposes [time, kind, <tail>] where tail holds n msgpack values already
 * encoded. Returns the index or a negative RAFT_E* code. */
int64_t sessions__propose(struct server *s, enum cproto_kind kind,
                          const void *tail, size_t len, uint32_t n);
/* Decoded open, keepalive and close requests (clients.c decodes). */
void sessions__open(struct inconn *ic, const struct cproto_request *q);
void sessions__keepalive(struct inconn *ic, const struct cproto_request *q);
void sessions__close(struct inconn *ic, const struct cproto_request *q);
void sessions__tick(struct server *s);
void sessions__push(struct server *s, const char *events, size_t len);
void sessions__free(struct server *s);

#endif
