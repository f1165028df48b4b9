--- copycat.client: talk to a copycat-lua cluster from a task.
---
--- local client = copycat.client{ cluster = { "127.0.0.1:5001", "127.0.0.1:5002" } }
--- local old, err = client:submit("put", { key = "a", value = 1 })
--- local v, err = client:query("get", { key = "a" }, { consistency = "linearizable" })
--- client:close()
---
--- Many tasks may use one client at once: each request has an id and its
--- reply wakes the task that sent it. The client finds the leader by
--- following redirects and moves to another member when a connection
--- fails.
---
--- Delivery (until sessions arrive): a command that the cluster reports as
--- not applied (redirect, leadership change) is retried automatically; a
--- command whose connection fails after it was sent is NOT retried, because
--- it may have been applied: the caller gets an error saying so. Queries
--- are always retried.
local runtime = require("copycat.runtime")
local net = require("copycat.net")

local PROTOCOL_VERSION = 1

---@class copycat.Client
---@field private members string[]
---@field private cluster_id string
---@field private timeout number ms per request
---@field private conn copycat.Conn|nil
---@field private connecting copycat.Task[]|nil tasks waiting for a connection
---@field private waiting table<integer, table> id -> {task=, timer=}
---@field private next_id integer
---@field private at integer index of the member tried last
---@field private closed boolean
local Client = {}
Client.__index = Client
Client.__name = "copycat.Client"

local function shuffle_start(n)
  return (math.floor(runtime.now() * 1000) % n) + 1
end

--- Creates a client. Nothing is sent until the first request.
---@param opts {cluster: string[], cluster_id?: string, timeout?: number}
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
  return setmetatable({
    members = members,
    cluster_id = opts.cluster_id or "copycat",
    timeout = opts.timeout or 5000,
    waiting = {},
    next_id = 0,
    at = shuffle_start(#members) - 1,
    closed = false,
  }, Client)
end

-- Fails every request waiting on conn with err (their connection is gone).
local function fail_waiting(self, err)
  local waiting = self.waiting
  self.waiting = {}
  for _, w in pairs(waiting) do
    if w.timer then w.timer:stop() end
    runtime.wake(w.task, nil, err)
  end
end

local function reader(self, conn)
  while true do
    local msg, err = conn:recv()
    if msg == nil then
      if self.conn == conn then self.conn = nil end
      fail_waiting(self, "connection lost: " .. tostring(err))
      return
    end
    local id = type(msg) == "table" and msg[2]
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
  local conn, err = net.connect(address)
  if not conn then return nil, err end
  conn:send({ "copycat", PROTOCOL_VERSION, self.cluster_id, "client", "", "" })
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
local function exchange(self, conn, request)
  self.next_id = self.next_id + 1
  local id = self.next_id
  request[2] = id
  local me = runtime.current("client request")
  local w = { task = me }
  self.waiting[id] = w
  local ok, err = conn:send(request)
  if not ok then
    self.waiting[id] = nil
    return nil, "connection lost: " .. tostring(err), true
  end
  w.timer = require("copycat.core").timer(self.timeout, 0, function()
    if self.waiting[id] == w then
      self.waiting[id] = nil
      runtime.wake(me, nil, ("timed out after %d ms"):format(self.timeout))
    end
  end)
  return runtime.suspend("client request")
end

-- Runs a request until it has an answer: follows redirects, retries what
-- is safe to retry, within `attempts` tries and the deadline.
local function request(self, req, retry_unknown)
  local deadline = runtime.now() + self.timeout * 3
  local prefer
  local last_err = "no attempt made"
  for _ = 1, 50 do
    if runtime.now() > deadline then break end
    local conn, cerr = connection(self, prefer)
    prefer = nil
    if not conn then
      last_err = cerr
      runtime.sleep(100)
    else
      local reply, err = exchange(self, conn, req)
      if reply == nil then
        last_err = err
        if not retry_unknown then
          return nil, err .. " (the command may or may not have been applied)"
        end
      elseif reply[1] == "result" then
        local res = reply[3]
        if res[1] then return res[2] end
        return nil, "application error: " .. tostring(res[2])
      elseif reply[1] == "ok" then
        return true
      elseif reply[1] == "redirect" then
        prefer = reply[3]
        last_err = "no leader known"
        if not prefer then runtime.sleep(50) end
      elseif reply[1] == "error" then
        local msg = tostring(reply[3])
        if msg:find("retry", 1, true) or msg:find("busy", 1, true) then
          last_err = msg
          runtime.sleep(50)
        else
          return nil, msg
        end
      else
        return nil, "unexpected reply: " .. tostring(reply[1])
      end
    end
  end
  return nil, "gave up: " .. tostring(last_err)
end

--- Submits a command; returns the state machine's result, or nil and an
--- error ("application error: ..." when the command itself failed).
---@param op string
---@param args any
function Client:submit(op, args)
  return request(self, { "submit", 0, op, args }, false)
end

--- Runs a query. opts.consistency: "linearizable" (default), "lease" or
--- "sequential". Returns the result, or nil and an error.
---@param op string
---@param args any
---@param opts {consistency?: string}|nil
function Client:query(op, args, opts)
  local level = opts and opts.consistency or "linearizable"
  return request(self, { "query", 0, op, args, level }, true)
end

--- Membership requests (used by join/leave and operator scripts): set
--- member `name` at `address` to `type` ("active", "passive", "reserve").
function Client:change(name, address, type_)
  return request(self, { "change", 0, name, address, type_ or "active" }, true)
end

function Client:remove(name)
  return request(self, { "remove", 0, name }, true)
end

function Client:transfer(name)
  return request(self, { "transfer", 0, name }, true)
end

--- Closes the connection; waiting requests fail.
function Client:close()
  self.closed = true
  if self.conn then
    self.conn:close("client closed")
    self.conn = nil
  end
end

--- Asks the server at address for its member name (bootstrap uses it).
---@return string|nil, string|nil
local function whois(address, cluster_id, timeout)
  local self = setmetatable({ cluster_id = cluster_id or "copycat", timeout = timeout or 1000 }, Client)
  local conn, err = net.connect(address)
  if not conn then return nil, err end
  conn:send({ "copycat", PROTOCOL_VERSION, self.cluster_id, "client", "", "" })
  local reply, rerr = conn:recv(self.timeout)
  conn:close()
  if type(reply) == "table" and reply[1] == "ok" then return reply[2] end
  return nil, type(reply) == "table" and tostring(reply[2]) or tostring(rerr)
end

return setmetatable({ new = new, whois = whois }, {
  __call = function(_, opts) return new(opts) end,
})
