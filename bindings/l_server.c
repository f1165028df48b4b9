/*
 * l_server.c — the Lua face of host/server.
 *
 *   core.server.start(opts, handlers) -> server | nil, err
 *     opts: name, address, client_address, data_dir, cluster, memory,
 *           tick_ms, election_ms, heartbeat_ms, snapshot_entries,
 *           snapshot_bytes, hash_interval (0: default, -1: off), seed,
 *           metrics_address, http_address, log_level ("error",
 *           "warn", "info", "debug"), log_format ("kv", "json"),
 *           tls (a core.tls.context with this member's certificate)
 *     handlers (Lua functions, called on the loop, must not wait):
 *       apply(index, term, entry[, args]) -> reply, events
 *           entry: the decoded log entry {time, kind, ...}, except that
 *             a command's arguments are not decoded: entry is then
 *             {time, "c", session, seq, ack, op} and args their bytes
 *           reply: {ok, value_or_message[, code]}, or a string holding
 *             its msgpack encoding, sent to the proposer unchanged
 *           events: nil or {{session, seq, name, data}, ...} to push
 *       query(op, args, session, index, true) -> reply
 *           args: the query's arguments as bytes; reply as for apply
 *       snapshot() -> bytes...   the snapshot, in pieces written one
 *           after the other straight to the snapshot file (bytes: strings
 *           or codec views, written from where they lie, never joined
 *           into one copy), or nil, err
 *       restore(view) -> true | nil, err   view: a codec view of the
 *           snapshot's bytes, lent for the call
 *       state() -> bytes...   the state's canonical encoding, in pieces
 *           (hashed together with XXH3 for the divergence checks)
 *       snapshot_state() -> head, sessions, machine   snapshot() and
 *           state() from one encoding (a snapshot taken at a check
 *           index): the snapshot is head .. machine, the state
 *           sessions .. machine
 *       wants_time() -> boolean        notify(event, detail)
 *   server:bootstrap({{name=, address=, type=}, ...}) -> true | nil, err
 *   server:status() -> table (role "removed" once this server learned it
 *       was removed; diverged = {index, hash, majority_hash, majority}
 *       once its state differed from the majority's)
 *   server:change(name, address, type) / remove(name) / transfer(name)
 *       -> true | nil, err
 *   server:progress() -> {first_index=, commit_term=, leader_ready=,
 *       election_ms=, peers={[name]={match=, next=}} (leader only),
 *       contact={[name]={silent_ms=, heard=, unreachable=}} (the members
 *       this server expects to hear from: see server_progress)}
 *   server:snapshot() -> index (of the newest snapshot) | nil, err
 *   server:snapshot_begin() -> target index | nil, err   a snapshot in a
 *       child process: done once status().snapshot_index >= target,
 *       failed once status().snapshot_failed_index >= target
 *   server:snapshot_file() -> path, index | nil, err   the newest one's
 *   server:stop(fn)   fn() once everything is closed
 *   server:set_sessions(n)      the copycat_sessions gauge (docs/metrics.md)
 *   server:metrics() -> string  the metrics page (Prometheus text)
 *   server:metrics_address() -> "ip:port" | nil
 *   server:http_address() -> "ip:port" | nil
 *   server:set_tls(ctx) -> true | nil, err   certificates reloaded: new
 *       connections use ctx (docs/tls.md)
 *   server:log(level, event, fields)  one line through the server's logger
 *       (fields: a table of string keys to strings, numbers or booleans)
 *
 * A handler that raises is a bug in the runtime layer above (it catches
 * state machine errors itself): the error becomes the command's failure
 * and is logged, and the server goes on.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <xxhash.h>

#include "codec.h"
#include "l_core.h"
#include "protocol/mp.h"
#include "server/server.h"

#define SERVER_MT "copycat.server"

struct lserver {
  struct server *s; /* NULL once stopped */
  lua_State *L;
  int handlers_ref; /* the handlers table */
  int self_ref;     /* anchors the userdata while running */
  int stop_ref;
  struct server_sm sm;
  struct logger log; /* the server's logger configuration, also usable
                        while server_start restores a snapshot */
};

static int push_handler(struct lserver *ls, const char *name) {
  lua_State *L = ls->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ls->handlers_ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  return lua_isfunction(L, -1);
}

