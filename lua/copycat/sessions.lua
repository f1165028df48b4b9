--- copycat.sessions: client sessions on top of a state machine, applied
--- from the log.
---
--- Every server runs one of these between its Raft log and its state
--- machine. It turns committed entries into calls on the machine and keeps,
--- for each client session, what makes commands exactly-once and events
--- reliable: the last applied sequence number, the results the client has
--- not acknowledged yet, and the events it has not acknowledged yet. All of
--- it is a function of the log alone (times come from the entries, which the
--- leader stamps), so every replica holds the same sessions, expires them at
--- the same index and writes the same snapshot bytes. docs/sessions.md
--- describes the entries and the rules.
---
--- Entries (msgpack arrays, decoded): every one starts with the leader's
--- time in milliseconds.
---   {time, "o", timeout_ms}                    open a session -> its id (the index)
---   {time, "c", session, seq, ack, op, args}   a command
---   {time, "r", session, seq, ack, message}    a command the leader refused
---                                              before logging it (too large):
---                                              takes its seq, fails with code
---                                              "refused"
---   {time, "k", {{session, cmd_ack, event_ack}, ...}}  keep-alives
---   {time, "x", session}                       close a session
---   {time, "t"}                                time passes (idle leader)
---
--- apply returns the reply for the client that proposed the entry, as
--- {true, value[, more]} (more: an array of the handler's other results,
--- when it returned several) or {false, message, code} (code: "expired", "sequence", "busy", "lost",
--- "unknown_op" (the machine has no such command or query), "application" (the handler raised),
--- "refused", "malformed"), and the events to push to connected
--- clients: an array of {session, seq, name, data}.
---
--- The server's path keeps user values out of this layer: it passes a
--- command's arguments as the bytes the client sent (apply's `args`, the
--- entry then ends at op) and a query's likewise, and the machine returns
--- the success reply already encoded (machine:command_reply/query_reply);
--- that string is cached as the result and sent unchanged. A layer made
--- with {encoded_events = true} likewise keeps and returns each event's
--- data as the bytes the machine encoded (machine:events(true)). Snapshots
--- hold every cached result and every event's data decoded, so they are
--- the same either way.
local codec = require("copycat.codec")

local M = {}

--- Results a session may hold unacknowledged; beyond it commands are
--- refused with code "busy" until the client acknowledges.
M.MAX_RESULTS = 4096
--- Events a session may hold unacknowledged; beyond it the session is
--- closed (a client that stopped reading must not grow every server).
M.MAX_EVENTS = 10000
--- Sessions open at once; an open beyond it is refused with code "busy"
--- (every open session costs every server memory until it expires).
M.MAX_SESSIONS = 65536
--- Bounds on the session timeout a client may ask for (ms).
M.MIN_TIMEOUT = 200
M.MAX_TIMEOUT = 3600 * 1000
--- Snapshot format version.
M.FORMAT = 1

---@class copycat.Sessions
---@field private machine copycat.StateMachine
---@field private sessions table<integer, table> id -> session record
---@field private count integer open sessions
---@field private time integer replicated time of the last entry (ms)
---@field private term integer term of the last entry applied
---@field private next_expiry integer|nil no session expires before this time
local Sessions = {}
Sessions.__index = Sessions

--- Creates the layer over a loaded state machine. With
--- opts.encoded_events, events' data stay the codec bytes the machine
--- encoded: in the queues, in apply's events and in events_of.
---@param machine copycat.StateMachine
---@param opts {encoded_events: boolean|nil}|nil
---@return copycat.Sessions
function M.new(machine, opts)
  return setmetatable({ machine = machine, sessions = {}, count = 0, time = 0, term = 0,
    encoded_events = (opts and opts.encoded_events) and true or false }, Sessions)
end

local function reply_error(code, msg) return { false, msg, code } end

-- The reply of a handler that returned ok, results...: {true, first} or,
-- with more than one result, {true, first, rest} where rest is an array of
-- the others (position 3 is the error code only when ok is false).
local function reply_ok(n, ok, first, ...)
  if ok == false then return nil end
  if n <= 2 then return { true, first } end
  return { true, first, codec.array({ ... }) }
end

