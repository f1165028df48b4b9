/*
 * server.c — a server's life: start (options, the stored state loaded into
 * the core, listeners), bootstrap, stop (every handle closed, then freed),
 * TLS reload, status, and the operator's membership requests.
 *
 * The carrying-out of the core's outputs is in ready.c, snapshots in
 * snapshot_take.c, snapshot_install.c and snapshot.c.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"
#include "storage/crc32c.h"

void server__log(struct server *s, const char *event, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, event);
  logger_str(&l, "msg", msg);
  logger_end(&l);
  if (s->o.sm && s->o.sm->notify) s->o.sm->notify(s->o.sm->data, event, msg);
}

void server__notify(struct server *s, const char *event, const char *fmt, ...) {
  if (!s->o.sm || !s->o.sm->notify) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  s->o.sm->notify(s->o.sm->data, event, msg);
}

/* Storage failures stop all writes: one error line says where and why. */
void server__storage_failed(struct server *s, const char *op, const char *msg) {
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_ERROR, "storage_failed");
  logger_str(&l, "op", op);
  logger_str(&l, "msg", msg);
  logger_str(&l, "action", "fix the disk, then restart the server");
  logger_end(&l);
  server__notify(s, "storage_failed", "op=%s msg=\"%s\"", op, msg);
}

const char *server__type_name(int t) {
  return t == RAFT_ACTIVE    ? "active"
         : t == RAFT_PASSIVE ? "passive"
                             : "reserve";
}

/* ---- start and stop ---- */

static void on_accept(net_listener *l, net_conn *c) {
  struct server *s = net_listener_data(l);
  if (s->stopping || peers__accept(s, c) < 0) net_conn_close(c, "refused");
}

/* COPYCAT_TEST_RAFT_BUGS=NAME,...: deliberate Raft bugs, so that the fault
 * suite can prove it catches them (docs/faults.md). Only a core built with
 * RAFT_BUGS honours them (`make chaos-bugs`); any other build refuses to
 * start rather than seem to run them. Unset or empty: no bug, ever. */
static int test_bugs(struct server *s, unsigned *bits, char *err,
                     size_t errlen) {
  const char *env = getenv("COPYCAT_TEST_RAFT_BUGS");
  *bits = 0;
  if (!env || !*env) return 0;
  if (!raft_bugs_built()) {
    snprintf(err, errlen,
             "COPYCAT_TEST_RAFT_BUGS is set, but this build has no "
             "deliberate bugs (only the fault suite's copycat-lua-bugs has)");
    return -1;
  }
  char names[256];
  snprintf(names, sizeof names, "%s", env);
  for (char *save = NULL, *n = strtok_r(names, ",", &save); n;
       n = strtok_r(NULL, ",", &save)) {
    int b = raft_bug_by_name(n);
    if (!b) {
      snprintf(err, errlen, "COPYCAT_TEST_RAFT_BUGS: no bug named '%s'", n);
      return -1;
    }
    *bits |= (unsigned)b;
  }
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_WARN, "deliberate_bugs");
  logger_str(&l, "bugs", env);
  logger_str(&l, "msg", "this server is broken on purpose (fault suite)");
  logger_end(&l);
  return 0;
}