/* Packs a failure reply [false, message, "internal"]. */
static void pack_failure(msgpack_sbuffer *out, const char *what,
                         const char *msg) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s: %s", what, msg ? msg : "(no message)");
  msgpack_packer pk;
  msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_false(&pk);
  msgpack_pack_str(&pk, strlen(buf));
  msgpack_pack_str_body(&pk, buf, strlen(buf));
  msgpack_pack_str(&pk, 8);
  msgpack_pack_str_body(&pk, "internal", 8);
}

/* Packs the reply table at idx, or copies a reply already encoded (a
 * string); a reply that cannot be encoded becomes a failure naming why. */
static void pack_reply(lua_State *L, int idx, msgpack_sbuffer *out) {
  char err[256];
  size_t mark = out->size;
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t n;
    const char *p = lua_tolstring(L, idx, &n);
    msgpack_sbuffer_write(out, p, n);
    return;
  }
  if (!lua_istable(L, idx)) {
    pack_failure(out, "internal error", "the session layer gave no reply");
    return;
  }
  if (codec_pack(L, idx, out, err, sizeof err) < 0) {
    out->size = mark;
    pack_failure(out, "the result cannot be sent", err);
  }
}

/* Packs each {session, seq, name, data} of the table at idx as
 * ["event", session, seq, name, data], where data is the codec bytes the
 * sandbox encoded when the event was published (the session layer keeps
 * them as bytes: encoded_events), copied unchanged. An event of another
 * shape is skipped. */
static void pack_events(lua_State *L, int idx, msgpack_sbuffer *out) {
  if (!lua_istable(L, idx)) return;
  lua_Integer n = luaL_len(L, idx);
  char err[256];
  for (lua_Integer i = 1; i <= n; i++) {
    size_t mark = out->size;
    lua_geti(L, idx, i);
    msgpack_sbuffer_write(out,
                          "\x95\xa5"
                          "event",
                          7);
    int bad = !lua_istable(L, -1);
    for (int f = 1; f <= 3 && !bad; f++) {
      lua_geti(L, -1, f);
      bad = codec_pack(L, -1, out, err, sizeof err) < 0;
      lua_pop(L, 1);
    }
    if (!bad) { /* the data: codec bytes, spliced unchanged */
      size_t dlen;
      lua_geti(L, -1, 4);
      const char *data = lua_tolstring(L, -1, &dlen);
      bad = lua_type(L, -1) != LUA_TSTRING || dlen == 0;
      if (!bad) msgpack_sbuffer_write(out, data, dlen);
      lua_pop(L, 1);
    }
    if (bad) out->size = mark;
    lua_pop(L, 1);
  }
}

/* An error line for a failed handler; the message is on top of the stack
 * (left there). index 0: none. */
static void log_failure(struct lserver *ls, const char *event, uint64_t index,
                        lua_State *L) {
  struct logger_line l;
  logger_begin(&l, &ls->log, LOGGER_ERROR, event);
  if (index) logger_u64(&l, "index", index);
  logger_str(&l, "msg",
             lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no message)");
  logger_end(&l);
}

/* An unsigned integer that Lua holds as an integer. */
static int read_count(struct mp_reader *r, uint64_t *v) {
  return mp_read_uint(r, v) == 0 && *v <= (uint64_t)LUA_MAXINTEGER ? 0 : -1;
}

/* A command entry [time, "c", session, seq, ack, op, args] read by its
 * envelope alone: pushes {time, "c", session, seq, ack, op} and the bytes
 * of args, and returns 1; 0 (nothing pushed) for any other entry. */
static int push_command(lua_State *L, const void *payload, size_t len) {
  struct mp_reader r;
  uint32_t n, oplen;
  uint64_t v[5];
  const void *kind, *op;
  mp_reader_init(&r, payload, len);
  if (mp_read_array(&r, &n) < 0 || n != 7 || read_count(&r, &v[0]) < 0 ||
      mp_read_bytes(&r, &kind, &n) < 0 || n != 1 || *(const char *)kind != 'c')
    return 0;
  for (int i = 1; i < 4; i++)
    if (read_count(&r, &v[i]) < 0) return 0;
  if (mp_read_bytes(&r, &op, &oplen) < 0) return 0;
  const unsigned char *args = r.p;
  if (mp_skip(&r) < 0) return 0;
  lua_createtable(L, 6, 0);
  lua_pushinteger(L, (lua_Integer)v[0]);
  lua_rawseti(L, -2, 1);
  lua_pushliteral(L, "c");
  lua_rawseti(L, -2, 2);
  for (int i = 1; i < 4; i++) {
    lua_pushinteger(L, (lua_Integer)v[i]);
    lua_rawseti(L, -2, i + 2);
  }
  lua_pushlstring(L, op, oplen);
  lua_rawseti(L, -2, 6);
  lua_pushlstring(L, (const char *)args, (size_t)(r.p - args));
  return 1;
}

