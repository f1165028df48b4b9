--- copycat: the library scripts use. Inside copycat-lua it is also the
--- global `copycat`; in plain lua5.4, `local copycat = require "copycat"`.
local core = require("copycat.core")
local runtime = require("copycat.runtime")

---@class copycat
local copycat = {
  version = core.version,
  --- Monotonic time in milliseconds (float, sub-millisecond precision).
  now = runtime.now,
  sleep = runtime.sleep,
  spawn = runtime.spawn,
  timer = runtime.timer,
  every = runtime.every,
  on_shutdown = runtime.on_shutdown,
  --- Runs the shutdown hooks, then exits with status (default 0).
  exit = function(status) return runtime.exit(status) end,
  run = runtime.run,
}

-- Larger parts load on first use, so a small script pays only for itself.
local lazy = {
  codec = "copycat.codec",
  net = "copycat.net",
  client = "copycat.client",
  server = "copycat.server",
  state_machine = "copycat.state_machine",
  cli = "copycat.cli",
}

return setmetatable(copycat, {
  __index = function(t, key)
    local name = lazy[key]
    if not name then return nil end
    local value = require(name)
    rawset(t, key, value)
    return value
  end,
})
