/*
 * forward.c — a follower relays to the leader the client requests only
 * the leader can serve, over its own peer connection to the leader, and
 * relays the answers back, so a client may talk to any member.
 *
 * Forwarded: submit, open, keepalive, close, change, remove, transfer,
 * and linearizable and lease queries; sequential queries are served
 * locally. The follower rewrites the request's id to one of its own
 * (fid) and sends
 *     ["forward", admin, request]            (request: bin, the frame)
 * on its connection to the leader; the leader serves the request as a
 * client request of that connection, with the rights the follower
 * vouches for (admin: the original client held admin rights, docs/tls.md),
 * and answers on the same connection as it would a client:
 * ["result"|"ok"|"redirect"|"error", fid, ...]. The follower puts the
 * client's id back and passes the answer on. The leader takes forwards
 * only from connections whose hello (and, under TLS, certificate) named a
 * member of its configuration.
 *
 * When the connection to the leader breaks, every forwarded request
 * waiting on it gets an error that says it may be retried (a command
 * carries its session and sequence number, so a retry is exactly-once).
 * When there is no leader, or no connection to it yet, the client gets
 * the usual redirect (with no address) and retries.
 */
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

struct fwd {
  uint64_t fid;
  net_conn *client; /* NULL once the client went away */
  uint64_t id;      /* the client's request id */
  char leader[RAFT_NAME_MAX];
  struct fwd *next;
};

static void pack_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

/* Whether a request with this verb must be served by the leader; for a
 * query r points after the id, and the level decides. */
static int leader_only(const char *verb, struct mp_reader r) {
  if (strcmp(verb, "query") == 0) {
    char level[16];
    if (mp_skip(&r) < 0 || mp_skip(&r) < 0 ||
        mp_read_name(&r, level, sizeof level) < 0)
      return 0; /* malformed: answered locally */
    return strcmp(level, "sequential") != 0;
  }
  return strcmp(verb, "submit") == 0 || strcmp(verb, "open") == 0 ||
         strcmp(verb, "keepalive") == 0 || strcmp(verb, "close") == 0 ||
         strcmp(verb, "change") == 0 || strcmp(verb, "remove") == 0 ||
         strcmp(verb, "transfer") == 0;
}

/* Writes frame `data` with its id (the uint between id_at and rest) set
 * to id: the array header and verb as they are, then id, then the rest. */
static void with_id(msgpack_sbuffer *out, const char *data, size_t id_at,
                    size_t rest, size_t len, uint64_t id) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
  msgpack_sbuffer_write(out, data, id_at);
  msgpack_pack_uint64(&pk, id);
  msgpack_sbuffer_write(out, data + rest, len - rest);
}

int forward__request(struct inconn *ic, const char *verb, uint64_t id,
                     const char *data, size_t len, size_t id_at, size_t rest) {
  struct server *s = ic->s;
  /* A forwarded request is never forwarded again (views of who leads may
   * disagree for a moment: the client gets a redirect and retries). */
  if (raft_role(s->raft) == RAFT_LEADER || ic->forwarding) return 0;
  struct mp_reader r;
  mp_reader_init(&r, data + rest, len - rest);
  if (!leader_only(verb, r)) return 0;
  const char *leader = raft_leader(s->raft);
  if (!leader[0] || strcmp(leader, s->name) == 0 || !peers__ready(s, leader)) {
    clients__redirect(s, ic->conn, id); /* the client retries */
    return 1;
  }
  if (strcmp(verb, "submit") == 0 || strcmp(verb, "keepalive") == 0) {
    uint64_t session; /* events of the session reach the client from here */
    mp_reader_init(&r, data + rest, len - rest);
    if (mp_read_uint(&r, &session) == 0) ic->session = session;
  }
  struct fwd *f = calloc(1, sizeof *f);
  if (!f) {
    clients__reply_error(ic->conn, id, CPROTO_ENO_MEMORY,
                         "out of memory: retry shortly");
    return 1;
  }
  f->fid = ++s->forwards.next_id;
  f->client = ic->conn;
  f->id = id;
  snprintf(f->leader, sizeof f->leader, "%s", leader);
  msgpack_sbuffer inner;
  msgpack_sbuffer_init(&inner);
  with_id(&inner, data, id_at, rest, len, f->fid);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 3);
  pack_str(&pk, "forward");
  if (trust__may_admin(ic))
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  msgpack_pack_bin(&pk, inner.size);
  msgpack_pack_bin_body(&pk, inner.data, inner.size);
  msgpack_sbuffer_destroy(&inner);
  peers__send_frame(s, leader, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  f->next = s->forwards.list;
  s->forwards.list = f;
  return 1;
}

