--- The fault suite's nemeses (docs/faults.md). Each is a function
--- (ctx) -> undo: it injects one fault now and returns how to end it.
--- ctx: { cluster, net, rand = fn(n) -> 1..n, log = fn(line), nodes }.
--- The runner alternates: fault for a few seconds, undo, a quiet while.
local M = {}

local function sleep(s) require("system").sleep(s) end

local function shuffled(ctx, list)
  local t = { table.unpack(list) }
  for i = #t, 2, -1 do
    local j = ctx.rand(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

local function others(ctx, i)
  local t = {}
  for j = 1, ctx.nodes do if j ~= i then t[#t + 1] = j end end
  return t
end

local function names(list)
  local t = {}
  for k, i in ipairs(list) do t[k] = "n" .. i end
  return table.concat(t, ",")
end

-- Both directions between every node of a and every node of b.
local function cut_between(a, b)
  local drops = {}
  for _, i in ipairs(a) do
    for _, j in ipairs(b) do
      drops[#drops + 1] = { i, j }
      drops[#drops + 1] = { j, i }
    end
  end
  return drops
end

local function heal(ctx)
  return function()
    ctx.net:heal()
    ctx.log("heal: every link restored")
  end
end

-- The current leader if one is known, else a random node.
local function leader_or_any(ctx)
  local l = ctx.cluster:leader()
  return l or ctx.rand(ctx.nodes), l ~= nil
end

--- Network: each call picks one of the partition shapes.
local partitions = {
  -- one node (often the leader) cut from every other
  isolate = function(ctx)
    local i = ctx.rand(2) == 1 and leader_or_any(ctx) or ctx.rand(ctx.nodes)
    ctx.net:apply(cut_between({ i }, others(ctx, i)))
    ctx.log(("partition isolate: n%d cut from the others"):format(i))
  end,
  -- a majority and a minority (the leader on either side)
  majority = function(ctx)
    local order = shuffled(ctx, ctx.cluster:all())
    local k = ctx.nodes // 2
    local minority, majority = { table.unpack(order, 1, k) }, { table.unpack(order, k + 1) }
    ctx.net:apply(cut_between(minority, majority))
    ctx.log(("partition majority: %s | %s"):format(names(majority), names(minority)))
  end,
  -- two halves that cannot see each other and one node that sees both
  bridge = function(ctx)
    local order = shuffled(ctx, ctx.cluster:all())
    local b = table.remove(order)
    local h = #order // 2
    local left, right = { table.unpack(order, 1, h) }, { table.unpack(order, h + 1) }
    ctx.net:apply(cut_between(left, right))
    ctx.log(("partition bridge: %s | %s, n%d sees both"):format(names(left), names(right), b))
  end,
  -- one direction only: node i hears nobody, or nobody hears node i
  oneway = function(ctx)
    local i = leader_or_any(ctx)
    local drops = {}
    local deaf = ctx.rand(2) == 1
    for _, j in ipairs(others(ctx, i)) do drops[#drops + 1] = deaf and { j, i } or { i, j } end
    ctx.net:apply(drops)
    ctx.log(("partition one-way: n%d %s"):format(i, deaf and "receives nothing from the others (it can send)"
      or "is not heard by the others (it can receive)"))
  end,
  -- random loss on every link of one node
  loss = function(ctx)
    local i = ctx.rand(ctx.nodes)
    local pct = 20 + ctx.rand(40)
    ctx.net:apply({}, { [i] = pct })
    ctx.log(("partition loss: %d%% of n%d's packets to and from the servers dropped"):format(pct, i))
  end,
}
M.partition_kinds = { "isolate", "majority", "bridge", "oneway", "loss" }

function M.partition(ctx, kind)
  kind = kind or M.partition_kinds[ctx.rand(#M.partition_kinds)]
  partitions[kind](ctx)
  return heal(ctx)
end
for _, kind in ipairs(M.partition_kinds) do
  M["partition-" .. kind] = function(ctx) return M.partition(ctx, kind) end
end

--- Network: always the leader cut from every other (waiting up to 5 s for
--- one to serve). The self-test's nemesis: a stale lease can only show on
--- a leader that is cut off, and isolate picks a follower half the time.
M["partition-isolate-leader"] = function(ctx)
  local i = ctx.cluster:wait_leader(5) or leader_or_any(ctx)
  ctx.net:apply(cut_between({ i }, others(ctx, i)))
  ctx.log(("partition isolate-leader: n%d cut from the others"):format(i))
  return heal(ctx)
end

local function minority(ctx, prefer_leader)
  local k = ctx.rand((ctx.nodes - 1) // 2)
  local order = shuffled(ctx, ctx.cluster:all())
  if prefer_leader then
    local l = ctx.cluster:leader()
    if l then
      for idx, i in ipairs(order) do
        if i == l then table.remove(order, idx) break end
      end
      table.insert(order, 1, l)
    end
  end
  return { table.unpack(order, 1, k) }
end

--- Process: SIGKILL up to a minority (often the leader), restart later.
function M.kill(ctx)
  local victims = minority(ctx, ctx.rand(2) == 1)
  for _, i in ipairs(victims) do ctx.cluster:kill(i) end
  ctx.log(("kill: SIGKILL %s"):format(names(victims)))
  return function()
    for _, i in ipairs(victims) do ctx.cluster:start(i) end
    ctx.log(("kill: restarted %s"):format(names(victims)))
  end
end

--- Process: SIGSTOP up to a minority (often the leader), SIGCONT later.
function M.pause(ctx)
  local victims = minority(ctx, ctx.rand(3) > 1)
  for _, i in ipairs(victims) do ctx.cluster:pause(i) end
  ctx.log(("pause: SIGSTOP %s"):format(names(victims)))
  return function()
    for _, i in ipairs(victims) do ctx.cluster:resume(i) end
    ctx.log(("pause: SIGCONT %s"):format(names(victims)))
  end
end

-- Membership state kept across calls: which nodes are out, which demoted.
local function members_of(ctx)
  local l = ctx.cluster:leader()
  local st = l and ctx.cluster:status(l)
  if not st then return nil end
  local active, passive = {}, {}
  for _, m in ipairs(st.members or {}) do
    local i = tonumber(tostring(m.name):match("^n(%d+)$"))
    if i and m.type == "active" then active[#active + 1] = i end
    if i and m.type == "passive" then passive[#passive + 1] = i end
  end
  return l, active, passive
end

--- Membership: one change per call, chosen among what the configuration
--- allows: leadership transfer; demote then promote; remove (the leader
--- too) then wipe, start empty and add back.
function M.membership(ctx)
  local l, active, passive = members_of(ctx)
  local c = ctx.cluster
  if not l then
    ctx.log("membership: no leader known, nothing changed")
    return function() end
  end
  -- First repair what an earlier change left half done (an add or a
  -- promote that failed under the load): the cluster keeps its five voters.
  local present = {}
  for _, i in ipairs(active) do present[i] = true end
  for _, i in ipairs(passive) do present[i] = true end
  for n = 1, ctx.nodes do
    if not present[n] then
      if not c:running(n) then c:start(n, "empty") end
      local ok, out = c:ctl(l, ("add n%d %s"):format(n, c:address(n)), 30)
      ctx.log(("membership: add n%d (left out): %s"):format(n, ok and "done" or ("failed: " .. out:gsub("\n", " "))))
      return function() end
    end
  end
  if #passive > 0 then
    local ok, out = c:ctl(l, "promote n" .. passive[1], 20)
    ctx.log(("membership: promote n%d (left passive): %s"):format(passive[1],
      ok and "done" or ("failed: " .. out:gsub("\n", " "))))
    return function() end
  end
  local choice = ctx.rand(3)
  if #active <= 3 then choice = 1 end
  if choice == 1 then
    local others_active = {}
    for _, i in ipairs(active) do if i ~= l then others_active[#others_active + 1] = i end end
    local to = others_active[ctx.rand(#others_active)]
    local ok, out = c:ctl(l, "transfer n" .. to, 10)
    ctx.log(("membership: transfer n%d -> n%d: %s"):format(l, to, ok and "done" or ("failed: " .. out)))
    return function() end
  elseif choice == 2 then
    local cands = {}
    for _, i in ipairs(active) do if i ~= l then cands[#cands + 1] = i end end
    local i = cands[ctx.rand(#cands)]
    local ok, out = c:ctl(l, "demote n" .. i, 10)
    ctx.log(("membership: demote n%d: %s"):format(i, ok and "done" or ("failed: " .. out:gsub("\n", " "))))
    return function()
      local at = c:leader() or l
      local ok2, out2 = c:ctl(at, "promote n" .. i, 20)
      ctx.log(("membership: promote n%d: %s"):format(i, ok2 and "done" or ("failed: " .. out2:gsub("\n", " "))))
    end
  end
  -- Remove a member, the leader half of the time.
  local i = ctx.rand(2) == 1 and l or active[ctx.rand(#active)]
  local via = i == l and active[(ctx.rand(#active))] or l
  if via == i then via = active[1] ~= i and active[1] or active[2] end
  local ok, out = c:ctl(via, "remove n" .. i, 15)
  ctx.log(("membership: remove n%d%s (asked n%d): %s"):format(i, i == l and " (the leader)" or "", via,
    ok and "done" or ("failed: " .. out:gsub("\n", " "))))
  if not ok then return function() end end
  c:kill(i)
  os.execute("rm -rf " .. c:data(i))
  c:start(i, "empty")
  sleep(0.3)
  return function()
    local at = c:leader() or via
    local ok2, out2 = c:ctl(at, ("add n%d %s"):format(i, c:address(i)), 30)
    ctx.log(("membership: add n%d back: %s"):format(i, ok2 and "done" or ("failed: " .. out2:gsub("\n", " "))))
  end
end

--- Every nemesis, one picked at random each time.
local mixed = { "partition", "kill", "pause", "membership" }
function M.mix(ctx)
  return M[mixed[ctx.rand(#mixed)]](ctx)
end

M.names = { "partition", "kill", "pause", "membership", "mix" }
for _, kind in ipairs(M.partition_kinds) do M.names[#M.names + 1] = "partition-" .. kind end

--- Nothing (a control run).
function M.none() return function() end end
M.names[#M.names + 1] = "none"

return M
