--- copycat.net: msgpack values over framed TCP, for tasks.
---
--- local conn, err = net.connect("127.0.0.1:5001")   -- waits until connected
--- conn:send({ op = "get", key = "a" })
--- local msg, err = conn:recv(1000)                  -- waits; nil, err when closed / timed out
--- local l = net.listen("127.0.0.1:0", function(conn) ... end)   -- a task per connection
local core = require("copycat.core")
local runtime = require("copycat.runtime")

local net = {}

-- Messages queued per connection before we stop reading from the socket,
-- so a fast sender cannot grow our memory without bound.
local PAUSE_AT = 256

---@class copycat.Conn
---@field private raw userdata the core connection
---@field private queue any[] received, not yet taken by recv
---@field private head integer
---@field private waiter copycat.Task|nil a task blocked in recv
---@field private closed_reason string|nil
local Conn = {}
Conn.__index = Conn
Conn.__name = "copycat.Conn"

local function wrap(raw)
  local self = setmetatable({ raw = raw, queue = {}, head = 1 }, Conn)
  raw:start(function(msg)
    local w = self.waiter
    if w then
      self.waiter = nil
      runtime.wake(w, msg)
      return
    end
    local q = self.queue
    q[#q + 1] = msg
    if #q - self.head + 1 >= PAUSE_AT then raw:pause() end
  end, function(reason)
    self.closed_reason = reason
    local w = self.waiter
    if w then
      self.waiter = nil
      runtime.wake(w, nil, reason)
    end
  end)
  return self
end

--- Sends one value (anything copycat.codec can encode). Returns true, or
--- nil and a reason when the connection is closed.
---@return true|nil, string|nil
function Conn:send(value)
  return self.raw:send(value)
end

--- Waits for the next value. Returns it, or nil and a reason: the
--- connection's close reason, or "timeout" after timeout_ms.
---@param timeout_ms number|nil
---@return any, string|nil
function Conn:recv(timeout_ms)
  local q = self.queue
  if self.head <= #q then
    local msg = q[self.head]
    q[self.head] = nil
    self.head = self.head + 1
    if self.head > #q then -- drained: reset, and read again if paused
      self.queue, self.head = {}, 1
      self.raw:resume()
    end
    return msg
  end
  if self.closed_reason then return nil, self.closed_reason end
  if self.waiter then error("another task is already receiving on this connection", 2) end
  local me = runtime.current("conn:recv")
  self.waiter = me
  local timer
  if timeout_ms then
    timer = core.timer(timeout_ms, 0, function()
      if self.waiter == me then
        self.waiter = nil
        runtime.wake(me, nil, "timeout")
      end
    end)
  end
  local msg, err = runtime.suspend("conn:recv")
  if timer then timer:stop() end
  return msg, err
end

--- Closes the connection. Queued sends are dropped, unless `flush` is
--- true: then they are written first (for a last reply before hanging up).
---@param reason string|nil
---@param flush boolean|nil
function Conn:close(reason, flush)
  self.raw:close(reason, flush)
end

--- The reason the connection closed, or nil while it is open.
function Conn:closed()
  return self.closed_reason
end

--- Bytes queued for sending and not yet written (a sender of much data
--- waits while this is large).
---@return integer
function Conn:queued()
  return self.raw:queued()
end

--- The peer's address, "ip:port".
function Conn:peer()
  return self.raw:peer()
end

--- Under TLS, the name and role ("member", "admin", "client" or "none")
--- of the certificate the peer proved to hold (known once a message has
--- arrived); nil without TLS.
---@return string|nil, string|nil
function Conn:tls()
  return self.raw:tls()
end

--- Connects to address ("ip:port" or "name:port"). Waits until connected.
--- opts.tls: a TLS context (copycat.tls.context); opts.tls_expect: the
--- member name the server's certificate must carry.
---@param address string
---@param opts {max_frame?: integer, max_queue?: integer, tls?: userdata, tls_expect?: string}|nil
---@return copycat.Conn|nil, string|nil
function net.connect(address, opts)
  local me = runtime.current("net.connect")
  local ok, err = core.net.connect(address, function(raw, cerr)
    runtime.wake(me, raw, cerr)
  end, opts)
  if not ok then return nil, err end
  local raw, cerr = runtime.suspend("net.connect")
  if not raw then return nil, cerr end
  return wrap(raw)
end

--- Listens on address ("ip:port"; port 0 picks a free one) and runs
--- handler(conn) in a new task for each connection. Returns a listener
--- with :address() and :close(), or nil and a reason.
---@param address string
---@param handler fun(conn: copycat.Conn)
---@param opts {max_frame?: integer, max_queue?: integer, tls?: userdata}|nil
function net.listen(address, handler, opts)
  if type(handler) ~= "function" then
    error(("bad argument #2 to 'listen' (function expected, got %s)"):format(type(handler)), 2)
  end
  return core.net.listen(address, function(raw)
    runtime.spawn(handler, wrap(raw))
  end, opts)
end

return net
