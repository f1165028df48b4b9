/*
 * metrics.c — the server's counters, its metrics page (docs/metrics.md)
 * and the log lines of elections and leader changes.
 *
 * Counters and histograms are plain fields of struct server_metrics,
 * touched only on the loop thread; the storage writer's numbers arrive
 * through the store's write observer, which also runs on the loop. Gauges
 * (role, term, indexes, lag) are read from the core when a page is
 * rendered, so a scrape costs one pass over a few dozen numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

static const double batch_bounds[] = {1,   2,   4,   8,    16,   32,  64,
                                      128, 256, 512, 1024, 2048, 4096};
static const double fsync_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                      0.005,  0.01,    0.025,  0.05,  0.1,
                                      0.25,   0.5,     1,      2.5,   10};
static const double snap_size_bounds[] = {
    1024,    4096,     16384,    65536,     262144,    1048576,
    4194304, 16777216, 67108864, 268435456, 1073741824};
static const double snap_time_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                          1,     5,     10,   30,   60};

static const double lag_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   10};

#define N(a) (sizeof(a) / sizeof(a)[0])

static void on_write(void *data, const struct store_write_info *w) {
  struct server *s = data;
  prom_hist_observe(&s->metrics.batch_entries, (double)w->entries);
  prom_hist_observe(&s->metrics.fsync_seconds, (double)w->sync_ns / 1e9);
  s->metrics.written_bytes += w->bytes;
}

void metrics__init(struct server *s) {
  struct server_metrics *m = &s->metrics;
  prom_hist_init(&m->batch_entries, batch_bounds, N(batch_bounds));
  prom_hist_init(&m->fsync_seconds, fsync_bounds, N(fsync_bounds));
  for (int k = 0; k < 2; k++) {
    prom_hist_init(&m->snap_bytes[k], snap_size_bounds, N(snap_size_bounds));
    prom_hist_init(&m->snap_seconds[k], snap_time_bounds, N(snap_time_bounds));
  }
  prom_hist_init(&m->loop_lag, lag_bounds, N(lag_bounds));
  store_set_write_observer(s->store, on_write, s);
}

void metrics__tick(struct server *s) {
  struct server_metrics *m = &s->metrics;
  uint64_t now = uv_hrtime(), period = (uint64_t)s->o.tick_ms * 1000000;
  if (m->last_tick_ns) {
    uint64_t gap = now - m->last_tick_ns;
    prom_hist_observe(&m->loop_lag,
                      gap > period ? (double)(gap - period) / 1e9 : 0);
  }
  m->last_tick_ns = now;
}

void metrics__command(struct server *s, int outcome) {
  s->metrics.commands[outcome]++;
}

void metrics__query(struct server *s, int outcome) {
  s->metrics.queries[outcome]++;
}

void metrics__snapshot(struct server *s, int kind, size_t bytes,
                       double seconds) {
  prom_hist_observe(&s->metrics.snap_bytes[kind], (double)bytes);
  prom_hist_observe(&s->metrics.snap_seconds[kind], seconds);
}

void server_metrics_set_sessions(struct server *s, uint64_t n) {
  s->metrics.sessions = n;
}

const struct logger *server_logger(const struct server *s) {
  return &s->log;
}

const char *server_metrics_address(const struct server *s) {
  if (!s->http) return NULL;
  /* The metrics-only listener when there is one, else the API's. */
  const char *second = gw_address(s->http, 1);
  return second ? second : gw_address(s->http, 0);
}

const char *server_http_address(const struct server *s) {
  return s->http && !s->http_metrics_only ? gw_address(s->http, 0) : NULL;
}

/* ---- elections and leaders ---- */

static int campaigning(int role) {
  return role == RAFT_CANDIDATE || role == RAFT_PRECANDIDATE;
}

void metrics__observe_role(struct server *s, int old_role, int role,
                           uint64_t term) {
  struct server_metrics *m = &s->metrics;
  struct logger_line l;
  /* A leader campaigned in its term even when no candidate state was seen
   * in between (a single voter wins at once). */
  if ((role == RAFT_CANDIDATE || role == RAFT_LEADER) &&
      term > m->last_election_term) {
    m->last_election_term = term;
    m->elections_started++;
    logger_begin(&l, &s->log, LOGGER_INFO, "election_started");
    logger_u64(&l, "term", term);
    logger_u64(&l, "last_index", raft_last_index(s->raft));
    logger_end(&l);
  }
  if (role == RAFT_PRECANDIDATE) {
    logger_begin(&l, &s->log, LOGGER_DEBUG, "prevote_started");
    logger_u64(&l, "term", term);
    logger_end(&l);
  }
  if (role == RAFT_LEADER) {
    m->elections_won++;
    logger_begin(&l, &s->log, LOGGER_INFO, "election_won");
    logger_u64(&l, "term", term);
    logger_u64(&l, "last_index", raft_last_index(s->raft));
    logger_end(&l);
  } else if (campaigning(old_role) && role == RAFT_FOLLOWER) {
    const char *leader = raft_leader(s->raft);
    logger_begin(&l, &s->log, LOGGER_INFO, "election_lost");
    logger_u64(&l, "term", term);
    logger_str(&l, "leader", leader[0] ? leader : "none");
    logger_bool(&l, "prevote", old_role == RAFT_PRECANDIDATE);
    logger_end(&l);
  }
  logger_begin(&l, &s->log, LOGGER_DEBUG, "role_changed");
  logger_str(&l, "from", raft_role_name(old_role));
  logger_str(&l, "to", raft_role_name(role));
  logger_u64(&l, "term", term);
  logger_end(&l);
}

