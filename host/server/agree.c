/*
 * agree.c — state hashes, divergence and removal (agree.h).
 *
 * The check: after applying index I, a multiple of the interval, every
 * replica hashes its state (server_sm.hash: XXH3 of the canonical
 * encoding) and sends the hash to the leader in a HASH notice; the leader
 * records its own and the others' for the last few check indexes. Once
 * more than half of the voters agree on one hash, every member with
 * another hash at I is diverged: the leader tells it (DIVERGED), or, if it
 * is the leader itself, hands leadership over. Passive members are
 * checked too but do not count toward the majority.
 *
 * Why a diverged replica keeps its log: Raft's safety rests on the log,
 * which it still holds and makes durable like everyone else (its
 * acknowledgements and votes are as good as before); only what it
 * computed from the log differs. So it goes on replicating, and commit
 * does not lose a member, but it must not apply more entries (its state
 * is wrong), answer clients, take snapshots of that state, or lead (a
 * leader answers clients from its state).
 */
#include <stdio.h>
#include <string.h>

#include "server/server_int.h"

void agree__init(struct server *s) {
  memset(&s->agree, 0, sizeof s->agree);
  s->agree.interval = s->o.hash_interval < 0    ? 0
                      : s->o.hash_interval == 0 ? AGREE_DEFAULT_INTERVAL
                                                : (uint64_t)s->o.hash_interval;
}

static void hex(char out[17], uint64_t v) {
  snprintf(out, 17, "%016llx", (unsigned long long)v);
}

static int is_voter(const struct raft_conf *c, const char *name) {
  int k = raft_conf_find(c, name);
  return k >= 0 && c->m[k].type == RAFT_ACTIVE;
}

/* ---- this server found diverged ---- */

static void diverged(struct server *s, uint64_t index, uint64_t hash,
                     uint64_t majority, const char *names) {
  struct agree *a = &s->agree;
  if (a->diverged) return;
  a->diverged = 1;
  a->act = 1;
  a->div_index = index;
  a->div_hash = hash;
  a->div_majority = majority;
  snprintf(a->div_names, sizeof a->div_names, "%s", names);
  char h[17], m[17];
  hex(h, hash);
  hex(m, majority);
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_ERROR, "state_diverged");
  logger_u64(&l, "index", index);
  logger_str(&l, "hash", h);
  logger_str(&l, "majority_hash", m);
  logger_str(&l, "member", s->name);
  logger_str(&l, "majority", names);
  logger_str(&l, "action",
             "this server no longer applies entries, serves clients or "
             "leads; rebuild it from the others (docs/operators.md)");
  logger_end(&l);
  server__notify(s, "diverged", "index=%llu hash=%s majority_hash=%s",
                 (unsigned long long)index, h, m);
}

/* Hands leadership to a member of the majority (the first that the core
 * accepts); the core refuses while a transfer is under way. */
static void hand_over(struct server *s) {
  if (raft_role(s->raft) != RAFT_LEADER) return;
  char names[PROTO_NAMES_MAX];
  snprintf(names, sizeof names, "%s", s->agree.div_names);
  for (char *save = NULL, *n = strtok_r(names, ",", &save); n;
       n = strtok_r(NULL, ",", &save))
    if (strcmp(n, s->name) != 0 && raft_transfer(s->raft, n) == 0) break;
}

void agree__act(struct server *s) {
  struct agree *a = &s->agree;
  if (!a->act || s->in_ready) return;
  a->act = 0;
  raft_set_campaign(s->raft, !a->diverged && !a->removed);
  if (a->diverged) {
    clients__fail_all(s, CPROTO_EDIVERGED, agree__refusal(s));
    hand_over(s);
    server__process(s);
  }
}

void agree__tick(struct server *s) {
  if (s->agree.diverged) hand_over(s);
}

const char *agree__refusal(struct server *s) {
  if (!s->agree.diverged) return NULL;
  return "diverged: this server's state differs from the majority's (see "
         "its log); it serves no requests until an operator rebuilds it; "
         "use another member";
}

/* ---- the leader's comparison ---- */

static void send_notice(struct server *s, const char *to,
                        const struct proto_notice *n) {
  msgpack_sbuffer *sb = &s->scratch;
  size_t mark = sb->size;
  if (proto_encode_notice(sb, n) == 0)
    peers__send_frame(s, to, sb->data + mark, sb->size - mark);
  sb->size = mark;
}

