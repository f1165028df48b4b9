-- Sessions against real 3-server clusters: exactly-once and ordered
-- commands through lost replies and a killed leader, expiry at the same
-- index everywhere, locks passing on expiry, events across leader
-- changes, query consistency levels after pauses, replicated timers.
local proc = require("support.proc")
local cluster = require("support.cluster")

local MACHINE = "spec/sessions/machine.lua"

local function start(opts)
  opts = opts or {}
  local c = cluster.new(3, opts)
  local list = cluster.addresses(c)
  for i = 1, 3 do
    cluster.start(c, i, "bootstrap", list, { "--state-machine", opts.machine or MACHINE,
      "--snapshot-threshold", tostring(opts.snapshot or 10000) })
  end
  return c
end

-- Client scripts get arg[1], the addresses to use, also as the list
-- `members`.
local PRELUDE = 'local members = {} for a in arg[1]:gmatch("[^,]+") do members[#members + 1] = a end\n'

-- Runs a Lua client script against the cluster (or the given members).
local function client(c, source, members, timeout)
  local path = proc.script(PRELUDE .. source)
  return proc.run({ path, members or cluster.addresses(c) }, { timeout = timeout or 60 })
end

local function client_bg(c, source, members)
  return proc.start({ proc.script(PRELUDE .. source), members or cluster.addresses(c) }, { timeout = 120 })
end

-- A query answered by one member (sequential: no redirect); prints the
-- value codec-encoded as hex so the spec can compare tables.
local function query_at(c, i, op, args)
  local r = client(c, ([[
    local c = copycat.client{ cluster = { arg[1] } }
    local v, err = c:query(%q, %s, { consistency = "sequential" })
    if err then io.stderr:write(err) os.exit(1) end
    print((copycat.codec.encode(v):gsub(".", function(ch) return ("%%02x"):format(ch:byte()) end)))
    c:close()
  ]]):format(op, args or "{}"), c.members[i].address)
  assert(r.code == 0, r.stderr)
  local hex = r.stdout:match("%x*")
  return require("copycat.codec").decode((hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)))
end

local function wait_ready(c)
  local r = client(c, [[
    local c = copycat.client{ cluster = members }
    for _ = 1, 100 do
      if c:submit("append", { v = 0 }) then os.exit(0) end
      copycat.sleep(100)
    end
    os.exit(1)
  ]])
  assert(r.code == 0, "the cluster did not start: " .. r.stderr)
end