static void sm_apply(void *data, uint64_t index, uint64_t term,
                     const void *payload, size_t len, msgpack_sbuffer *out,
                     msgpack_sbuffer *events) {
  struct lserver *ls = data;
  lua_State *L = ls->L;
  char err[256];
  size_t used;
  int top = lua_gettop(L), nargs = 3;
  push_handler(ls, "apply");
  lua_pushinteger(L, (lua_Integer)index);
  lua_pushinteger(L, (lua_Integer)term);
  if (payload && push_command(L, payload, len)) {
    nargs = 4; /* the args stay bytes: only the sandbox decodes them */
  } else if (!payload || codec_unpack_protected(L, payload, len, &used, err,
                                                sizeof err) < 0) {
    lua_settop(L, top);
    pack_failure(out, "malformed entry", payload ? err : "empty");
    return;
  }
  if (lua_pcall(L, nargs, 2, 0) != LUA_OK) {
    log_failure(ls, "apply_failed", index, L);
    pack_failure(out, "internal error", lua_tostring(L, -1));
    lua_settop(L, top);
    return;
  }
  pack_reply(L, top + 1, out);
  pack_events(L, top + 2, events);
  lua_settop(L, top);
}

static void sm_query(void *data, const void *req, size_t len, uint64_t session,
                     uint64_t index, msgpack_sbuffer *out) {
  struct lserver *ls = data;
  lua_State *L = ls->L;
  char err[256];
  size_t used;
  int top = lua_gettop(L);
  push_handler(ls, "query");
  struct mp_reader r;
  uint32_t n, oplen;
  const void *op;
  mp_reader_init(&r, req, len);
  if (mp_read_array(&r, &n) == 0 && n == 2 &&
      mp_read_bytes(&r, &op, &oplen) == 0) {
    /* [op, args]: the args go to the sandbox as bytes */
    lua_pushlstring(L, op, oplen);
    lua_pushlstring(L, (const char *)r.p, mp_left(&r));
    lua_pushinteger(L, (lua_Integer)session);
    lua_pushinteger(L, (lua_Integer)index);
    lua_pushboolean(L, 1);
    if (lua_pcall(L, 5, 1, 0) != LUA_OK) {
      pack_failure(out, "internal error", lua_tostring(L, -1));
      lua_settop(L, top);
      return;
    }
    pack_reply(L, top + 1, out);
    lua_settop(L, top);
    return;
  }
  if (codec_unpack_protected(L, req, len, &used, err, sizeof err) < 0 ||
      !lua_istable(L, -1)) {
    lua_settop(L, top);
    pack_failure(out, "malformed query", err);
    return;
  }
  lua_geti(L, -1, 1);
  lua_geti(L, -2, 2);
  lua_remove(L, -3);
  lua_pushinteger(L, (lua_Integer)session);
  lua_pushinteger(L, (lua_Integer)index);
  if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
    pack_failure(out, "internal error", lua_tostring(L, -1));
    lua_settop(L, top);
    return;
  }
  pack_reply(L, top + 1, out);
  lua_settop(L, top);
}

static int sm_wants_time(void *data) {
  struct lserver *ls = data;
  lua_State *L = ls->L;
  int top = lua_gettop(L);
  if (!push_handler(ls, "wants_time")) {
    lua_settop(L, top);
    return 0;
  }
  int want = lua_pcall(L, 0, 1, 0) == LUA_OK && lua_toboolean(L, -1);
  lua_settop(L, top);
  return want;
}

/* Writes the bytes at index i (a string or a codec view, written from
 * where they lie) to out: 0; -1 with a message pushed (not bytes); -2 when
 * out's write failed (its owner reports that, see struct server_sink). */
static int write_piece(lua_State *L, int i, const struct server_sink *out) {
  size_t n;
  const char *p = codec_tobytes(L, i, &n);
  if (!p) {
    lua_pushfstring(L, "the snapshot handler returned a %s, not bytes",
                    luaL_typename(L, i));
    return -1;
  }
  return out->write(out->ctx, p, n) == 0 ? 0 : -2;
}

