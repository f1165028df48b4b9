--- copycat.server: a server of a copycat-lua cluster.
---
--- local server = copycat.server{
---   name = "n1", address = "127.0.0.1:5001", data_dir = "data/n1",
---   state_machine = "examples/kv/state_machine.lua",
--- }
---
--- Options: name, address, client_address, data_dir (or memory = true),
--- state_machine (a path, or a machine from copycat.state_machine.load),
--- cluster (id; peers of another id are refused), type ("active",
--- "passive", "reserve"; for join), election_timeout and
--- heartbeat_interval (ms), snapshot_threshold (entries, default 100000)
--- and snapshot_bytes (payload bytes, default 64 MiB): a snapshot is taken
--- when either is reached. hash_interval (entries, default 100000; 0: off):
--- every replica hashes its state at each multiple of it and the leader
--- compares the hashes; a replica whose hash is not the majority's stops
--- applying and serving (docs/operators.md). time_interval (ms, default 200): how often an
--- idle leader commits the passing of time while client sessions are open
--- or state machine timers pending (docs/sessions.md). max_request_bytes
--- (default 2 MiB, at most 64 MiB): a larger client request is refused with
--- an error (decoding a request may take many times its size in memory).
--- sm_memory (bytes, default 512 MiB; 0: no limit): the most the state
--- machine's heap may hold; a command that would grow it further fails
--- with "memory limit exceeded (N bytes)" (docs/state-machine.md). Give
--- every member the same value.
--- Before its hello (docs/security.md): hello_timeout (ms, default 5000):
--- a connection that has not completed its hello (and TLS handshake) by
--- then is closed; max_unauthenticated (default 256): most such
--- connections per listener; their frames are at most 64 KiB.
--- Admin channel (docs/operators.md): admin_socket (a Unix socket path, or
--- false for none; default "admin.sock" in data_dir, none for memory
--- servers), admin_address (TCP "host:port", needs a token: admin_token,
--- or admin_token_file, or the environment variable COPYCAT_ADMIN_TOKEN),
--- admin_budget (instructions per script), admin_memory (bytes a script
--- may grow the heap by) and admin_timeout (ms per script).
--- Observability: metrics_address ("127.0.0.1:9100": serve the Prometheus
--- page at http://ADDR/metrics, docs/metrics.md; off by default), log_level
--- ("error", "warn", "info" (default), "debug") and log_format ("kv"
--- (default) or "json"), docs/logging.md.
--- HTTP/JSON API (docs/http.md): http_address ("127.0.0.1:8001": commands,
--- queries, sessions, events, status, health, readiness and /metrics over
--- HTTP, with TLS when tls is given; off by default).
--- TLS (docs/tls.md): tls = { ca = FILE, cert = FILE, key = FILE,
--- require_client_cert = false }: the cluster's CA and this member's
--- certificate (named after `name`); peers, clients and the TCP admin
--- address then speak TLS only. Without tls a server refuses to listen on
--- an address other machines can reach unless insecure = true.
--- server:reload_certs() (also on SIGHUP and `ctl reload-certs`) reads the
--- files again: new connections use them, existing ones go on.
--- server:bootstrap{ "127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5003" }
--- -- or: server:join{ "127.0.0.1:5001" }
---
--- Bootstrap, join and leave are written here, in Lua, on the small calls
--- of copycat.core.server, so that an operator can read and change them.
local core = require("copycat.core")
local runtime = require("copycat.runtime")
local client = require("copycat.client")
local sessions = require("copycat.sessions")
local admin = require("copycat.admin")
local tls = require("copycat.tls")

---@class copycat.Server
---@field private raw userdata
---@field private opts table
---@field private machine table
---@field private handlers table<string, function[]>
local Server = {}
Server.__index = Server
Server.__name = "copycat.Server"

local TYPES = { active = true, passive = true, reserve = true }
local LOG_LEVELS = { error = true, warn = true, info = true, debug = true }

local function check_opts(o)
  if type(o) ~= "table" then error("copycat.server expects a table of options", 3) end
  if type(o.name) ~= "string" or o.name == "" then
    error("copycat.server: 'name' is required (the member's unique name, e.g. \"n1\")", 3)
  end
  if type(o.address) ~= "string" or not o.address:match("^.+:%d+$") then
    error("copycat.server: 'address' is required, as \"host:port\"", 3)
  end
  if o.state_machine == nil then
    error("copycat.server: no state machine configured: give state_machine = \"path/to/machine.lua\"", 3)
  end
  if not o.data_dir and not o.memory then
    error("copycat.server: give data_dir = \"path\" (or memory = true to keep nothing on disk)", 3)
  end
  if o.type ~= nil and not TYPES[o.type] then
    error("copycat.server: type must be \"active\", \"passive\" or \"reserve\"", 3)
  end
  if o.max_request_bytes ~= nil and (math.type(o.max_request_bytes) ~= "integer" or
      o.max_request_bytes < 1024 or o.max_request_bytes > 64 * 1024 * 1024) then
    error("copycat.server: max_request_bytes must be an integer from 1024 to 67108864", 3)
  end
  if o.sm_memory ~= nil and (math.type(o.sm_memory) ~= "integer" or o.sm_memory < 0 or
      (o.sm_memory > 0 and o.sm_memory < 1024 * 1024)) then
    error("copycat.server: sm_memory must be an integer number of bytes, at least 1048576 (0: no limit)", 3)
  end
  if o.hello_timeout ~= nil and (math.type(o.hello_timeout) ~= "integer" or
      o.hello_timeout < 100 or o.hello_timeout > 600000) then
    error("copycat.server: hello_timeout must be an integer from 100 to 600000 (ms)", 3)
  end
  if o.max_unauthenticated ~= nil and (math.type(o.max_unauthenticated) ~= "integer" or
      o.max_unauthenticated < 1 or o.max_unauthenticated > 1000000) then
    error("copycat.server: max_unauthenticated must be an integer from 1 to 1000000", 3)
  end
  if o.hash_interval ~= nil and (math.type(o.hash_interval) ~= "integer" or o.hash_interval < 0) then
    error("copycat.server: hash_interval must be an integer >= 0 (entries between state hashes; 0: none)", 3)
  end
  if o.log_level ~= nil and not LOG_LEVELS[o.log_level] then
    error("copycat.server: log_level must be \"error\", \"warn\", \"info\" or \"debug\"", 3)
  end
  if o.log_format ~= nil and o.log_format ~= "kv" and o.log_format ~= "json" then
    error("copycat.server: log_format must be \"kv\" or \"json\"", 3)
  end
  if o.metrics_address ~= nil and (type(o.metrics_address) ~= "string" or
      not o.metrics_address:match("^.+:%d+$")) then
    error("copycat.server: metrics_address must be \"host:port\", e.g. \"127.0.0.1:9100\"", 3)
  end
  if o.http_address ~= nil and (type(o.http_address) ~= "string" or
      not o.http_address:match("^.+:%d+$")) then
    error("copycat.server: http_address must be \"host:port\", e.g. \"127.0.0.1:8001\"", 3)
  end
  if o.tls ~= nil then
    local bad = tls.check(o.tls)
    if bad then error("copycat.server: " .. bad, 3) end
    if not o.tls.cert then
      error("copycat.server: tls.cert and tls.key are required: the member certificate of " .. o.name, 3)
    end
  elseif not o.insecure then
    -- Plain TCP lets anyone who reaches the port act as a member or a client.
    for _, k in ipairs({ "address", "client_address", "admin_address", "metrics_address", "http_address" }) do
      local a = o[k]
      if type(a) == "string" and not tls.is_loopback(a) then
        error(("copycat.server: refusing to listen on %s (%s) without TLS: anyone who can reach it " ..
          "could act as a member or a client. Give tls = { ca =, cert =, key = } (--tls-ca, " ..
          "--tls-cert, --tls-key; make them with `copycat-lua ctl certs DIR NAME...`, docs/tls.md), " ..
          "or insecure = true (--insecure) on a network you trust"):format(a, k), 3)
      end
    end
  end
end

local function load_machine(sm, memory)
  if type(sm) == "table" and sm.command then return sm end
  -- No per-server name here: error messages must be identical on every
  -- replica, so the machine is named after its file only.
  local loader = require("copycat.state_machine")
  local m, err = loader.load(sm, { memory = memory or loader.DEFAULT_SERVER_MEMORY })
  if not m then error("copycat.server: cannot load the state machine: " .. tostring(err), 4) end
  return m
end

local function emit(self, event, ...)
  for _, fn in ipairs(self.handlers[event] or {}) do
    runtime.spawn(fn, ...)
  end
end

-- The admin token: given, in a file, or in COPYCAT_ADMIN_TOKEN.
local function admin_token(o)
  if o.admin_token then return o.admin_token end
  if o.admin_token_file then
    local f, err = io.open(o.admin_token_file, "rb")
    if not f then return nil, "cannot read the admin token file: " .. tostring(err) end
    local token = f:read("a"):gsub("%s+$", "")
    f:close()
    if token == "" then return nil, "the admin token file " .. o.admin_token_file .. " is empty" end
    return token
  end
  return os.getenv("COPYCAT_ADMIN_TOKEN")
end

local function start_admin(self)
  local o = self.opts
  local socket = o.admin_socket
  if socket == nil and o.data_dir then socket = o.data_dir .. "/admin.sock" end
  local token, terr
  if o.admin_address then
    token, terr = admin_token(o)
    if terr then return nil, terr end
  end
  local host = { raw = self.raw, opts = o, status = function() return self:status() end,
    reload_certs = function() return self:reload_certs() end,
    tls = function() return self.tls_ctx end } -- the member's TLS context, if any
  return admin.start(host, {
    socket = socket or nil, address = o.admin_address, token = token, tls = self.tls_ctx,
    budget = o.admin_budget, time_ms = o.admin_timeout, memory = o.admin_memory,
  })
end

-- A data directory restored from a backup (copycat-lua restore) names
-- its cluster in the file "cluster-id": the server belongs to that
-- cluster, and a different --cluster is refused. Returns the options,
-- with cluster filled in when the file says it.
local function cluster_of(opts)
  if not opts.data_dir or opts.memory then return opts end
  local f = io.open(opts.data_dir .. "/cluster-id", "rb")
  if not f then return opts end
  local id = (f:read("a") or ""):gsub("%s+$", "")
  f:close()
  if id == "" then return opts end
  if opts.cluster and opts.cluster ~= id then
    error(("copycat.server: the data directory %s belongs to cluster %s (restored from a backup), not %s: "
      .. "start it with --cluster %s or without --cluster"):format(opts.data_dir, id, opts.cluster, id), 3)
  end
  local out = {}
  for k, v in pairs(opts) do out[k] = v end
  out.cluster = id
  return out
end

--- Starts a server: opens its data directory, restores its state and
--- listens. It takes part in a cluster after bootstrap or join (or at once,
--- if its data directory already holds a configuration).
---@param opts table
---@return copycat.Server
local function new(opts)
  check_opts(opts)
  opts = cluster_of(opts)
  local self = setmetatable({ opts = opts, handlers = {} }, Server)
  local machine = load_machine(opts.state_machine, opts.sm_memory)
  self.machine = machine
  -- Events' data stay bytes from the machine to the connection (pack_events).
  local layer = sessions.new(machine, { encoded_events = true })
  self.sessions = layer
  -- The copycat_sessions gauge follows the layer's count (docs/metrics.md).
  local reported = 0
  local function report_sessions()
    local n = layer:size()
    if n ~= reported and self.raw then
      reported = n
      self.raw:set_sessions(n)
    end
  end
  if opts.tls then
    local ctx, terr = tls.context(opts.tls)
    if not ctx then error("copycat.server: " .. terr, 2) end
    self.tls_ctx = ctx
  end
  -- The admin token also grants admin rights on the client protocol.
  local token = admin_token(opts)
  local raw, err = core.server.start({
    name = opts.name, address = opts.address, client_address = opts.client_address,
    data_dir = opts.data_dir, memory = opts.memory, cluster = opts.cluster,
    election_ms = opts.election_timeout, heartbeat_ms = opts.heartbeat_interval,
    snapshot_entries = opts.snapshot_threshold, snapshot_bytes = opts.snapshot_bytes,
    time_ms = opts.time_interval, max_request = opts.max_request_bytes,
    hello_timeout_ms = opts.hello_timeout, max_unauthenticated = opts.max_unauthenticated,
    admin_token = token,
    hash_interval = opts.hash_interval == 0 and -1 or opts.hash_interval,
    metrics_address = opts.metrics_address, http_address = opts.http_address,
    log_level = opts.log_level, log_format = opts.log_format,
    tls = self.tls_ctx,
  }, {
    apply = function(index, term, entry, args)
      local reply, events = layer:apply(index, term, entry, args)
      report_sessions()
      return reply, events
    end,
    query = function(op, args, session, index, encoded) return layer:query(op, args, session, index, encoded) end,
    -- The machine's piece lent, not copied (bindings/l_server.c).
    snapshot = function() return layer:snapshot_pieces(true) end,
    state = function() return layer:state(true) end,
    snapshot_state = function() return layer:snapshot_and_state(true) end,
    restore = function(bytes)
      local ok, rerr = layer:restore(bytes)
      report_sessions()
      return ok, rerr
    end,
    wants_time = function() return layer:wants_time() end,
    notify = function(event, detail)
      -- Called inside the server's step: hand over to tasks later.
      core.timer(0, 0, function() emit(self, event, detail) end)
    end,
  })
  if not raw then error("copycat.server: " .. err, 2) end
  self.raw = raw
  report_sessions()
  local aerr
  self.admin, aerr = start_admin(self)
  if not self.admin then
    raw:stop()
    error("copycat.server: " .. aerr, 2)
  end
  runtime.on_shutdown(function() self:stop() end)
  if self.tls_ctx then
    self.sighup = core.signal("SIGHUP", function()
      runtime.spawn(function()
        local ok, rerr = self:reload_certs()
        if not ok then self:log("error", "tls_reload_failed", { msg = rerr }) end
      end)
    end)
  end
  return self
end

--- Reads the certificate, key and CA files again (the same paths): new
--- connections use them, established ones go on with the old ones. On any
--- problem the old certificates stay in use.
---@return boolean|nil, string|nil
function Server:reload_certs()
  if not self.tls_ctx then return nil, "this server runs without TLS: nothing to reload" end
  local ctx, err = tls.context(self.opts.tls)
  if not ctx then return nil, "reload: " .. err end
  local ok, serr = self.raw:set_tls(ctx)
  if not ok then return nil, "reload: " .. serr end
  if self.admin.set_tls then self.admin.set_tls(ctx) end
  self.tls_ctx = ctx
  return true
end

--- Registers fn(detail) for an event: "leader", "role", "snapshot", ...
function Server:on(event, fn)
  local list = self.handlers[event] or {}
  list[#list + 1] = fn
  self.handlers[event] = list
end

--- The server's view of the cluster: role, term, leader, indexes, members,
--- and the number of open client sessions.
function Server:status()
  local st = self.raw:status()
  st.sessions = self.sessions:size()
  return st
end

--- Writes one log line through this server's logger (its level and
--- format): level "error", "warn", "info" or "debug", an event name and a
--- table of fields (strings, numbers, booleans). See docs/logging.md.
---@param level string
---@param event string
---@param fields? table<string, string|number|boolean>
function Server:log(level, event, fields)
  self.raw:log(level, event, fields)
end

--- The metrics page (Prometheus text format), as served on
--- metrics_address; available even when no address is configured.
---@return string
function Server:metrics()
  return self.raw:metrics()
end

--- The address the metrics page is served on ("ip:port"), or nil.
---@return string|nil
function Server:metrics_address()
  return self.raw:metrics_address()
end

--- The address the HTTP API is served on ("ip:port"), or nil.
---@return string|nil
function Server:http_address()
  return self.raw:http_address()
end

--- Sets the copycat_sessions gauge (the number of open client sessions).
---@param n integer
function Server:set_sessions(n)
  self.raw:set_sessions(n)
end

local function find(members, name)
  for _, m in ipairs(members) do
    if m.name == name then return m end
  end
end

-- Turns bootstrap entries ("host:port", "name=host:port" or {name=,
-- address=}) into {name=, address=}, asking servers their names.
local function resolve(self, list)
  local out, missing = {}, {}
  for i, e in ipairs(list) do
    if type(e) == "table" then
      out[i] = { name = e.name, address = e.address, type = e.type }
    elseif type(e) == "string" and e:find("=", 1, true) then
      local name, address = e:match("^([^=]+)=(.+)$")
      out[i] = { name = name, address = address }
    elseif e == self.opts.address then
      out[i] = { name = self.opts.name, address = e }
    elseif type(e) == "string" then
      out[i] = { address = e }
      missing[#missing + 1] = out[i]
    else
      error(("bootstrap: member %d must be \"host:port\", \"name=host:port\" or a table"):format(i), 3)
    end
  end
  local deadline = runtime.now() + (self.opts.bootstrap_timeout or 60000)
  local told = false
  while #missing > 0 do
    local still = {}
    for _, m in ipairs(missing) do
      local name = client.whois(m.address, self.opts.cluster, nil, self.tls_ctx)
      if name then m.name = name else still[#still + 1] = m end
    end
    missing = still
    if #missing > 0 then
      if runtime.now() > deadline then
        local addrs = {}
        for _, m in ipairs(missing) do addrs[#addrs + 1] = m.address end
        return nil, "bootstrap: no answer from " .. table.concat(addrs, ", ") ..
          ": start those servers too (they must bootstrap with the same list)"
      end
      if not told then
        local addrs = {}
        for _, m in ipairs(missing) do addrs[#addrs + 1] = m.address end
        self:log("info", "bootstrap_waiting", { missing = #missing, addresses = table.concat(addrs, ",") })
        told = true
      end
      runtime.sleep(100)
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

--- Bootstraps a new cluster with these members (addresses, "name=address"
--- strings, or {name=, address=} tables); every initial member must call it
--- with the same list. A server that already holds a configuration (it was
--- started before) ignores the list: what it persisted wins.
---@param members (string|table)[]
---@return boolean|nil, string|nil
function Server:bootstrap(members)
  if (self.opts.type or "active") ~= "active" then
    error("bootstrap: only ACTIVE members can bootstrap a cluster; start this " ..
      self.opts.type .. " member with join instead", 2)
  end
  if type(members) ~= "table" or #members == 0 then
    error("bootstrap: give the list of initial members", 2)
  end
  if #self:status().members > 0 then return true end -- restarted: keep what is stored
  local list, err = resolve(self, members)
  if not list then return nil, err end
  if not find(list, self.opts.name) then
    error(("bootstrap: this server (%s at %s) is not in the member list"):format(
      self.opts.name, self.opts.address), 2)
  end
  local ok, berr = self.raw:bootstrap(list)
  if not ok then return nil, berr end
  return true
end

-- Waits until pred(status) holds, up to ms; true if it did.
local function wait_for(self, pred, ms)
  local deadline = runtime.now() + ms
  repeat
    if pred(self:status()) then return true end
    runtime.sleep(20)
  until runtime.now() > deadline
  return false
end

--- The progress line of a joining server from the leader's refusal to
--- promote it (msg), at most one a second: "join_catching_up" {behind,
--- entries_per_s} from the entries it holds, or, while the leader sends
--- its snapshot (when the entry count does not move),
--- "join_receiving_snapshot" {received_bytes, snapshot_bytes,
--- bytes_per_s}; the rate from the second line of a kind on. prev keeps
--- what the last line saw. Returns nil when there is nothing to say.
---@param msg any
---@param prev table
---@param now number milliseconds
---@return string|nil event, table|nil fields
local function join_progress(msg, prev, now)
  msg = tostring(msg)
  local held, total = msg:match("holds (%d+) of (%d+) entries")
  if not held or (prev.t and now - prev.t < 1000) then return nil end
  local got, size = msg:match("receiving a snapshot: (%d+) of (%d+) bytes")
  local kind = got and "snapshot" or "entries"
  local n = tonumber(got or held)
  local rate = prev.kind == kind and prev.t and math.floor(math.max(0, n - prev.n) * 1000 / (now - prev.t))
  prev.t, prev.n, prev.kind = now, n, kind
  if got then
    return "join_receiving_snapshot", { received_bytes = n, snapshot_bytes = tonumber(size), bytes_per_s = rate or nil }
  end
  return "join_catching_up", { behind = math.max(0, tonumber(total) - n), entries_per_s = rate or nil }
end

local function committed_member(st, name, type_)
  local m = find(st.members, name)
  return m and (type_ == nil or m.type == type_) and st.commit_index >= (st.config_index or 0)
end

--- Joins a running cluster through any of its members (each is tried in
--- turn; a follower forwards to the leader). A new ACTIVE member first
--- catches up as PASSIVE and is then promoted. Returns when the committed
--- configuration includes this server with its type (for a RESERVE member,
--- which receives no log, when the leader has accepted it).
---@param members string[] addresses of current members
---@return boolean|nil, string|nil
function Server:join(members)
  if type(members) ~= "table" or #members == 0 then
    error("join: give at least one address of a current member", 2)
  end
  local me, want = self.opts.name, self.opts.type or "active"
  if find(self:status().members, me) and wait_for(self, function(st)
    return committed_member(st, me, want)
  end, 1) then
    return true -- already a member (restart)
  end
  local c = client.new({ cluster = members, cluster_id = self.opts.cluster, timeout = 2000,
    tls_context = self.tls_ctx })
  local retry = 2 * (self.opts.election_timeout or 500)
  local deadline = runtime.now() + (self.opts.join_timeout or 120000)
  local steps = want == "active" and { "passive", "active" } or { want }
  -- Catch-up progress, as the leader's refusals to promote report it: at
  -- most one line a second.
  local progress = {}
  c.on_retry = function(msg)
    local event, fields = join_progress(msg, progress, runtime.now())
    if event then self:log("info", event, fields) end
  end
  for _, step in ipairs(steps) do
    while true do
      local ok, err = c:change(me, self.opts.address, step)
      -- A RESERVE member receives no log, so it cannot watch its own
      -- configuration commit: the leader's acceptance is the answer.
      if ok and (step == "reserve" or
          wait_for(self, function(st) return committed_member(st, me, step) end, retry * 5)) then
        break
      end
      if runtime.now() > deadline then
        c:close()
        return nil, "join: gave up: " .. tostring(err or "the change did not commit")
      end
      runtime.sleep(retry)
    end
  end
  c:close()
  return true
end

--- Leaves the cluster: asks the leader to remove this server and waits
--- until the removal has committed.
function Server:leave()
  local st = self:status()
  local addresses = {}
  for _, m in ipairs(st.members) do
    if m.name ~= self.opts.name then addresses[#addresses + 1] = m.address end
  end
  if #addresses == 0 then return nil, "leave: this server is the only member" end
  local c = client.new({ cluster = addresses, cluster_id = self.opts.cluster, timeout = 2000,
    tls_context = self.tls_ctx })
  local ok, err, code = c:remove(self.opts.name)
  c:close()
  -- A removal the client resent after a leader change may find its first
  -- attempt already committed: the member is gone, which is what leave asks.
  if not ok and code == "no_such_member" then return true end
  if not ok then return nil, "leave: " .. tostring(err) end
  return true
end

--- Stops the server (waits until its connections and files are closed).
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  if self.sighup then self.sighup:stop() end
  self.admin.close()
  local me = runtime.current("server:stop")
  self.raw:stop(function() runtime.wake(me) end)
  runtime.suspend("server:stop")
end

return setmetatable({ new = new, join_progress = join_progress }, {
  __call = function(_, opts) return new(opts) end,
})
