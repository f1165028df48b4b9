-- Benchmark of the state-machine sandbox, each figure against a baseline
-- measured in the same run: the same Lua code run directly in the host state
-- (stock pairs, stock table.sort, no budget hook, no copies).
--
--   build/copycat-lua bench/state_machine.lua
--
-- Prints operations/s as the median of 5 runs (CPU time, os.clock) and the
-- ratio sandbox / baseline. Nothing here asserts a timing.
local state_machine = require("copycat.state_machine")

local RUNS = 5

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local function measure(fn, n)
  local rates = {}
  fn(n // 10)
  for r = 1, RUNS do
    local t0 = os.clock()
    fn(n)
    rates[r] = n / (os.clock() - t0)
  end
  return median(rates)
end

-- The handlers, as a string: loaded into a sandbox, and into the host with
-- load() for the baseline (same code, same Lua VM).
local body = [[
  local store, rev = {}, 0
  function sm.commands.put(c)
    rev = rev + 1
    local old = store[c.args.key]
    store[c.args.key] = { value = c.args.value, rev = rev }
    return old and old.value
  end
  function sm.queries.get(q)
    local e = store[q.args.key]
    return e and e.value, e and e.rev
  end
  function sm.commands.count()
    local n = 0
    for _ in pairs(store) do n = n + 1 end
    return n
  end
  function sm.commands.sort(c)
    local xs = {}
    for i = 1, c.args.n do xs[i] = (i * 7919) % 10007 end
    table.sort(xs)
    return xs[1]
  end
  function sm.commands.spin(c)
    local x = 0
    for i = 1, c.args.n do x = x + i end
    return x
  end
  sm.timers = sm.timers or {}
  function sm.timers.touch(t, key) rev = rev + 1 end
  function sm.commands.later(c) return sm.schedule(c.args.delay, sm.timers.touch, c.args.key) end
  function sm.commands.notify(c) c.session:publish("changed", c.args) end
]]
local machine = assert(state_machine.load("local sm = state_machine()\n" .. body .. "\nreturn sm",
  { source = true, name = "bench", budget = 1 << 40 }))
local host = { commands = {}, queries = {}, timers = {} }
assert(load("local sm = ...\n" .. body, "=host", "t"))(host)

local index = 0
local function ctx()
  index = index + 1
  return { index = index, term = 1, time = index }
end

local sink
local keys = {}
for i = 1, 1000 do keys[i] = "key" .. i end

local function report(name, ours, base, unit)
  print(("%-44s %12.0f %s"):format(name .. " (sandbox)", ours, unit))
  print(("%-44s %12.0f %s"):format(name .. " (baseline)", base, unit))
  print(("%-44s %12.2f"):format(name .. " ratio", ours / base))
end

report("put command", measure(function(n)
  for i = 1, n do sink = machine:command("put", { key = keys[i % 1000 + 1], value = i }, ctx()) end
end, 100000), measure(function(n)
  local put = host.commands.put
  for i = 1, n do sink = put({ args = { key = keys[i % 1000 + 1], value = i }, index = i, term = 1, time = i }) end
end, 100000), "commands/s")

-- Queries run with a read-only view of the state (machine/sandbox_view.c):
-- what the view costs is in this figure.
report("get query", measure(function(n)
  for i = 1, n do sink = machine:query("get", { key = keys[i % 1000 + 1] }) end
end, 100000), measure(function(n)
  local get = host.queries.get
  for i = 1, n do sink = get({ args = { key = keys[i % 1000 + 1] } }) end
end, 100000), "queries/s")

report("pairs over 1000 string keys", measure(function(n)
  for _ = 1, n do sink = machine:command("count", nil, ctx()) end
end, 2000), measure(function(n)
  local count = host.commands.count
  for _ = 1, n do sink = count({}) end
end, 2000), "traversals/s")

report("table.sort of 10000 integers", measure(function(n)
  for _ = 1, n do sink = machine:command("sort", { n = 10000 }, ctx()) end
end, 20), measure(function(n)
  local sort = host.commands.sort
  for _ = 1, n do sink = sort({ args = { n = 10000 } }) end
end, 20), "sorts/s")

-- Timers and events have no direct baseline: raw rates.
local function rate(name, r, unit) print(("%-44s %12.0f %s"):format(name, r, unit)) end

rate("schedule + fire a timer (command, advance)", measure(function(n)
  for i = 1, n do
    local c = ctx()
    sink = machine:command("later", { delay = 0, key = keys[i % 1000 + 1] }, c)
    sink = machine:advance(c)
  end
end, 50000), "timers/s")

rate("1000 pending timers fired by one advance", measure(function(n)
  for _ = 1, n do
    local c = ctx()
    for i = 1, 1000 do machine:command("later", { delay = i % 97, key = keys[i] }, c) end
    c = ctx()
    c.time = c.time + 100
    sink = machine:advance(c)
  end
end, 20) * 1000, "timers/s (incl. scheduling)")

rate("publish one event + events()", measure(function(n)
  for i = 1, n do
    local c = ctx()
    c.session = i % 100 + 1
    sink = machine:command("notify", { key = keys[i % 1000 + 1], value = i }, c)
    sink = machine:events()
  end
end, 50000), "commands/s")

report("1e6-iteration loop (budget hook)", measure(function(n)
  for _ = 1, n do sink = machine:command("spin", { n = 1000000 }, ctx()) end
end, 10), measure(function(n)
  local spin = host.commands.spin
  for _ = 1, n do sink = spin({ args = { n = 1000000 } }) end
end, 10), "loops/s")

return sink
