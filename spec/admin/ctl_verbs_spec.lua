-- The verbs of `copycat-lua ctl` (members, add, remove, promote, demote,
-- transfer, snapshot, status) against a live kv cluster of three members
-- and a fourth started empty. Each verb is proved by the cluster's state
-- afterwards (the members and their types as the leader sees them, who
-- leads, the snapshot file on disk), each failure by its exit status, its
-- message and an unchanged cluster. One cluster is shared by the file, so
-- the cases run in order; the last one kills a follower.
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

local function ctl(i, ...)
  local full = { "ctl", "--socket", c.members[i].data }
  for _, a in ipairs({ ... }) do full[#full + 1] = a end
  return proc.run(full, { timeout = 60 })
end

local function status(i)
  local r = ctl(i, "status", "--json")
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
    return li ~= nil and st.config_committed
  end), "no leader")
  return li
end

-- name -> type in the committed configuration as the leader sees it.
local function types()
  local st = status(leader_index(1))
  assert.is_true(st.config_committed)
  local out = {}
  for _, m in ipairs(st.members) do out[m.name] = m.type end
  return out
end

describe("ctl verbs", function()
  setup(function()
    c = cluster.new(4)
    first3 = cluster.addresses(c, 1, 3)
    for i = 1, 3 do cluster.start(c, i, "bootstrap", first3) end
    local m = c.members[4]
    c.procs[4] = proc.start({ "examples/kv/server.lua", "--name", m.name, "--address", m.address,
      "--data", m.data, "--empty", "--election-timeout", "300", "--heartbeat-interval", "30" },
      { timeout = 180 })
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "before", "1" }, first3).code)
    assert.is_true(c.procs[4]:wait_output("serving on", 30), c.procs[4]:stderr())
  end)
  teardown(proc.cleanup)

  it("members lists the members as a table and as JSON", function()
    local li = leader_index(1)
    local r = ctl(li, "members")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^NAME%s+ADDRESS%s+TYPE%s+ROLE%s+MATCH%s+LAG\n", r.stdout)
    for i = 1, 3 do
      assert.matches("n" .. i .. "[ *]+127%.0%.0%.1:" .. c.members[i].port .. "%s+active%s+" ..
        (i == li and "leader" or "follower"), r.stdout)
    end
    r = ctl(li, "members", "--json")
    assert.are.equal(0, r.code, r.stderr)
    local ms = json.decode(r.stdout)
    assert.are.equal(3, #ms)
    for _, m in ipairs(ms) do
      assert.are.equal("active", m.type)
      assert.are.equal(m.name == "n" .. li and "leader" or "follower", m.role)
      assert.is_number(m.match_index)
    end
  end)

  it("refuses bad arguments as usage errors (exit 2) and changes nothing", function()
    local cases = {
      { { "add", "n4", "notanaddress" }, "add: 'notanaddress' is not an address: give HOST:PORT" },
      { { "add", "n4", "127.0.0.1:99999" }, "add: '127.0.0.1:99999' is not an address" },
      { { "add", "n4", c.members[4].address, "--type", "voter" }, "add: %-%-type must be passive or reserve" },
      { { "add", "n4" }, "add: expected NAME HOST:PORT" },
      { { "promote" }, "promote: expected NAME" },
      { { "remove", "n1", "n2" }, "remove: expected NAME" },
      { { "snapshot", "bogus" }, "snapshot: unknown subcommand 'bogus'" },
      { { "transfer", "--json", "n2" }, "transfer does not take %-%-json" },
      { { "frobnicate" }, "unknown command frobnicate" },
    }
    for _, case in ipairs(cases) do
      local r = ctl(1, table.unpack(case[1]))
      assert.are.equal(2, r.code, table.concat(case[1], " ") .. ": " .. r.stderr)
      assert.matches("^ctl: " .. case[2], r.stderr)
      assert.matches("usage: copycat%-lua ctl", r.stderr)
    end
    assert.are.same({ n1 = "active", n2 = "active", n3 = "active" }, types())
  end)

  it("add of a server that is not running says so early and changes nothing", function()
    local port = cluster.free_ports(1)[1]
    local r = ctl(2, "--timeout", "20", "add", "n9", "127.0.0.1:" .. port)
    assert.are.equal(1, r.code)
    -- within the probe's 5 s, not the command's 20 s
    assert.matches("^ctl: add: no answer from 127%.0%.0%.1:" .. port .. " after 5 s: is the server running%?", r.stderr)
    assert.matches("%-%-empty%), then add it again", r.stderr)
    -- a running server under another name is not added either
    r = ctl(2, "add", "n5", c.members[4].address)
    assert.are.equal(1, r.code)
    assert.matches("the server at 127%.0%.0%.1:%d+ is named 'n4', not 'n5'", r.stderr)
    assert.are.same({ n1 = "active", n2 = "active", n3 = "active" }, types())
  end)

  it("add makes a running empty server an active member that receives writes", function()
    local r = ctl(2, "add", "n4", c.members[4].address)
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("added n4 at 127%.0%.0%.1:%d+ as active %(configuration %d+ committed%)\n$", r.stdout)
    -- committed and in effect on the server asked when it returned
    local st = status(2)
    assert.is_true(st.config_committed)
    assert.is_true(st.applied_index >= st.config_index)
    assert.are.equal("active", member(st, "n4").type)
    assert.are.same({ n1 = "active", n2 = "active", n3 = "active", n4 = "active" }, types())
    assert.are.equal(0, cluster.kv(c, { "put", "added", "yes" }, first3).code)
    assert.is_true(eventually(function()
      return cluster.kv(c, { "get", "added", "--consistency", "sequential" }, c.members[4].address).stdout == "yes\n"
    end))
    r = ctl(1, "add", "n4", c.members[4].address)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("n4 is already a member (active); nothing changed\n", r.stdout)
  end)

  it("demote makes a member passive; promote waits for it to catch up, showing its progress", function()
    local r = ctl(3, "demote", "n4")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^demoted n4: active %-> passive", r.stdout)
    assert.are.equal("passive", types().n4)
    -- n4 falls behind while stopped: a promotion waits, and says how far
    c.procs[4]:kill("STOP")
    local w = proc.run({ "-e", ([[
      local c = copycat.client{ cluster = { %q } }
      for i = 1, 300 do
        local _, err = c:submit("put", { key = "p" .. i, value = i })
        if err then print("put failed", i, err) os.exit(1) end
      end
      print("done") c:close()
    ]]):format(c.members[1].address) }, { timeout = 60 })
    assert.are.equal("done\n", w.stdout, w.stderr)
    r = ctl(1, "--timeout", "1", "promote", "n4")
    assert.are.equal(1, r.code)
    assert.matches("^ctl: time limit of 1000 ms exceeded: promote: .*has not caught up" ..
      ".*give more time with %-%-timeout SECONDS", r.stderr)
    local h = proc.start({ "ctl", "--socket", c.members[1].data, "--timeout", "60", "promote", "n4" }, { timeout = 90 })
    assert.is_true(h:wait_output("entries/s", 30), h:stdout() .. h:stderr())
    assert.is_nil(h:wait(0)) -- still waiting for n4
    c.procs[4]:kill("CONT")
    assert.are.equal(0, h:wait(60), h:stderr())
    local out = h:stdout()
    local behind = tonumber((out:match("n4 catching up: ([%d,]+) entries behind\n"):gsub(",", "")))
    assert.is_true(behind >= 300, out) -- the first line, before any rate is known
    assert.matches("n4 catching up: [%d,]+ entries behind, [%d,]+ entries/s\n", out)
    assert.matches("promoted n4: passive %-> active, it votes %(configuration %d+ committed%)\n$", out)
    assert.are.equal("active", types().n4)
    r = ctl(2, "promote", "n4")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("n4 is already active; nothing changed\n", r.stdout)
  end)

  it("transfer hands leadership over and returns once the new leader serves", function()
    local r = ctl(2, "transfer", "n4")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^leadership moved from n%d to n4 %(term %d+%)\n$", r.stdout)
    local st = status(2)
    assert.are.equal("n4", st.leader)
    assert.are.equal("leader", status(4).role)
    assert.are.equal(0, cluster.kv(c, { "put", "under-n4", "yes" }, first3).code)
    r = ctl(4, "transfer", "n1")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^leadership moved from n4 to n1", r.stdout)
    assert.are.equal("leader", status(1).role)
    r = ctl(1, "transfer", "n1")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^n1 already leads", r.stdout)
  end)

  it("names an unknown member and says what to do", function()
    for _, v in ipairs({ "promote", "demote", "transfer", "remove" }) do
      local r = ctl(2, v, "n9")
      assert.are.equal(1, r.code, v)
      assert.matches("^ctl: " .. v .. ": no member named 'n9' in the configuration " ..
        "%(ctl members lists them%)\n$", r.stderr)
    end
    assert.are.same({ n1 = "active", n2 = "active", n3 = "active", n4 = "active" }, types())
  end)

  it("snapshot takes a snapshot now, written to the server's data directory", function()
    local r = ctl(2, "snapshot")
    assert.are.equal(0, r.code, r.stderr)
    local index = tonumber(r.stdout:match("^n2: took a snapshot at index (%d+)\n$"))
    assert.is_truthy(index, r.stdout)
    assert.are.equal(index, status(2).snapshot_index)
    local f = io.open(("%s/snapshot-%020d"):format(c.members[2].data, index), "rb")
    assert.is_truthy(f, "no snapshot file for index " .. index)
    f:close()
    r = ctl(2, "snapshot")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(("n2: snapshot at index %d is current (nothing applied since)\n"):format(index), r.stdout)
  end)

  it("remove takes a member out of the configuration", function()
    local r = ctl(3, "remove", "n4")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^removed n4 %(configuration %d+ committed%); stop its server now\n$", r.stdout)
    assert.is_nil(member(status(3), "n4"))
    assert.are.same({ n1 = "active", n2 = "active", n3 = "active" }, types())
    c.procs[4]:kill("TERM")
    assert.are.equal(0, cluster.kv(c, { "put", "after-remove", "ok" }, first3).code)
  end)

  it("status shows a killed follower as unreachable, with its last contact", function()
    local li = leader_index(1)
    local down = li % 3 + 1
    local other = 6 - li - down
    local name = "n" .. down
    c.procs[down]:kill("KILL")
    assert.is_truthy(c.procs[down]:wait(10))
    local st
    assert.is_true(eventually(function()
      st = status(li)
      local m = member(st, name)
      return m.role == "unreachable" and m.last_contact_ms >= 300
    end, 50))
    local m = member(st, name)
    assert.is_true(m.unreachable)
    assert.are.equal(false, member(st, "n" .. other).unreachable)
    assert.are.equal("follower", member(st, "n" .. other).role)
    local r = ctl(li, "status")
    assert.are.equal(0, r.code, r.stderr)
    assert.matches(name .. "%s+127%.0%.0%.1:%d+%s+active%s+unreachable %(last contact %d+%.%d s ago%)", r.stdout)
    assert.matches("n" .. other .. "%s+127%.0%.0%.1:%d+%s+active%s+follower", r.stdout)
    -- a follower knows only its contact with the leader, and says so
    st = status(other)
    assert.are.equal("unknown", member(st, name).role)
    assert.are.equal(false, member(st, "n" .. li).unreachable)
    assert.is_number(member(st, "n" .. li).last_contact_ms)
    r = ctl(other, "status")
    assert.matches("contact with members other than the leader are known on the\nleader", r.stdout)
    -- the dead server's own admin socket
    r = ctl(down, "members")
    assert.are.equal(1, r.code)
    assert.matches("^ctl: cannot reach the admin socket .*is the server running%?", r.stderr)
  end)
end)
