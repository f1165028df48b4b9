/*
 * main.c — the copycat-lua command line.
 *
 * Behaves like the `lua` interpreter: options, then a script and its
 * arguments (in the global `arg` and as the chunk's `...`). Unlike `lua`,
 * the chunks run inside a task on a libuv loop (lua/copycat/runtime.lua),
 * and the program ends when the main chunk has returned and nothing is
 * pending, or when an error escapes a task, or on SIGINT/SIGTERM after the
 * shutdown hooks have run.
 *
 * `copycat-lua ctl ARGS...` runs the built-in module copycat.ctl instead of
 * a script file (an operator's command line; lua/copycat/ctl.lua), and
 * `copycat-lua restore ARGS...` the module copycat.restore (a data
 * directory built from a backup; lua/copycat/restore.lua).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "l_core.h"
#include "embed.h"
#include "version.h"

static const char usage_text[] =
    "usage: copycat-lua [options] [script [args]]\n"
    "       copycat-lua ctl [--socket PATH | --server ADDR] COMMAND ...\n"
    "       copycat-lua restore FILE --data DIR --name NAME --bootstrap ...\n"
    "Runs a Lua 5.4 script on the copycat event loop; 'ctl' operates a\n"
    "running server (copycat-lua ctl help); 'restore' prepares a member of\n"
    "a new cluster from a backup (copycat-lua restore --help).\n"
    "Options:\n"
    "  -e code        run the string 'code' (before the script)\n"
    "  -l name        require library 'name' into global 'name'\n"
    "  -v, --version  print the version and exit (unless a script follows)\n"
    "  -h, --help     print this help and exit\n"
    "  --             stop handling options\n"
    "  -              stop handling options and run the script on stdin\n"
    "With no script and no -e, the script is read from stdin when stdin is\n"
    "not a terminal. Exit status: the script's os.exit code, 1 if an error\n"
    "escaped, 0 otherwise (also after SIGINT/SIGTERM and clean shutdown).\n";

/* Runs the -e/-l chunks in order, then the script with the script's args. */
static const char driver_src[] =
    "local chunks, script = ...\n"
    "return function(...)\n"
    "  for i = 1, #chunks do chunks[i]() end\n"
    "  if script then return script(...) end\n"
    "end\n";

struct options {
  int script; /* argv index of the script, or 0 */
  int stdin_script;
  int version;
  int help;
  int actions; /* number of -e/-l options */
};

static void print_version(void) {
  printf("copycat-lua %s (%s, libuv %s)\n", COPYCAT_VERSION, LUA_RELEASE,
         uv_version_string());
}

/* Returns 0, or prints what is wrong and returns -1. */
static int parse(int argc, char **argv, struct options *o) {
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') {
      o->script = i;
      return 0;
    }
    if (strcmp(a, "-") == 0) {
      o->script = i;
      o->stdin_script = 1;
      return 0;
    }
    if (strcmp(a, "--") == 0) {
      if (i + 1 < argc) o->script = i + 1;
      return 0;
    }
    if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
      o->version = 1;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      o->help = 1;
    } else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "copycat-lua: '%s' needs an argument\n%s", a,
                usage_text);
        return -1;
      }
      i++;
      o->actions++;
    } else if ((a[1] == 'e' || a[1] == 'l') && a[2] != '\0') {
      o->actions++; /* -ecode, -lname */
    } else {
      fprintf(stderr, "copycat-lua: unrecognized option '%s'\n%s", a,
              usage_text);
      return -1;
    }
  }
  return 0;
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "copycat-lua: %s\n",
            msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

static void open_modules(lua_State *L) {
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_copycat_core);
  lua_setfield(L, -2, "copycat.core");
  lua_pop(L, 1);
}

/* package.searchers entry that loads the modules compiled into the binary
 * (before the file system, so a stray copycat/ folder cannot shadow them). */
static int search_embedded(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  for (const struct embed_module *m = embed_modules; m->name; m++) {
    if (strcmp(m->name, name) != 0) continue;
    if (luaL_loadbuffer(L, m->src, m->len, m->chunkname) != LUA_OK)
      return lua_error(L);
    lua_pushstring(L, m->chunkname + 1);
    return 2;
  }
  lua_pushfstring(L, "no module '%s' built into copycat-lua", name);
  return 1;
}

static void install_searcher(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = n; i >= 2; i--) { /* insert at 2, after preload */
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcfunction(L, search_embedded);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}

static void create_arg_table(lua_State *L, int argc, char **argv, int script) {
  int base = script ? script : 0;
  lua_createtable(L, argc - base, base + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - base);
  }
  lua_setglobal(L, "arg");
}

