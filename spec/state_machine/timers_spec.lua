-- Replicated timers: sm.schedule, sm.cancel, machine:advance,
-- machine:next_deadline, and timers in snapshots.
local h = require("state_machine.helper")
local codec = require("copycat.codec")
local state_machine = require("copycat.state_machine")

-- A machine whose timers record what they saw in `log` (read by the "log"
-- query) and publish "fired" to session 1.
local body = [=[
  local log = {}
  sm.timers = {}
  function sm.timers.note(t, ...)
    log[#log + 1] = { t.id, t.name, t.deadline, t.time, t.index, t.term, select("#", ...), ... }
    sm.session(1):publish("fired", t.id)
  end
  function sm.timers.chain(t, n, delay)
    log[#log + 1] = { t.id, "chain", n, t.time }
    if n > 1 then sm.schedule(delay, sm.timers.chain, n - 1, delay) end
  end
  function sm.timers.forever(t) sm.schedule(0, sm.timers.forever) end
  function sm.timers.fail(t, msg) log[#log + 1] = { t.id, "fail" } error(msg, 0) end
  function sm.timers.spin(t, n) local x = 0 for i = 1, n do x = x + i end log[#log + 1] = { t.id, "spin" } end
  function sm.timers.random(t) log[#log + 1] = { t.id, math.random(1000000) } end
  function sm.commands.at(c)
    local ids = {}
    for i, e in ipairs(c.args) do ids[i] = sm.schedule(e[1], sm.timers[e[2]], table.unpack(e, 3, e.n or #e)) end
    return ids
  end
  function sm.commands.cancel(c) return sm.cancel(c.args) end
  function sm.commands.schedule_print() return sm.schedule(1, print) end
  function sm.commands.schedule_local() return sm.schedule(1, function() end) end
  function sm.commands.schedule_bad(c) return sm.schedule(c.args.delay, sm.timers.note, c.args.arg) end
  function sm.commands.unset() sm.timers.note = nil end
  function sm.queries.log() return log end
  function sm.queries.schedule() return sm.schedule(1, sm.timers.note) end
  function sm.queries.cancel() return sm.cancel(1) end
  function sm.snapshot() return log end
  function sm.restore(s) log = s end
]=]

local function at(time, index)
  return { index = index or time, term = 1, time = time }
end

local function log(m) return select(2, m:query("log")) end

describe("timers", function()
  it("fire in (deadline, id) order once advance reaches their deadline", function()
    local m = h.machine(body)
    assert.are.same({ 1, 2, 3, 4 }, h.ok(m, "at", {
      { 30, "note", "c" }, { 10, "note", "a" }, { 30, "note", "d" }, { 20, "note", "b", { x = 1 } },
    }, at(100)))
    assert.are.equal(110, m:next_deadline())
    assert.are.same({ true, 0 }, { m:advance(at(109)) })
    assert.are.same({ true, 2 }, { m:advance({ index = 7, term = 3, time = 120 }) })
    assert.are.same({ { 2, "note", 110, 120, 7, 3, 1, "a" }, { 4, "note", 120, 120, 7, 3, 2, "b", { x = 1 } } }, log(m))
    assert.are.equal(130, m:next_deadline())
    assert.are.same({ true, 2 }, { m:advance(at(1000)) })
    assert.are.same({ 1, 3 }, { log(m)[3][1], log(m)[4][1] })
    assert.is_nil(m:next_deadline())
    assert.are.same({ true, 0 }, { m:advance(at(2000)) })
    assert.are.same({ 2, 4, 1, 3 }, (function()
      local ids = {}
      for i, e in ipairs(m:events()) do ids[i] = e.data end
      return ids
    end)())
  end)

  it("keep arguments as they were when scheduled, nils included", function()
    local m = h.machine(body .. [[
      function sm.commands.mutating()
        local t = { n = 1 }
        sm.schedule(0, sm.timers.note, t, nil, nil)
        t.n = 2
      end
    ]])
    h.ok(m, "mutating", nil, at(5))
    assert.is_true(m:advance(at(5)))
    assert.are.same({ { 1, "note", 5, 5, 5, 1, 3, { n = 1 } } }, log(m))
  end)

  it("count deadlines from the call's time, integer or float", function()
    local m = h.machine(body)
    h.ok(m, "at", { { 1, "note" } }, at(5.5, 1))
    h.ok(m, "at", { { 0.25, "note" } }, at(6))
    assert.are.equal(6.25, m:next_deadline())
    assert.are.same({ true, 2 }, { m:advance(at(7)) })
    assert.are.same({ 2, 6.25 }, { log(m)[1][1], log(m)[1][3] })
    assert.are.same({ 1, 6.5 }, { log(m)[2][1], log(m)[2][3] })
    assert.are.equal("integer", math.type(log(m)[1][4]))
  end)

  it("can be cancelled", function()
    local m = h.machine(body)
    h.ok(m, "at", { { 10, "note" }, { 20, "note" } }, at(0))
    assert.is_true(h.ok(m, "cancel", 1))
    assert.is_false(h.ok(m, "cancel", 1))
    assert.is_false(h.ok(m, "cancel", 99))
    assert.are.equal(20, m:next_deadline())
    assert.are.same({ true, 1 }, { m:advance(at(100)) })
    assert.are.equal(2, log(m)[1][1])
    assert.is_false(h.ok(m, "cancel", 2)) -- fired: no longer pending
  end)

  it("may schedule timers, which fire in the same advance when already due", function()
    local m = h.machine(body)
    -- Chains of 3 links: delay 0 (each link due at once), delay 5 (not due).
    h.ok(m, "at", { { 0, "chain", 3, 0 }, { 12, "note" }, { 1, "chain", 3, 5 } }, at(0))
    assert.are.same({ true, 5 }, { m:advance(at(12)) })
    -- Deadlines 0 (id 1), 1 (id 3), 12 (id 2), then the links scheduled at
    -- time 12: 12 + 0 (id 4), 12 + 5 = 17 (id 5, not due), 12 + 0 (id 6).
    assert.are.same({
      { 1, "chain", 3, 12 }, { 3, "chain", 3, 12 }, { 2, "note", 12, 12, 12, 1, 0 }, { 4, "chain", 2, 12 },
      { 6, "chain", 1, 12 },
    }, log(m))
    assert.are.equal(17, m:next_deadline())
  end)

  it("stop after MAX_TIMER_FIRINGS firings in one advance and leave the rest", function()
    assert.are.equal(10000, state_machine.MAX_TIMER_FIRINGS)
    local m = h.machine(body)
    h.ok(m, "at", { { 0, "forever" } }, at(1))
    assert.are.same({ true, 10000 }, { m:advance(at(1)) })
    assert.are.equal(1, m:next_deadline())
    assert.are.same({ true, 10000 }, { m:advance(at(2)) })
    assert.are.equal(2, m:next_deadline())
  end)

  it("report the first failing timer and still fire the others", function()
    local m = h.machine(body, { budget = 50000 })
    h.ok(m, "at", {
      { 1, "note" }, { 2, "fail", "first" }, { 3, "spin", 1000000 }, { 4, "fail", "second" }, { 5, "spin", 5000 },
    }, at(0))
    assert.are.same({ false, "timer 'fail' (id 2): first", 5 }, { m:advance(at(10)) })
    assert.are.same({ { 1, "note", 1, 10, 10, 1, 0 }, { 2, "fail" }, { 4, "fail" }, { 5, "spin" } }, log(m))
    -- Failed timers are consumed.
    assert.is_nil(m:next_deadline())
    h.ok(m, "at", { { 1, "spin", 1000000 } }, at(20))
    assert.are.same({ false, "timer 'spin' (id 6): instruction budget exceeded (50000 instructions)", 1 },
      { m:advance(at(30)) })
  end)

  it("give every timer its own budget", function()
    local m = h.machine(body, { budget = 100000 })
    -- Each spin of 20000 iterations uses about half of the budget.
    h.ok(m, "at", { { 1, "spin", 20000 }, { 1, "spin", 20000 }, { 1, "spin", 20000 } }, at(0))
    assert.are.same({ true, 3 }, { m:advance(at(1)) })
    assert.is_true(m:cost() > 100000)
  end)

  it("seed math.random from the entry and the timer id", function()
    local m = h.machine(body)
    h.ok(m, "at", { { 1, "random" }, { 1, "random" } }, at(0))
    m:advance(at(5))
    local l = log(m)
    assert.are_not.equal(l[1][2], l[2][2])
    local again = h.machine(body)
    h.ok(again, "at", { { 1, "random" }, { 1, "random" } }, at(0))
    again:advance(at(5))
    assert.are.same(l, log(again))
  end)

  it("must be functions of sm.timers, scheduled with an encodable arguments and a time", function()
    local m = h.machine(body)
    local function fails(op, args, c) return (h.fails(m, op, args, c or at(1)):gsub("^t:%d+: ", "")) end
    local msg = "sm.schedule: the function must be one of sm.timers (timers must survive snapshots)"
    assert.are.equal(msg, fails("schedule_print"))
    assert.are.equal(msg, fails("schedule_local"))
    assert.are.equal("sm.schedule: the function must be one of sm.timers (got nil)", fails("at", { { 1, "nope" } }))
    assert.are.equal("sm.schedule: delay_ms must be a number >= 0 (got a negative number or NaN)",
      fails("schedule_bad", { delay = -1 }))
    assert.are.equal("sm.schedule: delay_ms must be a number >= 0 (got string)", fails("schedule_bad", { delay = "1" }))
    assert.are.equal("sm.schedule: delay_ms must be a number >= 0 (got nil)", fails("schedule_bad", {}))
    assert.are.equal("sm.schedule: the deadline is out of range",
      fails("schedule_bad", { delay = math.maxinteger }, at(10)))
    assert.are.equal("sm.schedule: the deadline is not a finite number",
      fails("schedule_bad", { delay = math.huge }))
    assert.are.equal("sm.schedule: this call has no time (ctx.time), so there is no deadline to count from",
      fails("schedule_bad", { delay = 1 }, { index = 1, term = 1 }))
    -- A failed attempt uses no id; 1.5 is a fine delay.
    assert.are.same({ true, 1 }, { m:command("schedule_bad", { delay = 1.5, arg = 1 }, at(1)) })
    assert.are.equal(2.5, m:next_deadline())
    assert.is_true(h.ok(m, "cancel", 1))
    -- Arguments that cannot be encoded: checked when scheduling.
    local bad = h.machine([[
      sm.timers = { f = function() end }
      function sm.commands.s() return sm.schedule(1, sm.timers.f, 1, { print }) end
    ]])
    assert.are.equal("sm.schedule: timer argument 2 cannot be encoded (cannot encode a function at value[1])",
      (h.fails(bad, "s", nil, at(1)):gsub("^t:%d+: ", "")))
    assert.is_nil(bad:next_deadline())
    -- A timer whose function left sm.timers fails when it fires.
    h.ok(m, "at", { { 1, "note" } }, at(1))
    h.ok(m, "unset", nil, at(1))
    assert.are.same({ false, "timer 'note' (id 2): timer 'note' is not one of sm.timers any more", 1 },
      { m:advance(at(2)) })
  end)

  it("may not be scheduled or cancelled by queries, while loading, or in snapshot and restore", function()
    local m = h.machine(body)
    assert.are.same({ false, "t:27: sm.schedule is not allowed in a query" }, { m:query("schedule") })
    assert.are.same({ false, "t:28: sm.cancel is not allowed in a query" }, { m:query("cancel") })
    local _, err = state_machine.load([[
      local sm = state_machine()
      sm.timers = { f = function() end }
      sm.schedule(1, sm.timers.f)
      return sm
    ]], { source = true, name = "t" })
    assert.are.equal("t:3: sm.schedule is not allowed while the file loads", err)
    local s = h.machine([[
      sm.timers = { f = function() end }
      function sm.snapshot() sm.schedule(1, sm.timers.f) end
      function sm.restore() sm.cancel(1) end
    ]])
    assert.are.same({ nil, "t:3: sm.schedule is not allowed in sm.snapshot" }, { s:snapshot() })
    assert.are.same({ nil, "t:4: sm.cancel is not allowed in sm.restore" }, { s:restore(h.snapshot_bytes(1)) })
  end)

  it("may be scheduled by session_opened and session_closed", function()
    local m = h.machine([[
      local seen = {}
      sm.timers = { expire = function(t, id) seen[#seen + 1] = { id, t.time } end }
      function sm.session_opened(s) sm.schedule(10, sm.timers.expire, s.id) end
      function sm.session_closed(s) sm.schedule(0, sm.timers.expire, -s.id) end
      function sm.queries.seen() return seen end
    ]])
    assert.is_true(m:session_opened(4, at(100)))
    assert.is_true(m:session_closed(5, at(101)))
    assert.are.same({ true, 2 }, { m:advance(at(110)) })
    assert.are.same({ true, { { -5, 110 }, { 4, 110 } } }, { m:query("seen") })
  end)

  it("check advance's context", function()
    local m = h.machine(body)
    assert.has_error(function() m:advance({ index = 1, term = 1 }) end,
      "ctx.time is required (a number of milliseconds)")
    assert.has_error(function() m:advance({ term = 1, time = 1 }) end, "ctx.index is required (an integer >= 0)")
    assert.has_error(function() m:advance() end)
  end)

  it("fire in (deadline, id) order across many schedules and cancels", function()
    local m = h.machine([[
      local order = {}
      sm.timers = { f = function(t) order[#order + 1] = t.id end }
      function sm.commands.add(c)
        for _, d in ipairs(c.args) do sm.schedule(d, sm.timers.f) end
      end
      function sm.commands.cancel(c) for _, id in ipairs(c.args) do assert(sm.cancel(id)) end end
      function sm.queries.order() return order end
    ]])
    -- A model: the same deadlines, ordered in the host.
    local x, deadlines, cancelled, keep = 7, {}, {}, {}
    local function rand(n)
      x = (x * 1103515245 + 12345) % 2147483648
      return x % n
    end
    for i = 1, 3000 do deadlines[i] = rand(500) end
    h.ok(m, "add", deadlines, at(0))
    for i = 1, 3000 do
      if rand(3) > 0 then cancelled[#cancelled + 1] = i else keep[#keep + 1] = i end
    end
    h.ok(m, "cancel", cancelled, at(0))
    table.sort(keep, function(a, b)
      if deadlines[a] ~= deadlines[b] then return deadlines[a] < deadlines[b] end
      return a < b
    end)
    assert.are.same({ true, #keep }, { m:advance(at(1000)) })
    assert.are.same({ true, keep }, { m:query("order") })
  end)
end)

describe("timers in snapshots", function()
  local function feed(m)
    h.ok(m, "at", { { 10, "note", "a" }, { 5, "chain", 3, 7 }, { 30, "note", { deep = { 1.5, "x" } } } }, at(0))
    h.ok(m, "at", { { 2.5, "note" }, { 40, "fail", "late" } }, at(3))
    h.ok(m, "cancel", 1, at(4))
    m:advance(at(6))
  end

  it("carry pending timers and the id counter; a restored machine fires the same timers", function()
    local a = h.machine(body)
    feed(a)
    local bytes = assert(a:snapshot())
    local decoded = codec.decode(bytes)
    assert.are.same({ 1, log(a), 6 }, { decoded[1], decoded[2], decoded[3] })
    assert.are.same({
      { 3, 30, "note", { { deep = { 1.5, "x" } } } },
      { 5, 43, "fail", { "late" } },
      { 6, 13, "chain", { 2, 7 } },
    }, decoded[4])
    local b = h.machine(body)
    assert.is_true(b:restore(bytes))
    assert.are.equal(bytes, b:snapshot())
    assert.are.equal(a:next_deadline(), b:next_deadline())
    a:events()
    for _, m in ipairs({ a, b }) do
      -- The chain (id 6, due at 13) schedules its last link (id 7, due at
      -- 107); then ids 3 and 5 fire.
      assert.are.same({ false, "timer 'fail' (id 5): late", 3 }, { m:advance(at(100)) })
      h.ok(m, "at", { { 1, "note" } }, at(101))
    end
    assert.are.same(log(a), log(b))
    assert.are.same(a:events(), b:events())
    assert.are.equal(a:snapshot(), b:snapshot())
    assert.are.equal(8, codec.decode(a:snapshot())[3])
  end)

  it("cost the same on a restored machine as on the one that built them", function()
    local src = [[
      sm.timers = { f = function() end }
      function sm.commands.add(c) for i = 1, c.args do sm.schedule(i, sm.timers.f) end end
      function sm.commands.cancel(c) for id = c.args[1], c.args[2] do sm.cancel(id) end end
    ]]
    local a, b = h.machine(src), h.machine(src)
    h.ok(a, "add", 4000, at(0))
    h.ok(a, "cancel", { 1, 1000 }, at(0)) -- leaves cancelled entries in a's heap
    assert.is_true(b:restore(assert(a:snapshot())))
    local costs = {}
    for i, m in ipairs({ a, b }) do
      h.ok(m, "cancel", { 1001, 3000 }, at(1))
      costs[i] = m:cost()
    end
    assert.are.equal(costs[1], costs[2])
    assert.are.equal(a:snapshot(), b:snapshot())
  end)

  it("replace the timers of the machine restored into", function()
    local a, b = h.machine(body), h.machine(body)
    h.ok(a, "at", { { 50, "note", "from a" } }, at(0))
    h.ok(b, "at", { { 1, "note", "from b" }, { 2, "note" } }, at(0))
    assert.is_true(b:restore(assert(a:snapshot())))
    assert.are.equal(50, b:next_deadline())
    assert.are.same({ true, 1 }, { b:advance(at(60)) })
    assert.are.same({ "from a" }, { log(b)[1][8] })
  end)

  it("are snapshotted for a machine with sm.timers but no snapshot/restore", function()
    local src = [[
      sm.timers = { hello = function(t, who) sm.session(1):publish("hello", who) end }
      function sm.commands.later(c) return sm.schedule(c.args.delay, sm.timers.hello, c.args.who) end
    ]]
    local a = h.machine(src)
    h.ok(a, "later", { delay = 10, who = "x" }, at(0))
    local bytes = assert(a:snapshot())
    assert.are.same({ 1, nil, 1, { { 1, 10, "hello", { "x" } } } }, codec.decode(bytes))
    local b = h.machine(src)
    assert.is_true(b:restore(bytes))
    assert.are.same({ true, 1 }, { b:advance(at(10)) })
    assert.are.same({ { session = 1, name = "hello", data = "x" } }, b:events())
    assert.are.same({ nil, "the state machine has no sm.restore" }, { b:restore(h.snapshot_bytes({ x = 1 })) })
  end)

  it("are checked on restore", function()
    local m = h.machine(body)
    local function restore(counter, timers)
      return select(2, m:restore(h.snapshot_bytes({}, counter, timers)))
    end
    assert.are.equal("cannot restore the timers: timer 1 calls 'nope', which is not one of sm.timers",
      restore(1, { { 1, 10, "nope", {} } }))
    assert.are.equal("cannot restore the timers: timer 2 has no name",
      restore(2, { { 2, 10, 5, {} } }))
    assert.are.equal("cannot restore the timers: timer ids must increase and not exceed the timer counter",
      restore(1, { { 2, 10, "note", {} } }))
    assert.are.equal("cannot restore the timers: timer ids must increase and not exceed the timer counter",
      restore(5, { { 2, 10, "note", {} }, { 2, 10, "note", {} } }))
    assert.are.equal("cannot restore the timers: timer 1 has no deadline", restore(1, { { 1, "x", "note", {} } }))
    assert.are.equal("cannot restore the timers: the timer counter is not an integer >= 0", restore(-1, {}))
    local map_args = codec.array({ 1, 10, "note", codec.map({}) })
    assert.are.equal("cannot restore the timers: a timer's arguments is not an array",
      select(2, m:restore(codec.encode(codec.array({ 1, {}, 1, codec.array({ map_args }) })))))
    local bytes = codec.encode(codec.array({ 1, {}, 1, { { 1, 2, 3 } } }))
    assert.are.equal("cannot restore the timers: a timer is not an array of 4 values", select(2, m:restore(bytes)))
    -- A failing sm.restore leaves the timers as they were.
    local f = h.machine(body .. "function sm.restore() error('no', 0) end")
    h.ok(f, "at", { { 5, "note" } }, at(0))
    assert.are.same({ nil, "no" }, { f:restore(h.snapshot_bytes({}, 0, {})) })
    assert.are.equal(5, f:next_deadline())
  end)
end)

describe("timers and events across replicas", function()
  -- Two machines fed the same entries, one of them with a different history
  -- of its own tables and restored halfway: identical events and snapshots.
  local src = body .. [[
    local junk = {}
    function sm.commands.junk(c) for i = 1, c.args do junk["k" .. i] = i end junk = {} end
  ]]

  local function drive(m, with_junk, restore_at)
    local events = {}
    for step = 1, 60 do
      if with_junk and step % 7 == 0 then h.ok(m, "junk", step * 13, at(step * 10)) end
      h.ok(m, "at", { { step % 5 * 3, "note", step }, { step % 4, "chain", 2, step % 3 } }, at(step * 10))
      if step % 6 == 0 then m:command("cancel", 2 * step + 3, at(step * 10)) end
      m:advance(at(step * 10 + 5))
      for _, e in ipairs(m:events()) do events[#events + 1] = e end
      if step == restore_at then
        local bytes = assert(m:snapshot())
        m = h.machine(src)
        assert.is_true(m:restore(bytes))
      end
    end
    return events, assert(m:snapshot()), log(m)
  end

  it("produce identical events and snapshot bytes", function()
    local e1, s1, l1 = drive(h.machine(src), false, nil)
    local e2, s2, l2 = drive(h.machine(src), true, 31)
    assert.is_true(#e1 >= 50 and #l1 > 150, #e1 .. " events, " .. #l1 .. " firings")
    assert.are.same(e1, e2)
    assert.are.same(l1, l2)
    assert.are.equal(s1, s2)
  end)
end)