static int load(struct server *s, char *err, size_t errlen) {
  const struct store_meta *meta = store_meta(s->store);
  struct raft_hard_state hs;
  memset(&hs, 0, sizeof hs);
  hs.term = meta->term;
  snprintf(hs.vote, sizeof hs.vote, "%s", meta->vote);

  struct raft_snapshot_meta snap, *sp = NULL;
  const struct store_snapshot *ss = store_snapshot(s->store);
  if (ss) {
    memset(&snap, 0, sizeof snap);
    snap.index = ss->last_index;
    snap.term = ss->last_term;
    if (raft_conf_decode(&snap.conf, ss->config, ss->config_len) < 0) {
      snprintf(err, errlen, "the newest snapshot's configuration is damaged");
      return -1;
    }
    if (snapshot__restore(s, ss) < 0) {
      snprintf(err, errlen, "the state machine could not restore snapshot %llu",
               (unsigned long long)ss->last_index);
      return -1;
    }
    snapshot__restored(s, ss->last_index);
    sp = &snap;
  }
  uint64_t first = store_first_index(s->store);
  uint64_t last = store_last_index(s->store);
  size_t n = last >= first ? (size_t)(last - first + 1) : 0;
  struct raft_entry *entries = n ? calloc(n, sizeof *entries) : NULL;
  if (n && !entries) return -1;
  const struct store_entry *se = NULL;
  if (n) store_entries(s->store, first, last, &se);
  for (size_t i = 0; i < n; i++) {
    entries[i].term = se[i].term;
    entries[i].type = se[i].type;
    entries[i].buf = se[i].len ? raft_buf_from(se[i].data, se[i].len) : NULL;
  }
  int rc = raft_load(s->raft, &hs, sp, first, entries, n);
  for (size_t i = 0; i < n; i++)
    raft_buf_unref(entries[i].buf);
  free(entries);
  if (rc < 0) {
    snprintf(err, errlen, "the Raft core refused the stored state: %s",
             raft_strerror(rc));
    return -1;
  }
  return 0;
}

