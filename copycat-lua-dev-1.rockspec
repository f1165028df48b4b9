-- The copycat Lua library for plain Lua 5.4, built from this tree:
--   luarocks --lua-version 5.4 make [--tree DIR]
-- installs the copycat modules and the C module copycat.core (the same
-- files `make install` puts under share/lua/5.4 and lib/lua/5.4);
--   luarocks --lua-version 5.4 test
-- runs the busted specs. The program copycat-lua itself: `make install`.
rockspec_format = "3.0"
package = "copycat-lua"
version = "dev-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "Replicated state machines written in Lua: sessions, exactly-once commands, Raft",
  detailed = [[
A small C host owns the TCP transport, the durable Raft log and the Raft
protocol; Lua scripts own the state machine, the clients and the way servers
bootstrap, join and leave a cluster. `require "copycat"`, spawn tasks, then
call copycat.run() to drive the event loop.]],
  labels = { "raft", "consensus", "replication", "libuv" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  MSGPACK = { header = "msgpack.h" },
}
build = {
  type = "make",
  -- the C module, and what the specs run (the program, the simulator)
  build_target = "rock",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
  },
  install_target = "install-lua",
  install_variables = {
    LUA_LDIR = "$(LUADIR)",
    LUA_CDIR = "$(LIBDIR)",
  },
}
test = {
  type = "busted",
  flags = { "--cpath=build/?.so" },
}