/* Pushes a table of the -e/-l chunks, in order. Returns a Lua status. */
static int load_actions(lua_State *L, int argc, char **argv, int last) {
  lua_newtable(L);
  int n = 0;
  for (int i = 1; i < last && i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) break;
    if (a[0] != '-' || (a[1] != 'e' && a[1] != 'l')) continue;
    const char *val = a[2] ? a + 2 : argv[++i];
    int st;
    if (a[1] == 'e') {
      st = luaL_loadbuffer(L, val, strlen(val), "=(command line)");
    } else {
      st = luaL_loadstring(
          L,
          "local name = ...; return function() _G[name] = require(name) end");
      if (st == LUA_OK) {
        lua_pushstring(L, val);
        st = lua_pcall(L, 1, 1, 0);
      }
    }
    if (st != LUA_OK) return st;
    lua_rawseti(L, -2, ++n);
  }
  return LUA_OK;
}

static int setup(lua_State *L, int argc, char **argv, struct options *o) {
  open_modules(L);
  install_searcher(L);
  create_arg_table(L, argc, argv, o->script);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "copycat");
  if (report(L, lua_pcall(L, 1, 1, 0)) != LUA_OK) return -1;
  lua_setglobal(L, "copycat");

  lua_getglobal(L, "require");
  lua_pushliteral(L, "copycat.runtime");
  if (report(L, lua_pcall(L, 1, 1, 0)) != LUA_OK) return -1;
  lua_getfield(L, -1, "main");

  if (report(L, luaL_loadbuffer(L, driver_src, sizeof driver_src - 1,
                                "=copycat-lua")) != LUA_OK)
    return -1;
  int last = o->script ? o->script : argc;
  if (report(L, load_actions(L, argc, argv, last)) != LUA_OK) return -1;
  if (o->script && !o->stdin_script && strcmp(argv[o->script], "ctl") == 0) {
    static const char ctl_src[] = "return require('copycat.ctl').main(...)";
    if (report(L, luaL_loadbuffer(L, ctl_src, sizeof ctl_src - 1, "=ctl")) !=
        LUA_OK)
      return -1;
  } else if (o->script && !o->stdin_script &&
             strcmp(argv[o->script], "restore") == 0) {
    static const char src[] = "return require('copycat.restore').main(...)";
    if (report(L, luaL_loadbuffer(L, src, sizeof src - 1, "=restore")) !=
        LUA_OK)
      return -1;
  } else if (o->script || o->stdin_script) {
    const char *file = o->stdin_script ? NULL : argv[o->script];
    if (report(L, luaL_loadfile(L, file)) != LUA_OK) return -1;
  } else if (!o->actions) {
    if (report(L, luaL_loadfile(L, NULL)) != LUA_OK) return -1; /* stdin */
  } else {
    lua_pushnil(L);
  }
  if (report(L, lua_pcall(L, 2, 1, 0)) != LUA_OK) return -1; /* driver */

  int nargs = 0;
  if (o->script) {
    for (int i = o->script + 1; i < argc; i++, nargs++) {
      luaL_checkstack(L, 1, "too many arguments to script");
      lua_pushstring(L, argv[i]);
    }
  }
  /* runtime.main(driver, args...) starts the main task. */
  if (report(L, lua_pcall(L, 1 + nargs, 0, 0)) != LUA_OK) return -1;
  lua_pop(L, 1); /* runtime */
  return 0;
}

int main(int argc, char **argv) {
  struct options o;
  setvbuf(stdout, NULL, _IOLBF, 0); /* logs reach pipes line by line */
  if (parse(argc, argv, &o) < 0) return 1;
  if (o.help) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (o.version) {
    print_version();
    if (!o.script && !o.actions) return 0;
  }
  if (!o.script && !o.actions && isatty(STDIN_FILENO)) {
    fprintf(stderr, "copycat-lua: no script given\n%s", usage_text);
    return 1;
  }

  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "copycat-lua: cannot create a Lua state: out of memory\n");
    return 1;
  }
  /* Generational collection: most of what the loop allocates (decoded
   * messages, requests, replies, coroutine wake-ups) dies young, and a
   * minor collection walks only the young objects instead of the whole
   * heap, so pauses stay short as the state grows. */
  lua_gc(L, LUA_GCGEN, 0, 0);
  int status = 1;
  if (setup(L, argc, argv, &o) == 0) {
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    status = core_exit_status(L);
    if (status < 0) status = 0;
  }
  fflush(stdout);
  lua_close(L); /* closes every handle still open */
  uv_run(uv_default_loop(), UV_RUN_NOWAIT);
  uv_loop_close(uv_default_loop());
  return status;
}
