-- The shipped operator scripts (scripts/*.lua), each run with
-- `copycat-lua ctl` against a live kv cluster; the cluster's state
-- afterwards (its committed configuration, who leads, what a new member
-- holds) is what proves the script did what it says. One cluster (three
-- members and a fourth started empty) is shared by the whole file, so the
-- cases run in order.
local proc = require("support.proc")
local cluster = require("support.cluster")
local json = require("support.json")

local function eventually(fn, tries)
  for _ = 1, tries or 100 do
    if fn() then return true end
    os.execute("sleep 0.1")
  end
  return false
end

local c, first3

local function ctl(i, args)
  local full = { "ctl", "--socket", c.members[i].data }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return proc.run(full, { timeout = 60 })
end

-- Member i's status as `ctl status --json` prints it.
local function status(i)
  local r = ctl(i, { "status", "--json" })
  assert.are.equal(0, r.code, r.stderr)
  return json.decode(r.stdout)
end

local function member(st, name)
  for _, m in ipairs(st.members) do
    if m.name == name then return m end
  end
end

-- The index of the member that member i sees leading (waits for one).
local function leader_index(i)
  local li
  assert.is_true(eventually(function()
    local st = status(i)
    li = st.leader ~= json.null and cluster.index_of(c, st.leader) or nil
    return li ~= nil
  end), "no leader")
  return li
end

describe("operator scripts", function()
  setup(function()
    c = cluster.new(4)
    first3 = cluster.addresses(c, 1, 3)
    for i = 1, 3 do cluster.start(c, i, "bootstrap", first3) end
    local m = c.members[4]
    c.procs[4] = proc.start({ "examples/kv/server.lua", "--name", m.name, "--address", m.address,
      "--data", m.data, "--empty", "--election-timeout", "300", "--heartbeat-interval", "30" },
      { timeout = 120 })
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "before", "1" }, first3).code)
    assert.is_true(c.procs[4]:wait_output("serving on", 30), c.procs[4]:stderr())
  end)
  teardown(proc.cleanup)

  it("status.lua and ctl status describe the cluster", function()
    local r = ctl(1, { "run", "scripts/status.lua" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("n1 is %a+ in term %d+; leader: n%d", r.stdout)
    for i = 1, 3 do assert.matches("n" .. i .. "%s+127%.0%.0%.1:" .. c.members[i].port, r.stdout) end
    local li = leader_index(1)
    local t = ctl(li, { "status" })
    assert.are.equal(0, t.code, t.stderr)
    assert.matches("server n" .. li .. " %(leader%)", t.stdout)
    assert.matches("NAME%s+ADDRESS%s+TYPE%s+ROLE%s+MATCH%s+LAG", t.stdout)
    local st = status(li)
    assert.are.equal("leader", st.role)
    assert.are.equal(3, #st.members)
    assert.is_true(st.commit_index >= 1 and st.applied_index >= 1 and st.last_index >= st.commit_index)
    assert.is_number(member(st, "n2").match_index) -- progress is known on the leader
    assert.is_number(st.sessions)
  end)

  it("a script run without its arguments prints its usage line", function()
    for _, s in ipairs({ "join", "leave", "promote", "demote", "transfer-leadership" }) do
      local r = ctl(1, { "run", "scripts/" .. s .. ".lua" })
      assert.are.equal(1, r.code)
      assert.matches("usage: ctl run scripts/" .. s:gsub("%-", "%%-") .. "%.lua NAME", r.stderr)
    end
  end)

  it("join.lua adds a running empty server, which then receives writes", function()
    local r = ctl(2, { "run", "scripts/join.lua", "n4", c.members[4].address })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("n4 at .* is now a member %(active%)", r.stdout)
    -- committed and in effect when the script returned
    local st = status(2)
    assert.is_true(st.config_committed)
    assert.are.equal("active", member(st, "n4").type)
    assert.are.equal(0, cluster.kv(c, { "put", "added", "yes" }, first3).code)
    assert.is_true(eventually(function()
      return cluster.kv(c, { "get", "added", "--consistency", "sequential" }, c.members[4].address).stdout == "yes\n"
    end))
    local r4 = cluster.kv(c, { "get", "before", "--consistency", "sequential" }, c.members[4].address)
    assert.are.equal("1\n", r4.stdout)
  end)

  it("demote.lua makes a member PASSIVE in the committed configuration; promote.lua undoes it", function()
    local r = ctl(1, { "run", "scripts/demote.lua", "n4" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("n4 is PASSIVE\n", r.stdout)
    local st = status(1)
    assert.is_true(st.config_committed)
    assert.are.equal("passive", member(st, "n4").type)
    -- the demoted member sees it too: it no longer votes
    assert.is_true(eventually(function()
      local s4 = status(4)
      return s4.config_committed and member(s4, "n4").type == "passive"
    end))
    r = ctl(3, { "run", "scripts/promote.lua", "n4" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("n4 is ACTIVE\n", r.stdout)
    st = status(3)
    assert.is_true(st.config_committed)
    assert.are.equal("active", member(st, "n4").type)
  end)

  it("transfer-leadership.lua lands on the named member, which serves", function()
    local li = leader_index(1)
    local target = li % 3 + 1
    local name = c.members[target].name
    -- run it on a member that is neither leader nor target: it is forwarded
    local via = 6 - li - target
    local r = ctl(via, { "run", "scripts/transfer-leadership.lua", name })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(("leadership moved from n%d to %s\n"):format(li, name), r.stdout)
    local st = status(target)
    assert.are.equal("leader", st.role)
    assert.is_true(st.leader_ready)
    assert.are.equal(name, status(via).leader)
    assert.are.equal(0, cluster.kv(c, { "put", "after-transfer", "ok" }, c.members[target].address).code)
  end)

  it("snapshot.lua takes a snapshot of the server it runs on", function()
    assert.are.equal(0, cluster.kv(c, { "put", "snap", "1" }).code)
    local before = status(2)
    local r = ctl(2, { "run", "scripts/snapshot.lua" })
    assert.are.equal(0, r.code, r.stderr)
    local index = tonumber(r.stdout:match("^n2: snapshot at index (%d+)\n$"))
    assert.is_truthy(index, r.stdout)
    assert.is_true(index > before.snapshot_index)
    assert.are.equal(index, status(2).snapshot_index)
    assert.matches("event=snapshot_taken index=" .. index, c.procs[2]:stderr())
  end)

  it("leave.lua removes a member from the committed configuration", function()
    local r = ctl(1, { "run", "scripts/leave.lua", "n4" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("n4 has left the cluster\n", r.stdout)
    local st = status(1)
    assert.is_true(st.config_committed)
    assert.is_nil(member(st, "n4"))
    assert.are.equal(3, #st.members)
    r = ctl(1, { "run", "scripts/leave.lua", "n4" })
    assert.are.equal(1, r.code)
    assert.matches("no member named 'n4'", r.stderr)
    assert.are.equal(0, cluster.kv(c, { "put", "after-leave", "ok" }, first3).code)
  end)

  it("join.lua of a server that is not running fails early with the reason and changes nothing", function()
    local port = cluster.free_ports(1)[1]
    local r = ctl(1, { "--timeout", "2", "run", "scripts/join.lua", "n9", "127.0.0.1:" .. port })
    assert.are.equal(1, r.code)
    assert.matches("add: no answer from 127%.0%.0%.1:" .. port .. " after 1 s: is the server running%?", r.stderr)
    local st = status(1)
    assert.is_nil(member(st, "n9")) -- never added: the quorum is intact
    assert.are.equal(3, #st.members)
    assert.are.equal(0, cluster.kv(c, { "put", "after-failed-join", "ok" }, first3).code)
  end)
end)
