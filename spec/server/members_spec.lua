-- Member types, pauses and snapshots in real kv clusters.
local proc = require("support.proc")
local cluster = require("support.cluster")

local function seq_get(c, i, key)
  return cluster.kv(c, { "get", key, "--consistency", "sequential" }, c.members[i].address).stdout
end

-- Three servers started with `opts`, one write committed, then a follower
-- killed: returns the cluster, the killed member's index and the other
-- two addresses.
local function one_follower_down(opts)
  local c = cluster.new(3, {})
  local all = cluster.addresses(c)
  for i = 1, 3 do cluster.start(c, i, "bootstrap", all, opts) end
  assert.are.equal(0, cluster.kv_until_ok(c, { "put", "first", "0" }).code)
  local down = cluster.index_of(c, cluster.leader(c)) % 3 + 1
  c.procs[down]:kill("KILL")
  c.procs[down]:wait(5)
  local up = {}
  for i = 1, 3 do if i ~= down then up[#up + 1] = c.members[i].address end end
  return c, down, up, all
end

local function eventually(fn, tries)
  for _ = 1, tries or 60 do
    if fn() then return true end
    os.execute("sleep 0.2")
  end
  return false
end

describe("cluster members", function()
  after_each(proc.cleanup)

  it("a PASSIVE member receives the log but does not vote or count for the quorum", function()
    local c = cluster.new(4)
    local first3 = cluster.addresses(c, 1, 3)
    for i = 1, 3 do cluster.start(c, i, "bootstrap", first3) end
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "p", "1" }, first3).code)
    local p = cluster.start(c, 4, "join", first3, { "--type", "passive" })
    assert.is_true(p:wait_output("serving on", 30), p:stderr())
    assert.are.equal(0, cluster.kv(c, { "put", "p", "2" }, first3).code)
    assert.is_true(eventually(function() return seq_get(c, 4, "p") == "2\n" end))
    -- two of three voters down: the passive member cannot make a majority
    local leader = cluster.index_of(c, cluster.leader(c))
    local down = {}
    for i = 1, 3 do
      if i ~= leader and #down < 2 then down[#down + 1] = i end
    end
    if #down < 2 then down[#down + 1] = leader end
    for _, i in ipairs(down) do c.procs[i]:kill("KILL"); c.procs[i]:wait(5) end
    local r = cluster.kv(c, { "put", "p", "3" })
    assert.are_not.equal(0, r.code)
    assert.are.equal("2\n", seq_get(c, 4, "p"))
    -- one voter back: a majority again, and the passive member sees the write
    cluster.start(c, down[1], "bootstrap", first3)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "p", "4" }).code)
    assert.is_true(eventually(function() return seq_get(c, 4, "p") == "4\n" end))
  end)

  it("a RESERVE member receives nothing until it is promoted", function()
    local c = cluster.new(4)
    local first3 = cluster.addresses(c, 1, 3)
    for i = 1, 3 do cluster.start(c, i, "bootstrap", first3) end
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "r", "before" }, first3).code)
    local p = cluster.start(c, 4, "join", first3, { "--type", "reserve" })
    assert.is_true(p:wait_output("serving on", 30), p:stderr())
    assert.are.equal(0, cluster.kv(c, { "put", "r", "reserved" }, first3).code)
    os.execute("sleep 0.5")
    assert.are.equal("", seq_get(c, 4, "r"))
    local r = proc.run({ "-e", ([[
      local c = copycat.client{ cluster = { %q } }
      local ok, err
      for _ = 1, 50 do
        ok, err = c:change("n4", %q, "active")
        if ok then break end
        copycat.sleep(100)
      end
      print(ok, err)
      c:close()
    ]]):format(c.members[1].address, c.members[4].address) })
    assert.are.equal("true\tnil\n", r.stdout, r.stderr)
    assert.is_true(eventually(function() return seq_get(c, 4, "r") == "reserved\n" end))
  end)

  it("a paused leader (SIGSTOP) loses no acknowledged write and catches up when resumed", function()
    local c = cluster.new(3)
    cluster.bootstrap_all(c)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "s0", "x" }).code)
    local li = cluster.index_of(c, cluster.leader(c))
    c.procs[li]:kill("STOP")
    local others = {}
    for i = 1, 3 do if i ~= li then others[#others + 1] = c.members[i].address end end
    others = table.concat(others, ",")
    for i = 1, 10 do
      local r = cluster.kv_until_ok(c, { "put", "s" .. i, "v" .. i }, others)
      assert.are.equal(0, r.code, r.stderr)
    end
    c.procs[li]:kill("CONT")
    for i = 1, 10 do
      assert.are.equal("v" .. i .. "\n", cluster.kv_until_ok(c, { "get", "s" .. i }).stdout)
    end
    assert.is_true(eventually(function() return seq_get(c, li, "s10") == "v10\n" end))
    assert.are.equal("s0\ns1\ns10\ns2\ns3\ns4\ns5\ns6\ns7\ns8\ns9\n", cluster.kv(c, { "keys", "s" }).stdout)
  end)

  it("a server that was down while the log was compacted catches up through a snapshot", function()
    local c, down, up, all = one_follower_down({ "--snapshot-threshold", "20" })
    up = table.concat(up, ",")
    local r = proc.run({ "-e", ([[
      local c = copycat.client{ cluster = { %s } }
      for i = 1, 1200 do
        local ok, err = c:submit("put", { key = "c" .. i, value = i })
        if err then print("put failed", i, err) os.exit(1) end
      end
      print("done") c:close()
    ]]):format(("%q, %q"):format(up:match("^([^,]+),(.+)$"))) }, { timeout = 60 })
    assert.are.equal("done\n", r.stdout, r.stderr)
    cluster.start(c, down, "bootstrap", all, { "--snapshot-threshold", "20" })
    assert.is_true(eventually(function()
      local got = cluster.kv(c, { "get", "c1200", "--consistency", "sequential" }, c.members[down].address)
      return got.stdout == "1200\n"
    end, 100))
    assert.matches("event=snapshot_installed", c.procs[down]:stderr())
    assert.are.equal("1\n", seq_get(c, down, "c1"))
    -- The same state as the others, key for key (the snapshot was checked
    -- and sealed off the loop, then restored on it).
    local want = cluster.kv(c, { "keys", "c" }).stdout
    assert.are.equal(1200, select(2, want:gsub("\n", "")))
    assert.is_true(eventually(function()
      return cluster.kv(c, { "keys", "c", "--consistency", "sequential" }, c.members[down].address).stdout == want
    end, 100))
  end)

  it("a snapshot larger than one chunk is received into its file and installed", function()
    -- 1 MiB chunks: about 3.6 MB of state takes four. The chunks go to
    -- snapshot-<n>.tmp as they arrive; after the install only the final
    -- file is left, whole.
    local opts = { "--snapshot-threshold", "200" }
    local c, down, up, all = one_follower_down(opts)
    local r = proc.run({ "-e", ([[
      local c = copycat.client{ cluster = { %q, %q } }
      local pad = string.rep("x", 3000)
      for i = 1, 1200 do
        local ok, err = c:submit("put", { key = "b" .. i, value = i .. pad })
        if err then print("put failed", i, err) os.exit(1) end
      end
      print("done") c:close()
    ]]):format(up[1], up[2]) }, { timeout = 90 })
    assert.are.equal("done\n", r.stdout, r.stderr)
    cluster.start(c, down, "bootstrap", all, opts)
    assert.is_true(eventually(function()
      local got = cluster.kv(c, { "get", "b1200", "--consistency", "sequential" }, c.members[down].address)
      return got.stdout == "1200" .. string.rep("x", 3000) .. "\n"
    end, 150))
    local bytes = tonumber(c.procs[down]:stderr():match("event=snapshot_installed index=%d+ term=%d+ bytes=(%d+)"))
    assert.is_truthy(bytes, c.procs[down]:stderr())
    assert.is_true(bytes > 3 * 1024 * 1024, "snapshot of " .. bytes .. " bytes")
    -- Progress of the transfer, on both sides: the receiver from its first
    -- chunk, the sender with the total.
    local got = tonumber(c.procs[down]:stderr():match("event=snapshot_receiving index=%d+ bytes=(%d+) leader=n%d"))
    assert.is_truthy(got and got > 0 and got <= bytes, c.procs[down]:stderr())
    local sent, total
    for i = 1, #c.members do
      if i ~= down then
        local a, b = c.procs[i]:stderr():match("event=snapshot_sending peer=" .. c.members[down].name ..
          " index=%d+ bytes=(%d+) total=(%d+) percent=")
        sent, total = sent or tonumber(a), total or tonumber(b)
      end
    end
    assert.is_truthy(sent, "no snapshot_sending line")
    assert.are.equal(bytes, total)
    assert.is_true(sent > 0 and sent <= total)
    -- at most one line a second per transfer (its four chunks go out in
    -- far less)
    for i = 1, #c.members do
      local last = {}
      for h, m, sec, what in c.procs[i]:stderr():gmatch("ts=%d+%-%d+%-%d+T(%d+):(%d+):([%d.]+)Z [^\n]*" ..
          "event=(snapshot_%a+ing[^\n]* index=%d+)") do
        local key = what -- event, peer (on the sender), index
        local t = tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(sec)
        assert.is_true(last[key] == nil or t - last[key] >= 0.999, key .. " twice within a second")
        last[key] = t
      end
    end
    local ls = assert(io.popen("ls " .. c.members[down].data))
    local files = ls:read("a")
    ls:close()
    assert.matches("snapshot%-%d+\n", files)
    assert.is_falsy(files:find(".tmp", 1, true), files)
    assert.are.equal("1" .. string.rep("x", 3000) .. "\n", seq_get(c, down, "b1"))
  end)

  it("refuses a client request larger than max_request_bytes with an error, and serves the next", function()
    local function run(limit)
      local ports = cluster.free_ports(1)
      local addr = "127.0.0.1:" .. ports[1]
      return proc.run({ "-e", ([[
        local s = copycat.server{ name = "n1", address = %q, data_dir = %q,
          state_machine = "examples/kv/state_machine.lua", max_request_bytes = %s }
        assert(s:bootstrap{ %q })
        local c = copycat.client{ cluster = { %q } }
        local _, err = c:submit("put", { key = "big", value = ("x"):rep(3 * 1024 * 1024) })
        print("big", err or "ok")
        local _, err2 = c:submit("put", { key = "small", value = ("y"):rep(1024 * 1024) })
        print("small", err2 or "ok")
        c:close()
        s:stop()
      ]]):format(addr, proc.tmpdir() .. "/n1", limit, addr, addr) }, { timeout = 60 })
    end
    local r = run("nil") -- the default, 2 MiB
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("big\t[^\n]*request too large: 31457%d%d bytes, the server takes at most 2097152", r.stdout)
    assert.matches("small\tok\n", r.stdout)
    r = run("4 * 1024 * 1024")
    assert.are.equal("big\tok\nsmall\tok\n", r.stdout, r.stderr)
    local bad = proc.run({ "-e", [[
      local ok, err = pcall(copycat.server, { name = "n1", address = "127.0.0.1:1", memory = true,
        state_machine = "examples/kv/state_machine.lua", max_request_bytes = 10 })
      print(err)
    ]] })
    assert.matches("max_request_bytes must be an integer from 1024 to 67108864", bad.stdout)
  end)

  it("snapshots after a number of payload bytes as well as of entries", function()
    local ports = cluster.free_ports(1)
    local addr = "127.0.0.1:" .. ports[1]
    local r = proc.run({ "-e", ([[
      local s = copycat.server{ name = "n1", address = %q, data_dir = %q,
        state_machine = "examples/kv/state_machine.lua", snapshot_threshold = 1000000, snapshot_bytes = 2000 }
      assert(s:bootstrap{ %q })
      local c = copycat.client{ cluster = { %q } }
      for i = 1, 40 do
        local _, err = c:submit("put", { key = "k" .. i, value = ("x"):rep(100) })
        assert(not err, err)
      end
      -- The snapshot is written by a child process: wait for it (bounded).
      local deadline = copycat.now() + 15000
      while s:status().snapshot_index == 0 and copycat.now() < deadline do copycat.sleep(20) end
      print("snapshot_index", s:status().snapshot_index > 0)
      c:close()
      s:stop()
    ]]):format(addr, proc.tmpdir() .. "/n1", addr, addr) }, { timeout = 30 })
    assert.are.equal("snapshot_index\ttrue\n", r.stdout, r.stderr)
    assert.matches("event=snapshot_taken index=%d+ term=%d+ bytes=%d+", r.stderr)
  end)

  it("a server leaves the cluster and the rest go on", function()
    local c = cluster.new(3)
    cluster.bootstrap_all(c)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "l", "1" }).code)
    local leaver = c.members[3]
    c.procs[3]:kill("TERM")
    assert.are.equal(0, c.procs[3]:wait(10))
    local r = proc.run({ "-e", ([[
      local s = copycat.server{ name = %q, address = %q, data_dir = %q,
        state_machine = "examples/kv/state_machine.lua", election_timeout = 300, heartbeat_interval = 30 }
      assert(s:bootstrap{ %q })
      copycat.sleep(500)
      print("leave", s:leave())
      s:stop()
    ]]):format(leaver.name, leaver.address, leaver.data, leaver.address) }, { timeout = 30 })
    assert.are.equal("leave\ttrue\n", r.stdout, r.stderr)
    -- the remaining members report the committed configuration without it
    assert.is_true(eventually(function()
      return c.procs[2]:stdout():find("members=n1(active),n2(active)", 1, true) ~= nil
    end))
    -- two voters remain, and they form the whole cluster now
    c.procs[1]:kill("KILL")
    c.procs[1]:wait(5)
    cluster.start(c, 1, "bootstrap", cluster.addresses(c))
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "l", "2" }, cluster.addresses(c, 1, 2)).code)
  end)
end)