static void majority_names(const struct agree_slot *sl, char *out, size_t len) {
  size_t k = 0;
  out[0] = 0;
  for (unsigned i = 0; i < sl->n && k < len; i++)
    if (sl->m[i].hash == sl->majority)
      k += (size_t)snprintf(out + k, len - k, "%s%s", k ? "," : "",
                            sl->m[i].name);
}

/* Finds the members of a decided slot whose hash is not the majority's. */
static void judge(struct server *s, struct agree_slot *sl) {
  char names[PROTO_NAMES_MAX];
  majority_names(sl, names, sizeof names);
  for (unsigned i = 0; i < sl->n; i++) {
    if (sl->m[i].told || sl->m[i].hash == sl->majority) continue;
    sl->m[i].told = 1;
    if (strcmp(sl->m[i].name, s->name) == 0) {
      diverged(s, sl->index, sl->m[i].hash, sl->majority, names);
      continue;
    }
    char h[17], m[17];
    hex(h, sl->m[i].hash);
    hex(m, sl->majority);
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_WARN, "replica_diverged");
    logger_str(&l, "member", sl->m[i].name);
    logger_u64(&l, "index", sl->index);
    logger_str(&l, "hash", h);
    logger_str(&l, "majority_hash", m);
    logger_str(&l, "majority", names);
    logger_end(&l);
    struct proto_notice n;
    memset(&n, 0, sizeof n);
    n.type = PROTO_NOTICE_DIVERGED;
    snprintf(n.from, sizeof n.from, "%s", s->name);
    n.index = sl->index;
    n.hash = sl->m[i].hash;
    n.majority = sl->majority;
    snprintf(n.names, sizeof n.names, "%s", names);
    send_notice(s, sl->m[i].name, &n);
  }
}

static void decide(struct server *s, struct agree_slot *sl) {
  const struct raft_conf *c = raft_configuration(s->raft);
  unsigned voters = 0;
  for (unsigned i = 0; i < c->n; i++)
    voters += c->m[i].type == RAFT_ACTIVE;
  if (!sl->decided) {
    for (unsigned i = 0; i < sl->n && !sl->decided; i++) {
      unsigned same = 0;
      for (unsigned j = 0; j < sl->n; j++)
        same += sl->m[j].hash == sl->m[i].hash && is_voter(c, sl->m[j].name);
      if (2 * same > voters) {
        sl->decided = 1;
        sl->majority = sl->m[i].hash;
      }
    }
  }
  if (sl->decided) judge(s, sl);
}

static struct agree_slot *slot_for(struct agree *a, uint64_t index) {
  struct agree_slot *oldest = &a->slots[0];
  for (int i = 0; i < AGREE_SLOTS; i++) {
    if (a->slots[i].index == index) return &a->slots[i];
    if (a->slots[i].index < oldest->index) oldest = &a->slots[i];
  }
  if (oldest->index > index) return NULL; /* older than all we keep */
  memset(oldest, 0, sizeof *oldest);
  oldest->index = index;
  return oldest;
}

/* The leader records member `name`'s hash at index. */
static void record(struct server *s, const char *name, uint64_t index,
                   uint64_t hash) {
  if (raft_role(s->raft) != RAFT_LEADER ||
      raft_conf_find(raft_configuration(s->raft), name) < 0)
    return;
  struct agree_slot *sl = slot_for(&s->agree, index);
  if (!sl) return;
  for (unsigned i = 0; i < sl->n; i++)
    if (strcmp(sl->m[i].name, name) == 0) return; /* a duplicate */
  if (sl->n == RAFT_MAX_MEMBERS) return;
  snprintf(sl->m[sl->n].name, RAFT_NAME_MAX, "%s", name);
  sl->m[sl->n].hash = hash;
  sl->n++;
  decide(s, sl);
}

/* ---- hashing ---- */

