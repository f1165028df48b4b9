-- Bytes from connections that have not said hello are bounded (a real
-- server process): a frame over 64 KiB before the hello closes the
-- connection before it is buffered, a connection that stays silent is
-- closed after --hello-timeout, and only --max-unauthenticated such
-- connections are kept at once. The server's memory stays bounded, and
-- once a hello is accepted the usual limits apply.
local proc = require("support.proc")
local cluster = require("support.cluster")

local c

local function rss_kib(pid)
  local f = assert(io.open(("/proc/%d/status"):format(pid)))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

local function run(source, ...)
  local r = proc.run({ proc.script(source), c.members[1].address, ... }, { timeout = 60 })
  assert.are.equal(0, r.code, r.stderr)
  return r.stdout
end

describe("a server before the hello", function()
  setup(function()
    c = cluster.new(1)
    cluster.start(c, 1, "bootstrap", c.members[1].address,
      { "--hello-timeout", "1000", "--max-unauthenticated", "4" })
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "k", "v1" }).code)
  end)
  teardown(proc.cleanup)

  it("closes a connection whose first frame is over 64 KiB, and does not buffer it", function()
    local before = rss_kib(c.procs[1].pid)
    -- Three connections each declaring and sending a 20 MiB frame.
    local out = run([[
      local address = ...
      local big = string.rep("x", 20 << 20)
      for i = 1, 3 do
        local conn = assert(copycat.net.connect(address))
        conn:send(big)
        local v, err = conn:recv(5000)
        print(i, tostring(v), tostring(err))
        conn:close()
      end
    ]])
    for i = 1, 3 do assert.matches(i .. "\tnil\t", out, 1, true) end
    local after = rss_kib(c.procs[1].pid)
    assert.is_true(after - before < 16 * 1024, ("RSS grew from %d to %d KiB"):format(before, after))
    assert.is_truthy(c.procs[1]:stderr():find("event=unauthenticated_closed[^\n]*frame larger than the limit of 65536"))
    assert.are.equal("v1\n", cluster.kv(c, { "get", "k" }).stdout)
  end)

  it("closes a connection that says nothing within the hello timeout", function()
    local out = run([[
      local address = ...
      local conn = assert(copycat.net.connect(address))
      local t0 = copycat.now()
      local v, err = conn:recv(10000)
      print(tostring(v), tostring(err), copycat.now() - t0 < 9000)
    ]])
    assert.matches("^nil\t[^\n]*\ttrue", out)
    assert.is_truthy(c.procs[1]:stderr():find("no hello accepted within 1000 ms", 1, true))
  end)

  it("keeps at most --max-unauthenticated silent connections; they do not outlive the timeout", function()
    local out = run([[
      local address = ...
      local conns = {}
      for i = 1, 7 do conns[i] = assert(copycat.net.connect(address)) end
      copycat.sleep(300)
      local open = 0
      for i = 1, 7 do if not conns[i]:closed() then open = open + 1 end end
      print("open after 300 ms: " .. open)
      copycat.sleep(2500)
      open = 0
      for i = 1, 7 do if not conns[i]:closed() then open = open + 1 end end
      print("open after the timeout: " .. open)
    ]])
    assert.matches("open after 300 ms: 4\n", out, 1, true)
    assert.matches("open after the timeout: 0\n", out, 1, true)
    -- Once they are gone, clients get in again.
    assert.are.equal("v1\n", cluster.kv(c, { "get", "k" }).stdout)
  end)

  it("applies the usual limits after the hello: a 100 KiB value is stored", function()
    local value = string.rep("v", 100 * 1024)
    local r = cluster.kv(c, { "put", "big", value })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(#value + 1, #cluster.kv(c, { "get", "big" }).stdout)
  end)
end)