int server_start(uv_loop_t *loop, const struct server_opts *o,
                 struct server **out, char *err, size_t errlen) {
  *out = NULL;
  if (!o->sm || !o->name || !o->name[0] || !o->address) {
    snprintf(err, errlen,
             "a server needs a name, an address and a state "
             "machine");
    return -1;
  }
  if (strlen(o->name) >= RAFT_NAME_MAX || strlen(o->address) >= RAFT_ADDR_MAX) {
    snprintf(err, errlen,
             "name or address too long (name < %d, address < %d "
             "bytes)",
             RAFT_NAME_MAX, RAFT_ADDR_MAX);
    return -1;
  }
  struct server *s = calloc(1, sizeof *s);
  if (!s) return -1;
  s->loop = loop;
  s->o = *o;
  snprintf(s->name, sizeof s->name, "%s", o->name);
  snprintf(s->address, sizeof s->address, "%s", o->address);
  snprintf(s->cluster, sizeof s->cluster, "%s",
           o->cluster ? o->cluster : "copycat");
  s->o.name = s->name;
  s->o.address = s->address;
  s->o.cluster = s->cluster;
  s->o.data_dir = NULL; /* not kept: only used here */
  s->o.client_address = NULL;
  s->o.metrics_address = s->o.log_level = s->o.log_format = NULL;
  s->o.http_address = NULL;
  logger_init(&s->log);
  snprintf(s->log.name, sizeof s->log.name, "%s", s->name);
  if (o->log_level && (s->log.level = logger_level_parse(o->log_level)) < 0) {
    snprintf(err, errlen,
             "unknown log level '%s': use error, warn, info or debug",
             o->log_level);
    free(s);
    return -1;
  }
  if (o->log_format &&
      (s->log.format = logger_format_parse(o->log_format)) < 0) {
    snprintf(err, errlen, "unknown log format '%s': use kv or json",
             o->log_format);
    free(s);
    return -1;
  }
  if (!s->o.tick_ms) s->o.tick_ms = 10;
  if (!s->o.election_ms) s->o.election_ms = 500;
  if (!s->o.heartbeat_ms) s->o.heartbeat_ms = 50;
  if (!s->o.snapshot_entries) s->o.snapshot_entries = 100000;
  if (!s->o.snapshot_bytes) s->o.snapshot_bytes = 64u << 20;
  if (!s->o.max_request) s->o.max_request = SERVER_DEFAULT_MAX_REQUEST;
  if (trust__init(s, o->admin_token, err, errlen) < 0) {
    free(s);
    return -1;
  }
  s->o.admin_token = NULL; /* trust.c's copy is what counts */
  if (!s->o.hello_timeout_ms) s->o.hello_timeout_ms = 5000;
  if (!s->o.max_unauthenticated) s->o.max_unauthenticated = 256;
  if (!s->o.time_ms) s->o.time_ms = 200;
  agree__init(s);
  msgpack_sbuffer_init(&s->scratch);
  msgpack_sbuffer_init(&s->events);
  sessions__init(s);

  struct raft_options ro;
  raft_options_default(&ro, s->name);
  ro.election_timeout = s->o.election_ms / s->o.tick_ms;
  ro.heartbeat_interval = s->o.heartbeat_ms / s->o.tick_ms;
  if (ro.heartbeat_interval == 0) ro.heartbeat_interval = 1;
  ro.seed = o->seed ? o->seed : (uint64_t)uv_hrtime() ^ (uint64_t)(uintptr_t)s;
  ro.checksum = crc32c; /* received snapshots are checked end to end */
  if (test_bugs(s, &ro.bugs, err, errlen) < 0 ||
      snapshot__test_hooks(s, err, errlen) < 0) {
    free(s);
    return -1;
  }
  s->raft = raft_new(&ro);
  if (!s->raft) {
    snprintf(err, errlen,
             "bad timing options: the election timeout must be "
             "several heartbeats");
    free(s);
    return -1;
  }

  char serr[1024] = "";
  struct store_opts so;
  memset(&so, 0, sizeof so);
  so.memory = o->memory;
  int rc = store_open(loop, o->data_dir, &so, &s->store, serr);
  if (rc < 0) {
    snprintf(err, errlen, "%s", serr);
    raft_free(s->raft);
    free(s);
    return -1;
  }
  if (store_notice(s->store)[0]) {
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_WARN, "storage_repaired");
    logger_str(&l, "msg", store_notice(s->store));
    logger_end(&l);
  }
  if (load(s, err, errlen) < 0) goto fail;
  metrics__init(s);
  s->metrics.last_conf = *raft_configuration(s->raft);

  if (o->tls && tls_ctx_role(o->tls) != TLS_ROLE_MEMBER) {
    snprintf(err, errlen,
             "TLS: the server's certificate must be a member certificate "
             "(made with ctl certs DIR %s)",
             s->name);
    goto fail;
  }
  if (o->tls && strcmp(tls_ctx_name(o->tls), s->name) != 0) {
    snprintf(err, errlen,
             "TLS: the certificate names member '%s', this server is '%s' "
             "(give it the certificate made for its own name)",
             tls_ctx_name(o->tls), s->name);
    goto fail;
  }
  struct net_conn_opts lo = {.tls = o->tls};
  trust__listen_opts(s, &lo);
  rc = net_listen(loop, s->address, &lo, on_accept, s, &s->listener, err,
                  errlen);
  if (rc < 0) goto fail;
  if (o->client_address && o->client_address[0]) {
    rc = net_listen(loop, o->client_address, &lo, on_accept, s,
                    &s->client_listener, err, errlen);
    if (rc < 0) {
      net_listener_close(s->listener);
      goto fail;
    }
  }
  if (((o->metrics_address && o->metrics_address[0]) ||
       (o->http_address && o->http_address[0])) &&
      metrics__listen(s, o->http_address, o->metrics_address, err, errlen) <
          0) {
    net_listener_close(s->listener);
    if (s->client_listener) net_listener_close(s->client_listener);
    goto fail;
  }
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, "server_started");
  logger_str(&l, "address", s->address);
  if (o->client_address && o->client_address[0])
    logger_str(&l, "client_address", o->client_address);
  if (server_http_address(s))
    logger_str(&l, "http_address", server_http_address(s));
  if (server_metrics_address(s))
    logger_str(&l, "metrics_address", server_metrics_address(s));
  logger_str(&l, "data_dir", o->memory ? "(memory)" : o->data_dir);
  logger_str(&l, "cluster", s->cluster);
  logger_str(&l, "tls", o->tls ? "on" : "off");
  logger_u64(&l, "term", raft_term(s->raft));
  logger_u64(&l, "last_index", raft_last_index(s->raft));
  logger_u64(&l, "snapshot_index", raft_snapshot_index(s->raft));
  logger_u64(&l, "members", raft_configuration(s->raft)->n);
  logger_end(&l);
  uv_check_init(loop, &s->soon);
  s->soon.data = s;
  uv_timer_init(loop, &s->tick);
  s->tick.data = s;
  s->tick_start_ms = uv_hrtime() / 1000000;
  uv_timer_start(&s->tick, server__on_tick, s->o.tick_ms, s->o.tick_ms);
  if (o->tls) {
    s->tls = o->tls;
    tls_ctx_ref(s->tls);
  }
  s->o.tls = NULL; /* s->tls is the one in use */
  peers__sync(s);
  *out = s;
  return 0;
