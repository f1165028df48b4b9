-- Applies a seeded workload of commands, session hooks and timer firings to
-- a state machine that schedules timers and publishes events, as one
-- replica would, and prints hashes of every result, every event and the
-- final snapshot.
--
--   copycat-lua spec/state_machine/timers_driver.lua MODE N
--
-- MODE "restore" replaces the machine by a fresh one restored from a
-- snapshot every N/4 steps; "replay" keeps one machine. Every process hashes
-- strings with its own seed, so table layouts (and the stock pairs order)
-- differ between runs: the outputs must not.
local state_machine = require("copycat.state_machine")
local codec = require("copycat.codec")

local mode, steps = arg[1], tonumber(arg[2])
assert((mode == "replay" or mode == "restore") and steps, "usage: timers_driver.lua replay|restore N")

local source = [=[
  local sm = state_machine()
  local leases, fired, waiters = {}, 0, {}
  sm.timers = {}
  -- Many timer names, so that finding a function's name is not trivial.
  for i = 1, 40 do
    sm.timers["noop" .. i] = function(t) fired = fired + i end
  end
  function sm.timers.expire(t, key, owner)
    local l = leases[key]
    if l and l.owner == owner then
      leases[key] = nil
      sm.session(owner):publish("expired", { key = key, at = t.time, r = math.random(1000) })
    end
    if fired % 17 == 3 then error("unlucky " .. key, 0) end
  end
  function sm.timers.tick(t, n)
    fired = fired + 1
    for key, l in pairs(leases) do
      if l.owner % 3 == n % 3 then sm.session(l.owner):publish("tick", key) break end
    end
    if n > 0 then sm.schedule(n % 4, sm.timers.tick, n - 1) end
  end
  function sm.commands.lease(c)
    local old = leases[c.args.key]
    if old then sm.cancel(old.timer) end
    local id = sm.schedule(c.args.ttl, sm.timers.expire, c.args.key, c.session.id)
    leases[c.args.key] = { owner = c.session.id, timer = id }
    sm.schedule(c.args.ttl % 3, sm.timers["noop" .. (c.args.ttl % 40 + 1)])
    return id
  end
  function sm.commands.tick(c) return sm.schedule(1, sm.timers.tick, c.args) end
  function sm.session_opened(s) waiters[#waiters + 1] = s.id s:publish("hello", #waiters) end
  function sm.session_closed(s)
    for key, l in pairs(leases) do
      if l.owner == s.id then sm.cancel(l.timer) leases[key] = nil end
    end
    for _, w in ipairs(waiters) do sm.session(w):publish("gone", s.id) end
  end
  function sm.queries.stats()
    local n = 0
    for _ in pairs(leases) do n = n + 1 end
    return { leases = n, fired = fired }
  end
  function sm.snapshot() return { leases = leases, fired = fired, waiters = waiters } end
  function sm.restore(s) leases, fired, waiters = s.leases, s.fired, s.waiters end
  return sm
]=]

local function fnv(h, s)
  for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
  return h
end

local function load() return assert(state_machine.load(source, { source = true, name = "leases" })) end

local machine = load()
local results, x, index = 0xcbf29ce484222325, 12345, 0
local counts = { commands = 0, events = 0, fired = 0, failures = 0 }
local function rand(n)
  x = x * 6364136223846793005 + 1442695040888963407
  return (x >> 33) % n + 1
end
local function record(...)
  local r = table.pack(...)
  if r[1] == false then counts.failures = counts.failures + 1 end
  results = fnv(results, codec.encode(r))
end
local function ctx(time, session)
  index = index + 1
  return { index = index, term = 1 + index // 500, time = time, session = session }
end

for step = 1, steps do
  local time = step * 10
  if mode == "restore" and step % (steps // 4) == 0 then
    local snap = assert(machine:snapshot())
    assert(#machine:events() == 0) -- drained after every step
    machine:close()
    machine = load()
    assert(machine:restore(snap))
  end
  local p = rand(100)
  if p <= 5 then
    record(machine:session_opened(rand(30), ctx(time)))
  elseif p <= 9 then
    record(machine:session_closed(rand(30), ctx(time)))
  elseif p <= 80 then
    counts.commands = counts.commands + 1
    record(machine:command("lease", { key = "k" .. rand(200), ttl = rand(300) }, ctx(time, rand(30))))
  else
    counts.commands = counts.commands + 1
    record(machine:command("tick", rand(12), ctx(time, rand(30))))
  end
  local r = table.pack(machine:advance(ctx(time + 5)))
  counts.fired = counts.fired + (r[1] and r[2] or r[3])
  record(table.unpack(r, 1, r.n))
  local events = machine:events()
  counts.events = counts.events + #events
  results = fnv(results, codec.encode(events))
end

local snap = assert(machine:snapshot())
print(("results %016x"):format(results))
print(("snapshot %016x %d bytes, next deadline %s"):format(fnv(0xcbf29ce484222325, snap), #snap,
  tostring(machine:next_deadline())))
print(("commands %d, events %d, fired %d, failures %d"):format(counts.commands, counts.events, counts.fired,
  counts.failures))
