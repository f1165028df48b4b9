/*
 * metrics.h — the server's counters and histograms, its HTTP listeners
 * (metrics.c).
 */
#ifndef COPYCAT_SERVER_METRICS_H
#define COPYCAT_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/prom.h"
#include "raft/raft.h"

/* Outcomes of client requests, for the metrics (metrics.c). */
enum { METRICS_OK = 0, METRICS_ERROR, METRICS_REDIRECT, METRICS_OUTCOMES };

/* Counters and histograms (loop thread only); the gauges are read from
 * the core when the page is rendered. */
struct server_metrics {
  uint64_t leader_changes, elections_started, elections_won;
  uint64_t commands[METRICS_OUTCOMES], queries[METRICS_OUTCOMES];
  uint64_t sessions;
  uint64_t written_bytes;
  struct prom_hist batch_entries, fsync_seconds;
  struct prom_hist snap_bytes[2], snap_seconds[2]; /* taken, installed */
  /* How late each tick's timer fired (the loop was busy or not
   * scheduled), and when the last one fired (uv_hrtime, 0: none yet). */
  struct prom_hist loop_lag;
  uint64_t last_tick_ns;
  /* what the change detection (note_changes) last saw */
  char last_leader[RAFT_NAME_MAX];
  uint64_t last_leader_term, last_election_term;
  struct raft_conf last_conf;
};

struct server;

/* metrics.c */
void metrics__init(struct server *s);
/* Starts the HTTP gateway (host/http) on http_address and/or
 * metrics_address (that one serves /metrics and /health only); 0 or -1
 * with a sentence in err. */
int metrics__listen(struct server *s, const char *http_address,
                    const char *metrics_address, char *err, size_t errlen);
void metrics__command(struct server *s, int outcome);
void metrics__query(struct server *s, int outcome);
/* The tick timer fired now: observes how late against the tick before. */
void metrics__tick(struct server *s);
/* kind 0: taken here, 1: installed from the leader. */
void metrics__snapshot(struct server *s, int kind, size_t bytes,
                       double seconds);
/* note_changes saw this role/leader/term: counts elections and leader
 * changes, and logs them. */
void metrics__observe_role(struct server *s, int old_role, int role,
                           uint64_t term);
void metrics__observe_leader(struct server *s, const char *leader,
                             uint64_t term);

#endif
