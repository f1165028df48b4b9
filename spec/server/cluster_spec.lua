-- kv clusters of real copycat-lua processes: bootstrap, reads and writes,
-- failover, restart, joins.
local proc = require("support.proc")
local cluster = require("support.cluster")

describe("a kv cluster", function()
  after_each(proc.cleanup)

  for _, n in ipairs({ 1, 3, 5 }) do
    it(("of %d server(s) bootstraps and serves writes and reads"):format(n), function()
      local c = cluster.new(n)
      cluster.bootstrap_all(c)
      local r = cluster.kv_until_ok(c, { "put", "greeting", "hello" })
      assert.are.equal(0, r.code, r.stderr)
      r = cluster.kv(c, { "get", "greeting" })
      assert.are.equal("hello\n", r.stdout)
      r = cluster.kv(c, { "put", "greeting", "bye" })
      assert.are.equal("hello\n", r.stdout) -- the previous value
      for i = 1, n do -- every member answers (followers redirect)
        r = cluster.kv(c, { "get", "greeting" }, c.members[i].address)
        assert.are.equal("bye\n", r.stdout, "through " .. c.members[i].name)
      end
    end)
  end

  it("supports delete, compare-and-set and keys by prefix", function()
    local c = cluster.new(3)
    cluster.bootstrap_all(c)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "user/1", "ann" }).code)
    assert.are.equal(0, cluster.kv(c, { "put", "user/2", "bob" }).code)
    assert.are.equal(0, cluster.kv(c, { "put", "other", "x" }).code)
    assert.are.equal("user/1\nuser/2\n", cluster.kv(c, { "keys", "user/" }).stdout)
    assert.are.equal("failed\n", cluster.kv(c, { "cas", "user/1", "zed", "amy" }).stdout)
    assert.are.equal("ok\n", cluster.kv(c, { "cas", "user/1", "ann", "amy" }).stdout)
    assert.are.equal("amy\n", cluster.kv(c, { "get", "user/1" }).stdout)
    assert.are.equal("deleted\n", cluster.kv(c, { "delete", "user/2" }).stdout)
    assert.are.equal("not found\n", cluster.kv(c, { "delete", "user/2" }).stdout)
    local r = cluster.kv(c, { "get", "user/2" })
    assert.are.equal(0, r.code)
    assert.are.equal("", r.stdout)
  end)

  it("elects a new leader when the leader is killed, and the old one catches up on restart", function()
    local c = cluster.new(3)
    cluster.bootstrap_all(c)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "k", "before" }).code)
    local leader = cluster.leader(c)
    assert.is_not_nil(leader)
    local li = cluster.index_of(c, leader)
    c.procs[li]:kill("KILL")
    c.procs[li]:wait(5)
    local r = cluster.kv_until_ok(c, { "put", "k", "after" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("before\n", r.stdout)
    -- the old leader restarts from its data directory and catches up
    cluster.start(c, li, "bootstrap", cluster.addresses(c))
    local seen
    for _ = 1, 50 do
      seen = cluster.kv(c, { "get", "k", "--consistency", "sequential" }, c.members[li].address).stdout
      if seen == "after\n" then break end
      os.execute("sleep 0.2")
    end
    assert.are.equal("after\n", seen)
  end)

  it("keeps every acknowledged write across a full restart", function()
    local c = cluster.new(3)
    cluster.bootstrap_all(c)
    for i = 1, 20 do
      assert.are.equal(0, cluster.kv_until_ok(c, { "put", "key" .. i, "v" .. i }).code)
    end
    for i = 1, 3 do c.procs[i]:kill("TERM") end
    for i = 1, 3 do assert.are.equal(0, c.procs[i]:wait(10)) end
    cluster.bootstrap_all(c) -- the stored configuration wins
    for i = 1, 20 do
      local r = cluster.kv_until_ok(c, { "get", "key" .. i })
      assert.are.equal("v" .. i .. "\n", r.stdout)
    end
  end)

  it("takes in a fourth server that joins through a follower, with the whole state", function()
    local c = cluster.new(4)
    local first3 = cluster.addresses(c, 1, 3)
    for i = 1, 3 do cluster.start(c, i, "bootstrap", first3) end
    for i = 1, 10 do
      assert.are.equal(0, cluster.kv_until_ok(c, { "put", "j" .. i, tostring(i) }, first3).code)
    end
    local leader = cluster.leader(c)
    local follower
    for i = 1, 3 do if c.members[i].name ~= leader then follower = c.members[i].address break end end
    local p = cluster.start(c, 4, "join", follower)
    assert.is_true(p:wait_output("serving on", 30), p:stderr())
    local seen
    for _ = 1, 50 do
      seen = cluster.kv(c, { "get", "j10", "--consistency", "sequential" }, c.members[4].address).stdout
      if seen == "10\n" then break end
      os.execute("sleep 0.2")
    end
    assert.are.equal("10\n", seen)
  end)
end)

