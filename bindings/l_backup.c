/*
 * l_backup.c — core.backup: backup files (host/storage/backup.h) for Lua.
 *
 *   core.backup.source(snapshot_path, info_table[, chunk]) -> src | nil, err
 *       src:size()        bytes of the whole backup file it produces
 *       src:next(fn)      reads the next piece on libuv's thread pool, then
 *                         fn(piece) — "" once everything was produced — or
 *                         fn(nil, err); one read at a time
 *       src:close()
 *   core.backup.read(path) -> info | nil, err      checks the whole file
 *   core.backup.restore(path, dir, members, cluster) -> info | nil, err
 *       members: {{name=, address=, type=}, ...}, the new cluster's
 *   core.backup.finish(tmp_path, final_path) -> true | nil, err
 *       fsync tmp_path, rename it to final_path, fsync the directory
 *
 * info: {index=, term=, size=, data_bytes=, chunk_size=, chunks=,
 *        checksum= "crc32c:xxxxxxxx" (of the data), snapshot_checksum=,
 *        members = {{name=, address=, type=}, ...}, info = the table the
 *        source was given (cluster, member, state_machine, created, ...)}
 *
 * read, restore and finish run on the calling thread: they are for
 * command-line tools (ctl, restore), not for a serving process.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "l_core.h"
#include "raft/raft.h"
#include "storage/backup.h"
#include "storage/error.h"
#include "storage/io.h"

#define SRC_MT "copycat.backup.source"

struct bsrc {
  struct backup_src *src;
  uv_work_t req;
  lua_State *L; /* the main thread */
  int busy;     /* a read is on the thread pool */
  int orphan;   /* the userdata was collected while busy: free when done */
  int cb_ref, self_ref;
  const uint8_t *piece;
  size_t len;
  int rc;
  char err[STORE_ERR_MAX];
};

static struct bsrc **check_src(lua_State *L) {
  return (struct bsrc **)luaL_checkudata(L, 1, SRC_MT);
}

static void bsrc_free(struct bsrc *b) {
  backup_src_close(b->src);
  free(b);
}

static int l_source(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer chunk = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, chunk >= 0 && chunk <= BACKUP_MAX_CHUNK, 3,
                "chunk size out of range");
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  char cerr[256];
  if (codec_pack(L, 2, &sb, cerr, sizeof cerr) < 0) {
    msgpack_sbuffer_destroy(&sb);
    return luaL_error(L, "backup info: %s", cerr);
  }
  struct bsrc *b = calloc(1, sizeof *b);
  if (!b) {
    msgpack_sbuffer_destroy(&sb);
    return luaL_error(L, "out of memory");
  }
  char err[STORE_ERR_MAX] = "";
  int rc =
      backup_src_open(path, sb.data, sb.size, (uint32_t)chunk, &b->src, err);
  msgpack_sbuffer_destroy(&sb);
  if (rc) {
    free(b);
    luaL_pushfail(L);
    lua_pushstring(L, err[0] ? err : store_strerror(rc));
    return 2;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  b->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  b->cb_ref = b->self_ref = LUA_NOREF;
  struct bsrc **u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = b;
  luaL_setmetatable(L, SRC_MT);
  return 1;
}

static int l_size(lua_State *L) {
  struct bsrc *b = *check_src(L);
  luaL_argcheck(L, b != NULL, 1, "closed backup source");
  lua_pushinteger(L, (lua_Integer)backup_src_size(b->src));
  return 1;
}

static void work(uv_work_t *req) {
  struct bsrc *b = req->data;
  b->err[0] = 0;
  b->rc = backup_src_next(b->src, &b->piece, &b->len, b->err);
}

static void after(uv_work_t *req, int status) {
  struct bsrc *b = req->data;
  b->busy = 0;
  if (b->orphan) {
    bsrc_free(b);
    return;
  }
  lua_State *L = b->L;
  int cb = b->cb_ref;
  b->cb_ref = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, b->self_ref);
  b->self_ref = LUA_NOREF;
  lua_rawgeti(L, LUA_REGISTRYINDEX, cb);
  luaL_unref(L, LUA_REGISTRYINDEX, cb);
  int n = 1;
  if (status != 0) {
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(status));
    n = 2;
  } else if (b->rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, b->err[0] ? b->err : store_strerror(b->rc));
    n = 2;
  } else {
    lua_pushlstring(L, (const char *)b->piece, b->len);
  }
  if (lua_pcall(L, n, 0, 0) != LUA_OK) core_callback_error(L);
}

static int l_next(lua_State *L) {
  struct bsrc *b = *check_src(L);
  luaL_argcheck(L, b != NULL, 1, "closed backup source");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (b->busy) return luaL_error(L, "a read is already under way");
  lua_pushvalue(L, 2);
  b->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 1);
  b->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  b->req.data = b;
  int rc = uv_queue_work(uv_default_loop(), &b->req, work, after);
  if (rc != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, b->cb_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, b->self_ref);
    b->cb_ref = b->self_ref = LUA_NOREF;
    return luaL_error(L, "cannot queue the read: %s", uv_strerror(rc));
  }
  b->busy = 1;
  return 0;
}

static int l_close(lua_State *L) {
  struct bsrc **u = check_src(L);
  struct bsrc *b = *u;
  if (!b) return 0;
  *u = NULL;
  if (b->busy)
    b->orphan = 1; /* `after` frees it (and the callback never runs) */
  else
    bsrc_free(b);
  return 0;
}