static int sm_snapshot(void *data, const struct server_sink *out) {
  struct lserver *ls = data;
  lua_State *L = ls->L;
  int top = lua_gettop(L);
  push_handler(ls, "snapshot");
  /* pieces, or nil and a message (or an error raised) */
  if (lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
    log_failure(ls, "snapshot_failed", 0, L);
    lua_settop(L, top);
    return -1;
  }
  if (lua_gettop(L) == top || lua_isnil(L, top + 1)) {
    if (lua_gettop(L) >= top + 2 && !lua_isnil(L, top + 2))
      lua_pushvalue(L, top + 2); /* nil, message */
    else
      lua_pushliteral(L, "the snapshot handler returned no bytes");
    log_failure(ls, "snapshot_failed", 0, L);
    lua_settop(L, top);
    return -1;
  }
  for (int i = top + 1; i <= lua_gettop(L); i++) {
    int rc = write_piece(L, i, out);
    if (rc != 0) {
      if (rc == -1) log_failure(ls, "snapshot_failed", 0, L);
      lua_settop(L, top);
      return -1;
    }
  }
  lua_settop(L, top);
  return 0;
}

/* XXH3-64 of the strings the state handler returns, streamed piece by
 * piece so the pieces are not concatenated. */
/* XXH3-64 of the bytes at stack indexes first..last taken as one string
 * (each a string or a codec view), in *out: 0; -1 with a message pushed
 * (a piece is not bytes); -2 (the hash state could not be made). */
static int hash_pieces(lua_State *L, int first, int last, uint64_t *out) {
  XXH3_state_t *st = XXH3_createState();
  int rc = st && XXH3_64bits_reset(st) == XXH_OK ? 0 : -2;
  for (int i = first; i <= last && rc == 0; i++) {
    size_t n;
    const char *p = codec_tobytes(L, i, &n);
    if (!p) {
      lua_pushfstring(L, "the state handler returned a %s, not bytes",
                      luaL_typename(L, i));
      rc = -1;
    } else if (XXH3_64bits_update(st, p, n) != XXH_OK) {
      rc = -2;
    }
  }
  if (rc == 0) *out = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return rc;
}

static int sm_hash(void *data, uint64_t *out) {
  struct lserver *ls = data;
  lua_State *L = ls->L;
  int top = lua_gettop(L);
  if (!push_handler(ls, "state")) {
    lua_settop(L, top);
    return -1;
  }
  if (lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
    log_failure(ls, "state_hash_failed", 0, L);
    lua_settop(L, top);
    return -1;
  }
  int rc = hash_pieces(L, top + 1, lua_gettop(L), out);
  if (rc == -1) log_failure(ls, "state_hash_failed", 0, L);
  lua_settop(L, top);
  return rc < 0 ? -1 : 0;
}

/* The snapshot_state handler: head, sessions, machine, from one encoding
 * of the machine's state. The snapshot is head then machine, to out; the
 * state is sessions then machine, hashed as sm_hash hashes state()'s
 * pieces, so the hash equals sm_hash's for the same state. */
static int sm_snapshot_hash(void *data, const struct server_sink *out,
                            uint64_t *hash) {
  struct lserver *ls = data;
  lua_State *L = ls->L;
  int top = lua_gettop(L);
  if (!push_handler(ls, "snapshot_state")) {
    /* No combined handler: the two, one after the other. */
    lua_settop(L, top);
    return sm_snapshot(data, out) != 0 ? -1 : sm_hash(data, hash);
  }
  if (lua_pcall(L, 0, 3, 0) != LUA_OK) {
    log_failure(ls, "snapshot_failed", 0, L);
    lua_settop(L, top);
    return -1;
  }
  if (lua_isnil(L, top + 1)) {
    if (lua_isnil(L, top + 2))
      lua_pushliteral(L, "the snapshot_state handler returned no bytes");
    else
      lua_pushvalue(L, top + 2); /* nil, message */
    log_failure(ls, "snapshot_failed", 0, L);
    lua_settop(L, top);
    return -1;
  }
  int wrc = write_piece(L, top + 1, out);
  if (wrc == 0) wrc = write_piece(L, top + 3, out);
  if (wrc != 0) {
    if (wrc == -1) log_failure(ls, "snapshot_failed", 0, L);
    lua_settop(L, top);
    return -1;
  }
  int rc = hash_pieces(L, top + 2, top + 3, hash);
  if (rc == -1) log_failure(ls, "state_hash_failed", 0, L);
  lua_settop(L, top);
  return rc < 0 ? -1 : 0;
}

