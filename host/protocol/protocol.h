/*
 * protocol.h — the wire format of copycat-lua (docs/protocol.md).
 *
 * Every frame (host/transport) carries one msgpack value. A connection
 * opens with a hello naming the protocol version, the cluster id and the
 * role of the side that connects; peers then exchange Raft messages, each
 * a msgpack array [type, term, from, to, fields...].
 *
 * Decoding treats its input as hostile: every field's type and range is
 * checked, names must fit RAFT_NAME_MAX, nothing is allocated from a
 * declared count before the bytes are known to be there, and an error
 * names what was wrong so the connection can be closed with a log line.
 */
#ifndef COPYCAT_PROTOCOL_H
#define COPYCAT_PROTOCOL_H

#include <msgpack.h>
#include <stddef.h>

#include "raft/raft.h"

#define PROTO_VERSION 1
#define PROTO_MAGIC "copycat"
#define PROTO_CLUSTER_MAX 64

#define PROTO_EFORMAT (-1) /* malformed or out-of-range message */
#define PROTO_ENOMEM (-2)
#define PROTO_EVERSION (-3) /* hello with a protocol version we lack */

enum proto_role { PROTO_SERVER = 1, PROTO_CLIENT = 2 };

#define PROTO_TOKEN_MAX 256 /* longest admin token in a hello, with its NUL */

struct proto_hello {
  uint64_t version;
  char cluster[PROTO_CLUSTER_MAX];
  int role;
  char name[RAFT_NAME_MAX];    /* the sender's member name; "" for clients */
  char address[RAFT_ADDR_MAX]; /* where the sender listens; "" for clients */
  /* A client's admin token (an optional seventh field), "" if none. */
  char token[PROTO_TOKEN_MAX];
};

/* Appends the hello ["copycat", version, cluster, "server"|"client",
 * name, address] to out. */
int proto_encode_hello(msgpack_sbuffer *out, const struct proto_hello *h);
/* Decodes a hello frame. PROTO_EVERSION if the version differs (h->version
 * then holds the peer's), PROTO_EFORMAT if it is not a hello. */
int proto_decode_hello(const void *data, size_t len, struct proto_hello *h,
                       char *err, size_t errlen);

/* Appends message m as one msgpack array. Returns 0 or PROTO_ENOMEM. */
int proto_encode_msg(msgpack_sbuffer *out, const struct raft_msg *m);
/* Decodes one message. On success *m owns new references (payload bytes
 * are copied out of the frame): release with raft_msg_clear(). On error
 * *m holds nothing and err says what was wrong. */
int proto_decode_msg(const void *data, size_t len, struct raft_msg *m,
                     char *err, size_t errlen);

/* Notices: server-to-server messages outside the Raft core, handled by
 * the server (host/server/agree.c), sent on the same connections as Raft
 * messages: [type, from, index, hash, majority_hash, names]. Their types
 * (>= PROTO_NOTICE_HASH) are not Raft message types. */
enum {
  PROTO_NOTICE_HASH = 20,     /* follower to leader: my state hash at index */
  PROTO_NOTICE_DIVERGED = 21, /* leader to member: your hash at index is not
                                 the majority's */
  PROTO_NOTICE_REMOVED = 22   /* to a non-member that asked for votes: my
                                 committed configuration at index omits you */
};
#define PROTO_NAMES_MAX (RAFT_MAX_MEMBERS * RAFT_NAME_MAX)

struct proto_notice {
  int type;
  char from[RAFT_NAME_MAX];
  uint64_t index;    /* the log index hashed; REMOVED: of the config */
  uint64_t hash;     /* HASH: the sender's; DIVERGED: the receiver's */
  uint64_t majority; /* DIVERGED: the hash of the majority */
  char names[PROTO_NAMES_MAX]; /* DIVERGED: the majority's members, "a,b" */
};

/* Whether a frame is a notice (its first element is a notice type). */
int proto_is_notice(const void *data, size_t len);
int proto_encode_notice(msgpack_sbuffer *out, const struct proto_notice *n);
/* PROTO_EFORMAT with a sentence in err if the frame is not a notice. */
int proto_decode_notice(const void *data, size_t len, struct proto_notice *n,
                        char *err, size_t errlen);

#endif