describe("kv clients", function()
  after_each(proc.cleanup)

  it("get a state machine error back as an application error, and the server goes on", function()
    local c = cluster.new(3)
    cluster.bootstrap_all(c)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    local r = proc.run({ "-e", ([[
      local c = copycat.client{ cluster = { %q } }
      print(c:submit("put", { key = 42, value = 1 }))
      print(c:submit("no_such_command", {}))
      print(c:query("get", { key = "a" }))
      c:close()
    ]]):format(c.members[1].address) })
    assert.are.equal(0, r.code, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal("nil\tapplication error: key must be a string, got number", lines[1])
    assert.matches("^nil\tapplication error: .*no_such_command", lines[2])
    assert.are.equal("1\t1", lines[3]) -- get returns the value and its revision
  end)

  it("can use a separate client address, which refuses garbage like the peer address", function()
    local c = cluster.new(1)
    local ports = cluster.free_ports(1)
    local client_addr = "127.0.0.1:" .. ports[1]
    cluster.start(c, 1, "bootstrap", c.members[1].address, { "--client-address", client_addr })
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "x", "1" }, client_addr).code)
    for _, bytes in ipairs({ "\\xff\\xff\\xff\\xff", "\\x00\\x00\\x00\\x01\\xc1", "\\x00\\x00\\x00\\x10\\x95" }) do
      os.execute(("bash -c %s"):format(proc.quote(("printf '%s' > /dev/tcp/127.0.0.1/%d"):format(bytes, ports[1]))))
    end
    assert.are.equal("1\n", cluster.kv(c, { "get", "x" }, client_addr).stdout)
    assert.is_nil(c.procs[1]:wait(0))
  end)
end)

describe("kv server errors", function()
  after_each(proc.cleanup)

  it("refuses an address already in use, saying so", function()
    local c = cluster.new(1)
    cluster.bootstrap_all(c)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    local other = proc.tmpdir()
    local r = proc.run({ "examples/kv/server.lua", "--name", "x", "--address", c.members[1].address,
      "--data", other, "--bootstrap", c.members[1].address })
    assert.are_not.equal(0, r.code)
    assert.matches("address already in use", r.stderr)
  end)

  it("refuses a data directory locked by another server", function()
    local c = cluster.new(2)
    cluster.start(c, 1, "bootstrap", c.members[1].address)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }, c.members[1].address).code)
    local r = proc.run({ "examples/kv/server.lua", "--name", "n1", "--address", c.members[2].address,
      "--data", c.members[1].data, "--bootstrap", c.members[2].address })
    assert.are_not.equal(0, r.code)
    assert.matches("the data directory is in use by another process %(pid %d+%)", r.stderr)
    assert.not_matches("stack traceback", r.stderr)
  end)

  it("rejects a missing member list and bad flags with usage", function()
    local r = proc.run({ "examples/kv/server.lua", "--name", "n1", "--address", "127.0.0.1:1", "--data", "/tmp/x" })
    assert.are.equal(2, r.code)
    assert.matches("give either %-%-bootstrap or %-%-join", r.stderr)
    r = proc.run({ "examples/kv/server.lua", "--frob" })
    assert.are.equal(2, r.code)
    assert.matches("unknown option %-%-frob", r.stderr)
    r = proc.run({ "examples/kv/server.lua", "--name", "n1", "--address", "127.0.0.1:1", "--data", "/tmp/x",
      "--join", "," })
    assert.are.equal(2, r.code)
    assert.matches("%-%-join expects HOST:PORT%[,HOST:PORT%.%.%.%], got \",\"", r.stderr)
  end)

  it("refuses to bootstrap a member that is not active", function()
    local ports = cluster.free_ports(1)
    local a = "127.0.0.1:" .. ports[1]
    local r = proc.run({ "examples/kv/server.lua", "--name", "p", "--address", a, "--data", proc.tmpdir(),
      "--bootstrap", a, "--type", "passive" })
    assert.are_not.equal(0, r.code)
    assert.matches("only ACTIVE members can bootstrap", r.stderr)
  end)

  it("refuses to start without a state machine", function()
    local r = proc.run({ "-e", [[copycat.server{ name = "n1", address = "127.0.0.1:1", memory = true }]] })
    assert.are.equal(1, r.code)
    assert.matches("no state machine configured", r.stderr)
  end)

  it("closes connections that send garbage and keeps serving", function()
    local c = cluster.new(3)
    cluster.bootstrap_all(c)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    for i = 1, 3 do
      local port = c.members[i].port
      for _, bytes in ipairs({ "\\xff\\xff\\xff\\xff", "\\x00\\x00\\x00\\x01\\xc1", "GET / HTTP/1.0\\r\\n\\r\\n",
        "\\x00\\x00\\x00\\x10\\x95", "\\x00\\x00\\x00\\x16\\x96\\xa7copycat\\x63\\xa1t\\xa6server\\xa1x\\xa0" }) do
        os.execute(("bash -c %s"):format(proc.quote(("printf '%s' > /dev/tcp/127.0.0.1/%d"):format(bytes, port))))
      end
    end
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "2" }).code)
    assert.are.equal("2\n", cluster.kv(c, { "get", "a" }).stdout)
    for i = 1, 3 do assert.is_nil(c.procs[i]:wait(0)) end -- all still running
    local log = c.procs[1]:stderr()
    assert.matches("event=connection_refused peer=127%.0%.0%.1:%d+ reason=\"protocol version 99 is not supported", log)
    assert.matches("event=connection_refused peer=127%.0%.0%.1:%d+ reason=\"not a copycat%-lua hello", log)
  end)
end)