/* In a forked child that is about to write a snapshot: no garbage
 * collection, whose finalizers (connections, timers) would call into the
 * event loop. The child exits right after. */
static void sm_child_prepare(void *data) {
  struct lserver *ls = data;
  lua_gc(ls->L, LUA_GCSTOP);
}

/* The snapshot's bytes go to the handler as a codec view, lent for the
 * call: no copy of a state-sized string in this Lua state (snap is a
 * mapping of the snapshot file, unmapped after the call). */
static int sm_restore(void *data, const void *snap, size_t len) {
  struct lserver *ls = data;
  lua_State *L = ls->L;
  int top = lua_gettop(L);
  codec_view_push(L, snap, len); /* top + 1 */
  push_handler(ls, "restore");
  lua_pushvalue(L, top + 1);
  int ok = lua_pcall(L, 1, 2, 0) == LUA_OK && lua_toboolean(L, -2);
  codec_view_close(L, top + 1);
  if (!ok) log_failure(ls, "snapshot_restore_failed", 0, L);
  lua_settop(L, top);
  return ok ? 0 : -1;
}

static void sm_notify(void *data, const char *event, const char *detail) {
  struct lserver *ls = data;
  lua_State *L = ls->L;
  if (!push_handler(ls, "notify")) {
    lua_pop(L, 1);
    return;
  }
  lua_pushstring(L, event);
  lua_pushstring(L, detail);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
}

static const char *opt_string(lua_State *L, const char *key) {
  lua_getfield(L, 1, key);
  const char *v = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
  lua_pop(L, 1); /* the string stays alive in the options table */
  return v;
}

