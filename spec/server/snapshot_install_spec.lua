-- A follower catching up by snapshot when what it receives is damaged
-- (host/server/snapshot_install.c, the core's check in host/raft/snapshot.c):
-- real processes, the follower being the fault suite's copycat-lua-bugs
-- with COPYCAT_TEST_CORRUPT_SNAPSHOT_CHUNKS, which flips one byte of each
-- of the first N snapshot chunks it receives before its Raft core sees it.
local proc = require("support.proc")
local cluster = require("support.cluster")

local bugs_bin = proc.build .. "/copycat-lua-bugs"

local function eventually(fn, tries)
  for _ = 1, tries or 60 do
    if fn() then return true end
    os.execute("sleep 0.2")
  end
  return false
end

local function count(text, pattern)
  return select(2, text:gsub(pattern, ""))
end

-- Every key of prefix p with its value, as read from `address` (all
-- sequential queries to that one member), one "key=value" per line.
local function dump(address, p, n)
  return proc.run({ "-e", ([[
    local c = copycat.client{ cluster = { %q } }
    local out = {}
    for i = 1, %d do
      -- get answers the value and its revision, or nil and a message
      local v, second = c:query("get", { key = %q .. i }, { consistency = "sequential" })
      if v == nil and type(second) == "string" then print("query failed", i, second) os.exit(1) end
      out[#out + 1] = %q .. i .. "=" .. tostring(v)
    end
    print(table.concat(out, "\n")) c:close()
  ]]):format(address, n, p, p) }, { timeout = 60 })
end

describe("snapshot install", function()
  after_each(proc.cleanup)

  it("a damaged snapshot is refused, never restored or served, and the next good one is installed", function()
    local opts = { "--snapshot-threshold", "100" }
    local c = cluster.new(3, {})
    local all = cluster.addresses(c)
    for i = 1, 3 do cluster.start(c, i, "bootstrap", all, opts) end
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "first", "0" }).code)
    local down = cluster.index_of(c, cluster.leader(c)) % 3 + 1
    c.procs[down]:kill("KILL")
    c.procs[down]:wait(5)
    local up = {}
    for i = 1, 3 do if i ~= down then up[#up + 1] = c.members[i].address end end
    -- Past the 1024 entries the leader keeps behind its snapshot: the
    -- follower can only catch up by snapshot. About 1.3 MB of state, so
    -- the snapshot takes two 1 MiB chunks; each value is distinct, so a
    -- flipped byte in any of them shows.
    local n = 1200
    local r = proc.run({ "-e", ([[
      local c = copycat.client{ cluster = { %q, %q } }
      for i = 1, %d do
        local ok, err = c:submit("put", { key = "d" .. i, value = ("v%%05d"):format(i):rep(150) })
        if err then print("put failed", i, err) os.exit(1) end
      end
      print("done") c:close()
    ]]):format(up[1], up[2], n) }, { timeout = 90 })
    assert.are.equal("done\n", r.stdout, r.stderr)

    -- The follower comes back damaging the first chunk it receives.
    local m = c.members[down]
    local args = { "COPYCAT_TEST_CORRUPT_SNAPSHOT_CHUNKS=1", bugs_bin, "examples/kv/server.lua",
      "--name", m.name, "--address", m.address, "--data", m.data, "--bootstrap", all,
      "--election-timeout", "300", "--heartbeat-interval", "30" }
    for _, a in ipairs(opts) do args[#args + 1] = a end
    c.procs[down] = proc.start(args, { bin = "/usr/bin/env", timeout = 120 })
    local p = c.procs[down]

    local last = "v" .. ("%05d"):format(n)
    assert.is_true(eventually(function()
      local got = cluster.kv(c, { "get", "d" .. n, "--consistency", "sequential" }, m.address)
      return got.stdout == last:rep(150) .. "\n"
    end, 150), p:stderr())

    local log = p:stderr()
    -- The damaged transfer was refused with a clear line naming both
    -- checksums, before anything was installed; it was never restored
    -- (no failed restore, no stopped server), and exactly one snapshot,
    -- the good one sent again, was installed.
    local refused = log:find("event=snapshot_refused", 1, true)
    assert.is_truthy(refused, log)
    assert.matches("event=snapshot_refused index=%d+ term=%d+ crc=%x+ leader_crc=%x+ leader=%S+ msg=", log)
    assert.are.equal(1, count(log, "event=snapshot_refused"), log)
    local installed = log:find("event=snapshot_installed", 1, true)
    assert.is_truthy(installed, log)
    assert.is_true(installed > refused, log)
    assert.are.equal(1, count(log, "event=snapshot_installed"), log)
    assert.are.equal(0, count(log, "snapshot_restore_failed"), log)
    assert.are.equal(0, count(log, "event=snapshot_failed"), log)
    assert.are.equal(0, count(log, "event=storage_failed"), log)
    assert.is_nil(p:wait(0))

    -- It holds exactly the leader's state, value for value.
    local want = dump(up[1], "d", n)
    assert.are.equal(0, want.code, want.stderr)
    local got = dump(m.address, "d", n)
    assert.are.equal(0, got.code, got.stderr)
    assert.are.equal(want.stdout, got.stdout)
    assert.are.equal(("v%05d"):format(777):rep(150),
      cluster.kv(c, { "get", "d777", "--consistency", "sequential" }, m.address).stdout:sub(1, -2))

    -- And it keeps following: a later write reaches it.
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "after", "1" }).code)
    assert.is_true(eventually(function()
      return cluster.kv(c, { "get", "after", "--consistency", "sequential" }, m.address).stdout == "1\n"
    end))
  end)

  it("the product refuses to start with the test-only corruption switch", function()
    local c = cluster.new(1, {})
    local m = c.members[1]
    local r = proc.run({ "COPYCAT_TEST_CORRUPT_SNAPSHOT_CHUNKS=1", proc.bin, "examples/kv/server.lua",
      "--name", m.name, "--address", m.address, "--data", m.data, "--bootstrap", m.address },
      { bin = "/usr/bin/env", timeout = 20 })
    assert.are_not.equal(0, r.code)
    assert.matches("COPYCAT_TEST_CORRUPT_SNAPSHOT_CHUNKS is set, but this build", r.stderr .. r.stdout)
  end)
end)
