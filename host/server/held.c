/*
 * held.c — durable before sent, without waiting on the loop: the core's
 * term and vote are saved by the store's writer thread (store_queue_meta),
 * and the messages of the core are held back, in order, until every
 * queued save is durable.
 *
 * Contract:
 *   - held__save_meta queues the core's new hard state; held__send sends a
 *     message at once when no save is outstanding, else keeps a copy. When
 *     the last outstanding save is durable, the copies leave in the order
 *     they were made. A pre-vote poll and its answer, which ask about the
 *     next term without taking it, never wait.
 *   - Every message that leaves speaks for a durable term: its term is at
 *     most the saved one, and a vote (asked for or granted) in the saved
 *     term names the saved vote (asserted in send_now). A crash between a
 *     vote and its answer thus never lets this server vote twice in a term.
 *   - A failed save stops the server as a failed append does
 *     (server__storage_failed, s->failed); what was held is dropped.
 *   - held__hold/held__release hold the messages the same way for other
 *     work that must be done before they may leave (a snapshot from the
 *     leader being installed: its "done" answer waits for it).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

static int is_prevote(const struct raft_msg *m) {
  return (m->type == RAFT_MSG_VOTE && m->u.vote.prevote) ||
         (m->type == RAFT_MSG_VOTE_RESP && m->u.vote_resp.prevote);
}

/* The message speaks only for a durable term and vote. */
static int durable_for(const struct server *s, const struct raft_msg *m) {
  if (is_prevote(m)) return 1;
  const struct store_meta *d = store_meta(s->store);
  if (m->term > d->term) return 0;
  if (m->term < d->term)
    return 1; /* a later term is durable: no vote in
                 this one can be given again */
  if (m->type == RAFT_MSG_VOTE) return strcmp(d->vote, s->name) == 0;
  if (m->type == RAFT_MSG_VOTE_RESP && m->u.vote_resp.granted)
    return strcmp(d->vote, m->to) == 0;
  return 1;
}

static void send_now(struct server *s, const struct raft_msg *m) {
  assert(durable_for(s, m));
  peers__send(s, m);
}

static void drop_held(struct server *s) {
  for (size_t i = 0; i < s->held.n; i++)
    raft_msg_clear(&s->held.m[i]);
  free(s->held.m);
  s->held.m = NULL;
  s->held.n = s->held.cap = 0;
}

void held__hold(struct server *s) {
  s->held.waiting++;
}

void held__release(struct server *s) {
  assert(s->held.waiting > 0);
  if (--s->held.waiting > 0 && !s->failed && !s->stopping) return;
  if (!s->failed && !s->stopping)
    for (size_t i = 0; i < s->held.n; i++)
      send_now(s, &s->held.m[i]);
  drop_held(s);
  if (!s->failed && !s->stopping) server__process_soon(s);
}

static void on_meta_saved(struct store *st, uint64_t durable, int status,
                          void *data) {
  (void)durable;
  struct server *s = data;
  if (status < 0 && !s->stopping) {
    if (!s->failed) server__storage_failed(s, "save_meta", store_errmsg(st));
    s->failed = 1;
  }
  held__release(s);
}

int held__save_meta(struct server *s, const struct raft_hard_state *hs) {
  int rc = store_queue_meta(s->store, hs->term, hs->vote, 0, NULL, 0,
                            on_meta_saved, s);
  if (rc == 0) held__hold(s);
  return rc;
}

void held__send(struct server *s, const struct raft_msg *m) {
  if (s->held.waiting == 0 || is_prevote(m)) {
    send_now(s, m);
    return;
  }
  if (s->held.n == s->held.cap) {
    size_t cap = s->held.cap ? s->held.cap * 2 : 16;
    struct raft_msg *p = realloc(s->held.m, cap * sizeof *p);
    if (!p) return; /* as if lost on the way: Raft sends again */
    s->held.m = p;
    s->held.cap = cap;
  }
  if (raft_msg_copy(&s->held.m[s->held.n], m) != 0) return; /* lost, too */
  s->held.n++;
}
