/*
 * snapshot.c — log compaction behind a host snapshot, sending a snapshot
 * in chunks to a follower whose next entry is compacted away, and
 * receiving one. Chunk bytes always come from (and go to) the host: the
 * core only sequences them.
 */
#include <stdlib.h>

#include "raft/internal.h"

int raft_snapshot_taken(struct raft *r, uint64_t index) {
  assert(!r->in_ready);
  /* Only up to what is durable: otherwise the durable log may still hold
   * entries of another history after `index` (a truncation not yet
   * written), and a restart would load them behind the snapshot. */
  if (index > r->applied || index > r->persisted || index <= r->snap_index ||
      index < r->log.base)
    return RAFT_EINVAL;
  struct raft_conf c;
  uint64_t at;
  raft_conf_at(r, index, &c, &at);
  r->snap_term = raft_log_term(&r->log, index);
  r->snap_conf = c;
  r->snap_index = index;
  /* Keep a trailing part of the log so that slightly lagging followers
   * still get entries; never drop what is not yet handed out to persist. */
  uint64_t upto =
      index > r->opt.snapshot_trailing ? index - r->opt.snapshot_trailing : 0;
  if (upto >= r->unstable) upto = r->unstable - 1;
  if (upto > r->log.base) raft_log_compact(&r->log, upto);
  return 0;
}

static void chunk_request(struct raft *r, int i) {
  struct raft_progress *pr = &r->pr[i];
  if (r->n_creq == r->cap_creq) {
    size_t cap = r->cap_creq ? r->cap_creq * 2 : 8;
    struct raft_chunk_req *p = realloc(r->creq, cap * sizeof *p);
    if (!p) return;
    r->creq = p;
    r->cap_creq = cap;
  }
  struct raft_chunk_req *q = &r->creq[r->n_creq++];
  memset(q, 0, sizeof *q);
  strcpy(q->to, r->conf.m[i].name);
  q->index = pr->snap_index;
  q->offset = pr->snap_offset;
  q->max_len = r->opt.snapshot_chunk;
  pr->chunk_pending = true;
  pr->since_send = 0;
}

void raft_send_snapshot(struct raft *r, int i) {
  struct raft_progress *pr = &r->pr[i];
  assert(pr->state == PR_SNAPSHOT);
  if (pr->chunk_pending) return;
  if (pr->snap_index != r->snap_index) {
    pr->snap_index = r->snap_index; /* a newer one: start over */
    pr->snap_offset = 0;
  }
  chunk_request(r, i);
}

int raft_snapshot_chunk(struct raft *r, const char *to, uint64_t index,
                        uint64_t offset, struct raft_buf *data, bool last,
                        const uint32_t *crc) {
  assert(!r->in_ready);
  if (r->role != RAFT_LEADER || !to) return RAFT_ESTALE;
  int i = raft_conf_find(&r->conf, to);
  if (i < 0 || i == r->self) return RAFT_ESTALE;
  struct raft_progress *pr = &r->pr[i];
  if (pr->state != PR_SNAPSHOT || pr->snap_index != index ||
      pr->snap_offset != offset)
    return RAFT_ESTALE;
  if (!data || index != r->snap_index) {
    pr->chunk_pending = false; /* gone or superseded: start over */
    pr->snap_offset = 0;
    raft_send_snapshot(r, i);
    return RAFT_ESTALE;
  }
  struct raft_buf *conf = raft_conf_encode(&r->snap_conf);
  if (!conf) return RAFT_ENOMEM;
  struct raft_msg *m = raft_new_msg(r, RAFT_MSG_SNAPSHOT, to);
  if (!m) {
    raft_buf_unref(conf);
    return RAFT_ENOMEM;
  }
  m->u.snapshot.index = index;
  m->u.snapshot.term = r->snap_term;
  m->u.snapshot.conf = conf;
  m->u.snapshot.offset = offset;
  m->u.snapshot.data = raft_buf_ref(data);
  m->u.snapshot.last = last;
  m->u.snapshot.has_crc = last && crc;
  m->u.snapshot.crc = m->u.snapshot.has_crc ? *crc : 0;
  pr->chunk_pending = true;
  pr->since_send = 0;
  return 0;
}

void raft_handle_snapshot_resp(struct raft *r, int i,
                               const struct raft_msg *m) {
  struct raft_progress *pr = &r->pr[i];
  pr->active = true;
  if (pr->state != PR_SNAPSHOT || m->u.snapshot_resp.index != pr->snap_index)
    return;
  if (m->u.snapshot_resp.done) {
    if (pr->snap_index > pr->match) pr->match = pr->snap_index;
    pr->state = PR_PROBE;
    pr->probe_sent = false;
    pr->next = pr->match + 1;
    raft_send_append(r, i);
    return;
  }
  pr->chunk_pending = false;
  pr->snap_offset = m->u.snapshot_resp.offset;
  raft_send_snapshot(r, i);
}