void metrics__observe_leader(struct server *s, const char *leader,
                             uint64_t term) {
  struct server_metrics *m = &s->metrics;
  struct logger_line l;
  if (!leader[0]) {
    logger_begin(&l, &s->log, LOGGER_INFO, "leader_lost");
    logger_str(&l, "previous", m->last_leader[0] ? m->last_leader : "none");
    logger_u64(&l, "term", term);
    logger_end(&l);
    return;
  }
  if (strcmp(leader, m->last_leader) == 0 && term == m->last_leader_term)
    return;
  m->leader_changes++;
  logger_begin(&l, &s->log, LOGGER_INFO, "leader_changed");
  logger_str(&l, "leader", leader);
  logger_str(&l, "previous", m->last_leader[0] ? m->last_leader : "none");
  logger_u64(&l, "term", term);
  logger_bool(&l, "self", strcmp(leader, s->name) == 0);
  logger_end(&l);
  snprintf(m->last_leader, sizeof m->last_leader, "%s", leader);
  m->last_leader_term = term;
}

/* ---- the page ---- */

static void gauge(struct prom_buf *b, const char *name, const char *help,
                  uint64_t v) {
  prom_family(b, name, "gauge", help);
  prom_u64(b, name, NULL, v);
}

static void counter(struct prom_buf *b, const char *name, const char *help,
                    uint64_t v) {
  prom_family(b, name, "counter", help);
  prom_u64(b, name, NULL, v);
}

static void by_outcome(struct prom_buf *b, const char *name, const char *help,
                       const uint64_t *v) {
  static const char *const outcomes[] = {"ok", "error", "redirect"};
  prom_family(b, name, "counter", help);
  for (int i = 0; i < METRICS_OUTCOMES; i++) {
    const char *l[] = {"outcome", outcomes[i], NULL};
    prom_u64(b, name, l, v[i]);
  }
}

static void snapshots(struct prom_buf *b, const struct server_metrics *m) {
  static const char *const kinds[] = {"taken", "installed"};
  prom_family(b, "copycat_snapshot_size_bytes", "histogram",
              "Size of the state machine snapshots taken here (kind=taken) "
              "or received from the leader (kind=installed).");
  for (int k = 0; k < 2; k++) {
    const char *l[] = {"kind", kinds[k], NULL};
    prom_hist_write(b, "copycat_snapshot_size_bytes", l, &m->snap_bytes[k]);
  }
  prom_family(b, "copycat_snapshot_duration_seconds", "histogram",
              "Time to take a snapshot (state machine + durable write) or to "
              "install a received one (durable write + restore).");
  for (int k = 0; k < 2; k++) {
    const char *l[] = {"kind", kinds[k], NULL};
    prom_hist_write(b, "copycat_snapshot_duration_seconds", l,
                    &m->snap_seconds[k]);
  }
}

static void members(struct prom_buf *b, struct server *s) {
  const struct raft_conf *c = raft_configuration(s->raft);
  static const char *const types[] = {"active", "passive", "reserve"};
  uint64_t n[3] = {0, 0, 0};
  for (unsigned i = 0; i < c->n; i++)
    if (c->m[i].type >= RAFT_ACTIVE && c->m[i].type <= RAFT_RESERVE)
      n[c->m[i].type - RAFT_ACTIVE]++;
  prom_family(b, "copycat_members", "gauge",
              "Members of the configuration in effect, by type.");
  for (int t = 0; t < 3; t++) {
    const char *l[] = {"type", types[t], NULL};
    prom_u64(b, "copycat_members", l, n[t]);
  }
  prom_family(b, "copycat_replication_lag_entries", "gauge",
              "Leader only: entries the member lacks (the leader's last "
              "index minus the member's match index).");
  uint64_t last = raft_last_index(s->raft), match;
  for (unsigned i = 0; i < c->n; i++) {
    if (raft_match_index(s->raft, c->m[i].name, &match) < 0) continue;
    const char *l[] = {"peer", c->m[i].name, NULL};
    prom_u64(b, "copycat_replication_lag_entries", l,
             last > match ? last - match : 0);
  }
  prom_family(b, "copycat_peer_connected", "gauge",
              "1 while this server's connection to the member is up.");
  peers__metrics(s, c, b);
}

