/*
 * conf.c — cluster configurations: building, encoding into RAFT_CONFIG
 * entries, and tracking which one is in force. A configuration takes
 * effect as soon as its entry is in the log (appended, not committed);
 * if that entry is truncated away the previous one comes back. Only one
 * change is ever uncommitted, so remembering one previous configuration
 * is enough.
 */
#include <stdlib.h>

#include "raft/internal.h"

int raft_conf_find(const struct raft_conf *c, const char *name) {
  for (unsigned i = 0; i < c->n; i++)
    if (strcmp(c->m[i].name, name) == 0) return (int)i;
  return -1;
}

int raft_conf_add(struct raft_conf *c, const char *name, const char *address,
                  int type) {
  if (!name || !*name || strlen(name) >= RAFT_NAME_MAX) return RAFT_EINVAL;
  if (!address || strlen(address) >= RAFT_ADDR_MAX) return RAFT_EINVAL;
  if (type != RAFT_ACTIVE && type != RAFT_PASSIVE && type != RAFT_RESERVE)
    return RAFT_EINVAL;
  if (c->n >= RAFT_MAX_MEMBERS || raft_conf_find(c, name) >= 0)
    return RAFT_EINVAL;
  struct raft_member *m = &c->m[c->n++];
  memset(m, 0, sizeof *m);
  strcpy(m->name, name);
  strcpy(m->address, address);
  m->type = (uint8_t)type;
  return 0;
}

/* Layout: 'C' 1 n, then per member: type, name length, name, address
 * length, address (lengths are one byte; names < 64, addresses < 128). */
struct raft_buf *raft_conf_encode(const struct raft_conf *c) {
  size_t len = 3;
  for (unsigned i = 0; i < c->n; i++)
    len += 3 + strlen(c->m[i].name) + strlen(c->m[i].address);
  struct raft_buf *b = raft_buf_new(len);
  if (!b) return NULL;
  unsigned char *p = b->data;
  *p++ = 'C';
  *p++ = 1;
  *p++ = (unsigned char)c->n;
  for (unsigned i = 0; i < c->n; i++) {
    size_t nl = strlen(c->m[i].name), al = strlen(c->m[i].address);
    *p++ = c->m[i].type;
    *p++ = (unsigned char)nl;
    memcpy(p, c->m[i].name, nl);
    p += nl;
    *p++ = (unsigned char)al;
    memcpy(p, c->m[i].address, al);
    p += al;
  }
  assert((size_t)(p - b->data) == len);
  return b;
}

int raft_conf_decode(struct raft_conf *c, const void *data, size_t len) {
  const unsigned char *p = data, *end = p + len;
  memset(c, 0, sizeof *c);
  if (!data || len < 3 || p[0] != 'C' || p[1] != 1) return RAFT_EINVAL;
  unsigned n = p[2];
  p += 3;
  if (n > RAFT_MAX_MEMBERS) return RAFT_EINVAL;
  for (unsigned i = 0; i < n; i++) {
    char name[RAFT_NAME_MAX], addr[RAFT_ADDR_MAX];
    if (end - p < 2) return RAFT_EINVAL;
    int type = *p++;
    size_t nl = *p++;
    if (nl >= RAFT_NAME_MAX || (size_t)(end - p) < nl + 1) return RAFT_EINVAL;
    memcpy(name, p, nl);
    name[nl] = 0;
    p += nl;
    size_t al = *p++;
    if (al >= RAFT_ADDR_MAX || (size_t)(end - p) < al) return RAFT_EINVAL;
    memcpy(addr, p, al);
    addr[al] = 0;
    p += al;
    if (memchr(name, 0, nl) || memchr(addr, 0, al)) return RAFT_EINVAL;
    if (raft_conf_add(c, name, addr, type) != 0) return RAFT_EINVAL;
  }
  return p == end ? 0 : RAFT_EINVAL;
}

/* Make `c` (from entry `index`) the configuration in force, carrying over
 * the replication progress of members that stay. */
void raft_conf_adopt(struct raft *r, const struct raft_conf *c,
                     uint64_t index) {
  struct raft_progress pr[RAFT_MAX_MEMBERS];
  for (unsigned i = 0; i < c->n; i++) {
    int old = raft_conf_find(&r->conf, c->m[i].name);
    if (old >= 0) {
      pr[i] = r->pr[old];
    } else {
      memset(&pr[i], 0, sizeof pr[i]);
      pr[i].next = raft_log_last(&r->log) + 1;
      pr[i].state = PR_PROBE;
    }
  }
  if (c != &r->conf) r->conf = *c;
  memcpy(r->pr, pr, sizeof pr[0] * c->n);
  r->conf_index = index;
  r->self = raft_conf_find(&r->conf, r->name);
  if (r->role == RAFT_LEADER && r->self >= 0) {
    r->pr[r->self].match = r->persisted;
    r->pr[r->self].next = raft_log_last(&r->log) + 1;
  }
}

void raft_conf_on_append(struct raft *r, uint64_t index,
                         const struct raft_entry *e) {
  if (e->type != RAFT_CONFIG) return;
  if (BUG(r, CONFIG_ON_COMMIT) && index > 1) return; /* bootstrap: as is */
  struct raft_conf c;
  if (e->buf == NULL || raft_conf_decode(&c, e->buf->data, e->buf->len) != 0)
    return; /* proposals are validated; a bad entry cannot arrive */
  r->conf_prev = r->conf;
  r->conf_prev_index = r->conf_index;
  raft_conf_adopt(r, &c, index);
}

/* Configuration in force at `index` (>= the log's base): the latest
 * configuration entry at or before it, else the snapshot's. */
void raft_conf_at(const struct raft *r, uint64_t index, struct raft_conf *out,
                  uint64_t *at) {
  for (uint64_t i = index; i > r->snap_index && i > r->log.base; i--) {
    const struct raft_entry *e = raft_log_get(&r->log, i);
    if (e->type == RAFT_CONFIG && e->buf &&
        raft_conf_decode(out, e->buf->data, e->buf->len) == 0) {
      *at = i;
      return;
    }
  }
  *out = r->snap_conf;
  *at = r->snap_index;
}

void raft_conf_on_truncate(struct raft *r, uint64_t index) {
  if (r->conf_index < index) return;
  struct raft_conf prev;
  uint64_t at = r->conf_prev_index;
  if (at < index) {
    prev = r->conf_prev;
  } else {
    /* Two configurations truncated at once: only a faulty peer can make
     * that happen, but recover the right one from the log anyway. */
    raft_conf_at(r, index - 1, &prev, &at);
  }
  raft_conf_adopt(r, &prev, at);
}

/* Called after the commit index advanced. */
void raft_conf_on_commit(struct raft *r) {
  if (r->role != RAFT_LEADER || r->conf_index > r->commit) return;
  /* A leader removed or demoted by the configuration it just committed
   * hands over by stepping down. */
  if (r->self < 0 || r->conf.m[r->self].type != RAFT_ACTIVE)
    raft_become_follower(r, r->term, "");
}
