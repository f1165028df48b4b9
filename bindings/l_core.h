/*
 * l_core.h — the C module `copycat.core` (bindings/: the Lua wrappers over
 * host/ and machine/).
 *
 * Built into the copycat-lua binary and also as build/copycat/core.so so that
 * plain lua5.4 and busted can load it. Every handle it creates lives on the
 * libuv default loop; the binary runs that loop, a plain Lua program calls
 * core.run().
 */
#ifndef COPYCAT_CORE_H
#define COPYCAT_CORE_H

#include <lua.h>

/* Pushes the module table. */
int luaopen_copycat_core(lua_State *L);

/* Exit status requested through core.exit(), or -1 if none was requested. */
int core_exit_status(lua_State *L);

/* Reports an error raised by a callback that ran outside any task (the
 * message is on top of the stack) and asks the program to exit with 1. */
void core_callback_error(lua_State *L);

/* Adds timer() and signal() to the table on top of the stack (l_watch.c). */
int watch_open(lua_State *L);

/* Pushes the table of net functions (l_net.c). */
int net_open(lua_State *L);

/* Pushes the table of TLS functions (l_tls.c). */
int tls_open(lua_State *L);
/* The TLS context of the userdata at idx (a core.tls.context); raises
 * if it is not one. */
struct tls_ctx;
struct tls_ctx *tls_binding_check(lua_State *L, int idx);

/* Pushes the table of server functions (l_server.c). */
int server_open(lua_State *L);
/* Pushes the table of backup functions (l_backup.c). */
int backup_open(lua_State *L);

#endif
