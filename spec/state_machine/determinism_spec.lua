-- Cross-process determinism: separate copycat-lua processes, whose Lua
-- states hash strings with different per-process seeds, apply the same log
-- to the kv example (and a workload of timers and events, timers_driver.lua)
-- and agree on every result, every event and on the snapshot bytes.
local proc = require("support.proc")

local function distinct(list)
  local seen, n = {}, 0
  for _, v in ipairs(list) do
    if not seen[v] then seen[v], n = true, n + 1 end
  end
  return n
end

local function run(args)
  local r = proc.run(args, { timeout = 60 })
  assert.are.equal(0, r.code, r.stderr)
  assert.are.equal("", r.stderr)
  return r.stdout
end

describe("state machines across processes", function()
  it("stock pairs visits string keys in an order that differs between processes; sandboxed pairs does not", function()
    local plain = proc.script([[
      local t = {}
      for i = 1, 200 do t["key" .. i] = i end
      local out = {}
      for k in pairs(t) do out[#out + 1] = k end
      print(table.concat(out, ","))
    ]])
    local sandboxed = proc.script([[
      local m = assert(require("copycat.state_machine").load([=[
        local sm = state_machine()
        function sm.commands.order()
          local t = {}
          for i = 1, 200 do t["key" .. i] = i end
          local out = {}
          for k in pairs(t) do out[#out + 1] = k end
          return table.concat(out, ",")
        end
        return sm
      ]=], { source = true }))
      print(select(2, m:command("order", nil, { index = 1, term = 1 })))
    ]])
    local stock, ours = {}, {}
    for i = 1, 4 do
      stock[i] = run({ plain })
      ours[i] = run({ sandboxed })
    end
    assert.is_true(distinct(stock) >= 2, "stock pairs gave the same order in 4 processes")
    assert.are.equal(1, distinct(ours))
    local sorted = {}
    for i = 1, 200 do sorted[i] = "key" .. i end
    table.sort(sorted)
    assert.are.equal(table.concat(sorted, ",") .. "\n", ours[1])
  end)

  it("replicas that apply the same log agree on every result and on the snapshot bytes", function()
    -- Four replicas: different insertion histories, two of them restored
    -- from a snapshot halfway through.
    local outs = {}
    for i, mode in ipairs({ "replay", "replay", "restore", "restore" }) do
      outs[i] = run({ "spec/state_machine/kv_driver.lua", tostring(i), mode, "3000" })
    end
    local function lines(s)
      local t = {}
      for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
      return t
    end
    local first = lines(outs[1])
    assert.are.equal(5, #first)
    assert.matches("^results %x+$", first[1])
    assert.matches("^snapshot %x+ %d+ bytes$", first[2])
    -- The workload is not trivial: hundreds of keys, failures included.
    local nkeys = tonumber(first[3]:match("^state (%d+) keys"))
    local napplied, nfailed, noverruns = first[4]:match("^applied (%d+) commands, (%d+) failed, (%d+) budget overruns$")
    assert.is_true(nkeys > 300, first[3])
    assert.is_true(tonumber(napplied) > 3000 and tonumber(nfailed) > 10, first[4])
    assert.is_true(tonumber(noverruns) > 10 and tonumber(noverruns) < 190, first[4])
    local stock = { first[5] }
    for i = 2, #outs do
      local l = lines(outs[i])
      assert.are.same({ first[1], first[2], first[3], first[4] }, { l[1], l[2], l[3], l[4] })
      stock[i] = l[5]
    end
    -- The same keys in the host's own tables: the order differs.
    assert.is_true(distinct(stock) >= 2, "stock pairs agreed across processes: the test would prove nothing")
  end)

  it("replicas agree on timer firings, published events and snapshots carrying timers", function()
    local outs = {}
    for i, mode in ipairs({ "replay", "replay", "restore", "restore" }) do
      outs[i] = run({ "spec/state_machine/timers_driver.lua", mode, "3000" })
    end
    for i = 2, #outs do assert.are.equal(outs[1], outs[i]) end
    -- The workload is not trivial: thousands of firings and events, failures
    -- included, and timers still pending in the final snapshot.
    local commands, events, fired, failures = outs[1]:match("commands (%d+), events (%d+), fired (%d+), failures (%d+)")
    assert.is_true(tonumber(commands) > 2000 and tonumber(events) > 5000, outs[1])
    assert.is_true(tonumber(fired) > 5000 and tonumber(failures) > 10, outs[1])
    assert.matches("next deadline %d+", outs[1])
  end)
end)