static lua_Integer opt_int(lua_State *L, const char *key, lua_Integer def) {
  lua_getfield(L, 1, key);
  lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

static int l_start(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  struct server_opts o;
  memset(&o, 0, sizeof o);
  o.name = opt_string(L, "name");
  o.address = opt_string(L, "address");
  o.client_address = opt_string(L, "client_address");
  o.data_dir = opt_string(L, "data_dir");
  o.cluster = opt_string(L, "cluster");
  lua_getfield(L, 1, "memory");
  o.memory = lua_toboolean(L, -1);
  lua_pop(L, 1);
  o.tick_ms = (unsigned)opt_int(L, "tick_ms", 0);
  o.election_ms = (unsigned)opt_int(L, "election_ms", 0);
  o.heartbeat_ms = (unsigned)opt_int(L, "heartbeat_ms", 0);
  o.snapshot_entries = (uint64_t)opt_int(L, "snapshot_entries", 0);
  o.snapshot_bytes = (uint64_t)opt_int(L, "snapshot_bytes", 0);
  o.max_request = (uint32_t)opt_int(L, "max_request", 0);
  o.hello_timeout_ms = (unsigned)opt_int(L, "hello_timeout_ms", 0);
  o.max_unauthenticated = (unsigned)opt_int(L, "max_unauthenticated", 0);
  o.admin_token = opt_string(L, "admin_token");
  o.seed = (uint64_t)opt_int(L, "seed", 0);
  o.hash_interval = (int64_t)opt_int(L, "hash_interval", 0);
  o.time_ms = (unsigned)opt_int(L, "time_ms", 0);
  o.metrics_address = opt_string(L, "metrics_address");
  o.http_address = opt_string(L, "http_address");
  o.log_level = opt_string(L, "log_level");
  o.log_format = opt_string(L, "log_format");
  lua_getfield(L, 1, "tls");
  if (!lua_isnil(L, -1)) o.tls = tls_binding_check(L, -1);
  lua_pop(L, 1); /* the table keeps it alive; server_start takes a ref */

  struct lserver *ls = lua_newuserdatauv(L, sizeof *ls, 0);
  memset(ls, 0, sizeof *ls);
  ls->handlers_ref = ls->self_ref = ls->stop_ref = LUA_NOREF;
  /* Invalid values are refused by server_start below. */
  logger_init(&ls->log);
  if (o.name) snprintf(ls->log.name, sizeof ls->log.name, "%s", o.name);
  if (logger_level_parse(o.log_level) >= 0)
    ls->log.level = logger_level_parse(o.log_level);
  if (logger_format_parse(o.log_format) >= 0)
    ls->log.format = logger_format_parse(o.log_format);
  luaL_setmetatable(L, SERVER_MT);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  ls->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, 2);
  ls->handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ls->sm = (struct server_sm){.data = ls,
                              .apply = sm_apply,
                              .query = sm_query,
                              .snapshot = sm_snapshot,
                              .child_prepare = sm_child_prepare,
                              .hash = sm_hash,
                              .snapshot_hash = sm_snapshot_hash,
                              .restore = sm_restore,
                              .wants_time = sm_wants_time,
                              .notify = sm_notify};
  o.sm = &ls->sm;
  char err[1024];
  if (server_start(uv_default_loop(), &o, &ls->s, err, sizeof err) < 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, ls->handlers_ref);
    ls->handlers_ref = LUA_NOREF;
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushvalue(L, -1);
  ls->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static struct lserver *check_running(lua_State *L) {
  struct lserver *ls = luaL_checkudata(L, 1, SERVER_MT);
  if (!ls->s) luaL_error(L, "the server is stopped");
  return ls;
}

static int result(lua_State *L, int rc) {
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  luaL_pushfail(L);
  lua_pushstring(L, raft_strerror(rc));
  return 2;
}

static int member_type(lua_State *L, const char *t) {
  if (!t || strcmp(t, "active") == 0) return RAFT_ACTIVE;
  if (strcmp(t, "passive") == 0) return RAFT_PASSIVE;
  if (strcmp(t, "reserve") == 0) return RAFT_RESERVE;
  return luaL_error(L, "member type must be active, passive or reserve");
}

static int l_bootstrap(lua_State *L) {
  struct lserver *ls = check_running(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  struct raft_conf conf;
  memset(&conf, 0, sizeof conf);
  lua_Integer n = luaL_len(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 2, i);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "address");
    lua_getfield(L, -3, "type");
    const char *name = luaL_checkstring(L, -3);
    const char *addr = luaL_checkstring(L, -2);
    int type = member_type(L, luaL_optstring(L, -1, "active"));
    if (raft_conf_add(&conf, name, addr, type) < 0) {
      luaL_pushfail(L);
      lua_pushfstring(L,
                      "bad member list: '%s' is a duplicate name, too "
                      "long, or there are too many members",
                      name);
      return 2;
    }
    lua_pop(L, 4);
  }
  char err[512];
  if (server_bootstrap(ls->s, &conf, err, sizeof err) < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const char *type_name(int t) {
  return t == RAFT_ACTIVE    ? "active"
         : t == RAFT_PASSIVE ? "passive"
                             : "reserve";
}

static int l_status(lua_State *L) {
  struct lserver *ls = check_running(L);
  struct server_status st;
  server_status(ls->s, &st);
  lua_createtable(L, 0, 10);
  lua_pushstring(L, st.removed ? "removed" : raft_role_name(st.role));
  lua_setfield(L, -2, "role");
  if (st.diverged) {
    char h[17], m[17];
    snprintf(h, sizeof h, "%016llx", (unsigned long long)st.diverged_hash);
    snprintf(m, sizeof m, "%016llx", (unsigned long long)st.majority_hash);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)st.diverged_index);
    lua_setfield(L, -2, "index");
    lua_pushstring(L, h);
    lua_setfield(L, -2, "hash");
    lua_pushstring(L, m);
    lua_setfield(L, -2, "majority_hash");
    lua_pushstring(L, st.majority);
    lua_setfield(L, -2, "majority");
    lua_setfield(L, -2, "diverged");
  }
  lua_pushinteger(L, (lua_Integer)st.term);
  lua_setfield(L, -2, "term");
  lua_pushinteger(L, (lua_Integer)st.commit);
  lua_setfield(L, -2, "commit_index");
  lua_pushinteger(L, (lua_Integer)st.applied);
  lua_setfield(L, -2, "applied_index");
  lua_pushinteger(L, (lua_Integer)st.last_index);
  lua_setfield(L, -2, "last_index");
  lua_pushinteger(L, (lua_Integer)st.snapshot_index);
  lua_setfield(L, -2, "snapshot_index");
  lua_pushinteger(L, (lua_Integer)st.snapshot_failed_index);
  lua_setfield(L, -2, "snapshot_failed_index");
  lua_pushinteger(L, (lua_Integer)st.config_index);
  lua_setfield(L, -2, "config_index");
  if (st.leader[0]) {
    lua_pushstring(L, st.leader);
    lua_setfield(L, -2, "leader");
    lua_pushstring(L, server_leader_address(ls->s));
    lua_setfield(L, -2, "leader_address");
  }
  lua_createtable(L, (int)st.conf->n, 0);
  for (unsigned i = 0; i < st.conf->n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, st.conf->m[i].name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, st.conf->m[i].address);
    lua_setfield(L, -2, "address");
    lua_pushstring(L, type_name(st.conf->m[i].type));
    lua_setfield(L, -2, "type");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "members");
  return 1;
}

