-- Applies a seeded workload to examples/kv/state_machine.lua, as one replica
-- would, and prints hashes of every result and of the final snapshot.
--
--   copycat-lua spec/state_machine/kv_driver.lua ORDER_SEED MODE N
--
-- ORDER_SEED changes only the order in which the first keys are inserted
-- (and the names of junk keys inserted and deleted in between): every
-- replica ends that phase with the same logical state but a different hash
-- table layout. MODE "restore" replaces the machine by a fresh one restored
-- from a snapshot halfway through. N is the number of workload steps, the
-- same sequence for every ORDER_SEED. The last line, "stock ...", hashes the
-- order in which the host's own (unsandboxed) pairs visits the final keys:
-- it is expected to differ between processes.
local state_machine = require("copycat.state_machine")
local codec = require("copycat.codec")

local order_seed, mode, steps = tonumber(arg[1]), arg[2], tonumber(arg[3])
assert(order_seed and (mode == "replay" or mode == "restore") and steps, "usage: kv_driver.lua SEED replay|restore N")

local function fnv(h, s)
  for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
  return h
end

-- A generator of our own, so the workload does not depend on the host's.
local function generator(seed)
  local x = seed
  return function(m)
    x = x * 6364136223846793005 + 1442695040888963407
    return (x >> 33) % m + 1
  end
end

local machine = assert(state_machine.load("examples/kv/state_machine.lua", { name = "kv" }))
local index, results, commands, failed = 0, 0xcbf29ce484222325, 0, 0

local function record(...)
  local r = table.pack(...)
  if r[1] == false then failed = failed + 1 end
  results = fnv(results, codec.encode(r))
end

local function command(op, args)
  index = index + 1
  commands = commands + 1
  record(machine:command(op, args, { index = index, term = 1 + index // 1000, time = 1700000000000 + 7 * index }))
end

local function query(op, args)
  record(machine:query(op, args, { index = index, term = 1 + index // 1000 }))
end

-- Phase 1: 600 keys in a per-process order, with junk keys in between.
local keys = {}
for i = 1, 600 do keys[i] = ("user:%d"):format(i * 37 % 1009) end
local perm, shuffle = table.move(keys, 1, #keys, 1, {}), generator(order_seed)
for i = #perm, 2, -1 do
  local j = shuffle(i)
  perm[i], perm[j] = perm[j], perm[i]
end
for i, k in ipairs(perm) do
  command("put", { key = k, value = 0 })
  if i % 3 == 0 then command("put", { key = ("junk%d:%d"):format(order_seed, i), value = i }) end
end
for i = 1, #perm do
  if i % 3 == 0 then command("delete", { key = ("junk%d:%d"):format(order_seed, i) }) end
end
-- Rewrite every key in one fixed order, so revisions and times agree; the
-- tables inside the sandbox keep their history. Results so far are not
-- compared (put returned the values of keys inserted in different orders).
table.sort(keys)
for _, k in ipairs(keys) do command("put", { key = k, value = #k }) end
results, failed = 0xcbf29ce484222325, 0

-- Phase 2: the same workload everywhere.
local rand = generator(12345)
local function some_key()
  local i = rand(900)
  return i <= 600 and keys[i] or ("item:%d"):format(i)
end
for step = 1, steps do
  if mode == "restore" and step == steps // 2 then
    local snap = assert(machine:snapshot())
    machine:close()
    machine = assert(state_machine.load("examples/kv/state_machine.lua", { name = "kv" }))
    assert(machine:restore(snap))
  end
  local p = rand(100)
  if p <= 40 then
    command("put", { key = some_key(), value = rand(3) == 1 and ("v" .. rand(1000)) or rand(1000) })
  elseif p <= 52 then
    command("delete", { key = some_key() })
  elseif p <= 60 then
    command("cas", { key = some_key(), expect = rand(1000), value = rand(1000) })
  elseif p <= 63 then
    command("evict", { count = rand(3) })
  elseif p <= 65 then
    command("put", { key = rand(10), value = 1 }) -- fails: keys are strings
  elseif p == 66 then
    query("scan", { prefix = rand(10) }) -- fails with a position: kv:NN: attempt to ...
  elseif p <= 76 then
    query("scan", { prefix = "user:" .. rand(9), limit = rand(50) })
  elseif p <= 86 then
    query("stats", {})
  else
    query("get", { key = some_key() })
  end
end

-- Budget outcomes: a loop of varying length under a small budget, some
-- calls overrunning it; results and counted instructions are hashed.
local spinner = assert(state_machine.load([[
  local sm = state_machine()
  function sm.commands.spin(c)
    local x = 0
    for i = 1, c.args.n do x = x + i % 7 end
    return x
  end
  return sm
]], { source = true, name = "spin", budget = 20000 }))
local overruns = 0
for i = 1, 200 do
  local r = table.pack(spinner:command("spin", { n = rand(15000) }, { index = i, term = 1 }))
  if not r[1] then overruns = overruns + 1 end
  results = fnv(results, codec.encode(r) .. spinner:cost())
end

local snap = assert(machine:snapshot())
local _, stats = machine:query("stats", {})
local _, all = machine:query("scan", {})
print(("results %016x"):format(results))
print(("snapshot %016x %d bytes"):format(fnv(0xcbf29ce484222325, snap), #snap))
print(("state %d keys, rev %d, sum %d"):format(stats.keys, stats.rev, stats.sum))
print(("applied %d commands, %d failed, %d budget overruns"):format(commands, failed, overruns))

-- The host's own pairs over the same keys, inserted in this process' order.
local plain = {}
for i = #all, 1, -1 do plain[all[i][1]] = true end
local order = 0xcbf29ce484222325
for k in pairs(plain) do order = fnv(order, k) end
print(("stock %016x"):format(order))