static void respond(struct raft *r, const struct raft_msg *m, uint64_t offset,
                    bool done) {
  struct raft_msg *resp = raft_new_msg(r, RAFT_MSG_SNAPSHOT_RESP, m->from);
  if (!resp) return;
  resp->u.snapshot_resp.index = m->u.snapshot.index;
  resp->u.snapshot_resp.offset = offset;
  resp->u.snapshot_resp.done = done;
}

/* The last chunk is in: the snapshot replaces the log prefix. */
static void install(struct raft *r) {
  uint64_t index = r->recv_index, term = r->recv_term;
  bool keep = index <= raft_log_last(&r->log) && index >= r->log.base &&
              raft_log_term(&r->log, index) == term;
  /* The host may keep its durable entries after the snapshot only if they
   * are known to follow it; otherwise it drops them all and the entries
   * we keep in memory are handed out to be written again. */
  bool keep_durable = keep && r->persisted >= index;
  r->install_pending = true;
  r->install_drop = !keep_durable;
  r->install.index = index;
  r->install.term = term;
  r->install.conf = r->recv_conf;
  r->snap_index = index;
  r->snap_term = term;
  r->snap_conf = r->recv_conf;
  if (keep) {
    raft_log_compact(&r->log, index);
    if (!keep_durable) {
      r->persisted = index;
      r->unstable = index + 1;
    }
  } else {
    raft_log_reset(&r->log, index, term);
    r->persisted = index;
    r->unstable = index + 1;
  }
  if (r->persisted < index) r->persisted = index;
  if (r->unstable <= index) r->unstable = index + 1;
  if (r->conf_index <= index) {
    raft_conf_adopt(r, &r->recv_conf, index);
    r->conf_prev = r->recv_conf;
    r->conf_prev_index = index;
  }
  if (r->commit < index) r->commit = index;
  r->applied = index;
  if (r->match_hint < index) r->match_hint = index;
  r->receiving = false;
}

void raft_handle_snapshot(struct raft *r, const struct raft_msg *m) {
  uint64_t index = m->u.snapshot.index;
  if (index <= r->commit) {
    respond(r, m, 0, true); /* we have all of it already */
    return;
  }
  if (!r->receiving || r->recv_index != index ||
      r->recv_term != m->u.snapshot.term) {
    if (m->u.snapshot.offset != 0) {
      respond(r, m, 0, false); /* start from the beginning */
      return;
    }
    const struct raft_buf *cb = m->u.snapshot.conf;
    if (!cb || raft_conf_decode(&r->recv_conf, cb->data, cb->len) != 0)
      return; /* malformed: ignore */
    r->receiving = true;
    r->recv_index = index;
    r->recv_term = m->u.snapshot.term;
    r->recv_offset = 0;
    r->recv_crc = 0;
  }
  if (m->u.snapshot.offset != r->recv_offset) {
    respond(r, m, r->recv_offset, false);
    return;
  }
  if (r->n_crecv == r->cap_crecv) {
    size_t cap = r->cap_crecv ? r->cap_crecv * 2 : 8;
    struct raft_chunk_recv *p = realloc(r->crecv, cap * sizeof *p);
    if (!p) return;
    r->crecv = p;
    r->cap_crecv = cap;
  }
  struct raft_buf *conf = NULL;
  if (m->u.snapshot.offset == 0 && !(conf = raft_conf_encode(&r->recv_conf)))
    return; /* out of memory: the leader sends the chunk again */
  const struct raft_buf *d = m->u.snapshot.data;
  uint32_t crc = r->recv_crc;
  if (r->opt.checksum && d && d->len)
    crc = r->opt.checksum(crc, d->data, d->len);
  if (m->u.snapshot.last && r->opt.checksum && m->u.snapshot.has_crc &&
      crc != m->u.snapshot.crc) {
    /* Damaged on the way (or in this host's memory): never install it.
     * The host drops what it wrote of it; the leader starts over. */
    raft_buf_unref(conf);
    /* Its chunks not yet handed out go too; the host drops the others
     * (the refusal comes before the chunks in a ready). */
    size_t k = 0;
    for (size_t j = 0; j < r->n_crecv; j++) {
      struct raft_chunk_recv *x = &r->crecv[j];
      if (x->index == index && x->term == m->u.snapshot.term) {
        raft_buf_unref(x->data);
        raft_buf_unref(x->conf);
      } else {
        r->crecv[k++] = *x;
      }
    }
    r->n_crecv = k;
    r->refused_index = index;
    r->refused_term = m->u.snapshot.term;
    r->refused_got = crc;
    r->refused_want = m->u.snapshot.crc;
    r->receiving = false;
    respond(r, m, 0, false);
    return;
  }
  r->recv_crc = crc;
  struct raft_chunk_recv *c = &r->crecv[r->n_crecv++];
  c->conf = conf;
  c->index = index;
  c->term = m->u.snapshot.term;
  c->offset = m->u.snapshot.offset;
  c->data = raft_buf_ref(m->u.snapshot.data);
  c->last = m->u.snapshot.last;
  r->recv_offset += m->u.snapshot.data ? m->u.snapshot.data->len : 0;
  if (m->u.snapshot.last) install(r);
  respond(r, m, r->recv_offset, m->u.snapshot.last);
}
