-- The instruction budget: a runaway command stops with the same error on
-- every replica, the state machine cannot catch that error, and one budget
-- covers every coroutine of the call.
local h = require("state_machine.helper")
local state_machine = require("copycat.state_machine")

local BUDGET = 100000
local EXCEEDED = "instruction budget exceeded (100000 instructions)"


describe("instruction budget", function()
  local m = h.machine([[
    local count = 0
    local function loop() while true do end end
    function sm.commands.inc() count = count + 1; return count end
    function sm.commands.runaway() count = count + 1; loop() end
    function sm.commands.pcall_loop()
      for _ = 1, 1000 do pcall(loop) end
      return "escaped"
    end
    function sm.commands.pcall_forever()
      while true do pcall(loop) end
    end
    function sm.commands.xpcall_tail()
      return xpcall(loop, function() return "handled" end)
    end
    function sm.commands.xpcall_handler_loops()
      local ok = xpcall(loop, loop)
      return "escaped", ok
    end
    function sm.commands.error_in_close()
      local guard <close> = setmetatable({}, { __close = function() while true do end end })
      error("boom")
    end
    function sm.commands.count(c)
      local n = 0
      for _ = 1, c.args.n do n = n + 1 end
      return n
    end
    function sm.commands.rep() return #string.rep("x", 1 << 40) end
    function sm.commands.big_pairs(c)
      local t = {}
      for i = 1, c.args.n do t[i] = i end
      local n = 0
      for _ in pairs(t) do n = n + 1 end
      return n
    end
  ]], { budget = BUDGET })

  it("stops a runaway command with the same message, and the machine stays usable", function()
    assert.are.equal(1, h.ok(m, "inc"))
    assert.are.equal(EXCEEDED, h.fails(m, "runaway"))
    -- What the command changed before it was stopped stays changed.
    assert.are.equal(3, h.ok(m, "inc"))
    assert.are.equal(EXCEEDED, h.fails(m, "runaway"))
    assert.are.equal(5, h.ok(m, "inc"))
  end)

  it("cannot be caught by pcall, xpcall, an error handler or a __close handler", function()
    assert.are.equal(EXCEEDED, h.fails(m, "pcall_loop"))
    assert.are.equal(EXCEEDED, h.fails(m, "pcall_forever"))
    assert.are.equal(EXCEEDED, h.fails(m, "xpcall_tail"))
    assert.are.equal(EXCEEDED, h.fails(m, "xpcall_handler_loops"))
    assert.are.equal(EXCEEDED, h.fails(m, "error_in_close"))
    assert.are.equal(500, h.ok(m, "count", { n = 500 }))
  end)

  it("stops at the same instruction whatever ran before (the count restarts with each call)", function()
    -- Find the smallest loop length that overruns on this machine, after
    -- calls of assorted lengths, then check a fresh machine agrees exactly.
    for i = 1, 7 do h.ok(m, "count", { n = i * 977 }) end
    local lo, hi = 1, BUDGET
    while lo < hi do
      local mid = (lo + hi) // 2
      if m:command("count", { n = mid }, h.ctx()) then lo = mid + 1 else hi = mid end
    end
    local fresh = h.machine([[
      function sm.commands.count(c)
        local n = 0
        for _ = 1, c.args.n do n = n + 1 end
        return n
      end
    ]], { budget = BUDGET })
    assert.is_true(lo > 1000 and lo < BUDGET)
    assert.are.same({ true, lo - 1 }, { fresh:command("count", { n = lo - 1 }, h.ctx()) })
    assert.are.same({ false, EXCEEDED }, { fresh:command("count", { n = lo }, h.ctx()) })
  end)

  it("charges C functions for the work they do: string.rep and pairs", function()
    assert.are.equal(EXCEEDED, h.fails(m, "rep"))
    assert.are.equal(1000, h.ok(m, "big_pairs", { n = 1000 }))
    assert.are.equal(EXCEEDED, h.fails(m, "big_pairs", { n = 60000 }))
  end)

  describe("with coroutines", function()
    local co = h.machine([[
      local function loop() while true do end end
      local function short() for _ = 1, 400 do end end
      function sm.commands.many_short(c)
        for _ = 1, c.args.n do coroutine.resume(coroutine.create(short)) end
        return "escaped"
      end
      function sm.commands.runaway_inside()
        local ok, err = coroutine.resume(coroutine.create(loop))
        return "escaped", ok, err
      end
      function sm.commands.wrap_pcall()
        local ok, err = pcall(coroutine.wrap(loop))
        return "escaped", ok, err
      end
      function sm.commands.generator()
        local gen = coroutine.wrap(function() while true do coroutine.yield(1) end end)
        local n = 0
        while true do n = n + gen() end
      end
      function sm.commands.nested()
        local inner = coroutine.wrap(function() pcall(loop); return "inner escaped" end)
        local outer = coroutine.create(function() pcall(inner); return "outer escaped" end)
        return coroutine.resume(outer)
      end
      function sm.commands.gen_ok(c)
        local gen = coroutine.wrap(function() for i = 1, c.args.n do coroutine.yield(i) end end)
        local sum = 0
        for _ = 1, c.args.n do sum = sum + gen() end
        return sum
      end
      function sm.commands.xpcall_ok()
        local gen = coroutine.wrap(function()
          local ok, v = xpcall(function() coroutine.yield(1); error("e", 0) end, function(e) return "h:" .. e end)
          coroutine.yield(v)
          return select("#", xpcall(function(...) return ... end, print, 1, nil, 3))
        end)
        return gen(), gen(), gen()
      end
      function sm.commands.wrap_error()
        local f = coroutine.wrap(function() error("inside") end)
        return f()
      end
    ]], { budget = BUDGET })

    it("shares one budget among all coroutines of a call", function()
      -- 1000 coroutines of ~800 instructions each: far more than the budget
      -- in total, though each one alone stays below the count-hook interval.
      assert.are.equal(EXCEEDED, h.fails(co, "many_short", { n = 1000 }))
      assert.are.equal("escaped", h.ok(co, "many_short", { n = 10 }))
    end)

    it("stops the resumer when a coroutine overruns, even through pcall and wrap", function()
      assert.are.equal(EXCEEDED, h.fails(co, "runaway_inside"))
      assert.are.equal(EXCEEDED, h.fails(co, "wrap_pcall"))
      assert.are.equal(EXCEEDED, h.fails(co, "generator"))
      assert.are.equal(EXCEEDED, h.fails(co, "nested"))
    end)

    it("leaves normal coroutine use alone", function()
      assert.are.equal(5050, h.ok(co, "gen_ok", { n = 100 }))
      -- xpcall runs its handler, passes arguments, and lets the body yield.
      assert.are.same({ 1, "h:e", 4 }, { h.ok(co, "xpcall_ok") })
      assert.are.equal("t:42: t:41: inside", h.fails(co, "wrap_error"))
    end)
  end)

  it("also bounds loading, snapshot and restore (setup budget)", function()
    local _, err = state_machine.load("while true do end", { source = true, name = "spin", setup_budget = 5000 })
    assert.are.equal("instruction budget exceeded (5000 instructions)", err)
    local s = h.machine([[
      function sm.snapshot() while true do end end
      function sm.restore() while true do end end
    ]], { setup_budget = 5000 })
    assert.are.same({ nil, "instruction budget exceeded (5000 instructions)" }, { s:snapshot() })
    assert.are.same({ nil, "instruction budget exceeded (5000 instructions)" }, { s:restore(h.snapshot_bytes(nil)) })
  end)

  it("reports the instructions a call used", function()
    local c = h.machine([[
      function sm.commands.count(c)
        local n = 0
        for _ = 1, c.args.n do n = n + 1 end
        return n
      end
    ]])
    h.ok(c, "count", { n = 100000 })
    local cost = c:cost()
    -- Two instructions per iteration (ADDI, FORLOOP), counted in steps.
    assert.is_true(cost >= 200000 - state_machine.BUDGET_STEP and cost <= 200000 + state_machine.BUDGET_STEP)
    h.ok(c, "count", { n = 100000 })
    assert.are.equal(cost, c:cost())
  end)
end)
