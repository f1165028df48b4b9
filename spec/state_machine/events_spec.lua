-- Session handles and the events state machines publish (machine:events).
local h = require("state_machine.helper")
local codec = require("copycat.codec")

local body = [[
  local waiters = {}
  function sm.commands.say(c) c.session:publish("said", c.args) return "ok" end
  function sm.commands.tell(c)
    for _, e in ipairs(c.args) do sm.session(e[1]):publish(e[2], e[3]) end
  end
  function sm.commands.publish_then_fail(c)
    c.session:publish("before", 1)
    sm.session(9):publish("other", { x = 1 })
    error("failed after publishing", 0)
  end
  function sm.commands.publish_then_spin(c)
    c.session:publish("before", 1)
    while true do end
  end
  function sm.commands.bad(c) c.session:publish(c.args.name, c.args.data) end
  function sm.commands.bad_data(c)
    local ok, err = pcall(c.session.publish, c.session, "e", print)
    c.session:publish("caught", err)
    return ok
  end
  function sm.commands.bad_id(c) sm.session(c.args) end
  function sm.commands.forged(c) local s = sm.session(1) s.id = c.args s:publish("x") end
  function sm.commands.plain_call(c) c.session.publish("x") end
  function sm.commands.handle(c)
    local s = c.session
    return type(s), s.id, getmetatable(s), tostring(sm.session(5)), sm.session(5) == sm.session(5)
  end
  -- A lock: the holder is a session id (the integer, not the handle).
  local holder
  function sm.commands.lock(c)
    if holder == nil then holder = c.session.id return true end
    waiters[#waiters + 1] = c.session.id
    return false
  end
  function sm.commands.unlock(c)
    if holder ~= c.session.id then error("not the holder", 0) end
    holder = table.remove(waiters, 1)
    if holder then sm.session(holder):publish("locked", { by = holder }) end
  end
  function sm.queries.q(q) q.session:publish("nope", 1) end
  function sm.queries.q_other() sm.session(3):publish("nope", 1) end
  function sm.queries.q_handle(q) return q.session.id end
  function sm.session_opened(s, c) s:publish("welcome", c.time) end
  function sm.session_closed(s, c)
    s:publish("bye", c.time)
    for _, w in ipairs(waiters) do sm.session(w):publish("closed", s.id) end
  end
  function sm.snapshot() return { holder = holder, waiters = waiters } end
  function sm.restore(s) holder, waiters = s.holder, s.waiters end
]]

-- Errors raised by publish and sm.session carry the caller's position.
local function strip(msg) return (msg:gsub("^t:%d+: ", "")) end

local function ctx(session, index)
  local c = h.ctx(index)
  c.session = session
  return c
end

describe("session events", function()
  it("publishes to the calling session and to others, in order; events() drains", function()
    local m = h.machine(body)
    assert.are.same({}, m:events())
    assert.are.equal("ok", h.ok(m, "say", { n = 1 }, ctx(7)))
    h.ok(m, "tell", { { 3, "a", "x" }, { 7, "b", nil }, { 3, "c", { 1, 2 } } }, ctx(7))
    assert.are.equal("ok", h.ok(m, "say", "again", ctx(8)))
    assert.are.same({
      { session = 7, name = "said", data = { n = 1 } },
      { session = 3, name = "a", data = "x" },
      { session = 7, name = "b" },
      { session = 3, name = "c", data = { 1, 2 } },
      { session = 8, name = "said", data = "again" },
    }, m:events())
    assert.are.same({}, m:events())
  end)

  it("copies events out: the host gets fresh tables, decoded from codec bytes", function()
    local m = h.machine([[
      local shared = { n = 1 }
      function sm.commands.pub(c) c.session:publish("e", shared) shared.n = shared.n + 1 end
    ]])
    h.ok(m, "pub", nil, ctx(1))
    h.ok(m, "pub", nil, ctx(1))
    local ev = m:events()
    -- The data is what it was when published, not what the table became.
    assert.are.same({ { n = 1 }, { n = 2 } }, { ev[1].data, ev[2].data })
    assert.are_not.equal(ev[1].data, ev[2].data)
  end)

  it("hands the data over as its codec bytes with events(true)", function()
    local m = h.machine(body)
    h.ok(m, "tell", { { 3, "a", "x" }, { 7, "b", nil }, { 3, "c", { 1, 2, { k = 1.5 } } } }, ctx(7))
    assert.are.same({
      { session = 3, name = "a", data = codec.encode("x") },
      { session = 7, name = "b", data = codec.encode(nil) },
      { session = 3, name = "c", data = codec.encode({ 1, 2, { k = 1.5 } }) },
    }, m:events(true))
    assert.are.same({}, m:events(true))
    assert.are.same({}, m:events())
  end)

  it("keeps the events of a handler that failed, as it keeps its state changes", function()
    local m = h.machine(body, { budget = 20000 })
    assert.are.equal("failed after publishing", h.fails(m, "publish_then_fail", nil, ctx(4)))
    assert.are.equal("instruction budget exceeded (20000 instructions)", h.fails(m, "publish_then_spin", nil, ctx(5)))
    assert.are.same({
      { session = 4, name = "before", data = 1 },
      { session = 9, name = "other", data = { x = 1 } },
      { session = 5, name = "before", data = 1 },
    }, m:events())
  end)

  it("refuses to publish from queries", function()
    local m = h.machine(body)
    assert.are.same({ false, "t:41: publish is not allowed in a query" }, { m:query("q", nil, { session = 2 }) })
    assert.are.same({ false, "t:42: publish is not allowed in a query" }, { m:query("q_other") })
    assert.are.same({ true, 2 }, { m:query("q_handle", nil, { session = 2 }) })
    assert.are.same({}, m:events())
  end)

  it("refuses to publish while loading, in sm.snapshot and in sm.restore", function()
    local state_machine = require("copycat.state_machine")
    local _, err = state_machine.load("local sm = state_machine() sm.session(1):publish('x') return sm",
      { source = true, name = "t" })
    assert.are.equal("t:1: publish is not allowed while the file loads", err)
    local m = h.machine([[
      function sm.snapshot() sm.session(1):publish("x") end
      function sm.restore() sm.session(1):publish("x") end
    ]])
    assert.are.same({ nil, "t:2: publish is not allowed in sm.snapshot" }, { m:snapshot() })
    assert.are.same({ nil, "t:3: publish is not allowed in sm.restore" }, { m:restore(h.snapshot_bytes(1)) })
  end)

  it("checks names, data and session ids with ordinary errors", function()
    local m = h.machine(body)
    local function fails(op, args, c) return strip(h.fails(m, op, args, c or ctx(1))) end
    assert.are.equal("t:16: publish: the event name must be a non-empty string (got an empty string)",
      h.fails(m, "bad", { name = "" }, ctx(1)))
    assert.are.equal("publish: the event name must be a non-empty string (got number)", fails("bad", { name = 5 }))
    assert.are.equal("publish: the event name must be a non-empty string (got nil)", fails("bad", {}))
    -- Bad data is caught by pcall like any error; nothing was published.
    assert.is_false(h.ok(m, "bad_data", nil, ctx(1)))
    assert.are.same({ { session = 1, name = "caught",
      data = "publish: cannot encode the event data (cannot encode a function at value)" } }, m:events())
    assert.are.equal("sm.session: the session id must be an integer > 0 (got a number out of range)",
      fails("bad_id", 0))
    assert.are.equal("sm.session: the session id must be an integer > 0 (got a number out of range)",
      fails("bad_id", 1.5))
    assert.are.equal("sm.session: the session id must be an integer > 0 (got string)", fails("bad_id", "1"))
    assert.are.equal("publish: the session id must be an integer > 0 (got string)", fails("forged", "x"))
    assert.are.equal("publish: call it as a method, session:publish(name, data)", fails("plain_call"))
    assert.are.same({}, m:events())
  end)

  it("gives handles as plain tables with a shared, protected metatable", function()
    local m = h.machine(body)
    assert.are.same({ "table", 6, "session", "session 5", false }, { h.ok(m, "handle", nil, ctx(6)) })
    -- An id that is a float with an integer value is sent as the integer.
    h.ok(m, "tell", { { 2.0, "e" } }, ctx(1))
    h.ok(m, "forged", 3.0, ctx(1))
    local ev = m:events()
    assert.are.same({ { session = 2, name = "e" }, { session = 3, name = "x" } }, ev)
    assert.are.equal("integer", math.type(ev[1].session))
    assert.are.equal("integer", math.type(ev[2].session))
  end)

  it("passes handles to session_opened and session_closed, which may publish", function()
    local m = h.machine(body)
    assert.is_true(m:session_opened(11, { index = 1, term = 1, time = 100 }))
    h.ok(m, "lock", nil, ctx(11))
    assert.is_false(h.ok(m, "lock", nil, ctx(12)))
    assert.is_false(h.ok(m, "lock", nil, ctx(13)))
    h.ok(m, "unlock", nil, ctx(11))
    assert.is_true(m:session_closed(12, { index = 9, term = 1, time = 900 }))
    assert.are.same({
      { session = 11, name = "welcome", data = 100 },
      { session = 12, name = "locked", data = { by = 12 } },
      { session = 12, name = "bye", data = 900 },
      { session = 13, name = "closed", data = 12 },
    }, m:events())
  end)

  it("keeps the events buffer across snapshot and restore (it is not state)", function()
    local m = h.machine(body)
    h.ok(m, "say", 1, ctx(1))
    local bytes = assert(m:snapshot())
    assert.is_true(m:restore(bytes))
    assert.are.same({ { session = 1, name = "said", data = 1 } }, m:events())
    -- The handle is not in the snapshot: the state holds integers.
    h.ok(m, "lock", nil, ctx(2))
    assert.are.same({ 1, { holder = 2, waiters = {} }, 0, {} }, codec.decode(assert(m:snapshot())))
  end)

  it("charges encoding big event data against the budget", function()
    local m = h.machine([[
      function sm.commands.big(c) local s = string.rep("x", c.args) for _ = 1, 20 do c.session:publish("e", s) end end
    ]], { budget = 100000 })
    assert.are.equal("instruction budget exceeded (100000 instructions)", h.fails(m, "big", 1000000, ctx(1)))
    m:events()
    h.ok(m, "big", 1000, ctx(1))
    assert.are.equal(20, #m:events())
  end)
end)