describe("sessions on a cluster", function()
  after_each(proc.cleanup)

  it("apply a command whose reply was lost exactly once when it is resent", function()
    local c = start()
    wait_ready(c)
    -- The raw protocol: the first reply is never read (the connection is
    -- dropped at once), then the same (session, seq) goes again.
    local r = client(c, [[
      local net = copycat.net
      local function ask(req)
        for _ = 1, 50 do
          for _, a in ipairs(members) do
            local conn = net.connect(a)
            if conn then
              conn:send({ "copycat", 1, "copycat", "client", "", "" })
              conn:recv(2000)
              conn:send(req)
              local reply = conn:recv(3000)
              if type(reply) == "table" and reply[1] == "result" then return reply, conn end
              conn:close()
            end
          end
          copycat.sleep(100)
        end
        error("no leader answered")
      end
      local reply, conn = ask({ "open", 1, 10000 })
      local session = reply[3][2]
      conn:close()
      -- the reply of this one is lost
      for _ = 1, 50 do
        local ok = false
        for _, a in ipairs(members) do
          local k = net.connect(a)
          if k then
            k:send({ "copycat", 1, "copycat", "client", "", "" })
            local hello = k:recv(2000)
            k:send({ "submit", 2, session, 1, 0, "append", { v = "once" } })
            k:close()
            ok = hello and true
          end
        end
        if ok then break end
      end
      copycat.sleep(300)
      local again = ask({ "submit", 3, session, 1, 0, "append", { v = "once" } })
      local next_one = ask({ "submit", 4, session, 2, 1, "append", { v = "twice" } })
      print(again[3][1], again[3][2], next_one[3][2])
      os.exit(0)
    ]])
    assert.equal(0, r.code, r.stderr)
    -- Member 1 answers sequentially: if it follows, it applies the last
    -- command a heartbeat after the leader did.
    local list
    for _ = 1, 50 do
      list = query_at(c, 1, "list")
      if list[#list] == "twice" then break end
      os.execute("sleep 0.1")
    end
    local once = 0
    for _, v in ipairs(list) do if v == "once" then once = once + 1 end end
    assert.equal(1, once)
    assert.equal("twice", list[#list])
    -- the resend got the first application's result: the position of "once"
    local pos, n = r.stdout:match("^true\t(%d+)\t(%d+)")
    assert.equal(tonumber(n), tonumber(pos) + 1)
    assert.equal("once", list[tonumber(pos)])
  end)

  it("apply 1000 commands from several tasks of one client in issue order while the leader is killed", function()
    local c = start()
    wait_ready(c)
    local writer = client_bg(c, [[
      -- A long session timeout: a slow disk may slow the election down,
      -- and this spec is about order, not expiry.
      local c = copycat.client{ cluster = members, session_timeout = 20000 }
      local next_v, tasks, failed = 0, {}, nil
      for t = 1, 8 do
        tasks[t] = copycat.spawn(function()
          while next_v < 1000 do
            next_v = next_v + 1
            local _, err = c:submit("append", { v = next_v }) -- numbered in this order
            if err then failed = err return end
            copycat.sleep(t % 3)
          end
        end)
      end
      for _, t in ipairs(tasks) do t:wait() end
      if failed then io.stderr:write(failed) os.exit(1) end
      c:close()
      print("done")
    ]])
    -- kill the leader once a fair share has been applied
    local killed
    for _ = 1, 200 do
      local n = query_at(c, 1, "count")
      if n > 250 then
        local leader = cluster.leader(c)
        killed = cluster.index_of(c, leader)
        c.procs[killed]:kill("KILL")
        break
      end
      os.execute("sleep 0.05")
    end
    assert.is_not_nil(killed, "the writer made no progress")
    local rc = writer:wait(90)
    if rc ~= 0 then
      local logs = {}
      for i = 1, 3 do logs[i] = c.procs[i]:stderr():sub(-800) end -- the servers' last words
      error(writer:stderr() .. "\n" .. table.concat(logs, "\n---\n"))
    end
    local other = killed % 3 + 1
    local list = query_at(c, other, "list")
    local values = {}
    for _, v in ipairs(list) do if v ~= 0 then values[#values + 1] = v end end
    assert.equal(1000, #values)
    for i = 1, 1000 do assert.equal(i, values[i], "position " .. i) end
  end)

  it("expire a killed client's session at the same index on every server, passing its lock to the waiter", function()
    local c = start({ machine = "examples/lock/state_machine.lua" })
    local members = cluster.addresses(c)
    local holder = proc.start({ "examples/lock/client.lua", "--cluster", members, "--session-timeout", "1000", "L" })
    assert.is_true(holder:wait_output("acquired L", 30), holder:stderr())
    local waiter = proc.start({ "examples/lock/client.lua", "--cluster", members, "--session-timeout", "1000",
      "L", "100" })
    assert.is_true(waiter:wait_output("waiting for L", 30), waiter:stderr())
    local session = tonumber(holder:stdout():match("session=(%d+)"))
    holder:kill("KILL")
    -- nothing else is written: the leader commits the passing of time
    assert.equal(0, waiter:wait(30), waiter:stderr())
    assert.matches("acquired L session=%d+\nreleased L", waiter:stdout())
    local at = {}
    for i = 1, 3 do
      for _ = 1, 50 do
        at[i] = query_at(c, i, "released", "{ session = " .. session .. " }")
        if at[i] then break end
        os.execute("sleep 0.1")
      end
    end
    assert.is_table(at[1])
    assert.same(at[1], at[2])
    assert.same(at[1], at[3])
  end)

  it("tell a client that was paused past its session timeout that its session expired", function()
    local c = start()
    wait_ready(c)
    local paused = client_bg(c, [[
      local c = copycat.client{ cluster = members, session_timeout = 500 }
      local lost
      c:on("session:lost", function(why) lost = why end)
      assert(c:submit("append", { v = "before" }))
      print("ready")
      io.stdout:flush()
      copycat.sleep(1500) -- paused by the spec meanwhile
      local ok, err = c:submit("append", { v = "after" })
      copycat.sleep(100)
      print(tostring(ok), err, lost)
      os.exit(0)
    ]])
    assert.is_true(paused:wait_output("ready", 30), paused:stderr())
    paused:kill("STOP")
    os.execute("sleep 2")
    paused:kill("CONT")
    assert.equal(0, paused:wait(30), paused:stderr())
    assert.matches("^ready\nnil\t[^\n]*expired[^\n]*\t[^\n]*expired", paused:stdout())
    local list = query_at(c, 1, "list")
    assert.equal("before", list[#list]) -- the command after expiry was not applied
  end)

  it("run session_closed at once when a client closes its session", function()
    local c = start()
    wait_ready(c)
    local r = client(c, [[
      local c = copycat.client{ cluster = members, session_timeout = 60000 }
      assert(c:submit("append", { v = 1 }))
      print(c:session_id())
      c:close()
    ]])
    assert.equal(0, r.code, r.stderr)
    local session = tonumber(r.stdout:match("%d+"))
    local closed
    for _ = 1, 20 do
      closed = query_at(c, 2, "closed", "{ session = " .. session .. " }")
      if closed then break end
      os.execute("sleep 0.1")
    end
    assert.is_number(closed) -- long before the 60 s timeout
  end)

  it("deliver events once and in order across a leader change", function()
    local c = start()
    wait_ready(c)
    local listener = client_bg(c, [[
      local c = copycat.client{ cluster = members, session_timeout = 20000 }
      local got = {}
      c:on("n", function(i) got[#got + 1] = i end)
      assert(c:open())
      print("session " .. c:session_id())
      io.stdout:flush()
      local deadline = copycat.now() + 60000
      while #got < 300 and copycat.now() < deadline do copycat.sleep(20) end
      copycat.sleep(500) -- duplicates would arrive now
      print("got " .. table.concat(got, ","))
      c:close()
    ]])
    assert.is_true(listener:wait_output("session ", 30), listener:stderr())
    local session = listener:stdout():match("session (%d+)")
    local publisher = client_bg(c, ([[
      local c = copycat.client{ cluster = members }
      for i = 1, 300, 10 do
        local _, err = c:submit("publish", { session = %s, from = i, to = i + 9 })
        if err then io.stderr:write(err) os.exit(1) end
        copycat.sleep(20)
      end
      c:close()
    ]]):format(session))
    os.execute("sleep 0.3")
    local leader = cluster.leader(c)
    c.procs[cluster.index_of(c, leader)]:kill("KILL")
    assert.equal(0, publisher:wait(60), publisher:stderr())
    assert.equal(0, listener:wait(60), listener:stderr())
    local expect = {}
    for i = 1, 300 do expect[i] = tostring(i) end
    assert.equal("got " .. table.concat(expect, ","), listener:stdout():match("got [%d,]*"))
  end)

  it("never serve a sequential query older than what the client has seen, from a lagging follower", function()
    local c = start()
    wait_ready(c)
    local leader = cluster.leader(c)
    local f = cluster.index_of(c, leader) % 3 + 1
    local r = client(c, ([[
      local follower = %q
      local c = copycat.client{ cluster = members }
      assert(c:submit("append", { v = "old" }))
      -- the follower has it
      local fc = copycat.client{ cluster = { follower } }
      for _ = 1, 100 do
        if fc:query("last", {}, { consistency = "sequential" }) == "old" then break end
        copycat.sleep(20)
      end
      fc:close()
      os.execute("kill -STOP %d")
      for i = 1, 300 do assert(c:submit("append", { v = ("x"):rep(2000) .. i })) end
      assert(c:submit("append", { v = "new" }))
      assert(c:query("last", {}) == "new")
      -- the client's "seen" index, then a query queued at the paused follower
      local seen = c.seen
      local conn = assert(copycat.net.connect(follower))
      conn:send({ "copycat", 1, "copycat", "client", "", "" })
      conn:send({ "query", 1, "last", {}, "sequential", 0, seen })
      os.execute("kill -CONT %d")
      conn:recv(5000) -- hello
      local reply = conn:recv(10000)
      print(reply[3][2], reply[4] >= seen)
      os.exit(0)
    ]]):format(c.members[f].address, c.procs[f].pid, c.procs[f].pid))
    assert.equal(0, r.code, r.stderr)
    assert.equal("new\ttrue\n", r.stdout)
  end)

  for _, level in ipairs({ "linearizable", "lease" }) do
    it(("never serve a stale %s query from a paused old leader"):format(level), function()
      local c = start()
      wait_ready(c)
      local leader = cluster.leader(c)
      local li = cluster.index_of(c, leader)
      local others = {}
      for i = 1, 3 do if i ~= li then others[#others + 1] = c.members[i].address end end
      local r = client(c, ([[
        local old = %q
        local c = copycat.client{ cluster = members }
        assert(c:submit("append", { v = "old" }))
        -- a connection to the old leader, opened while it still runs
        local conn = assert(copycat.net.connect(old))
        conn:send({ "copycat", 1, "copycat", "client", "", "" })
        assert(conn:recv(2000)[1] == "ok")
        os.execute("kill -STOP %d")
        local nc = copycat.client{ cluster = { %q, %q } }
        local _, err = nc:submit("append", { v = "new" }) -- needs a new leader
        assert(not err, err)
        conn:send({ "query", 1, "last", {}, %q, 0, 0 })
        os.execute("kill -CONT %d")
        local reply = conn:recv(10000)
        print(reply[1], reply[1] == "result" and reply[3][2] or "-")
        os.exit(0)
      ]]):format(c.members[li].address, c.procs[li].pid, others[1], others[2], level, c.procs[li].pid))
      assert.equal(0, r.code, r.stderr)
      assert.is_nil(r.stdout:find("result\told", 1, true), "stale read: " .. r.stdout)
      assert.truthy(r.stdout:find("^redirect") or r.stdout:find("^result\tnew"), r.stdout)
    end)
  end

  it("not serve a lease query from a leader resumed after a pause longer than its lease", function()
    local c = start()
    wait_ready(c)
    local li = cluster.index_of(c, cluster.leader(c))
    local pids = {}
    for i = 1, 3 do if i ~= li then pids[#pids + 1] = c.procs[i].pid end end
    pids[#pids + 1] = c.procs[li].pid -- the leader last, so it notices nothing
    -- Nobody can tell the old leader anything: the whole cluster is paused,
    -- and only its own clock says that its lease is over.
    local r = client(c, ([[
      local conn = assert(copycat.net.connect(%q))
      conn:send({ "copycat", 1, "copycat", "client", "", "" })
      assert(conn:recv(2000)[1] == "ok")
      os.execute("kill -STOP %s")
      os.execute("sleep 1")
      conn:send({ "query", 1, "count", {}, "lease", 0, 0 })
      os.execute("kill -CONT %d")
      local reply, err = conn:recv(3000)
      os.execute("kill -CONT %s")
      print(reply and reply[1] or err)
      os.exit(0)
    ]]):format(c.members[li].address, table.concat(pids, " "), c.procs[li].pid, table.concat(pids, " ")))
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(r.stdout:find("^result"), "served from an expired lease: " .. r.stdout)
  end)

  it("fire a state machine timer at the same index on every server, across a snapshot and restart", function()
    local c = start({ snapshot = 5 })
    wait_ready(c)
    local r = client(c, [[
      local c = copycat.client{ cluster = members }
      assert(c:submit("later", { delay = 2500, key = "t" }))
      for i = 1, 12 do assert(c:submit("append", { v = i })) end -- snapshots include the timer
      c:close()
    ]])
    assert.equal(0, r.code, r.stderr)
    -- a follower restarts from its snapshot before the timer is due
    local leader = cluster.index_of(c, cluster.leader(c))
    local f = leader % 3 + 1
    c.procs[f]:kill("KILL")
    c.procs[f]:wait(5)
    cluster.start(c, f, "bootstrap", cluster.addresses(c), { "--state-machine", MACHINE,
      "--snapshot-threshold", "5" })
    local at = {}
    for i = 1, 3 do
      for _ = 1, 100 do
        local ok, v = pcall(query_at, c, i, "fired", "{ key = 't' }")
        if ok and v then at[i] = v break end
        os.execute("sleep 0.1")
      end
    end
    assert.is_table(at[1])
    assert.same(at[1], at[2])
    assert.same(at[1], at[3])
    assert.is_true(at[1][2] >= at[1][3]) -- fired at or after its deadline, in replicated time
  end)
end)
