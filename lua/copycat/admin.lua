--- copycat.admin: a server's admin channel, and the operator environment
--- that scripts sent over it run in.
---
--- copycat.server starts it: a Unix socket (by default `admin.sock` in the
--- data directory, mode 0600: whoever can open it is trusted), and
--- optionally a TCP address that requires a token. On a server with TLS
--- the TCP address speaks TLS, and a client certificate with the admin
--- role stands in for the token (docs/tls.md). The protocol is
--- msgpack frames (copycat.net), one request per connection:
---
---   client: {"copycat-admin", 1, token|nil}
---   server: {"ok", server_name}          or {"error", message} and close
---   client: {"run", source, chunk_name, {args...}, {timeout = ms}}
---   server: {"print", line} ... then {"result", {values...}, n}
---                                   or {"error", message}
--- or, for a backup (`ctl snapshot save`):
---   client: {"snapshot-save", {timeout = ms}}
---   server: {"begin", {index=, term=, size=}}, {"data", bytes} ...,
---           then {"done", {index=, size=}} or {"error", message}
---   the bytes, concatenated, are the backup file (docs/storage-format.md):
---   the server takes a snapshot in a child process (writes go on), then
---   streams that snapshot's file, read on the thread pool, as fast as the
---   connection takes it.
---
--- A script runs as a task of the server, in an environment built from an
--- allow-list (no io, os.execute, require, load, debug, nor anything of
--- the state machine) plus the operator API as the global `cluster`
--- (copycat.operator). An instruction budget, a memory limit and a time
--- limit stop it; the server keeps serving meanwhile and afterwards.
local core = require("copycat.core")
local runtime = require("copycat.runtime")
local net = require("copycat.net")
local operator = require("copycat.operator")

local admin = {}

local VERSION = 1
local HOOK_STEP = 1000                  -- instructions between budget checks
local DEFAULT_BUDGET = 10000000         -- instructions per script
local DEFAULT_TIME_MS = 30000           -- per script, unless the request asks
local DEFAULT_MEMORY = 64 << 20         -- bytes a script may add to the heap
local MAX_TIME_MS = 600000
local MAX_OUTPUT = 8 << 20              -- bytes of print output per script
                                        -- (each line at most MAX_FRAME)
local MAX_REP = 1 << 20                 -- longest string.rep result
local HELLO_MS = 5000                   -- to say hello, then to send a request
local MAX_FRAME = 4 << 20               -- largest request (a script) accepted
local BACKUP_QUEUE = 8 << 20            -- bytes of a backup queued on the socket

-- One line through the server's logger (docs/logging.md).
local function log(host, level, event, fields)
  host.raw:log(level, event, fields)
end

-- Compares two strings in time that depends only on their lengths.
local function same_token(a, b)
  if type(a) ~= "string" or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = diff | (a:byte(i) ~ b:byte(i)) end
  return diff == 0
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- A table whose missing fields are errors naming `what`.
local function strict(t, what)
  return setmetatable(t, {
    __index = function(_, k)
      error(("%s%s is not available in the operator environment"):format(what, tostring(k)), 2)
    end,
  })
end

-- The globals a script sees: an allow-list, nothing of the host.
local function environment(api, print_fn, args)
  local str = copy(string)
  str.rep = function(s, n, sep)
    if type(n) == "number" and type(s) == "string" and #s * n > MAX_REP then
      error(("string.rep: result longer than %d bytes"):format(MAX_REP), 2)
    end
    return string.rep(s, n, sep)
  end
  local env = {
    print = print_fn, assert = assert, error = error, ipairs = ipairs, next = next,
    pairs = pairs, pcall = pcall, rawequal = rawequal, rawget = rawget, rawlen = rawlen,
    rawset = rawset, select = select, setmetatable = setmetatable, tonumber = tonumber,
    tostring = tostring, type = type, xpcall = xpcall,
    -- The string metatable is the host's: not handed out.
    getmetatable = function(v)
      if type(v) == "string" then return nil end
      return getmetatable(v)
    end,
    string = str, table = copy(table), math = copy(math), utf8 = copy(utf8),
    os = strict({ time = os.time, clock = os.clock, date = os.date }, "os."),
    cluster = strict(api, "cluster."),
    arg = args,
  }
  env._G = env
  return strict(env, "")