/* ---- reading and restoring ---- */

static const char *type_name(int t) {
  return t == RAFT_ACTIVE    ? "active"
         : t == RAFT_PASSIVE ? "passive"
                             : "reserve";
}

static void push_info(lua_State *L, const struct backup_info *b) {
  lua_createtable(L, 0, 12);
  lua_pushinteger(L, (lua_Integer)b->index);
  lua_setfield(L, -2, "index");
  lua_pushinteger(L, (lua_Integer)b->term);
  lua_setfield(L, -2, "term");
  lua_pushinteger(L, (lua_Integer)b->file_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)b->data_len);
  lua_setfield(L, -2, "data_bytes");
  lua_pushinteger(L, (lua_Integer)b->chunk_size);
  lua_setfield(L, -2, "chunk_size");
  lua_pushinteger(L, (lua_Integer)b->chunks);
  lua_setfield(L, -2, "chunks");
  char hex[32];
  snprintf(hex, sizeof hex, "crc32c:%08x", (unsigned)b->data_crc);
  lua_pushstring(L, hex);
  lua_setfield(L, -2, "checksum");
  snprintf(hex, sizeof hex, "crc32c:%08x", (unsigned)b->snap_crc);
  lua_pushstring(L, hex);
  lua_setfield(L, -2, "snapshot_checksum");
  struct raft_conf conf;
  lua_newtable(L);
  if (raft_conf_decode(&conf, b->config, b->config_len) == 0) {
    for (unsigned i = 0; i < conf.n; i++) {
      lua_createtable(L, 0, 3);
      lua_pushstring(L, conf.m[i].name);
      lua_setfield(L, -2, "name");
      lua_pushstring(L, conf.m[i].address);
      lua_setfield(L, -2, "address");
      lua_pushstring(L, type_name(conf.m[i].type));
      lua_setfield(L, -2, "type");
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  }
  lua_setfield(L, -2, "members");
  size_t used = 0;
  char err[128];
  if (b->info_len &&
      codec_unpack_protected(L, (const char *)b->info, b->info_len, &used, err,
                             sizeof err) == 0 &&
      lua_istable(L, -1)) {
    lua_setfield(L, -2, "info");
  } else {
    if (b->info_len && used) lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, -2, "info");
  }
}

static int l_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct backup_info b;
  char err[STORE_ERR_MAX] = "";
  int rc = backup_read(path, NULL, NULL, &b, err);
  if (rc) {
    luaL_pushfail(L);
    lua_pushstring(L, err[0] ? err : store_strerror(rc));
    return 2;
  }
  push_info(L, &b);
  backup_info_free(&b);
  return 1;
}

static int member_type(lua_State *L, const char *t) {
  if (!t || strcmp(t, "active") == 0) return RAFT_ACTIVE;
  if (strcmp(t, "passive") == 0) return RAFT_PASSIVE;
  if (strcmp(t, "reserve") == 0) return RAFT_RESERVE;
  return luaL_error(L, "member type must be active, passive or reserve");
}

static int l_restore(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *dir = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  const char *cluster = luaL_checkstring(L, 4);
  struct raft_conf conf;
  memset(&conf, 0, sizeof conf);
  lua_Integer n = luaL_len(L, 3);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 3, i);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "address");
    lua_getfield(L, -3, "type");
    const char *name = luaL_checkstring(L, -3);
    const char *addr = luaL_checkstring(L, -2);
    int type = member_type(L, luaL_optstring(L, -1, "active"));
    if (raft_conf_add(&conf, name, addr, type) < 0)
      return luaL_error(L,
                        "bad member list: '%s' is a duplicate name, too long, "
                        "or there are too many members",
                        name);
    lua_pop(L, 4);
  }
  struct raft_buf *cb = raft_conf_encode(&conf);
  if (!cb) return luaL_error(L, "out of memory");
  struct backup_info b;
  char err[STORE_ERR_MAX] = "";
  int rc = backup_restore(path, dir, cb->data, cb->len, cluster, &b, err);
  raft_buf_unref(cb);
  if (rc) {
    luaL_pushfail(L);
    lua_pushstring(L, err[0] ? err : store_strerror(rc));
    return 2;
  }
  push_info(L, &b);
  backup_info_free(&b);
  return 1;
}

static int l_finish(lua_State *L) {
  const char *tmp = luaL_checkstring(L, 1);
  const char *final = luaL_checkstring(L, 2);
  struct store_io io;
  store_io_default(&io);
  int fd = open(tmp, O_RDONLY | O_CLOEXEC);
  const char *op = "open";
  int e = 0;
  if (fd < 0) {
    e = errno;
  } else {
    if (fsync(fd) != 0) {
      e = errno;
      op = "fsync";
    }
    close(fd);
  }
  if (!e && rename(tmp, final) != 0) {
    e = errno;
    op = "rename";
  }
  if (!e) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", final);
    char *slash = strrchr(dir, '/');
    if (!slash)
      snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
      dir[1] = 0;
    else
      *slash = 0;
    int rc = io_sync_dir(&io, dir);
    if (rc) {
      e = -rc;
      op = "fsync of the directory";
    }
  }
  if (e) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s failed: %s", tmp, op, strerror(e));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int backup_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"size", l_size}, {"next", l_next}, {"close", l_close}, {NULL, NULL}};
  if (luaL_newmetatable(L, SRC_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"source", l_source},
                                   {"read", l_read},
                                   {"restore", l_restore},
                                   {"finish", l_finish},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