char *server_metrics_render(struct server *s, size_t *len) {
  struct prom_buf b;
  struct server_metrics *m = &s->metrics;
  prom_buf_init(&b);
  prom_family(&b, "copycat_server_info", "gauge",
              "Always 1; the labels name the server and its cluster.");
  const char *il[] = {"name", s->name, "cluster", s->cluster, NULL};
  prom_u64(&b, "copycat_server_info", il, 1);
  prom_family(&b, "copycat_role", "gauge",
              "1 for the role this server is in, 0 for the others.");
  int role = raft_role(s->raft);
  for (int r = RAFT_FOLLOWER; r <= RAFT_LEADER; r++) {
    const char *l[] = {"role", raft_role_name(r), NULL};
    prom_u64(&b, "copycat_role", l, role == r);
  }
  gauge(&b, "copycat_term", "Current Raft term.", raft_term(s->raft));
  gauge(&b, "copycat_commit_index", "Highest log index known committed.",
        raft_commit_index(s->raft));
  gauge(&b, "copycat_applied_index",
        "Highest log index applied to the state machine.", s->applied);
  gauge(&b, "copycat_last_log_index", "Index of the last entry in the log.",
        raft_last_index(s->raft));
  gauge(&b, "copycat_snapshot_index",
        "Last index covered by the newest snapshot (0: none).",
        raft_snapshot_index(s->raft));
  counter(&b, "copycat_leader_changes_total",
          "Times this server saw a new leader (another member, or the same "
          "one in a new term).",
          m->leader_changes);
  counter(&b, "copycat_elections_started_total",
          "Elections this server started as a candidate (one per term).",
          m->elections_started);
  counter(&b, "copycat_elections_won_total",
          "Elections this server won (it became leader).", m->elections_won);
  members(&b, s);
  gauge(&b, "copycat_sessions", "Open client sessions.", m->sessions);
  by_outcome(&b, "copycat_commands_total",
             "Commands answered, by outcome: ok (applied; the state "
             "machine's result sent), error (refused or not applied), "
             "redirect (not the leader).",
             m->commands);
  by_outcome(&b, "copycat_queries_total",
             "Queries answered, by outcome: ok (run by the state machine), "
             "error, redirect.",
             m->queries);
  prom_family(&b, "copycat_storage_append_batch_entries", "histogram",
              "Log entries made durable per write of the storage writer "
              "(one fdatasync each; group commit).");
  prom_hist_write(&b, "copycat_storage_append_batch_entries", NULL,
                  &m->batch_entries);
  prom_family(&b, "copycat_storage_fsync_seconds", "histogram",
              "Duration of the fdatasync that ends each log write.");
  prom_hist_write(&b, "copycat_storage_fsync_seconds", NULL, &m->fsync_seconds);
  prom_family(&b, "copycat_loop_lag_seconds", "histogram",
              "How late the server's tick timer fired, each tick: time the "
              "event loop was busy (applying, a long callback) or the "
              "process was not scheduled.");
  prom_hist_write(&b, "copycat_loop_lag_seconds", NULL, &m->loop_lag);
  counter(&b, "copycat_storage_written_bytes_total",
          "Bytes of log records written.", m->written_bytes);
  gauge(&b, "copycat_storage_failed",
        "1 after a storage failure: the server accepts no more writes.",
        s->failed ? 1 : 0);
  snapshots(&b, m);
  agree__metrics(s, &b);
  trust__metrics(s, &b);
  if (b.failed) {
    prom_buf_free(&b);
    return NULL;
  }
  *len = b.len;
  return b.data;
}

int metrics__listen(struct server *s, const char *http_address,
                    const char *metrics_address, char *err, size_t errlen) {
  struct gw_opts o;
  memset(&o, 0, sizeof o);
  int n = 0;
  if (http_address && http_address[0]) o.address[n++] = http_address;
  if (metrics_address && metrics_address[0] &&
      !(http_address && strcmp(http_address, metrics_address) == 0)) {
    o.metrics_only[n] = 1;
    o.address[n++] = metrics_address;
  }
  o.upstream = net_listener_address(s->listener);
  o.cluster = s->cluster;
  o.tls = s->o.tls; /* s->tls is set later in server_start */
  o.max_request = s->o.max_request;
  o.election_ms = s->o.election_ms;
  o.server = s;
  o.log = &s->log;
  if (gw_start(s->loop, &o, &s->http, err, errlen) < 0) {
    s->http = NULL;
    return -1;
  }
  for (int i = 0; i < n; i++) {
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_INFO,
                 o.metrics_only[i] ? "metrics_listening" : "http_listening");
    logger_str(&l, "address", gw_address(s->http, i));
    logger_end(&l);
  }
  s->http_metrics_only = o.metrics_only[0];
  return 0;
}