-- Moves what the machine published into the sessions' queues and into out.
-- An event for a session that is not open (or is closing) is dropped.
local function collect(self, out)
  local published = self.machine:events(self.encoded_events)
  for i = 1, #published do
    local e = published[i]
    local s = self.sessions[e.session]
    if s then
      s.event_seq = s.event_seq + 1
      local ev = { s.event_seq, e.name, e.data }
      s.events[#s.events + 1] = ev
      out[#out + 1] = { s.id, ev[1], ev[2], ev[3] }
      if #s.events > M.MAX_EVENTS then
        s.overflow = true
        self.next_expiry = self.time -- closed at the end of this entry
      end
    end
  end
end

local function ctx(self, index, term, id)
  return { index = index, term = term, time = self.time, session = id }
end

-- Closes session s (expiry, overflow or the client's request), telling the
-- machine; the record goes first so that its own events are dropped.
local function close(self, s, index, term, out)
  self.sessions[s.id] = nil
  self.count = self.count - 1
  self.machine:session_closed(s.id, ctx(self, index, term))
  collect(self, out)
end

local function sorted_ids(self)
  local ids = {}
  for id in pairs(self.sessions) do ids[#ids + 1] = id end
  table.sort(ids)
  return ids
end

-- Expires, in id order, every session whose last contact is more than its
-- timeout ago, and closes sessions that overflowed their event queue.
local function expire(self, index, term, out)
  if not self.next_expiry or self.time < self.next_expiry then return end
  local next_expiry
  for _, id in ipairs(sorted_ids(self)) do
    local s = self.sessions[id]
    local deadline = s.seen + s.timeout
    if self.time > deadline or s.overflow then
      close(self, s, index, term, out)
    elseif not next_expiry or deadline < next_expiry then
      next_expiry = deadline
    end
  end
  -- Strictly after the deadline: one millisecond later.
  self.next_expiry = next_expiry and next_expiry + 1
end

local function touch(self, s)
  s.seen = self.time
  local e = s.seen + s.timeout + 1
  if not self.next_expiry or e < self.next_expiry then self.next_expiry = e end
end

-- Drops cached results up to ack and events up to event_ack.
local function acknowledge(s, ack, event_ack)
  if ack and ack > s.acked then
    for seq = s.acked + 1, math.min(ack, s.applied_seq) do s.results[seq] = nil end
    s.acked = math.min(ack, s.applied_seq)
  end
  if event_ack and event_ack > 0 then
    local keep, n = {}, 0
    for i = 1, #s.events do
      if s.events[i][1] > event_ack then n = n + 1; keep[n] = s.events[i] end
    end
    s.events = keep
    if s.overflow and n <= M.MAX_EVENTS then s.overflow = nil end
  end
end

local function is_count(v) return math.type(v) == "integer" and v >= 0 end

local function open(self, index, term, e, out)
  local timeout = e[3]
  if not is_count(timeout) then return reply_error("malformed", "malformed open: timeout must be an integer") end
  timeout = math.max(M.MIN_TIMEOUT, math.min(M.MAX_TIMEOUT, timeout))
  if self.count >= M.MAX_SESSIONS then
    return reply_error("busy", ("too many open sessions (%d): close sessions that are no longer used, "
      .. "or wait for abandoned ones to expire"):format(self.count))
  end
  local s = {
    id = index, timeout = timeout, seen = self.time, applied_seq = 0, acked = 0,
    results = {}, events = {}, event_seq = 0,
  }
  self.sessions[index] = s
  self.count = self.count + 1
  touch(self, s)
  -- A failing hook is the machine's own affair: the session is open.
  self.machine:session_opened(index, ctx(self, index, term, index))
  collect(self, out)
  return { true, index }
end

-- A command ("c"), or a refused one ("r": its sequence number is used up
-- with the leader's message as the result, so that the session's later
-- commands are not held back by a gap).
local function command(self, index, term, e, out, args)
  local refused = e[2] == "r"
  local id, seq, ack, op = e[3], e[4], e[5], e[6]
  if not (is_count(id) and is_count(seq) and is_count(ack)) or type(op) ~= "string" then
    return reply_error("malformed", "malformed command entry")
  end
  local s = self.sessions[id]
  if not s then
    return reply_error("expired", ("session %d is not open: it expired or was closed"):format(id))
  end
  touch(self, s)
  acknowledge(s, ack)
  if seq <= s.applied_seq then
    local r = s.results[seq]
    if r then return r end
    return reply_error("lost", ("command %d was applied, but its result was already acknowledged"):format(seq))
  end
  if seq ~= s.applied_seq + 1 then
    return reply_error("sequence", ("command %d arrived before command %d: resend in order"):format(seq,
      s.applied_seq + 1))
  end
  if s.applied_seq - s.acked >= M.MAX_RESULTS then
    return reply_error("busy", "busy: too many unacknowledged results in this session; retry shortly")
  end
  local r
  if refused then
    r = { false, op, "refused" }
  elseif args then -- the arguments' bytes: the reply comes back encoded
    local ok, reply, code = self.machine:command_reply(op, args, ctx(self, index, term, id))
    collect(self, out)
    r = ok and reply or { false, reply, code or "application" }
  else
    local res = table.pack(self.machine:command(op, e[7], ctx(self, index, term, id)))
    collect(self, out)
    r = reply_ok(res.n, table.unpack(res, 1, res.n)) or { false, res[2], res[3] or "application" }
  end
  s.applied_seq = seq
  s.results[seq] = r
  return r
end

local function keepalive(self, e, out)
  local list = e[3]
  if type(list) ~= "table" then return reply_error("malformed", "malformed keep-alive entry") end
  local unknown = {}
  for _, k in ipairs(list) do
    local id = type(k) == "table" and k[1]
    local s = is_count(id) and self.sessions[id]
    if s and is_count(k[2]) and is_count(k[3]) then
      touch(self, s)
      acknowledge(s, k[2], k[3])
      -- Resend what is not acknowledged: a pushed event may have been lost
      -- with a connection.
      for i = 1, #s.events do
        local ev = s.events[i]
        out[#out + 1] = { s.id, ev[1], ev[2], ev[3] }
      end
    elseif is_count(id) then
      unknown[#unknown + 1] = id
    end
  end
  return { true, unknown }
end

--- Applies one committed entry. Returns the reply and the events to push.
--- With `args` (a command's arguments as codec bytes; e then ends at op),
--- a command's reply is the encoded string (see the top of this file).
---@param index integer
---@param term integer
---@param e table the decoded entry
---@param args string|nil
---@return table|string reply {ok, value[, code]}, or its encoding
---@return table events {{session, seq, name, data}, ...}
function Sessions:apply(index, term, e, args)
  local out = {}
  if type(e) ~= "table" or not is_count(e[1]) or type(e[2]) ~= "string" then
    return reply_error("malformed", "malformed entry"), out
  end
  -- Time never goes back, whatever a new leader's clock says.
  if e[1] > self.time then self.time = e[1] end
  if term > self.term then
    -- A new leader: clients could not reach the cluster during the
    -- election, so every session starts its timeout afresh.
    self.term = term
    for _, s in pairs(self.sessions) do s.seen = self.time end
    self.next_expiry = self.count > 0 and self.time or nil
  end
  expire(self, index, term, out)
  local due = self.machine:next_deadline()
  if due and due <= self.time then
    self.machine:advance({ index = index, term = term, time = self.time })
    collect(self, out)
  end
  local kind = e[2]
  local r
  if kind == "c" or kind == "r" then
    r = command(self, index, term, e, out, args)
  elseif kind == "k" then
    r = keepalive(self, e, out)
  elseif kind == "o" then
    r = open(self, index, term, e, out)
  elseif kind == "x" then
    local s = is_count(e[3]) and self.sessions[e[3]]
    if s then close(self, s, index, term, out) end
    r = { true }
  elseif kind == "t" then
    r = { true }
  else
    r = reply_error("malformed", "unknown entry kind " .. kind)
  end
  -- A queue that overflowed closes its session now, at this index.
  expire(self, index, term, out)
  return r, out
end

--- Runs a query against the machine. Returns {ok, value[, code]}; when
--- `encoded`, args are codec bytes and a success reply comes encoded.
---@param op string
---@param args any
---@param session integer|nil
---@param index integer the index applied when the query runs
---@param encoded boolean|nil
---@return table|string
function Sessions:query(op, args, session, index, encoded)
  local c = { index = index, time = self.time, session = (session and session > 0) and session or nil }
  if encoded then
    local ok, reply, code = self.machine:query_reply(op, args, c)
    return ok and reply or { false, reply, code or "application" }
  end
  local res = table.pack(self.machine:query(op, args, c))
  return reply_ok(res.n, table.unpack(res, 1, res.n)) or { false, res[2], res[3] or "application" }
end

--- True while replicated time must keep moving on an idle cluster: there
--- are sessions to expire or timers to fire.
function Sessions:wants_time()
  return self.count > 0 or self.machine:next_deadline() ~= nil
end

--- Open sessions.
function Sessions:size() return self.count end

--- The unacknowledged events of a session ({{seq, name, data}, ...}; data as
--- bytes with encoded_events), or nil.
function Sessions:events_of(id)
  local s = self.sessions[id]
  return s and s.events
end

-- The sessions' part of the state: a list of records in id order.
local function sessions_part(self)
  local list = {}
  for i, id in ipairs(sorted_ids(self)) do
    local s = self.sessions[id]
    local results = {}
    for seq = s.acked + 1, s.applied_seq do
      local r = s.results[seq]
      -- an encoded reply as the table it encodes (codec: decode then
      -- encode gives the same bytes)
      if type(r) == "string" then r = codec.decode(r) end
      if r then results[#results + 1] = { seq, r } end
    end
    local events = s.events
    if self.encoded_events then -- the data as the values they encode
      events = {}
      for k, ev in ipairs(s.events) do events[k] = { ev[1], ev[2], codec.decode(ev[3]) } end
    end
    list[i] = { s.id, s.timeout, s.seen, s.applied_seq, s.acked, s.event_seq, results, events }
  end
  return list
end

-- The snapshot's bytes before the machine's: what codec.encode({FORMAT,
-- time, term, list, machine}) writes before machine's bytes (an array of
-- 5, its first four elements, the machine's string header), so that a
-- large machine snapshot is written after it without being copied into
-- one string with the rest.
local function snapshot_head(self, list, machine)
  return "\x95" .. codec.encode(M.FORMAT) .. codec.encode(self.time) .. codec.encode(self.term)
    .. codec.encode(list) .. codec.header(machine)
end

--- The whole state as bytes: sessions and the machine's own snapshot.
function Sessions:snapshot()
  local head, machine = self:snapshot_pieces()
  if not head then return nil, machine end
  return head .. machine
end

--- The snapshot in two pieces whose concatenation is snapshot()'s bytes:
--- the sessions' part and the machine's snapshot. With lend, the machine's
--- piece is a codec view of its buffer (no copy), valid until the next
--- call on the machine.
---@param lend? boolean
---@return string|nil head, string|userdata|nil machine
function Sessions:snapshot_pieces(lend)
  local list = sessions_part(self)
  local machine, err = self.machine:snapshot(lend)
  if not machine then return nil, err end
  return snapshot_head(self, list, machine), machine
end

--- The whole state as two byte strings, the sessions' canonical encoding
--- and the machine's snapshot bytes, equal on every replica that applied
--- the same log: what the divergence checks hash (without concatenating).
--- With lend, the machine's piece is a view as for snapshot_pieces.
---@param lend? boolean
---@return string sessions, string|userdata machine
function Sessions:state(lend)
  local machine = assert(self.machine:snapshot(lend))
  return codec.encode({ M.FORMAT, self.time, self.term, sessions_part(self) }), machine
end

--- snapshot_pieces() and state() together, from one call of the machine's
--- snapshot: for a snapshot taken at a check index. The snapshot is head ..
--- machine; the state hashed is sessions .. machine.
---@param lend? boolean
---@return string|nil head, string sessions, string|userdata machine
function Sessions:snapshot_and_state(lend)
  local list = sessions_part(self)
  local machine, err = self.machine:snapshot(lend)
  if not machine then return nil, err end
  return snapshot_head(self, list, machine), codec.encode({ M.FORMAT, self.time, self.term, list }), machine
end

-- The five parts of a snapshot's bytes (a string or a codec view), the
-- machine's as a view of its bytes: decoding the whole would copy the
-- machine's snapshot, as large as the state, into a string first.
local function snapshot_parts(bytes)
  local parts = codec.split(bytes)
  if #parts ~= 5 or codec.decode(parts[1]) ~= M.FORMAT then error("not of this format") end
  return { M.FORMAT, codec.decode(parts[2]), codec.decode(parts[3]), codec.decode(parts[4]), codec.payload(parts[5]) }
end

--- Replaces the state with a snapshot's (bytes: a string or a codec view).
function Sessions:restore(bytes)
  local ok, v = pcall(snapshot_parts, bytes)
  if not ok or type(v[4]) ~= "table" then
    return nil, "not a session snapshot of format " .. M.FORMAT
  end
  local rok, err = self.machine:restore(v[5])
  if not rok then return nil, err end
  self.time, self.term = v[2], v[3]
  self.sessions, self.count, self.next_expiry = {}, 0, nil
  for _, r in ipairs(v[4]) do
    local s = {
      id = r[1], timeout = r[2], seen = r[3], applied_seq = r[4], acked = r[5],
      event_seq = r[6], results = {}, events = r[8] or {},
    }
    for _, pair in ipairs(r[7] or {}) do s.results[pair[1]] = pair[2] end
    if self.encoded_events then
      for k, ev in ipairs(s.events) do s.events[k] = { ev[1], ev[2], codec.encode(ev[3]) } end
    end
    self.sessions[s.id] = s
    self.count = self.count + 1
    local e = s.seen + s.timeout + 1
    if not self.next_expiry or e < self.next_expiry then self.next_expiry = e end
  end
  return true
end

return M