fail:
  store_set_write_observer(s->store, NULL, NULL);
  store_close(s->store, NULL, NULL);
  raft_free(s->raft);
  msgpack_sbuffer_destroy(&s->scratch);
  msgpack_sbuffer_destroy(&s->events);
  sessions__free(s);
  free(s);
  return -1;
}

int server_bootstrap(struct server *s, const struct raft_conf *conf, char *err,
                     size_t errlen) {
  if (raft_conf_find(conf, s->name) < 0) {
    snprintf(err, errlen,
             "this server (%s) is not among the members to "
             "bootstrap",
             s->name);
    return -1;
  }
  int rc = raft_bootstrap(s->raft, conf);
  if (rc < 0) {
    snprintf(err, errlen, "cannot bootstrap: %s",
             rc == RAFT_EINVAL ? "this server already has a log (it was "
                                 "bootstrapped or joined before)"
                               : raft_strerror(rc));
    return rc;
  }
  server__process(s);
  return 0;
}

void server__closed_one(struct server *s) {
  if (--s->closing_handles > 0) return;
  tls_ctx_unref(s->tls);
  raft_free(s->raft);
  msgpack_sbuffer_destroy(&s->scratch);
  msgpack_sbuffer_destroy(&s->events);
  sessions__free(s);
  void (*cb)(void *) = s->stop_cb;
  void *data = s->stop_data;
  free(s);
  if (cb) cb(data);
}

static void on_tick_closed(uv_handle_t *h) {
  server__closed_one(h->data);
}

static void on_soon_closed(uv_handle_t *h) {
  server__closed_one(h->data);
}

static void on_store_closed(void *data) {
  server__closed_one(data);
}

void server__close_store(struct server *s) {
  store_close(s->store, on_store_closed, s);
}

static void on_http_closed(void *data) {
  server__closed_one(data);
}

void server_stop(struct server *s, void (*cb)(void *data), void *data) {
  if (s->stopping) return;
  s->stopping = 1;
  s->stop_cb = cb;
  s->stop_data = data;
  s->closing_handles = 3 + (s->http != NULL);
  /* One more handle while a child writes a snapshot; while its file is
   * being read back on the thread pool, the store stays open until that
   * is done (snapshot.c closes it). */
  int store_waits = snapshot__stop(s);
  s->closing_handles += hash__stop(s);
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, "server_stopping");
  logger_u64(&l, "term", raft_term(s->raft));
  logger_u64(&l, "applied_index", s->applied);
  logger_end(&l);
  if (s->http) gw_close(s->http, on_http_closed, s);
  uv_timer_stop(&s->tick);
  uv_close((uv_handle_t *)&s->tick, on_tick_closed);
  uv_check_stop(&s->soon);
  uv_close((uv_handle_t *)&s->soon, on_soon_closed);
  net_listener_close(s->listener);
  if (s->client_listener) net_listener_close(s->client_listener);
  clients__fail_all(s, CPROTO_ESTOPPING, "server is stopping");
  forward__free(s);
  sessions__fail_all(s, CPROTO_ESTOPPING, "server is stopping");
  peers__close_all(s);
  if (!store_waits) server__close_store(s);
}