int forward__is(const char *data, size_t len) {
  /* fixarray of 3, then fixstr "forward" */
  return len > 9 && (unsigned char)data[0] == 0x93 &&
         (unsigned char)data[1] == (0xa0 | 7) &&
         memcmp(data + 2, "forward", 7) == 0;
}

void forward__serve(struct inconn *ic, const char *data, size_t len) {
  struct server *s = ic->s;
  struct mp_reader r;
  uint32_t n;
  char verb[16];
  bool admin;
  const void *inner;
  uint32_t ilen;
  mp_reader_init(&r, data, len);
  if (mp_read_array(&r, &n) < 0 || n != 3 ||
      mp_read_name(&r, verb, sizeof verb) < 0 || mp_read_bool(&r, &admin) < 0 ||
      mp_read_bytes(&r, &inner, &ilen) < 0 || mp_left(&r) != 0) {
    net_conn_close(ic->conn, "malformed forwarded request");
    return;
  }
  if (raft_conf_find(raft_configuration(s->raft), ic->name) < 0) {
    net_conn_close(ic->conn,
                   "forwarded request from a server that is not a member");
    return;
  }
  ic->forwarding = 1;
  ic->forward_admin = admin;
  clients__request(ic, inner, ilen);
  ic->forwarding = 0;
  ic->forward_admin = 0;
}

int forward__reply(struct server *s, const char *data, size_t len) {
  struct mp_reader r;
  uint32_t n;
  char verb[16];
  uint64_t fid;
  mp_reader_init(&r, data, len);
  if (mp_read_array(&r, &n) < 0 || n < 2 ||
      mp_read_name(&r, verb, sizeof verb) < 0)
    return 0;
  size_t id_at = (size_t)(r.p - (const unsigned char *)data);
  if (mp_read_uint(&r, &fid) < 0) return 0; /* ["ok", name]: a hello answer */
  size_t rest = (size_t)(r.p - (const unsigned char *)data);
  struct fwd **pp = &s->forwards.list;
  while (*pp && (*pp)->fid != fid)
    pp = &(*pp)->next;
  if (!*pp) return 1; /* its client's request was already answered */
  struct fwd *f = *pp;
  *pp = f->next;
  if (f->client) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    with_id(&sb, data, id_at, rest, len, f->id);
    net_conn_send(f->client, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
  }
  free(f);
  return 1;
}

static void fail(struct server *s, const char *leader, enum cproto_code code,
                 const char *why) {
  struct fwd **pp = &s->forwards.list;
  while (*pp) {
    struct fwd *f = *pp;
    if (!leader || strcmp(f->leader, leader) == 0) {
      *pp = f->next;
      clients__reply_error(f->client, f->id, code, why);
      free(f);
    } else {
      pp = &f->next;
    }
  }
}

void forward__peer_lost(struct server *s, const char *name) {
  fail(s, name, CPROTO_ELEADER_LOST,
       "the connection to the leader broke before it answered; it is safe "
       "to retry");
}

void forward__conn_gone(struct server *s, net_conn *c) {
  for (struct fwd *f = s->forwards.list; f; f = f->next)
    if (f->client == c) f->client = NULL;
}

void forward__free(struct server *s) {
  fail(s, NULL, CPROTO_ESTOPPING, "server is stopping");
}