static int l_change(lua_State *L) {
  struct lserver *ls = check_running(L);
  const char *name = luaL_checkstring(L, 2);
  const char *addr = luaL_checkstring(L, 3);
  int type = member_type(L, luaL_optstring(L, 4, "active"));
  return result(L, server_change(ls->s, name, addr, type));
}

static int l_remove(lua_State *L) {
  struct lserver *ls = check_running(L);
  return result(L, server_remove(ls->s, luaL_checkstring(L, 2)));
}

static int l_transfer(lua_State *L) {
  struct lserver *ls = check_running(L);
  return result(L, server_transfer(ls->s, luaL_checkstring(L, 2)));
}

static int l_set_tls(lua_State *L) {
  struct lserver *ls = check_running(L);
  struct tls_ctx *ctx = tls_binding_check(L, 2);
  char err[512];
  if (server_set_tls(ls->s, ctx, err, sizeof err) < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_set_sessions(lua_State *L) {
  struct lserver *ls = check_running(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0, 2, "the number of sessions cannot be negative");
  server_metrics_set_sessions(ls->s, (uint64_t)n);
  return 0;
}

static int l_metrics(lua_State *L) {
  struct lserver *ls = check_running(L);
  size_t len;
  char *page = server_metrics_render(ls->s, &len);
  if (!page) return luaL_error(L, "out of memory rendering the metrics");
  lua_pushlstring(L, page, len);
  free(page);
  return 1;
}

static int l_metrics_address(lua_State *L) {
  struct lserver *ls = check_running(L);
  const char *a = server_metrics_address(ls->s);
  if (a)
    lua_pushstring(L, a);
  else
    lua_pushnil(L);
  return 1;
}

static int l_http_address(lua_State *L) {
  struct lserver *ls = check_running(L);
  const char *a = server_http_address(ls->s);
  if (a)
    lua_pushstring(L, a);
  else
    lua_pushnil(L);
  return 1;
}

/* The string on top of the stack, any bytes (its length is taken before
 * the call: argument evaluation order is unspecified). */
static void log_string(struct logger_line *l, const char *key, lua_State *L) {
  size_t n;
  const char *v = lua_tolstring(L, -1, &n);
  logger_strn(l, key, v, n);
}

/* server:log(level, event, fields): fields' keys are written in the order
 * lua_next gives (unspecified); non-string keys are skipped. */
static int l_log(lua_State *L) {
  struct lserver *ls = luaL_checkudata(L, 1, SERVER_MT);
  const char *lv = luaL_checkstring(L, 2);
  const char *event = luaL_checkstring(L, 3);
  int level = logger_level_parse(lv);
  luaL_argcheck(L, level >= 0, 2, "level must be error, warn, info or debug");
  if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
  if (!logger_enabled(&ls->log, level)) return 0;
  struct logger_line l;
  logger_begin(&l, &ls->log, level, event);
  if (lua_istable(L, 4)) {
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        const char *k = lua_tostring(L, -2);
        if (lua_isinteger(L, -1))
          logger_i64(&l, k, (int64_t)lua_tointeger(L, -1));
        else if (lua_type(L, -1) == LUA_TNUMBER)
          logger_f64(&l, k, lua_tonumber(L, -1));
        else if (lua_isboolean(L, -1))
          logger_bool(&l, k, lua_toboolean(L, -1));
        else if (lua_type(L, -1) == LUA_TSTRING)
          log_string(&l, k, L);
        else
          logger_str(&l, k, luaL_typename(L, -1));
      }
      lua_pop(L, 1);
    }
  }
  logger_end(&l);
  return 0;
}

