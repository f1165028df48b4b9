--- copycat.client: talk to a copycat-lua cluster from a task.
---
--- local client = copycat.client{ cluster = { "127.0.0.1:5001", "127.0.0.1:5002" } }
--- local old, err = client:submit("put", { key = "a", value = 1 })
--- local v, err = client:query("get", { key = "a" }, { consistency = "linearizable" })
--- client:on("changed", function(data) ... end)   -- events the state machine publishes
--- client:close()
---
--- Many tasks may use one client at once: each request has an id and its
--- reply wakes the task that sent it. The client finds the leader by
--- following redirects and moves to another member when a connection
--- fails.
---
--- Commands run in a session (docs/sessions.md), opened by the first
--- submit (or client:open()) and kept alive in the background: each command
--- carries the session id and a sequence number, so the cluster applies it
--- exactly once and in the order the client issued it, however often it is
--- resent after a lost reply, a timeout or a leader change. A submit returns
--- the state machine's result, or fails only when the session is gone
--- (expired, or no contact with the cluster for the session timeout) or the
--- client is closed. A session that expired stays expired: create a new
--- client. Queries are retried freely; a query never returns state older
--- than what this client has already seen.
local runtime = require("copycat.runtime")
local net = require("copycat.net")
local tls = require("copycat.tls")

local PROTOCOL_VERSION = 1

---@class copycat.Client
---@field private members string[]
---@field private cluster_id string
---@field private timeout number ms per request attempt
---@field private session_timeout integer ms the cluster waits before expiring the session
---@field private session integer|nil the open session's id
---@field private seq integer last command sequence number issued
---@field private acked integer every command up to this one has its result
---@field private done table<integer, boolean> completed commands above acked
---@field private delivered integer last event delivered to handlers
---@field private seen integer highest log index a reply reflected
---@field on_retry fun(msg: string, code: string)|nil hears each refusal a request retries (progress)
---@field private last_contact number when the cluster last confirmed the session
---@field private lost string|nil why the session is gone
---@field private handlers table<string, function[]>
---@field private conn copycat.Conn|nil
---@field private connecting copycat.Task[]|nil tasks waiting for a connection
---@field private waiting table<integer, table> id -> {task=, timer=}
---@field private next_id integer
---@field private at integer index of the member tried last
---@field private closed boolean
---@field private net_opts table|nil options of every connection (TLS)
local Client = {}
Client.__index = Client
Client.__name = "copycat.Client"

local function shuffle_start(n)
  return (math.floor(runtime.now() * 1000) % n) + 1
end

