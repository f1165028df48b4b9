-- Server logs (docs/logging.md) on real processes: every line parses as
-- key=value or, with --log-format json, as a JSON object; elections,
-- leader changes and membership changes are logged with their fields.
local proc = require("support.proc")
local cluster = require("support.cluster")
local obs = require("support.observe")

local function eventually(fn, tries)
  for _ = 1, tries or 100 do
    local v = fn()
    if v then return v end
    os.execute("sleep 0.1")
  end
  return nil
end

-- Every line of a kv log: parsed, with ts, level, server, event first.
local function kv_events(text, name)
  local events = {}
  for _, line in ipairs(obs.lines(text)) do
    local list, map = obs.parse_kv(line)
    assert(list, "unparsable log line: " .. line .. " (" .. tostring(map) .. ")")
    assert.are.same({ "ts", "level", "server", "event" },
      { list[1][1], list[2][1], list[3][1], list[4][1] }, line)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", map.ts)
    assert.is_truthy(({ error = 1, warn = 1, info = 1, debug = 1 })[map.level], line)
    assert.are.equal(name, map.server)
    events[#events + 1] = map
  end
  return events
end

local function find(events, event, fields)
  for _, e in ipairs(events) do
    if e.event == event then
      local ok = true
      for k, v in pairs(fields or {}) do if e[k] ~= v then ok = false end end
      if ok then return e end
    end
  end
end

describe("server logs", function()
  after_each(function() proc.cleanup() end)

  it("are key=value lines that record elections, leader changes and membership", function()
    local c = cluster.new(3)
    cluster.bootstrap_all(c)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    local first = eventually(function() return (cluster.leader(c)) end)
    assert.is_truthy(first)
    local li = cluster.index_of(c, first)
    -- the leader goes away: another member is elected
    c.procs[li]:kill("TERM")
    assert.are.equal(0, c.procs[li]:wait(10))
    local rest = {}
    for i = 1, 3 do if i ~= li then rest[#rest + 1] = i end end
    local others = c.members[rest[1]].address .. "," .. c.members[rest[2]].address
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "2" }, others, 80).code)
    local second = eventually(function()
      for _, i in ipairs(rest) do
        local e = find(kv_events(c.procs[i]:stderr(), c.members[i].name), "election_won")
        if e then return i end
      end
    end)
    assert.is_truthy(second, "no survivor logged election_won")

    local old = kv_events(c.procs[li]:stderr(), first)
    assert.is_truthy(find(old, "server_started", { address = c.members[li].address }))
    for i = 1, 3 do
      assert.is_truthy(find(old, "member_added", { member = "n" .. i, address = c.members[i].address,
        type = "active", index = "1" }))
    end
    assert.is_truthy(find(old, "membership_changed",
      { index = "1", members = "n1(active),n2(active),n3(active)", voters = "3" }))
    local won = find(old, "election_won")
    assert.is_truthy(won, "the first leader logged no election_won")
    assert.is_truthy(find(old, "election_started", { term = won.term }))
    assert.is_truthy(find(old, "leader_changed", { leader = first, term = won.term, self = "true" }))
    assert.is_truthy(find(old, "server_stopping"))

    local new = kv_events(c.procs[second]:stderr(), c.members[second].name)
    local won2 = find(new, "election_won")
    assert.is_true(tonumber(won2.term) > tonumber(won.term))
    assert.is_truthy(find(new, "election_started", { term = won2.term }))
    -- the leader change, with the leader it replaces
    assert.is_truthy(find(new, "leader_changed", { leader = first, term = won.term }))
    assert.is_truthy(find(new, "leader_changed", { leader = c.members[second].name, term = won2.term }))
    assert.is_truthy(find(new, "leader_changed", { leader = c.members[second].name, previous = first }))
    -- the link to the stopped leader broke
    local third = rest[1] == second and rest[2] or rest[1]
    local other = kv_events(c.procs[third]:stderr(), c.members[third].name)
    assert.is_truthy(find(other, "leader_changed", { leader = c.members[second].name, previous = first }))
  end)

  it("record a member joining: the request, the addition and the promotion", function()
    local c = cluster.new(2)
    cluster.start(c, 1, "bootstrap", c.members[1].address)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }, c.members[1].address).code)
    local p = cluster.start(c, 2, "join", c.members[1].address)
    assert.is_true(p:wait_output("serving on", 60), p:stderr())
    local events = eventually(function()
      local e = kv_events(c.procs[1]:stderr(), "n1")
      return find(e, "member_type_changed", { member = "n2" }) and e
    end)
    assert.is_truthy(events, "no promotion logged")
    assert.is_truthy(find(events, "membership_requested",
      { op = "change", member = "n2", address = c.members[2].address, type = "passive", result = "accepted" }))
    assert.is_truthy(find(events, "membership_requested",
      { op = "change", member = "n2", type = "active", result = "accepted" }))
    local added = find(events, "member_added", { member = "n2", address = c.members[2].address, type = "passive" })
    assert.is_truthy(added)
    local promoted = find(events, "member_type_changed", { member = "n2", from = "passive", to = "active" })
    assert.is_true(tonumber(promoted.index) > tonumber(added.index))
    assert.is_truthy(find(events, "membership_changed",
      { index = promoted.index, members = "n1(active),n2(active)", voters = "2" }))
    -- the joining server sees the leader and the configurations too
    local joined = kv_events(p:stderr(), "n2")
    assert.is_truthy(find(joined, "leader_changed", { leader = "n1", self = "false" }))
    assert.is_truthy(find(joined, "membership_changed", { members = "n1(active),n2(active)" }))
  end)

  it("are JSON objects with --log-format json, and obey --log-level", function()
    local port = cluster.free_ports(1)[1]
    local a = "127.0.0.1:" .. port
    local p = proc.start({ "examples/kv/server.lua", "--name", "j1", "--address", a, "--data", proc.tmpdir() .. "/j1",
      "--bootstrap", a, "--log-format", "json", "--log-level", "debug", "--snapshot-threshold", "3" })
    assert.is_true(p:wait_output("serving on", 30), p:stderr())
    for i = 1, 4 do
      assert.are.equal(0, proc.run({ "examples/kv/client.lua", "--cluster", a, "put", "k" .. i,
        "va\"lue \1\n" .. i }).code)
    end
    local text = eventually(function()
      local t = p:stderr()
      return t:find("snapshot_taken", 1, true) and t
    end)
    assert.is_truthy(text, "no snapshot_taken line")
    p:kill("TERM")
    assert.are.equal(0, p:wait(10))
    local events = {}
    for _, line in ipairs(obs.lines(p:stderr())) do
      local ok, e = pcall(obs.json_decode, line)
      assert(ok, "not JSON: " .. line .. ": " .. tostring(e))
      assert.are.equal("table", type(e))
      assert.matches("^{\"ts\":\"[^\"]+\",\"level\":\"%a+\",\"server\":\"j1\",\"event\":\"[%w_]+\"", line)
      events[#events + 1] = e
    end
    assert.is_truthy(find(events, "server_started", { address = a, term = 0 }))
    assert.is_truthy(find(events, "election_won", { level = "info" }))
    assert.is_truthy(find(events, "leader_changed", { leader = "j1", self = true }))
    assert.is_truthy(find(events, "role_changed", { level = "debug", to = "leader" }))
    local snap = find(events, "snapshot_taken")
    assert.are.equal("number", type(snap.bytes))
    assert.are.equal("number", type(snap.duration_ms))
    assert.is_true(snap.index >= 3)

    -- --log-level error: a healthy start and stop write no line at all
    local q = proc.start({ "examples/kv/server.lua", "--name", "j1", "--address", a, "--data",
      proc.tmpdir() .. "/e1", "--bootstrap", a, "--log-level", "error" })
    assert.is_true(q:wait_output("serving on", 30), q:stderr())
    q:kill("TERM")
    assert.are.equal(0, q:wait(10))
    assert.are.equal("", q:stderr())
  end)

  it("carry a script's own lines through server:log", function()
    local r = proc.run({ "-e", [[
      local s = copycat.server{ name = "s1", address = "127.0.0.1:0", memory = true, log_format = "json",
        state_machine = "examples/kv/state_machine.lua" }
      s:log("warn", "custom", { text = "hello \"world\"\n", n = 3, f = 1.5, b = true, [1] = "skipped" })
      s:log("debug", "hidden", { x = 1 })
      print(pcall(s.log, s, "loud", "x"))
      s:stop()
    ]] })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^false\t[^\n]*level must be error, warn, info or debug", r.stdout)
    local events = {}
    for _, line in ipairs(obs.lines(r.stderr)) do events[#events + 1] = obs.json_decode(line) end
    local e = find(events, "custom")
    assert.is_truthy(e, r.stderr)
    assert.are.same({ "warn", "s1", "hello \"world\"\n", 3, 1.5, true },
      { e.level, e.server, e.text, e.n, e.f, e.b })
    assert.is_nil(find(events, "hidden"))
  end)

  it("refuses an unknown level or format", function()
    local r = proc.run({ "examples/kv/server.lua", "--name", "n1", "--address", "127.0.0.1:1", "--data",
      proc.tmpdir(), "--bootstrap", "127.0.0.1:1", "--log-level", "loud" })
    assert.are.equal(2, r.code)
    assert.matches('%-%-log%-level expects error, warn, info or debug, got "loud"', r.stderr)
    r = proc.run({ "-e", [[copycat.server{ name = "n1", address = "127.0.0.1:1", memory = true,
      log_level = "loud", state_machine = "examples/kv/state_machine.lua" }]] })
    assert.are_not.equal(0, r.code)
    assert.matches("log_level must be", r.stderr)
    r = proc.run({ "-e", [[
      local core = require("copycat.core")
      print(core.server.start({ name = "n1", address = "127.0.0.1:0", memory = true, log_format = "xml" }, {}))
    ]] })
    assert.matches("unknown log format 'xml': use kv or json", r.stdout)
  end)
end)
