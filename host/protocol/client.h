/*
 * client.h — the client protocol (docs/protocol.md, "Client requests"):
 * requests decoded into a struct, the replies a server sends, and the
 * session entries it logs for them.
 *
 * A request is a msgpack array [verb, id, fields...]. cproto_decode()
 * checks the whole grammar of every verb and fills a struct cproto_request
 * whose raw parts (op, args, the fields after the id) point into the
 * frame, so that a command's arguments reach the log without being
 * decoded. It treats its input as hostile (protocol/mp.h).
 *
 * Replies are built into a msgpack_sbuffer (appended, so a caller may
 * reuse one buffer): ["result", id, reply, index], ["ok", id],
 * ["redirect", id, leader_or_nil] and ["error", id, message, code], where
 * code is one of enum cproto_code by its name (cproto_code_name): clients
 * decide by the code, never by the message, whether to retry.
 *
 * Session entries are [time, kind, fields...] with kind one of
 * enum cproto_kind (one character): the server writes them, the session
 * layer (lua/copycat/sessions.lua) applies them.
 */
#ifndef COPYCAT_PROTOCOL_CLIENT_H
#define COPYCAT_PROTOCOL_CLIENT_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

enum cproto_verb {
  CPROTO_UNKNOWN = 0,
  CPROTO_OPEN,      /* [open, id, timeout_ms] */
  CPROTO_KEEPALIVE, /* [keepalive, id, session, command_ack, event_ack] */
  CPROTO_CLOSE,     /* [close, id, session] */
  CPROTO_SUBMIT,    /* [submit, id, session, seq, ack, op, args] */
  CPROTO_QUERY,     /* [query, id, op, args, consistency, session, min_index] */
  CPROTO_CHANGE,    /* [change, id, name, address, type] */
  CPROTO_REMOVE,    /* [remove, id, name] */
  CPROTO_TRANSFER   /* [transfer, id, name] */
};

/* The verb's name on the wire ("submit"), "" for CPROTO_UNKNOWN. */
const char *cproto_verb_name(enum cproto_verb v);
/* Membership and leadership requests (change, remove, transfer). */
int cproto_verb_is_admin(enum cproto_verb v);

enum cproto_consistency {
  CPROTO_LINEARIZABLE = 0,
  CPROTO_LEASE,
  CPROTO_SEQUENTIAL
};

/* Stable error codes. Each has a name on the wire (cproto_code_name);
 * docs/protocol.md lists them with what a client should do. */
enum cproto_code {
  /* permanent: sending the same request again gets the same answer */
  CPROTO_EMALFORMED = 1, /* the request's fields do not decode */
  CPROTO_EUNKNOWN,       /* no such verb, or the wrong number of fields */
  CPROTO_ETOO_LARGE,     /* larger than the server's max_request_bytes */
  CPROTO_ENO_MEMBER,     /* membership: no such member */
  CPROTO_EINVALID,       /* the Raft core refused the arguments */
  /* transient: retry, here or on another member */
  CPROTO_EBUSY,           /* too much uncommitted data */
  CPROTO_ECHANGING,       /* another membership change is in progress */
  CPROTO_ENOT_CAUGHT_UP,  /* the member has not caught up with the log */
  CPROTO_ENOT_READY,      /* the new leader has not committed yet */
  CPROTO_ETRANSFERRING,   /* a leadership transfer is in progress */
  CPROTO_ENOT_APPLIED,    /* leadership changed before the entry applied */
  CPROTO_ELEADER_LOST,    /* a forwarded request's leader went away */
  CPROTO_ENO_MEMORY,      /* the server is short of memory */
  CPROTO_ESTOPPING,       /* the server is shutting down */
  CPROTO_ESTORAGE_FAILED, /* this member cannot write: use another one */
  CPROTO_EDIVERGED,       /* this member diverged: use another one */
  CPROTO_ESTALE,          /* overtaken by a leadership change */
  CPROTO_EDENIED,         /* not allowed for this connection */
  CPROTO_CODE_COUNT
};

/* The code's wire name ("busy"); "internal" for a value out of range. */
const char *cproto_code_name(enum cproto_code c);
/* The code named name (len bytes, as on the wire: "busy"); 0, which is no
 * code, for a name this build does not know ("internal" included). */