void agree__applied(struct server *s, uint64_t index) {
  struct agree *a = &s->agree;
  if (!a->interval || a->diverged || index % a->interval != 0 || !s->o.sm->hash)
    return;
  if (a->child.pid || a->child.closing || a->snap_hash) {
    /* The previous hash is still being computed: the interval is short
     * for this state's size. This index goes unchecked here. */
    a->skipped++;
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_DEBUG, "state_hash_skipped");
    logger_u64(&l, "index", index);
    logger_end(&l);
    return;
  }
  uint64_t t0 = uv_hrtime(), hash;
  if (server__snapshot_with_hash(s, index) == 0) {
    /* One child for the snapshot due about now and this hash. */
    a->snap_hash = 1;
    a->loop_seconds += (double)(uv_hrtime() - t0) / 1e9;
    return;
  }
  int forked = hash__fork(s, index) == 0;
  a->loop_seconds += (double)(uv_hrtime() - t0) / 1e9;
  if (forked) return; /* agree__hashed when the child reports */
  t0 = uv_hrtime();
  if (s->o.sm->hash(s->o.sm->data, &hash) < 0) return; /* logged there */
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  a->loop_seconds += secs;
  agree__hashed(s, index, hash, secs);
}

void agree__hashed(struct server *s, uint64_t index, uint64_t hash,
                   double secs) {
  struct agree *a = &s->agree;
  if (a->diverged || s->stopping) return;
  a->seconds += secs;
  a->hashes++;
  a->last_index = index;
  a->own[a->own_next].index = index;
  a->own[a->own_next].hash = hash;
  a->own_next = (a->own_next + 1) % AGREE_SLOTS;
  char h[17];
  hex(h, hash);
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_DEBUG, "state_hashed");
  logger_u64(&l, "index", index);
  logger_str(&l, "hash", h);
  logger_f64(&l, "duration_ms", secs * 1e3);
  logger_end(&l);
  if (raft_role(s->raft) == RAFT_LEADER) {
    record(s, s->name, index, hash);
    return;
  }
  const char *leader = raft_leader(s->raft);
  if (!leader[0]) return; /* no check for this index here */
  struct proto_notice n;
  memset(&n, 0, sizeof n);
  n.type = PROTO_NOTICE_HASH;
  snprintf(n.from, sizeof n.from, "%s", s->name);
  n.index = index;
  n.hash = hash;
  send_notice(s, leader, &n);
}

/* ---- notices ---- */

static int own_hash(const struct agree *a, uint64_t index, uint64_t *hash) {
  for (int i = 0; i < AGREE_SLOTS; i++)
    if (a->own[i].index == index && index) {
      *hash = a->own[i].hash;
      return 1;
    }
  return 0;
}

/* A member's committed configuration omits this server. */
static void removed(struct server *s, const struct proto_notice *n) {
  struct agree *a = &s->agree;
  if (a->removed || n->index <= raft_configuration_index(s->raft)) return;
  a->removed = 1;
  a->removed_at = n->index;
  a->act = 1;
  struct logger_line l;
  logger_begin(&l, &s->log, LOGGER_WARN, "removed_from_cluster");
  logger_str(&l, "by", n->from);
  logger_u64(&l, "config_index", n->index);
  logger_str(&l, "msg",
             "this server was removed from the cluster; it stops "
             "campaigning (add it again to bring it back, or stop it)");
  logger_end(&l);
  server__notify(s, "removed", "by=%s config_index=%llu", n->from,
                 (unsigned long long)n->index);
}

void agree__notice(struct server *s, const char *peer, const char *data,
                   size_t len) {
  struct proto_notice n;
  char err[128];
  if (s->stopping) return;
  if (proto_decode_notice(data, len, &n, err, sizeof err) < 0 ||
      strcmp(n.from, peer) != 0) {
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_WARN, "notice_refused");
    logger_str(&l, "peer", peer);
    logger_str(&l, "msg",
               strcmp(n.from, peer) != 0 && n.from[0]
                   ? "the notice names another sender"
                   : err);
    logger_end(&l);
    return;
  }
  uint64_t mine;
  switch (n.type) {
    case PROTO_NOTICE_HASH:
      record(s, n.from, n.index, n.hash);
      break;
    case PROTO_NOTICE_DIVERGED:
      /* Only our leader judges, and only a hash we did compute. */
      if (strcmp(raft_leader(s->raft), n.from) != 0 ||
          !own_hash(&s->agree, n.index, &mine) || mine != n.hash ||
          mine == n.majority)
        break;
      diverged(s, n.index, n.hash, n.majority, n.names);
      break;
    default:
      removed(s, &n);
  }
  agree__act(s);
}

