/*
 * held.h — messages of the core waiting for the term and vote they speak
 * for to be durable (held.c).
 */
#ifndef COPYCAT_SERVER_HELD_H
#define COPYCAT_SERVER_HELD_H

#include <stddef.h>

#include "raft/raft.h"

/* The part of struct server that held.c owns. */
struct held {
  struct raft_msg *m; /* copies, in the order the core made them */
  size_t n, cap;
  unsigned waiting; /* metadata saves queued and not yet durable */
};

struct server;

/* Queue the core's new term and vote with the store (0 or STORE_E*);
 * messages wait in held__send until it is durable. */
int held__save_meta(struct server *s, const struct raft_hard_state *hs);
/* Send m now, or keep a copy until the term and vote it speaks for are
 * durable. */
void held__send(struct server *s, const struct raft_msg *m);
/* Hold messages until the matching release (counted with the saves); the
 * last release sends them, or drops them once the server failed. */
void held__hold(struct server *s);
void held__release(struct server *s);

#endif
