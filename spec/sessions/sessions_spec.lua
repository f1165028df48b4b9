-- The session layer (lua/copycat/sessions.lua) on a scripted machine: what
-- makes commands exactly-once and in order, sessions expire at the same
-- index everywhere, and events reliable.
local sessions = require("copycat.sessions")
local codec = require("copycat.codec")

-- A machine with the methods the layer calls, recording every call.
local function fake()
  local m = { calls = {}, published = {}, timers = {}, state = { n = 0 } }
  function m:command(op, args, ctx)
    self.calls[#self.calls + 1] = { "command", op, args, ctx.session, ctx.index, ctx.time }
    if op == "fail" then return false, "boom" end
    if op == "multi" then return true, "a", nil, 3 end
    if op == "publish" then
      self.published[#self.published + 1] = { session = args.to, name = args.name, data = args.data }
      return true
    end
    self.state.n = self.state.n + 1
    return true, self.state.n
  end
  function m:query(op, _, ctx)
    return true, { op = op, n = self.state.n, session = ctx.session }
  end
  function m:session_opened(id, ctx)
    self.calls[#self.calls + 1] = { "opened", id, ctx.index }
    return true
  end
  function m:session_closed(id, ctx)
    self.calls[#self.calls + 1] = { "closed", id, ctx.index }
    return true
  end
  function m:events()
    local e = self.published
    self.published = {}
    return e
  end
  function m.advance() return true, 0 end
  function m.next_deadline() return nil end
  function m:snapshot() return codec.encode(self.state) end
  function m:restore(bytes)
    self.state = codec.decode(bytes)
    return true
  end
  return m
end

local function layer()
  local m = fake()
  return sessions.new(m), m
end

local function calls_of(m, kind)
  local out = {}
  for _, c in ipairs(m.calls) do
    if c[1] == kind then out[#out + 1] = c end
  end
  return out
end

describe("sessions", function()
  it("opens a session whose id is its entry's index", function()
    local l, m = layer()
    local r = l:apply(7, 1, { 1000, "o", 5000 })
    assert.same({ true, 7 }, r)
    assert.equal(1, l:size())
    assert.same({ { "opened", 7, 7 } }, calls_of(m, "opened"))
  end)

  it("applies a command once however often it is resent", function()
    local l, m = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    local first = l:apply(2, 1, { 1001, "c", 1, 1, 0, "incr", {} })
    local again = l:apply(3, 1, { 1002, "c", 1, 1, 0, "incr", {} })
    assert.same({ true, 1 }, first)
    assert.same(first, again)
    assert.equal(1, #calls_of(m, "command"))
  end)

  it("refuses a command that skips a sequence number, without applying it", function()
    local l, m = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    local r = l:apply(2, 1, { 1001, "c", 1, 2, 0, "incr", {} })
    assert.is_false(r[1])
    assert.equal("sequence", r[3])
    assert.equal(0, #calls_of(m, "command"))
    -- the missing one, then the refused one again: both apply, in order
    assert.same({ true, 1 }, (l:apply(3, 1, { 1002, "c", 1, 1, 0, "incr", {} })))
    assert.same({ true, 2 }, (l:apply(4, 1, { 1003, "c", 1, 2, 0, "incr", {} })))
  end)

  it("keeps every result a command returns, in order, through a snapshot", function()
    local l = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    local r = l:apply(2, 1, { 1001, "c", 1, 1, 0, "multi", {} })
    assert.is_true(r[1])
    assert.equal("a", r[2])
    assert.is_true(codec.is_array(r[3]))
    assert.is_nil(r[3][1])
    assert.equal(3, r[3][2])
    -- the cached reply survives a snapshot, and a resend gets it whole
    local copy = layer()
    assert.is_true(copy:restore(l:snapshot()))
    local again = copy:apply(3, 1, { 1002, "c", 1, 1, 0, "multi", {} })
    assert.equal("a", again[2])
    assert.is_true(codec.is_array(again[3]))
    assert.equal(3, again[3][2])
    assert.is_nil(again[3][1])
  end)

  it("keeps a failed command's error as its result", function()
    local l = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    local r = l:apply(2, 1, { 1001, "c", 1, 1, 0, "fail", {} })
    assert.same({ false, "boom", "application" }, r)
    assert.same(r, (l:apply(3, 1, { 1002, "c", 1, 1, 0, "fail", {} })))
  end)

  it("drops acknowledged results, and says so if one is asked for again", function()
    local l = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    l:apply(2, 1, { 1001, "c", 1, 1, 0, "incr", {} })
    l:apply(3, 1, { 1002, "c", 1, 2, 1, "incr", {} }) -- acknowledges 1
    local r = l:apply(4, 1, { 1003, "c", 1, 1, 1, "incr", {} })
    assert.equal("lost", r[3])
  end)

  it("refuses commands of a session that is not open", function()
    local l, m = layer()
    local r = l:apply(1, 1, { 1000, "c", 42, 1, 0, "incr", {} })
    assert.same({ false, "session 42 is not open: it expired or was closed", "expired" }, r)
    assert.equal(0, #calls_of(m, "command"))
  end)

  it("expires a silent session once replicated time passes its timeout, and only then", function()
    local l, m = layer()
    l:apply(1, 1, { 1000, "o", 1000 })
    l:apply(2, 1, { 2000, "t" }) -- exactly at the deadline: still open
    assert.equal(1, l:size())
    l:apply(3, 1, { 2001, "t" })
    assert.equal(0, l:size())
    assert.same({ { "closed", 1, 3 } }, calls_of(m, "closed"))
    assert.equal("expired", (l:apply(4, 1, { 2002, "c", 1, 1, 0, "incr", {} }))[3])
  end)

  it("keeps a session alive with keep-alives and commands, and names unknown sessions", function()
    local l = layer()
    l:apply(1, 1, { 1000, "o", 1000 })
    local r = l:apply(2, 1, { 1900, "k", { { 1, 0, 0 }, { 99, 0, 0 } } })
    assert.same({ true, { 99 } }, r)
    l:apply(3, 1, { 2800, "c", 1, 1, 0, "incr", {} })
    l:apply(4, 1, { 3700, "t" })
    assert.equal(1, l:size())
    l:apply(5, 1, { 3801, "t" })
    assert.equal(0, l:size())
  end)

  it("restarts every session's timeout when a new term begins", function()
    local l = layer()
    l:apply(1, 1, { 1000, "o", 1000 })
    l:apply(2, 2, { 5000, "t" }) -- a new leader, long after: no expiry
    assert.equal(1, l:size())
    l:apply(3, 2, { 6001, "t" })
    assert.equal(0, l:size())
  end)

  it("never lets time go back", function()
    local l, m = layer()
    l:apply(1, 1, { 5000, "o", 1000 })
    l:apply(2, 1, { 100, "c", 1, 1, 0, "incr", {} })
    assert.equal(5000, calls_of(m, "command")[1][6])
  end)

  it("closes a session on request and calls session_closed once", function()
    local l, m = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    assert.same({ true }, (l:apply(2, 1, { 1001, "x", 1 })))
    assert.same({ true }, (l:apply(3, 1, { 1002, "x", 1 })))
    assert.equal(1, #calls_of(m, "closed"))
    assert.equal(0, l:size())
  end)

  it("numbers events per session, returns them to push, and resends the unacknowledged", function()
    local l = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    l:apply(2, 1, { 1000, "o", 5000 })
    local _, ev = l:apply(3, 1, { 1001, "c", 1, 1, 0, "publish", { to = 2, name = "hi", data = { x = 1 } } })
    assert.same({ { 2, 1, "hi", { x = 1 } } }, ev)
    _, ev = l:apply(4, 1, { 1002, "c", 1, 2, 1, "publish", { to = 2, name = "hi", data = 2 } })
    assert.same({ { 2, 2, "hi", 2 } }, ev)
    -- a keep-alive acknowledging event 1 brings event 2 again
    _, ev = l:apply(5, 1, { 1003, "k", { { 2, 0, 1 } } })
    assert.same({ { 2, 2, "hi", 2 } }, ev)
    _, ev = l:apply(6, 1, { 1004, "k", { { 2, 0, 2 } } })
    assert.same({}, ev)
    assert.same({}, l:events_of(2))
  end)

  it("drops events for sessions that are not open", function()
    local l = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    local _, ev = l:apply(2, 1, { 1001, "c", 1, 1, 0, "publish", { to = 77, name = "x" } })
    assert.same({}, ev)
  end)

  it("closes a session whose unacknowledged events exceed the bound", function()
    local saved = sessions.MAX_EVENTS
    sessions.MAX_EVENTS = 3
    local l, m = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    for i = 1, 4 do
      l:apply(1 + i, 1, { 1000 + i, "c", 1, i, 0, "publish", { to = 1, name = "e", data = i } })
    end
    sessions.MAX_EVENTS = saved
    assert.equal(0, l:size())
    assert.same({ { "closed", 1, 5 } }, calls_of(m, "closed"))
  end)

  it("pushes back when a client does not acknowledge results", function()
    local saved = sessions.MAX_RESULTS
    sessions.MAX_RESULTS = 2
    local l, m = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    l:apply(2, 1, { 1001, "c", 1, 1, 0, "incr", {} })
    l:apply(3, 1, { 1002, "c", 1, 2, 0, "incr", {} })
    local r = l:apply(4, 1, { 1003, "c", 1, 3, 0, "incr", {} })
    local ok = l:apply(5, 1, { 1004, "c", 1, 3, 2, "incr", {} }) -- acknowledges 1 and 2
    sessions.MAX_RESULTS = saved
    assert.equal("busy", r[3])
    assert.same({ true, 3 }, ok)
    assert.equal(3, #calls_of(m, "command"))
  end)

  it("refuses to open more than MAX_SESSIONS sessions, and opens again once one is closed", function()
    local saved = sessions.MAX_SESSIONS
    sessions.MAX_SESSIONS = 2
    local l = layer()
    local a = l:apply(1, 1, { 1000, "o", 5000 })
    local b = l:apply(2, 1, { 1001, "o", 5000 })
    local refused = l:apply(3, 1, { 1002, "o", 5000 })
    local closed = l:apply(4, 1, { 1003, "x", 1 })
    local again = l:apply(5, 1, { 1004, "o", 5000 })
    sessions.MAX_SESSIONS = saved
    assert.same({ true, 1 }, a)
    assert.same({ true, 2 }, b)
    assert.is_false(refused[1])
    assert.equal("busy", refused[3])
    assert.matches("too many open sessions %(2%)", refused[2])
    assert.is_true(closed[1])
    assert.same({ true, 5 }, again)
    assert.equal(2, l:size())
  end)

  it("a refused command uses up its sequence number with the leader's message, and is not applied", function()
    local l, m = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    local refused = l:apply(2, 1, { 1001, "r", 1, 1, 0, "request too large" })
    local next_one = l:apply(3, 1, { 1002, "c", 1, 2, 0, "incr", {} })
    local resent = l:apply(4, 1, { 1003, "r", 1, 1, 0, "request too large" })
    assert.same({ false, "request too large", "refused" }, refused)
    assert.is_true(next_one[1])
    assert.same(refused, resent)
    assert.equal(1, #calls_of(m, "command"))
  end)

  it("answers malformed entries with an error and changes nothing", function()
    local l, m = layer()
    for i, e in ipairs({ "x", {}, { "t" }, { 1, 2 }, { 1, "zz" }, { 1, "c", "a" }, { 1, "o", -5 },
      { 1, "k", "no" }, { 1, "c", 1, 1, 0, 5 } }) do
      local r = l:apply(i, 1, e)
      assert.is_false(r[1], "entry " .. i)
      assert.equal("malformed", r[3] or "malformed", "entry " .. i)
    end
    assert.equal(0, #m.calls)
    assert.equal(0, l:size())
  end)

  it("gives identical snapshots for identical logs, and restores to the same behaviour", function()
    local log = {
      { 1000, "o", 3000 }, { 1001, "o", 1000 },
      { 1002, "c", 1, 1, 0, "incr", {} }, { 1003, "c", 2, 1, 0, "publish", { to = 1, name = "n", data = "d" } },
      { 1004, "c", 1, 2, 0, "incr", {} }, { 1500, "k", { { 1, 1, 0 } } },
    }
    local a, b = layer(), layer()
    for i, e in ipairs(log) do
      a:apply(i, 1, e)
      b:apply(i, 1, e)
    end
    local snap = assert(a:snapshot())
    assert.equal(snap, b:snapshot())
    local c = layer()
    assert.is_true(c:restore(snap))
    assert.equal(snap, c:snapshot())
    -- the restored layer answers a resend from its cache and expires on time
    local resend = { 1600, "c", 1, 2, 0, "incr", {} }
    assert.same((a:apply(7, 1, resend)), (c:apply(7, 1, resend)))
    local _, ea = a:apply(8, 1, { 2100, "t" })
    local _, ec = c:apply(8, 1, { 2100, "t" })
    assert.same(ea, ec)
    assert.equal(a:size(), c:size())
    assert.equal(1, c:size()) -- session 2 expired at 2002+, session 1 kept alive at 1600
  end)

  it("refuses a snapshot of another format", function()
    local l = layer()
    local ok, err = l:restore(codec.encode({ 99 }))
    assert.is_nil(ok)
    assert.matches("format", err)
    assert.is_nil((l:restore("\xc1garbage")))
  end)

  it("asks for replicated time only while something depends on it", function()
    local l = layer()
    assert.is_false(l:wants_time())
    l:apply(1, 1, { 1000, "o", 5000 })
    assert.is_true(l:wants_time())
  end)
end)