void agree__vote_from(struct server *s, struct inconn *ic,
                      const struct raft_msg *m) {
  const struct raft_conf *c = raft_configuration(s->raft);
  uint64_t ci = raft_configuration_index(s->raft);
  /* Only a committed configuration says who is out; a sender that is in
   * none we know of may be joining, and does not ask for votes. */
  if (raft_conf_find(c, m->from) >= 0 || !c->n ||
      raft_commit_index(s->raft) < ci || strcmp(m->from, ic->name) != 0)
    return;
  struct proto_notice n;
  memset(&n, 0, sizeof n);
  n.type = PROTO_NOTICE_REMOVED;
  snprintf(n.from, sizeof n.from, "%s", s->name);
  n.index = ci;
  msgpack_sbuffer *sb = &s->scratch;
  size_t mark = sb->size;
  if (proto_encode_notice(sb, &n) == 0)
    net_conn_send(ic->conn, sb->data + mark, sb->size - mark);
  sb->size = mark;
}

void agree__config_changed(struct server *s) {
  struct agree *a = &s->agree;
  const struct raft_conf *c = raft_configuration(s->raft);
  int member = raft_conf_find(c, s->name) >= 0;
  int was = a->was_member;
  if (member) a->was_member = 1;
  if (a->removed && member &&
      raft_configuration_index(s->raft) > a->removed_at) {
    a->removed = 0; /* added again */
    a->act = 1;
  } else if (!a->removed && !member && was) {
    /* The configuration that removed this server reached it (a joining
     * server replaying older configurations never was a member). */
    struct proto_notice n;
    memset(&n, 0, sizeof n);
    snprintf(n.from, sizeof n.from, "%s",
             raft_leader(s->raft)[0] ? raft_leader(s->raft) : "(the log)");
    n.index = raft_configuration_index(s->raft);
    a->removed = 1;
    a->removed_at = n.index;
    a->act = 1;
    struct logger_line l;
    logger_begin(&l, &s->log, LOGGER_WARN, "removed_from_cluster");
    logger_str(&l, "by", n.from);
    logger_u64(&l, "config_index", n.index);
    logger_str(&l, "msg",
               "this server was removed from the cluster; it stops "
               "campaigning (add it again to bring it back, or stop it)");
    logger_end(&l);
  }
  agree__act(s);
}

void agree__metrics(struct server *s, struct prom_buf *b) {
  const struct agree *a = &s->agree;
  prom_family(b, "copycat_state_diverged", "gauge",
              "1 once this server's state hash differed from the "
              "majority's: it applies and serves nothing until rebuilt.");
  prom_u64(b, "copycat_state_diverged", NULL, (uint64_t)a->diverged);
  prom_family(b, "copycat_state_diverged_index", "gauge",
              "The log index whose hash differed (0: none).");
  prom_u64(b, "copycat_state_diverged_index", NULL, a->div_index);
  prom_family(b, "copycat_state_hashes_total", "counter",
              "State hashes computed here (one per hash interval).");
  prom_u64(b, "copycat_state_hashes_total", NULL, a->hashes);
  prom_family(b, "copycat_state_hash_seconds_total", "counter",
              "Time spent encoding and hashing the state for checks (in a "
              "child process, unless fork failed).");
  prom_f64(b, "copycat_state_hash_seconds_total", NULL, a->seconds);
  prom_family(b, "copycat_state_hash_loop_seconds_total", "counter",
              "Time the event loop spent on state hashes: forking the "
              "child, or hashing in-process when fork failed.");
  prom_f64(b, "copycat_state_hash_loop_seconds_total", NULL, a->loop_seconds);
  prom_family(b, "copycat_state_hash_skipped_total", "counter",
              "Check indexes not hashed here because the previous hash was "
              "still being computed (the interval is short for the state).");
  prom_u64(b, "copycat_state_hash_skipped_total", NULL, a->skipped);
  prom_family(b, "copycat_state_hash_index", "gauge",
              "The log index of the latest state hash (0: none yet).");
  prom_u64(b, "copycat_state_hash_index", NULL, a->last_index);
  prom_family(b, "copycat_removed", "gauge",
              "1 when this server learned it was removed from the "
              "configuration (it no longer campaigns).");
  prom_u64(b, "copycat_removed", NULL, (uint64_t)a->removed);
}
