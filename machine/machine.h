/*
 * machine.h — the state-machine runtime (machine/): what the layers above
 * it use. It depends on Lua and msgpack-c only, never on host/ or
 * bindings/.
 *
 *   sandbox_open   the module copycat.core.sandbox: state machines in
 *                  deterministic Lua states of their own (sandbox.c;
 *                  sandbox.h is the sandbox files' shared inside)
 *   codec.h        msgpack encoding of Lua values (copycat.codec)
 */
#ifndef COPYCAT_MACHINE_H
#define COPYCAT_MACHINE_H

#include <lua.h>

/* Pushes the sandbox module table: state machines in deterministic Lua
 * states (sandbox.c). */
int sandbox_open(lua_State *L);

#endif