end

-- Runs the script `text` (chunk name `source`, already known to compile)
-- with args in the current task under the budget and time limit; returns
-- true, results (a table with n) or false, message.
local function run_limited(text, source, args, limits)
  local co = coroutine.running()
  local run = { used = 0, stopped = nil }
  -- The heap is shared with the server, so growth is what is limited;
  -- it is checked with the budget, every HOOK_STEP instructions.
  local heap_limit = collectgarbage("count") + limits.memory / 1024
  run.deadline = runtime.now() + limits.time_ms
  function run.check()
    if run.stopped then error(run.stopped, 0) end
    if runtime.now() > run.deadline then
      run.stopped = ("time limit of %d ms exceeded"):format(limits.time_ms)
      error(run.stopped, 0)
    end
  end
  local hook
  -- Once stopped, the hook fires on every instruction and raises inside
  -- the script's own functions, so a pcall in the script cannot carry on;
  -- library code it called finishes normally and returns into it.
  local function stop(msg)
    run.stopped = msg
    debug.sethook(co, hook, "", 1)
  end
  hook = function()
    if coroutine.running() ~= co then -- inherited by a task the script started
      debug.sethook()
      return
    end
    if not run.stopped then
      run.used = run.used + HOOK_STEP
      if run.used >= limits.budget then
        stop(("instruction budget of %d exceeded"):format(limits.budget))
      elseif collectgarbage("count") > heap_limit then
        stop(("memory limit of %d bytes exceeded"):format(limits.memory))
      elseif runtime.now() > run.deadline then
        stop(("time limit of %d ms exceeded"):format(limits.time_ms))
      else
        return
      end
    end
    local info = debug.getinfo(2, "S")
    if info and info.source == source then error(run.stopped, 0) end
  end
  run.print = limits.print
  local api = operator.new(limits.host, run)
  local env = limits.make_env(api)
  local f = assert(load(text, source, "t", env))
  debug.sethook(co, hook, "", HOOK_STEP)
  local res = table.pack(pcall(f, table.unpack(args, 1, args.n or #args)))
  debug.sethook(co)
  if not res[1] then
    local err = res[2]
    -- No __tostring here: it is the script's code, and the hook is off.
    if type(err) ~= "string" and math.type(err) == nil then
      err = ("(error object is a %s value)"):format(type(err))
    end
    err = tostring(err)
    -- What was going on when the limit struck says more than the limit.
    if run.stopped and err ~= run.stopped then err = run.stopped .. ": " .. err end
    return false, err
  end
  return true, table.move(res, 2, res.n, 1, { n = res.n - 1 })
end

-- The name a backup records for the state machine: its file, or the
-- table's name field.
local function machine_name(sm)
  if type(sm) == "string" then return sm end
  if type(sm) == "table" and type(sm.name) == "string" then return sm.name end
  return "(unnamed)"
end

-- Streams a backup of a fresh snapshot (the protocol at the top).
local function save_snapshot(state, conn, req, peer)
  local host, raw = state.host, state.host.raw
  local ropts = type(req[2]) == "table" and req[2] or {}
  local time_ms = math.max(1, math.min(math.tointeger(ropts.timeout) or MAX_TIME_MS, MAX_TIME_MS))
  local t0 = runtime.now()
  local deadline = t0 + time_ms
  log(host, "info", "backup_started", { from = peer })
  local function refuse(msg)
    log(host, "warn", "backup_failed", { from = peer, msg = msg })
    conn:send({ "error", msg })
    conn:close("done", true)
  end
  -- A fresh snapshot, taken in a child process while the server serves.
  local run = { deadline = deadline, check = function()
    if runtime.now() > deadline then error("time limit reached while the snapshot was written", 0) end
  end }
  local ok, err = pcall(operator.new(host, run).snapshot)
  if not ok then return refuse(tostring(err):gsub("^[^:]*:%d+: ", "")) end
  local info = {
    cluster = host.opts.cluster or "copycat", member = host.opts.name,
    state_machine = machine_name(host.opts.state_machine), created = os.time(),
    version = core.version,
  }
  -- A newer snapshot may replace the file between the two calls: then
  -- the newer one is as good.
  local src, path, index
  for _ = 1, 3 do
    path, index = raw:snapshot_file()
    if not path then return refuse(tostring(index)) end
    src, err = core.backup.source(path, info)
    if src then break end
  end
  if not src then return refuse(tostring(err)) end
  local size = src:size()
  conn:send({ "begin", { index = index, term = raw:status().term, size = size } })
  local me = runtime.current("backup")
  local sent = 0
  while true do
    src:next(function(piece, rerr) runtime.wake(me, piece, rerr) end)
    local piece, rerr = runtime.suspend("backup")
    if not piece then
      src:close()
      return refuse(tostring(rerr))
    end
    if piece == "" then break end
    conn:send({ "data", piece })
    sent = sent + #piece
    while conn:queued() > BACKUP_QUEUE and not conn:closed() and runtime.now() < deadline do
      runtime.sleep(5)
    end
    if conn:closed() then
      src:close()
      log(host, "warn", "backup_failed", { from = peer, msg = "the connection closed: " .. tostring(conn:closed()) })
      return
    end
    if runtime.now() >= deadline then
      src:close()
      return refuse(("time limit of %d ms exceeded after %d of %d bytes"):format(time_ms, sent, size))
    end
  end
  src:close()
  conn:send({ "done", { index = index, size = sent } })
  conn:close("done", true)
  log(host, "info", "backup_sent", { from = peer, index = index, bytes = sent,
    duration_ms = math.floor(runtime.now() - t0) })
end

-- Serves one admin connection: hello (and token), then one request.
local function serve(state, conn, needs_token)
  local name = state.host.opts.name
  local peer = conn:peer() or "?"
  local function refuse(msg)
    log(state.host, "warn", "admin_refused", { from = peer, msg = msg })
    conn:send({ "error", msg })
    conn:close(msg, true)
  end
  local hello, err = conn:recv(HELLO_MS)
  if hello == nil then
    log(state.host, "warn", "admin_refused", { from = peer, msg = tostring(err) })
    conn:close(tostring(err))
    return
  end
  if type(hello) ~= "table" or hello[1] ~= "copycat-admin" then
    return refuse("not an admin request: this is a copycat-lua admin channel (use copycat-lua ctl)")
  end
  if hello[2] ~= VERSION then
    return refuse(("admin protocol version %s is not supported (this server speaks %d)")
      :format(tostring(hello[2]), VERSION))
  end
  local _, role = conn:tls()
  if needs_token and role == "admin" then
    log(state.host, "info", "admin_certificate", { from = peer, name = (conn:tls()), role = role })
  elseif needs_token then
    if hello[3] == nil or hello[3] == "" or not state.token then
      if not state.token then
        return refuse("this admin address needs a client certificate with the admin role " ..
          "(ctl --tls-cert admin.crt --tls-key admin.key)")
      end
      return refuse("a token is required on this admin address (ctl --token-file FILE, or COPYCAT_ADMIN_TOKEN)")
    elseif not same_token(hello[3], state.token) then
      return refuse("wrong admin token")
    end
  end
  conn:send({ "ok", name })
  local req
  req, err = conn:recv(HELLO_MS)
  if req == nil then
    conn:close(tostring(err))
    return
  end
  if type(req) == "table" and req[1] == "snapshot-save" then
    return save_snapshot(state, conn, req, peer)
  end
  if type(req) ~= "table" or req[1] ~= "run" or type(req[2]) ~= "string" then
    return refuse("unknown admin request (expected {\"run\", source, name, args, options})")
  end
  local source, chunk = req[2], tostring(req[3] or "script")
  local args = type(req[4]) == "table" and req[4] or {}
  local ropts = type(req[5]) == "table" and req[5] or {}
  local time_ms = math.tointeger(ropts.timeout) or state.time_ms
  time_ms = math.max(1, math.min(time_ms, MAX_TIME_MS))
  log(state.host, "info", "admin_run", { from = peer, script = chunk })

  local chunkname = "=" .. chunk
  local fn, serr = load(source, chunkname, "t", {})
  if not fn then
    conn:send({ "error", "syntax error: " .. tostring(serr) })
    conn:close("done", true)
    return
  end
  local sent = 0
  local function print_fn(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    local line = table.concat(parts, "\t", 1, parts.n)
    sent = sent + #line + 1
    if sent > MAX_OUTPUT then error(("output limit of %d bytes exceeded"):format(MAX_OUTPUT), 2) end
    local sent_ok, send_err = conn:send({ "print", line })
    if not sent_ok and not conn:closed() then error("print: " .. tostring(send_err), 2) end
  end
  local limits = {
    host = state.host, budget = state.budget, time_ms = time_ms, memory = state.memory,
    make_env = function(api) return environment(api, print_fn, args) end,
    print = print_fn, -- the operator API's progress lines
  }
  local ok, res = run_limited(source, chunkname, args, limits)
  if ok then
    local sok, sent_ok, send_err = pcall(conn.send, conn, { "result", res, res.n })
    if not (sok and sent_ok) and not conn:closed() then
      conn:send({ "error", "the script's result cannot be sent: " .. tostring(sok and send_err or sent_ok) })
    end
  else
    log(state.host, "warn", "admin_script_failed", { script = chunk, msg = tostring(res) })
    conn:send({ "error", tostring(res) })
  end
  conn:close("done", true)
end

-- A connection handler: serve, and a bug in serving costs that one
-- connection, never the server.
local function handler(state, needs_token)
  return function(conn)
    local ok, err = pcall(serve, state, conn, needs_token)
    if not ok then
      log(state.host, "error", "admin_error", { msg = tostring(err) })
      conn:close("internal error")
    end
  end
end

local LISTEN_OPTS = { max_frame = MAX_FRAME }

-- Listens on a Unix socket path; a socket file left by a server that died
-- is replaced, one that answers is not.
local function listen_unix(path, fn)
  local address = "unix:" .. path
  local l, err = net.listen(address, fn, LISTEN_OPTS)
  if l then return l end
  local c = net.connect(address)
  if c then
    c:close()
    return nil, err
  end
  os.remove(path)
  return net.listen(address, fn, LISTEN_OPTS)
end

--- Starts the admin channel of a server. host = {raw=, opts=, status=}
--- (see copycat.operator); opts:
---   socket   path of the Unix socket, or false for none
---   address  TCP "host:port" (needs token), or nil
---   token    the token for the TCP address (optional with tls)
---   tls      a TLS context for the TCP address (copycat.tls.context)
---   budget   instructions per script (default 10 million)
---   memory   bytes a script may grow the heap by (default 64 MiB)
---   time_ms  time limit per script (default 30000; a request may ask
---            for up to 600000)
--- Returns an object with :close() and .socket / .address, or nil, err.
---@return table|nil, string|nil
function admin.start(host, opts)
  local state = {
    host = host, token = opts.token,
    budget = opts.budget or DEFAULT_BUDGET, time_ms = opts.time_ms or DEFAULT_TIME_MS,
    memory = opts.memory or DEFAULT_MEMORY,
    listeners = {},
  }
  if opts.address and not opts.tls and (type(opts.token) ~= "string" or opts.token == "") then
    return nil, "the TCP admin address " .. opts.address ..
      " needs a token: give admin_token_file (or set COPYCAT_ADMIN_TOKEN)"
  end
  local self = { socket = opts.socket or nil }
  function self.close()
    for _, l in ipairs(state.listeners) do l:close() end
    state.listeners = {}
  end
  if opts.socket then
    local l, err = listen_unix(opts.socket, handler(state, false))
    if not l then return nil, "admin socket: " .. tostring(err) end
    state.listeners[#state.listeners + 1] = l
  end
  if opts.address then
    local l, err = net.listen(opts.address, handler(state, true),
      { max_frame = MAX_FRAME, tls = opts.tls })
    if not l then
      self.close()
      return nil, "admin address: " .. tostring(err)
    end
    state.listeners[#state.listeners + 1] = l
    self.address = l:address()
    if opts.tls then
      --- Certificates reloaded: new TLS connections use ctx.
      function self.set_tls(ctx) l:set_tls(ctx) end
    end
  end
  return self
end

return admin