static int l_progress(lua_State *L) {
  struct lserver *ls = check_running(L);
  struct server_status st;
  struct server_progress p;
  server_status(ls->s, &st);
  server_progress(ls->s, &p);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)st.first_index);
  lua_setfield(L, -2, "first_index");
  lua_pushinteger(L, (lua_Integer)p.commit_term);
  lua_setfield(L, -2, "commit_term");
  lua_pushboolean(L, p.leader_ready);
  lua_setfield(L, -2, "leader_ready");
  if (p.have_peers) {
    lua_createtable(L, 0, (int)st.conf->n);
    for (unsigned i = 0; i < st.conf->n; i++) {
      lua_createtable(L, 0, 2);
      lua_pushinteger(L, (lua_Integer)p.peer[i].match);
      lua_setfield(L, -2, "match");
      lua_pushinteger(L, (lua_Integer)p.peer[i].next);
      lua_setfield(L, -2, "next");
      lua_setfield(L, -2, st.conf->m[i].name);
    }
    lua_setfield(L, -2, "peers");
  }
  lua_pushinteger(L, (lua_Integer)p.election_ms);
  lua_setfield(L, -2, "election_ms");
  lua_createtable(L, 0, (int)st.conf->n);
  for (unsigned i = 0; i < st.conf->n; i++) {
    if (!p.peer[i].contact_known) continue;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)p.peer[i].silent_ms);
    lua_setfield(L, -2, "silent_ms");
    lua_pushboolean(L, p.peer[i].heard);
    lua_setfield(L, -2, "heard");
    lua_pushboolean(L, p.peer[i].unreachable);
    lua_setfield(L, -2, "unreachable");
    lua_setfield(L, -2, st.conf->m[i].name);
  }
  lua_setfield(L, -2, "contact");
  return 1;
}

static int l_snapshot(lua_State *L) {
  struct lserver *ls = check_running(L);
  uint64_t index = 0;
  int rc = server_snapshot_now(ls->s, &index);
  if (rc < 0) {
    luaL_pushfail(L);
    if (rc == -2)
      lua_pushliteral(L,
                      "a snapshot is being written by a child process "
                      "already; try again once it is done");
    else
      lua_pushliteral(L, "the snapshot failed (see the server's log)");
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)index);
  return 1;
}

static int l_snapshot_begin(lua_State *L) {
  struct lserver *ls = check_running(L);
  uint64_t target = 0;
  int rc = server_snapshot_begin(ls->s, &target);
  if (rc < 0) {
    luaL_pushfail(L);
    if (rc == -2)
      lua_pushliteral(L,
                      "a snapshot is being written by a child process "
                      "already; try again once it is done");
    else
      lua_pushliteral(L, "the snapshot failed (see the server's log)");
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)target);
  return 1;
}

static int l_snapshot_file(lua_State *L) {
  struct lserver *ls = check_running(L);
  char path[PATH_MAX + 80];
  uint64_t index;
  if (server_snapshot_file(ls->s, path, sizeof path, &index) < 0) {
    luaL_pushfail(L);
    lua_pushliteral(L,
                    "this server has no snapshot file (none taken yet, or "
                    "it keeps its data in memory only)");
    return 2;
  }
  lua_pushstring(L, path);
  lua_pushinteger(L, (lua_Integer)index);
  return 2;
}

static void on_stopped(void *data) {
  struct lserver *ls = data;
  lua_State *L = ls->L;
  luaL_unref(L, LUA_REGISTRYINDEX, ls->handlers_ref);
  ls->handlers_ref = LUA_NOREF;
  int stop_ref = ls->stop_ref;
  ls->stop_ref = LUA_NOREF;
  int self_ref = ls->self_ref;
  ls->self_ref = LUA_NOREF;
  if (stop_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, stop_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, stop_ref);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) core_callback_error(L);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, self_ref);
}

static int l_stop(lua_State *L) {
  struct lserver *ls = luaL_checkudata(L, 1, SERVER_MT);
  if (!ls->s) return 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    ls->stop_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  struct server *s = ls->s;
  ls->s = NULL;
  server_stop(s, on_stopped, ls);
  return 0;
}

int server_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"bootstrap", l_bootstrap},
                                     {"status", l_status},
                                     {"change", l_change},
                                     {"remove", l_remove},
                                     {"transfer", l_transfer},
                                     {"progress", l_progress},
                                     {"snapshot", l_snapshot},
                                     {"snapshot_begin", l_snapshot_begin},
                                     {"snapshot_file", l_snapshot_file},
                                     {"stop", l_stop},
                                     {"set_sessions", l_set_sessions},
                                     {"metrics", l_metrics},
                                     {"metrics_address", l_metrics_address},
                                     {"http_address", l_http_address},
                                     {"set_tls", l_set_tls},
                                     {"log", l_log},
                                     {NULL, NULL}};
  if (luaL_newmetatable(L, SERVER_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_start);
  lua_setfield(L, -2, "start");
  return 1;
}
