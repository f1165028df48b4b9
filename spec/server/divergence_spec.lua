-- Replicas that prove they agree (host/server/agree.c), on real 3-server
-- clusters: a member whose state machine computes a different state from
-- the same log is found at the next hash check, stops serving while the
-- others go on, shows it in its log, metrics and ctl status, and comes
-- back once rebuilt; a member removed while it was cut off stops
-- campaigning and says so.
local proc = require("support.proc")
local cluster = require("support.cluster")
local observe = require("support.observe")

local MACHINE = "spec/server/divergence_machine.lua"
local INTERVAL = 20

local function eventually(pred, seconds)
  local deadline = os.time() + (seconds or 20)
  repeat
    if pred() then return true end
    os.execute("sleep 0.1")
  until os.time() > deadline
  return false
end

-- A client script against `members`, with arg[1] = members.
local function client(members, source)
  return proc.run({ proc.script(source), members }, { timeout = 60 })
end

local function ctl(member, ...)
  return proc.run({ "ctl", "--socket", member.data, ... }, { timeout = 30 })
end

local function metrics(port)
  local _, _, body = observe.http_get(port, "/metrics")
  return observe.parse_prometheus(body or "")
end

local function metric(port, name, labels)
  return observe.value(metrics(port), name, labels)
end

describe("divergence", function()
  after_each(proc.cleanup)

  it("a diverged replica is found within one hash interval, stops serving, and is rebuilt", function()
    local c = cluster.new(3)
    local mports = cluster.free_ports(1)
    local bad = proc.tmpdir() .. "/drift.lua"
    proc.write(bad, (proc.slurp(MACHINE):gsub("local DRIFT = 0", "local DRIFT = 1")))
    local list = cluster.addresses(c)
    local common = { "--hash-interval", tostring(INTERVAL), "--snapshot-threshold", "100000" }
    for i = 1, 3 do
      local extra = { "--state-machine", i == 3 and bad or MACHINE }
      if i == 3 then extra[#extra + 1] = "--metrics-address"; extra[#extra + 1] = "127.0.0.1:" .. mports[1] end
      for _, a in ipairs(common) do extra[#extra + 1] = a end
      cluster.start(c, i, "bootstrap", list, extra)
    end
    -- one put of a number: n3 stores 8, the others 7; then enough puts to
    -- cross the next multiple of the interval
    local r = client(list, [[
      local c = copycat.client{ cluster = { arg[1]:match("[^,]+"), arg[1]:match(",([^,]+)"),
        arg[1]:match("([^,]+)$") } }
      local old, index
      for _ = 1, 100 do
        old, index = c:submit("put", { key = "n", value = 7 })
        if index then break end
        copycat.sleep(100)
      end
      assert(index, "the cluster did not start: " .. tostring(old))
      for i = 1, ]] .. INTERVAL + 5 .. [[ do assert(select(2, c:submit("put", { key = "k" .. i, value = "v" }))) end
      print(index)
      c:close()
    ]])
    assert.are.equal(0, r.code, r.stderr)
    local at = tonumber(r.stdout:match("%d+"))
    local n3 = c.procs[3]
    assert.is_true(eventually(function() return n3:stderr():find("event=state_diverged", 1, true) end),
      n3:stderr())
    -- the report: the first check index at or after the put, both hashes, the names
    local line = n3:stderr():match("[^\n]*event=state_diverged[^\n]*")
    local _, f = observe.parse_kv(line)
    local index = tonumber(f.index)
    assert.is_true(index >= at and index < at + INTERVAL and index % INTERVAL == 0, line)
    assert.matches("^%x+$", f.hash)
    assert.matches("^%x+$", f.majority_hash)
    assert.are_not.equal(f.hash, f.majority_hash)
    assert.are.equal("n3", f.member)
    assert.is_truthy(f.majority == "n1,n2" or f.majority == "n2,n1", line)
    local _, count = n3:stderr():gsub("event=state_diverged", "")
    assert.are.equal(1, count)
    -- n3 refuses clients with a clear error, even a sequential read
    r = client(c.members[3].address, [[
      local c = copycat.client{ cluster = { arg[1] }, timeout = 500 }
      print(c:query("get", { key = "n" }, { consistency = "sequential" }))
    ]])
    assert.matches("diverged", r.stdout, 1, true)
    -- its metric and ctl status say so
    assert.are.equal(1, metric(mports[1], "copycat_state_diverged"))
    assert.are.equal(index, metric(mports[1], "copycat_state_diverged_index"))
    r = ctl(c.members[3], "status")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("DIVERGED at index " .. index, r.stdout, 1, true)
    r = ctl(c.members[3], "status", "--json")
    assert.matches('"majority_hash":"' .. f.majority_hash .. '"', r.stdout, 1, true)
    -- the others go on serving writes and reads
    local two = cluster.addresses(c, 1, 2)
    r = client(two, [[
      local members = {}
      for a in arg[1]:gmatch("[^,]+") do members[#members + 1] = a end
      local c = copycat.client{ cluster = members }
      assert(select(2, c:submit("put", { key = "after", value = 1 })))
      print(c:query("get", { key = "n" }), c:query("get", { key = "after" }))
      -- every result of a command reaches the client
      print(c:submit("multi", { a = 1, b = "two", c = 3 }))
      -- a query that writes gets an error, and the state is unchanged
      print(c:query("poke", { key = "n" }))
      print(c:query("count_up", {}, { consistency = "sequential" }))
      print(c:query("get", { key = "n" }))
      c:close()
    ]])
    local out = {}
    for l in r.stdout:gmatch("[^\n]+") do out[#out + 1] = l end
    assert.are.equal("7\t1", out[1], r.stderr)
    assert.are.equal("1\ttwo\t3", out[2])
    assert.matches("^nil\tapplication error: .*query 'poke' tried to write to the state %(key 'n'%)", out[3])
    assert.matches("^nil\tapplication error: query 'count_up' assigned to 'writes'", out[4])
    assert.are.equal("7", out[5])

    -- rebuild: remove it, wipe its data, join again with the right machine
    r = ctl(c.members[1], "run", "scripts/leave.lua", "n3")
    if r.code ~= 0 then r = ctl(c.members[2], "run", "scripts/leave.lua", "n3") end
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    n3:kill("TERM")
    assert.is_truthy(n3:wait(10))
    os.execute("rm -rf " .. proc.quote(c.members[3].data))
    local extra = { "--state-machine", MACHINE }
    for _, a in ipairs(common) do extra[#extra + 1] = a end
    extra[#extra + 1] = "--metrics-address"
    extra[#extra + 1] = "127.0.0.1:" .. mports[1]
    n3 = cluster.start(c, 3, "join", two, extra)
    assert.is_true(n3:wait_output("serving on", 30), n3:stderr())
    r = client(list, [[
      local members = {}
      for a in arg[1]:gmatch("[^,]+") do members[#members + 1] = a end
      local c = copycat.client{ cluster = { members[1], members[2] } }
      -- cross another check so that the rebuilt member is compared again
      for i = 1, ]] .. INTERVAL + 5 .. [[ do assert(select(2, c:submit("put", { key = "r" .. i, value = i }))) end
      local s = copycat.client{ cluster = { members[3] } }
      for _ = 1, 100 do
        local v = s:query("get", { key = "r]] .. INTERVAL + 5 .. [[" }, { consistency = "sequential" })
        if v then print(s:query("get", { key = "n" }, { consistency = "sequential" })) break end
        copycat.sleep(100)
      end
      c:close() s:close()
    ]])
    assert.are.equal("7\n", r.stdout, r.stderr)
    assert.is_true(eventually(function() return metric(mports[1], "copycat_state_hashes_total") > 0 end))
    assert.are.equal(0, metric(mports[1], "copycat_state_diverged"))
    assert.is_nil(n3:stderr():find("state_diverged", 1, true))
  end)

  it("a member removed while cut off stops campaigning and says so", function()
    local c = cluster.new(3)
    local mports = cluster.free_ports(1)
    local list = cluster.addresses(c)
    for i = 1, 3 do
      cluster.start(c, i, "bootstrap", list,
        i == 3 and { "--metrics-address", "127.0.0.1:" .. mports[1] } or nil)
    end
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    -- n3 misses its removal: stopped while the others commit it
    c.procs[3]:kill("STOP")
    local r = ctl(c.members[1], "run", "scripts/leave.lua", "n3")
    if r.code ~= 0 then r = ctl(c.members[2], "run", "scripts/leave.lua", "n3") end
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    c.procs[3]:kill("CONT")
    local n3 = c.procs[3]
    assert.is_true(eventually(function() return n3:stderr():find("event=removed_from_cluster", 1, true) end),
      n3:stderr())
    local _, count = n3:stderr():gsub("event=removed_from_cluster", "")
    assert.are.equal(1, count)
    r = ctl(c.members[3], "status", "--json")
    assert.matches('"role":"removed"', r.stdout, 1, true)
    -- it stays a follower: no pre-vote or election any more
    local started = metric(mports[1], "copycat_elections_started_total")
    for _ = 1, 10 do
      os.execute("sleep 0.2")
      local fams = metrics(mports[1])
      assert.are.equal(1, observe.value(fams, "copycat_role", { role = "follower" }))
      assert.are.equal(1, observe.value(fams, "copycat_removed"))
    end
    assert.are.equal(started, metric(mports[1], "copycat_elections_started_total"))
    -- and the cluster goes on without it
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "2" }, cluster.addresses(c, 1, 2)).code)
  end)
end)
