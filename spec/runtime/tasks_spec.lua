-- Tasks, sleep, spawn, timers and shutdown on the event loop.
local proc = require("support.proc")

local function run(source, opts)
  return proc.run({ proc.script(source) }, opts)
end

describe("tasks", function()
  after_each(proc.cleanup)

  it("run spawned functions at once, until they first wait", function()
    local r = run([[
      print("a")
      copycat.spawn(function() print("b"); copycat.sleep(0); print("d") end)
      print("c")
    ]])
    assert.are.equal(0, r.code)
    assert.are.equal("a\nb\nc\nd\n", r.stdout)
  end)

  it("wake sleepers in deadline order, whatever the spawn order", function()
    local r = run([[
      for _, ms in ipairs({ 30, 10, 20, 0 }) do
        copycat.spawn(function() copycat.sleep(ms); print(ms) end)
      end
      print("main done")
    ]])
    assert.are.equal(0, r.code)
    assert.are.equal("main done\n0\n10\n20\n30\n", r.stdout)
  end)

  it("sleep lasts at least the given time on the monotonic clock", function()
    local r = run([[
      for _, ms in ipairs({ 1, 2, 5, 13, 0.5 }) do
        local t0 = copycat.now()
        copycat.sleep(ms)
        local took = copycat.now() - t0
        if took < ms then print("short", ms, took) end
      end
      print("ok")
    ]])
    assert.are.equal("ok\n", r.stdout)
  end)

  it("now() is monotonic and in milliseconds", function()
    local r = run([[
      local a = copycat.now(); copycat.sleep(20); local b = copycat.now()
      print(math.type(a), b > a, b - a < 10000)
    ]])
    assert.are.equal("float\ttrue\ttrue\n", r.stdout)
  end)

  it("return their function's results to task:wait()", function()
    local r = run([[
      local t = copycat.spawn(function(x, y) copycat.sleep(5); return x + y, "done" end, 40, 2)
      print(t:finished())
      print(t:wait())
      print(t:finished(), t:wait())
    ]])
    assert.are.equal(0, r.code)
    assert.are.equal("false\n42\tdone\ntrue\t42\tdone\n", r.stdout)
  end)

  it("report an error in a spawned task with its traceback and origin, and exit 1", function()
    local r = run([[
      copycat.spawn(function()
        copycat.sleep(5)
        local function deep() error("spawned failure") end
        deep()
      end)
      copycat.sleep(1000)
      print("not reached")
    ]])
    assert.are.equal(1, r.code)
    assert.are.equal("", r.stdout)
    assert.matches("script%.lua:3: spawned failure %(in a task started at [^\n]*script%.lua:1%)", r.stderr)
    assert.matches("stack traceback:", r.stderr)
    assert.matches("in local 'deep'", r.stderr)
  end)

  it("treat a bare coroutine.yield() as giving way to other tasks", function()
    local r = run([[
      copycat.spawn(function() for i = 1, 3 do print("x", i); coroutine.yield() end end)
      copycat.spawn(function() for i = 1, 3 do print("y", i); coroutine.yield() end end)
    ]])
    assert.are.equal(0, r.code)
    assert.are.equal("x\t1\ny\t1\nx\t2\ny\t2\nx\t3\ny\t3\n", r.stdout)
  end)

  it("leave the user's own coroutines alone", function()
    local r = run([[
      local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
      print(gen(), gen(), gen())
    ]])
    assert.are.equal("1\t2\t3\n", r.stdout)
  end)

  it("refuse to sleep outside a task with a clear error", function()
    local r = run([[
      local co = coroutine.create(function() copycat.sleep(1) end)
      print(coroutine.resume(co))
    ]])
    assert.matches("copycat.sleep waits, so it must be called inside a task", r.stdout)
  end)

  it("reject bad arguments to sleep, timer and spawn", function()
    local r = run([[
      print(pcall(copycat.sleep, -1))
      print(pcall(copycat.sleep, "x"))
      print(pcall(copycat.timer, 5, nil))
      print(pcall(copycat.every, 0, function() end))
      print(pcall(copycat.spawn, 42))
    ]])
    assert.are.equal(0, r.code)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(5, #lines)
    assert.matches("^false\t.*'sleep' %(milliseconds expected, got %-1%)", lines[1])
    assert.matches("^false\t.*'sleep' %(milliseconds expected, got x%)", lines[2])
    assert.matches("^false\t.*'timer' %(function expected, got nil%)", lines[3])
    assert.matches("^false\t.*'every' %(interval must be more than 0 ms%)", lines[4])
    assert.matches("^false\t.*'spawn' %(function expected, got number%)", lines[5])
  end)
end)

describe("timers", function()
  it("call a function once after a delay, in its own task", function()
    local r = run([[
      copycat.timer(10, function() print("fired"); copycat.sleep(5); print("after sleep") end)
      print("armed")
    ]])
    assert.are.equal("armed\nfired\nafter sleep\n", r.stdout)
  end)

  it("repeat with every() until stopped, then the program ends", function()
    local r = run([[
      local n = 0
      local h
      h = copycat.every(2, function()
        n = n + 1
        if n == 5 then h:stop(); print("stopped", n, h:active()) end
      end)
      print("active", h:active())
    ]])
    assert.are.equal(0, r.code)
    assert.are.equal("active\ttrue\nstopped\t5\tfalse\n", r.stdout)
  end)

  it("repeat on a fixed period: the k-th tick comes no earlier than k periods", function()
    local r = run([[
      local t0, n, h = copycat.now(), 0, nil
      h = copycat.every(7, function()
        n = n + 1
        if copycat.now() - t0 < 7 * n then print("early tick", n) end
        if n == 10 then h:stop(); print("ten ticks") end
      end)
    ]])
    assert.are.equal("ten ticks\n", r.stdout)
  end)

  it("can be cancelled before they fire", function()
    local r = run([[
      local h = copycat.timer(20, function() print("should not fire") end)
      h:stop()
      h:stop()
      print("cancelled", h:active())
    ]])
    assert.are.equal(0, r.code)
    assert.are.equal("cancelled\tfalse\n", r.stdout)
  end)

  it("keep firing when nobody holds the handle", function()
    local r = run([[
      copycat.timer(10, function() print("fired") end)
      collectgarbage(); collectgarbage()
    ]])
    assert.are.equal("fired\n", r.stdout)
  end)
end)

describe("shutdown", function()
  after_each(proc.cleanup)

  local script = [[
    copycat.on_shutdown(function() print("hook registered first") end)
    copycat.on_shutdown(function() copycat.sleep(10); print("hook registered second") end)
    copycat.every(1000, function() end)
    print("ready")
  ]]

  for _, sig in ipairs({ "INT", "TERM" }) do
    it("on SIG" .. sig .. " runs the hooks, newest first, and exits 0", function()
      local p = proc.start({ proc.script(script) })
      assert.is_true(p:wait_output("ready\n", 10))
      p:kill(sig)
      assert.are.equal(0, p:wait(10))
      assert.are.equal("ready\nhook registered second\nhook registered first\n", p:stdout())
    end)
  end

  it("forces the exit on a second signal while hooks run", function()
    local p = proc.start({ proc.script([[
      copycat.on_shutdown(function() print("hook started"); copycat.sleep(60000) end)
      print("ready")
      copycat.every(1000, function() end)
    ]]) })
    assert.is_true(p:wait_output("ready\n", 10))
    p:kill("INT")
    assert.is_true(p:wait_output("hook started\n", 10))
    p:kill("INT")
    assert.are.equal(130, p:wait(10))
  end)

  it("exits 1 and names the hook error when a hook fails", function()
    local p = proc.start({ proc.script([[
      copycat.on_shutdown(function() print("second hook still runs") end)
      copycat.on_shutdown(function() error("hook broke") end)
      print("ready")
      copycat.every(1000, function() end)
    ]]) })
    assert.is_true(p:wait_output("ready\n", 10))
    p:kill("TERM")
    assert.are.equal(1, p:wait(10))
    assert.matches("shutdown hook failed: [^\n]*hook broke", p:stderr())
    assert.matches("second hook still runs", p:stdout())
  end)

  it("runs the hooks on copycat.exit(status)", function()
    local r = run([[
      copycat.on_shutdown(function() print("hook") end)
      copycat.every(1000, function() end)
      copycat.exit(3)
    ]])
    assert.are.equal(3, r.code)
    assert.are.equal("hook\n", r.stdout)
  end)
end)

describe("the copycat module in plain Lua", function()
  it("loads through busted and runs tasks with copycat.run()", function()
    local copycat = require("copycat")
    local order = {}
    copycat.spawn(function()
      order[#order + 1] = "start"
      copycat.sleep(5)
      order[#order + 1] = "woke"
    end)
    order[#order + 1] = "spawned"
    assert.are.equal(0, copycat.run())
    assert.are.same({ "start", "spawned", "woke" }, order)
  end)
end)
