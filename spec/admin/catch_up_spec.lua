-- The operator's catch-up lines (lua/copycat/operator.lua) while a member
-- catches up by snapshot: the leader's refusal to promote says how many
-- bytes of its snapshot the member has (host/server/clients.c), and
-- `ctl promote` prints "NAME receiving snapshot: B MiB of T MiB, R MiB/s"
-- instead of an entry count that does not move.
local proc = require("support.proc")
local cluster = require("support.cluster")
local operator = require("copycat.operator")

local bugs_bin = proc.build .. "/copycat-lua-bugs"

local function eventually(fn, tries)
  for _ = 1, tries or 100 do
    if fn() then return true end
    os.execute("sleep 0.1")
  end
  return false
end

describe("operator catch-up progress", function()
  after_each(proc.cleanup)

  it("formats the snapshot line in MiB, with the rate once it is known", function()
    assert.are.equal("n2 receiving snapshot: 120.0 MiB of 256.0 MiB, 40.0 MiB/s",
      operator.snapshot_line("n2", 120 * 1048576, 256 * 1048576, 40 * 1048576))
    assert.are.equal("n4 receiving snapshot: 0.0 MiB of 3.4 MiB",
      operator.snapshot_line("n4", 0, 3600000))
    assert.are.equal("n4 receiving snapshot: 1.0 MiB of 1.5 MiB, 0.0 MiB/s",
      operator.snapshot_line("n4", 1048576, 1572864, 0))
  end)

  it("gives a joining server's log lines from the leader's refusals, snapshot bytes while they move", function()
    local join_progress = require("copycat.server").join_progress
    local prev = {}
    local entries = "the member has not caught up with the log yet (it holds 100 of 1300 entries): retry shortly"
    local snap = "the member has not caught up with the log yet (it holds 100 of 1300 entries; "
      .. "it is receiving a snapshot: %d of 3600000 bytes): retry shortly"
    local ev, f = join_progress(entries, prev, 1000)
    assert.are.equal("join_catching_up", ev)
    assert.are.same({ behind = 1200 }, f)
    -- at most a line a second
    assert.is_nil(join_progress(entries, prev, 1500))
    -- the snapshot starts: bytes, no rate yet (a new kind of line)
    ev, f = join_progress(snap:format(1048576), prev, 2000)
    assert.are.equal("join_receiving_snapshot", ev)
    assert.are.same({ received_bytes = 1048576, snapshot_bytes = 3600000 }, f)
    ev, f = join_progress(snap:format(3145728), prev, 4000)
    assert.are.equal("join_receiving_snapshot", ev)
    assert.are.same({ received_bytes = 3145728, snapshot_bytes = 3600000, bytes_per_s = 1048576 }, f)
    -- installed: entries again, counted afresh
    ev, f = join_progress(entries:gsub("100 of 1300", "1290 of 1300"), prev, 5000)
    assert.are.equal("join_catching_up", ev)
    assert.are.same({ behind = 10 }, f)
    ev, f = join_progress(entries:gsub("100 of 1300", "1300 of 1310"), prev, 6000)
    assert.are.equal("join_catching_up", ev)
    assert.are.same({ behind = 10, entries_per_s = 10 }, f)
    -- other refusals say nothing
    assert.is_nil(join_progress("not the leader", prev, 9000))
  end)

  it("add shows a new member receiving the leader's snapshot, in bytes of its size", function()
    local opts = { "--snapshot-threshold", "100" }
    local c = cluster.new(4)
    local first3 = cluster.addresses(c, 1, 3)
    for i = 1, 3 do cluster.start(c, i, "bootstrap", first3, opts) end
    -- More than 1024 entries past the leader's snapshot: a new member can
    -- only catch up by that snapshot, about 3.6 MB (four 1 MiB chunks).
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "before", "1" }, first3).code)
    local w = proc.run({ "-e", ([[
      local c = copycat.client{ cluster = { %q } }
      local pad = string.rep("x", 3000)
      for i = 1, 1200 do
        local _, err = c:submit("put", { key = "s" .. i, value = i .. pad })
        if err then print("put failed", i, err) os.exit(1) end
      end
      print("done") c:close()
    ]]):format(c.members[1].address) }, { timeout = 90 })
    assert.are.equal("done\n", w.stdout, w.stderr)
    -- Each member's snapshot covers all of it now: none is still being
    -- written that would make the leader start its transfer over.
    for i = 1, 3 do
      local r = proc.run({ "ctl", "--socket", c.members[i].data, "snapshot" }, { timeout = 60 })
      assert.are.equal(0, r.code, r.stderr)
    end

    -- n4 (the fault suite's build) stops itself when the third chunk
    -- arrives: it has acknowledged two, 2 MiB, and the transfer waits.
    local m = c.members[4]
    c.procs[4] = proc.start({ "COPYCAT_TEST_STOP_AT_SNAPSHOT_CHUNK=3", bugs_bin, "examples/kv/server.lua",
      "--name", m.name, "--address", m.address, "--data", m.data, "--empty",
      "--election-timeout", "300", "--heartbeat-interval", "30" }, { bin = "/usr/bin/env", timeout = 180 })
    assert.is_true(c.procs[4]:wait_output("serving on", 30), c.procs[4]:stderr())
    local h = proc.start({ "ctl", "--socket", c.members[1].data, "--timeout", "60", "add", "n4", m.address },
      { timeout = 90 })
    -- Two lines at least: the second has a rate (n4 is stopped: 0).
    assert.is_true(h:wait_output("MiB/s", 30), h:stdout() .. h:stderr() .. c.procs[4]:stderr())
    assert.is_nil(h:wait(0)) -- still waiting for n4
    c.procs[4]:kill("CONT")
    assert.are.equal(0, h:wait(60), h:stderr())
    -- (its log lines were still buffered while it was stopped)
    assert.is_true(c.procs[4]:wait_output("", 0))
    assert.is_true(eventually(function()
      return c.procs[4]:stderr():find("event=deliberate_stop chunk=3 offset=2097152", 1, true) ~= nil
    end), c.procs[4]:stderr())
    local out = h:stdout()
    -- The size is that of the snapshot the leader sent, as its log says.
    local leader
    for i = 1, 3 do
      if c.procs[i]:stderr():find("event=snapshot_sending peer=n4", 1, true) then leader = i end
    end
    assert.is_truthy(leader, "no member logged sending n4 a snapshot")
    local total
    for t in c.procs[leader]:stderr():gmatch("event=snapshot_sending peer=n4 index=%d+ bytes=%d+ total=(%d+)") do
      total = tonumber(t)
    end
    local size = ("%.1f MiB"):format(total / 1048576)
    assert.is_true(total > 3 * 1048576, out)
    assert.matches("n4 receiving snapshot: 2%.0 MiB of " .. size:gsub("%.", "%%.") .. "\n", out)
    assert.matches("n4 receiving snapshot: 2%.0 MiB of " .. size:gsub("%.", "%%.") .. ", 0%.0 MiB/s\n", out)
    assert.is_nil(out:find("entries behind, 0 entries/s", 1, true), out)
    assert.matches("added n4 at 127%.0%.0%.1:%d+ as active %(configuration %d+ committed%)\n$", out)
    -- n4 holds what the snapshot brought.
    assert.is_true(eventually(function()
      return cluster.kv(c, { "get", "s1200", "--consistency", "sequential" }, m.address).stdout
        == "1200" .. string.rep("x", 3000) .. "\n"
    end))
  end)
end)