int server_set_tls(struct server *s, struct tls_ctx *ctx, char *err,
                   size_t errlen) {
  if (!s->tls) {
    snprintf(err, errlen,
             "this server was started without TLS: restart it with "
             "certificates to use TLS");
    return -1;
  }
  if (tls_ctx_role(ctx) != TLS_ROLE_MEMBER ||
      strcmp(tls_ctx_name(ctx), s->name) != 0) {
    snprintf(err, errlen,
             "the new certificate is not the member certificate of '%s' "
             "(it names '%s', role %s): kept the old one",
             s->name, tls_ctx_name(ctx), tls_role_name(tls_ctx_role(ctx)));
    return -1;
  }
  tls_ctx_ref(ctx);
  tls_ctx_unref(s->tls);
  s->tls = ctx;
  net_listener_set_tls(s->listener, ctx);
  if (s->client_listener) net_listener_set_tls(s->client_listener, ctx);
  if (s->http) gw_set_tls(s->http, ctx);
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO, "tls_reloaded");
  logger_str(&l, "name", tls_ctx_name(ctx));
  logger_end(&l);
  return 0;
}

void server_status(const struct server *s, struct server_status *st) {
  st->role = raft_role(s->raft);
  st->term = raft_term(s->raft);
  st->commit = raft_commit_index(s->raft);
  st->applied = s->applied;
  st->last_index = raft_last_index(s->raft);
  st->first_index = raft_first_index(s->raft);
  st->snapshot_index = raft_snapshot_index(s->raft);
  st->leader = raft_leader(s->raft);
  st->conf = raft_configuration(s->raft);
  st->config_index = raft_configuration_index(s->raft);
  st->removed = s->agree.removed;
  st->snapshot_failed_index = snapshot__failed_index(s);
  st->diverged = s->agree.diverged;
  st->diverged_index = s->agree.div_index;
  st->diverged_hash = s->agree.div_hash;
  st->majority_hash = s->agree.div_majority;
  st->majority = s->agree.div_names;
}

const char *server_leader_address(const struct server *s) {
  const char *leader = raft_leader(s->raft);
  if (!leader[0]) return "";
  const struct raft_conf *c = raft_configuration(s->raft);
  int i = raft_conf_find(c, leader);
  return i < 0 ? "" : c->m[i].address;
}

void server__log_request(struct server *s, const char *verb, const char *name,
                         const char *address, int type, int rc) {
  if (rc == RAFT_ENOTLEADER) return; /* redirected: the leader logs it */
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_INFO,
               verb[0] == 't' ? "transfer_requested" : "membership_requested");
  logger_str(&l, "op", verb);
  logger_str(&l, verb[0] == 't' ? "to" : "member", name);
  if (address) logger_str(&l, "address", address);
  if (type) logger_str(&l, "type", server__type_name(type));
  logger_str(&l, "result", rc < 0 ? raft_strerror(rc) : "accepted");
  logger_end(&l);
}

int server_change(struct server *s, const char *name, const char *address,
                  int type) {
  int rc = raft_change(s->raft, name, address, type);
  server__log_request(s, "change", name, address, type, rc);
  server__process(s);
  return rc;
}

int server_remove(struct server *s, const char *name) {
  int rc = raft_remove(s->raft, name);
  server__log_request(s, "remove", name, NULL, 0, rc);
  server__process(s);
  return rc;
}

int server_transfer(struct server *s, const char *name) {
  int rc = raft_transfer(s->raft, name);
  server__log_request(s, "transfer", name, NULL, 0, rc);
  server__process(s);
  return rc;
}