enum cproto_code cproto_code_of_name(const char *name, size_t len);
/* Whether a client may send the request again and expect another answer. */
int cproto_code_transient(enum cproto_code c);
/* The code and the message for a negative RAFT_E* from the core. */
enum cproto_code cproto_code_of_raft(int rc);
const char *cproto_raft_message(int rc);

struct cproto_request {
  enum cproto_verb verb;
  uint64_t id;
  uint32_t nfields; /* array length - 2 */
  /* Offsets in the frame of the id and of what follows it (forwarding
   * rewrites the id). */
  size_t id_at, id_end;
  /* The fields after the id, as sent: a session entry's tail. */
  const void *fields;
  size_t fields_len;
  /* submit, keepalive, close; query (0: none) */
  uint64_t session;
  uint64_t seq, ack;   /* submit; keepalive: ack is the command ack */
  uint64_t event_ack;  /* keepalive */
  uint64_t timeout_ms; /* open */
  uint64_t min_index;  /* query */
  enum cproto_consistency consistency; /* query */
  /* submit, query: the raw msgpack of op, and of op followed by args */
  const void *op;
  size_t op_len, op_args_len;
  /* change, remove, transfer */
  char name[RAFT_NAME_MAX];
  char address[RAFT_ADDR_MAX]; /* change */
  int member_type;             /* change: RAFT_ACTIVE, ... */
  /* submit: session, seq and ack decoded (even when later fields fail) */
  int have_seq;
};

#define CPROTO_EFRAME (-1)   /* not [verb, id, ...]: close the connection */
#define CPROTO_EREQUEST (-2) /* id known: answer with code and message */

/* Decodes the request frame data. 0: *r is filled. CPROTO_EFRAME: err
 * says why (no id to answer). CPROTO_EREQUEST: not to be served; r->id is
 * set, r->verb is the verb named (CPROTO_UNKNOWN for none, or a known one
 * with the wrong number of fields), and *code and err hold the answer. */
int cproto_decode(const void *data, size_t len, struct cproto_request *r,
                  enum cproto_code *code, char *err, size_t errlen);

/* ---- replies ---- */

/* ["result", id, reply, index]: reply is msgpack, copied unchanged. */
void cproto_result(msgpack_sbuffer *out, uint64_t id, const void *reply,
                   size_t len, uint64_t index);
/* ["ok", id] */
void cproto_ok(msgpack_sbuffer *out, uint64_t id);
/* ["redirect", id, leader]: leader NULL or "" packs nil (none known). */
void cproto_redirect(msgpack_sbuffer *out, uint64_t id, const char *leader);
/* ["error", id, message, code]. */
void cproto_error(msgpack_sbuffer *out, uint64_t id, enum cproto_code code,
                  const char *message);

/* ---- session entries ---- */

enum cproto_kind {
  CPROTO_KIND_COMMAND = 'c',   /* session, seq, ack, op, args */
  CPROTO_KIND_REFUSED = 'r',   /* session, seq, ack, message */
  CPROTO_KIND_OPEN = 'o',      /* timeout_ms */
  CPROTO_KIND_KEEPALIVE = 'k', /* [[session, command_ack, event_ack]...] */
  CPROTO_KIND_CLOSE = 'x',     /* session */
  CPROTO_KIND_TIME = 't'       /* (none): time passes */
};

/* The head of an entry of 2 + n values, [time, kind, ...: at most
 * CPROTO_HEAD_MAX bytes written to out; returns how many. */
#define CPROTO_HEAD_MAX 32
size_t cproto_entry_head(char *out, uint64_t time, enum cproto_kind kind,
                         uint32_t n);
/* Appends the entry [time, kind, <tail>] where tail holds n msgpack
 * values already encoded (len bytes; NULL when n is 0). */
void cproto_entry(msgpack_sbuffer *out, uint64_t time, enum cproto_kind kind,
                  const void *tail, size_t len, uint32_t n);
/* Appends the tail of a refused command: session, seq, ack, message. */
void cproto_refused_tail(msgpack_sbuffer *out, uint64_t session, uint64_t seq,
                         uint64_t ack, const char *message);

#endif