--- Creates a client. Nothing is sent until the first request.
--- opts.timeout: ms per request attempt (default 5000); opts.session_timeout:
--- ms without keep-alives after which the cluster expires the session
--- (default 5000, at least 200). opts.tls = { ca = FILE, cert = FILE,
--- key = FILE }: speak TLS, trusting servers with a member certificate
--- from that CA; the certificate (optional) is this client's, and one with
--- the admin role grants membership and leadership changes (docs/tls.md),
--- as does opts.admin_token, the servers' admin token.
---@param opts {cluster: string[], cluster_id?: string, timeout?: number, session_timeout?: integer,
---  tls?: copycat.TlsOptions, admin_token?: string}
---@return copycat.Client
local function new(opts)
  if type(opts) ~= "table" or type(opts.cluster) ~= "table" or #opts.cluster == 0 then
    error("copycat.client needs { cluster = { \"host:port\", ... } } with at least one address", 2)
  end
  local members = {}
  for i, a in ipairs(opts.cluster) do
    if type(a) ~= "string" or not a:match("^.+:%d+$") then
      error(("cluster[%d] must be \"host:port\", got %s"):format(i, tostring(a)), 2)
    end
    members[i] = a
  end
  if opts.admin_token ~= nil and (type(opts.admin_token) ~= "string" or opts.admin_token == "" or
      #opts.admin_token > 255) then
    error("copycat.client: admin_token must be a string of 1 to 255 bytes", 2)
  end
  local st = opts.session_timeout or 5000
  if math.type(st) ~= "integer" or st < 200 then
    error("session_timeout must be an integer number of ms, at least 200", 2)
  end
  -- tls_context: a context already loaded (a server's own, for join).
  local ctx = opts.tls_context
  if opts.tls ~= nil and not ctx then
    local err
    ctx, err = tls.context(opts.tls)
    if not ctx then error("copycat.client: " .. err, 2) end
  end
  return setmetatable({
    members = members,
    cluster_id = opts.cluster_id or "copycat",
    timeout = opts.timeout or 5000,
    session_timeout = st,
    net_opts = ctx and { tls = ctx } or nil,
    admin_token = opts.admin_token,
    waiting = {},
    next_id = 0,
    at = shuffle_start(#members) - 1,
    closed = false,
    seq = 0, acked = 0, done = {}, delivered = 0, seen = 0, last_contact = 0,
    handlers = {},
  }, Client)
end

local keepalive -- defined below; a new connection sends one at once

-- Fails every request waiting on conn with err (their connection is gone);
-- requests sent on a newer connection are not affected.
local function fail_waiting(self, conn, err)
  local gone = {}
  for id, w in pairs(self.waiting) do
    if w.conn == conn then gone[#gone + 1] = id end
  end
  table.sort(gone) -- wake in the order the requests were sent
  for _, id in ipairs(gone) do
    local w = self.waiting[id]
    self.waiting[id] = nil
    if w.timer then w.timer:stop() end
    runtime.wake(w.task, nil, err)
  end
end

local function reader(self, conn)
  while true do
    local msg, err = conn:recv()
    if msg == nil then
      if self.conn == conn then self.conn = nil end
      fail_waiting(self, conn, "connection lost: " .. tostring(err))
      return
    end
    if type(msg) == "table" and msg[1] == "event" then
      self:deliver(msg)
    end
    local id = type(msg) == "table" and msg[1] ~= "event" and msg[2]
    local w = id and self.waiting[id]
    if w then
      self.waiting[id] = nil
      if w.timer then w.timer:stop() end
      runtime.wake(w.task, msg)
    end
  end
end

-- Connects to address and says hello; returns the connection or nil, err.
local function dial(self, address)
  local conn, err = net.connect(address, self.net_opts)
  if not conn then return nil, err end
  if self.admin_token then
    conn:send({ "copycat", PROTOCOL_VERSION, self.cluster_id, "client", "", "", self.admin_token })
  else
    conn:send({ "copycat", PROTOCOL_VERSION, self.cluster_id, "client", "", "" })
  end
  local reply, rerr = conn:recv(self.timeout)
  if type(reply) ~= "table" or reply[1] ~= "ok" then
    conn:close()
    return nil, ("%s refused the connection: %s"):format(address,
      type(reply) == "table" and tostring(reply[2]) or tostring(rerr))
  end
  return conn
end

-- Returns a connected conn, dialing members in turn (or `prefer` first).
local function connection(self, prefer)
  if self.closed then return nil, "client is closed" end
  if self.conn and not prefer then return self.conn end
  if self.connecting then -- another task is dialing: wait for it
    local me = runtime.current("client request")
    table.insert(self.connecting, me)
    runtime.suspend("client request")
    if self.conn then return self.conn end
    return nil, "no cluster member reachable"
  end
  self.connecting = {}
  if self.conn then
    self.conn:close("moving to the leader")
    self.conn = nil
  end
  local errors = {}
  local candidates = {}
  if prefer then candidates[1] = prefer end
  for i = 1, #self.members do
    candidates[#candidates + 1] = self.members[(self.at + i - 1) % #self.members + 1]
  end
  self.at = self.at % #self.members + 1
  for _, address in ipairs(candidates) do
    local conn, err = dial(self, address)
    if conn then
      self.conn = conn
      runtime.spawn(reader, self, conn)
      -- Name the session on the new connection at once, so that its
      -- events (and any that were lost with the old one) come here.
      if self.session and not self.lost and self.ka then runtime.spawn(keepalive, self) end
      break
    end
    errors[#errors + 1] = err
  end
  local waiters = self.connecting
  self.connecting = nil
  for _, t in ipairs(waiters) do runtime.wake(t) end
  if not self.conn then
    return nil, "no cluster member reachable: " .. table.concat(errors, "; ")
  end
  return self.conn
end

-- Sends one request and waits for its reply (a table) or nil, err.
local function exchange(self, conn, request, timeout)
  timeout = timeout or self.timeout
  self.next_id = self.next_id + 1
  local id = self.next_id
  request[2] = id
  local me = runtime.current("client request")
  local w = { task = me, conn = conn }
  self.waiting[id] = w
  local ok, err = conn:send(request)
  if not ok then
    self.waiting[id] = nil
    return nil, "connection lost: " .. tostring(err), true
  end
  w.timer = require("copycat.core").timer(timeout, 0, function()
    if self.waiting[id] == w then
      self.waiting[id] = nil
      runtime.wake(me, nil, ("timed out after %d ms"):format(timeout))
    end
  end)
  return runtime.suspend("client request")
end

-- Error codes (["error", id, message, code], docs/protocol.md) that say the
-- request was not carried out and may be sent again, possibly to another
-- member; ELSEWHERE: only to another member (this one cannot serve).
local TRANSIENT = {
  busy = true, change_in_progress = true, not_caught_up = true, not_ready = true,
  transfer_in_progress = true, not_applied = true, leader_lost = true, no_memory = true, stopping = true,
  storage_failed = true, diverged = true, stale = true,
}
local ELSEWHERE = { storage_failed = true, diverged = true }

local function note_index(self, index)
  if math.type(index) == "integer" and index > self.seen then self.seen = index end
end

-- Runs a request until it has an answer: follows redirects and retries
-- what is safe to retry, until `give_up(attempt)` says to stop (it returns
-- an error; every give_up is bounded in time). Returns the reply table, or
-- nil, an error and, when a server refused, the error's code.
local function request(self, req, give_up, timeout)
  local prefer
  local last_err = "no attempt made"
  local attempt = 0
  while true do
    attempt = attempt + 1
    local stop = give_up(attempt)
    if stop then return nil, stop .. " (last error: " .. tostring(last_err) .. ")" end
    local conn, cerr = connection(self, prefer)
    prefer = nil
    if not conn then
      last_err = cerr
      runtime.sleep(math.min(200, 20 * attempt))
    else
      local reply, err = exchange(self, conn, req, timeout)
      if reply == nil then
        last_err = err
        -- A member that does not answer may be a stale leader cut off from
        -- the others: try another one.
        if self.conn == conn then
          self.conn = nil
          conn:close("no answer in time")
        end
      elseif reply[1] == "result" or reply[1] == "ok" then
        note_index(self, reply[4])
        return reply
      elseif reply[1] == "redirect" then
        prefer = reply[3]
        last_err = "no leader known"
        -- Right after a leader fails, followers still name it for a
        -- while: back off rather than bounce between them.
        if not prefer then
          runtime.sleep(math.min(100, 10 * attempt))
        elseif attempt > 2 then
          runtime.sleep(10)
        end
      elseif reply[1] == "error" then
        local msg, code = tostring(reply[3]), reply[4]
        if not TRANSIENT[code] then return nil, msg, code end
        last_err = msg
        if self.on_retry then self.on_retry(msg, code) end
        if ELSEWHERE[code] and self.conn == conn then
          self.conn = nil
          conn:close("that member cannot write")
        end
        runtime.sleep(50)
      else
        return nil, "unexpected reply: " .. tostring(reply[1])
      end
    end
  end
end

-- Gives up after the client's usual deadline (queries, membership).
local function deadline_of(self)
  local deadline = runtime.now() + self.timeout * 3
  return function()
    if self.closed then return "client is closed" end
    if runtime.now() > deadline then return "timed out" end
  end
end

-- Per attempt within a session: well inside the session timeout, so that
-- a member that stopped answering is left in time.
local function attempt_ms(self)
  return math.min(self.timeout, self.session_timeout // 3)
end

-- Gives up once the session is gone (commands, keep-alives).
local function session_alive(self)
  return function()
    if self.closed then return "client is closed" end
    if self.lost then return self.lost end
    if runtime.now() - self.last_contact > self.session_timeout then
      self:lose(("session %d lost: no contact with the cluster for %d ms; it has expired or will " ..
        "expire (create a new client)"):format(self.session, self.session_timeout))
      return self.lost
    end
  end
end

-- The largest integer key of a decoded array (holes decode as nil).
local function array_len(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) == "integer" and k > n then n = k end
  end
  return n
end

local function unwrap(reply)
  local r = reply[3]
  if r[1] then
    -- A handler's second and later results travel as an array in r[3].
    if type(r[3]) == "table" then return r[2], table.unpack(r[3], 1, array_len(r[3])) end
    return r[2]
  end
  -- The state machine's own failures, the same on every replica: its
  -- handler raised ("application"), or it has no such op ("unknown_op").
  if r[3] == "application" or r[3] == "unknown_op" then return nil, "application error: " .. tostring(r[2]) end
  return nil, tostring(r[2])
end

--- Marks the session as gone: waiting and later commands fail with why.
---@param why string
function Client:lose(why)
  if self.lost then return end
  self.lost = why
  if self.ka then self.ka:stop(); self.ka = nil end
  for _, fn in ipairs(self.handlers["session:lost"] or {}) do runtime.spawn(fn, why) end
end

--- Opens the session if it is not open yet (submit does it on first use).
--- Returns the session id, or nil and an error.
---@return integer|nil, string|nil
function Client:open()
  if self.session then return self.session end
  if self.lost then return nil, self.lost end
  if self.opening then -- another task is opening it: wait for that
    table.insert(self.opening, runtime.current("client:open"))
    runtime.suspend("client:open")
    if self.session then return self.session end
    return nil, self.lost or self.open_error or "the session could not be opened"
  end
  self.opening = {}
  local reply, err = request(self, { "open", 0, self.session_timeout }, deadline_of(self))
  local id
  if reply and reply[1] == "result" then
    id, err = unwrap(reply)
  end
  if math.type(id) == "integer" then
    self.session = id
    self.last_contact = runtime.now()
    self.ka = runtime.every(math.max(50, self.session_timeout // 4), function() keepalive(self) end)
  else
    self.open_error = "cannot open a session: " .. tostring(err)
    -- Every command numbered meanwhile waits for this open and fails with
    -- it: the next session starts counting afresh.
    self.seq = 0
  end
  local waiters = self.opening
  self.opening = nil
  for _, t in ipairs(waiters) do runtime.wake(t) end
  if not self.session then return nil, self.open_error end
  return id
end

-- One keep-alive: acknowledges results and events, learns of expiry.
keepalive = function(self)
  if self.ka_busy or not self.session or self.lost or self.closed then return end
  self.ka_busy = true
  local reply = request(self, { "keepalive", 0, self.session, self.acked, self.delivered },
    session_alive(self), attempt_ms(self))
  self.ka_busy = false
  if reply and reply[1] == "result" then
    local r = reply[3]
    if r[1] then
      for _, id in ipairs(r[2] or {}) do
        if id == self.session then
          self:lose(("session %d expired: the cluster did not hear from this client in time " ..
            "(create a new client)"):format(id))
          return
        end
      end
      self.last_contact = runtime.now()
    end
  end
end

-- Records that command seq has its answer; advances the acknowledgement.
local function complete(self, seq)
  self.done[seq] = true
  while self.done[self.acked + 1] do
    self.acked = self.acked + 1
    self.done[self.acked] = nil
  end
end

--- Submits a command; returns the state machine's results (every value the
--- command returned; trailing nils are dropped), or nil and an error
--- message, a string ("application error: ..." when the command itself
--- failed). A command that returns nil then a string looks like a failure:
--- return a table instead. The command is applied exactly once, in the
--- order of submission.
---@param op string
---@param args any
function Client:submit(op, args)
  if type(op) ~= "string" then error("bad argument #1 to 'submit' (command name expected)", 2) end
  -- Numbered now, before any wait: the order of submit calls is the
  -- order of application, even while the session is being opened.
  self.seq = self.seq + 1
  local seq = self.seq
  local session, err = self:open()
  if not session then return nil, err end
  local alive = session_alive(self)
  while true do
    local reply, rerr = request(self, { "submit", 0, session, seq, self.acked, op, args }, alive,
      attempt_ms(self))
    if not reply then return nil, rerr end
    local r = reply[3]
    if r[1] or (r[3] ~= "sequence" and r[3] ~= "busy") then
      self.last_contact = runtime.now()
      complete(self, seq)
      if r[3] == "expired" then
        self:lose(tostring(r[2]) .. " (create a new client)")
        return nil, self.lost
      end
      return unwrap(reply)
    end
    -- An earlier command is not applied yet (it is being resent), or the
    -- session holds too many unacknowledged results: wait a little.
    runtime.sleep(r[3] == "busy" and 50 or 5)
  end
end

--- Runs a query. opts.consistency: "linearizable" (default), "lease" or
--- "sequential". Never returns state older than this client has seen.
--- Returns the query's results (every value it returned), or nil and an
--- error.
---@param op string
---@param args any
---@param opts {consistency?: string}|nil
function Client:query(op, args, opts)
  local level = opts and opts.consistency or "linearizable"
  local reply, err = request(self, { "query", 0, op, args, level, self.session or 0, self.seen },
    deadline_of(self))
  if not reply then return nil, err end
  return unwrap(reply)
end

--- Registers fn(data) for events named `name` that the state machine
--- publishes to this client's session. Events arrive once each, in order,
--- after the reply of the command that caused them. The special name
--- "session:lost" gets fn(reason) when the session expires or is lost.
---@param name string
---@param fn fun(data: any)
function Client:on(name, fn)
  if type(name) ~= "string" or type(fn) ~= "function" then
    error("client:on(name, fn) expects an event name and a function", 2)
  end
  local list = self.handlers[name] or {}
  list[#list + 1] = fn
  self.handlers[name] = list
end

-- An event frame ["event", session, seq, name, data]: delivered if it is
-- the next one; duplicates are dropped, and a gap waits for the resend
-- that the next keep-alive brings.
function Client:deliver(msg)
  local session, seq, name, data = msg[2], msg[3], msg[4], msg[5]
  if session ~= self.session or math.type(seq) ~= "integer" then return end
  if seq ~= self.delivered + 1 then
    if seq > self.delivered + 1 and self.ka and not self.ka_busy then
      runtime.spawn(keepalive, self)
    end
    return
  end
  self.delivered = seq
  for _, fn in ipairs(self.handlers[name] or {}) do runtime.spawn(fn, data) end
end

--- The session id, or nil and why there is none.
function Client:session_id()
  if self.session and not self.lost then return self.session end
  return nil, self.lost or "no session opened yet"
end

--- Membership requests (used by join/leave and operator scripts): set
--- member `name` at `address` to `type` ("active", "passive", "reserve").
function Client:change(name, address, type_)
  local reply, err, code = request(self, { "change", 0, name, address, type_ or "active" }, deadline_of(self))
  if not reply then return nil, err, code end
  return true
end

function Client:remove(name)
  local reply, err, code = request(self, { "remove", 0, name }, deadline_of(self))
  if not reply then return nil, err, code end
  return true
end

function Client:transfer(name)
  local reply, err, code = request(self, { "transfer", 0, name }, deadline_of(self))
  if not reply then return nil, err, code end
  return true
end

--- Closes the session (the state machine's session_closed runs at once
--- rather than at expiry) and the connection; waiting requests fail.
function Client:close()
  if self.closed then return end
  if self.ka then self.ka:stop(); self.ka = nil end
  if self.session and not self.lost then
    local tries = 0
    request(self, { "close", 0, self.session }, function()
      tries = tries + 1
      if tries > 3 then return "giving up closing the session" end
    end)
  end
  self.closed = true
  if self.conn then
    self.conn:close("client closed")
    self.conn = nil
  end
end

--- Asks the server at address for its member name (bootstrap uses it).
--- With a TLS context the answer must be the name its certificate proves.
---@return string|nil, string|nil
local function whois(address, cluster_id, timeout, tls_context)
  local self = setmetatable({ cluster_id = cluster_id or "copycat", timeout = timeout or 1000 }, Client)
  local conn, err = net.connect(address, tls_context and { tls = tls_context } or nil)
  if not conn then return nil, err end
  conn:send({ "copycat", PROTOCOL_VERSION, self.cluster_id, "client", "", "" })
  local reply, rerr = conn:recv(self.timeout)
  local cert_name = conn:tls()
  conn:close()
  if type(reply) == "table" and reply[1] == "ok" then
    if tls_context and reply[2] ~= cert_name then
      return nil, ("%s says it is '%s' but its certificate names '%s'"):format(address,
        tostring(reply[2]), tostring(cert_name))
    end
    return reply[2]
  end
  return nil, type(reply) == "table" and tostring(reply[2]) or tostring(rerr)
end

return setmetatable({ new = new, whois = whois }, {
  __call = function(_, opts) return new(opts) end,
})
