-- The state machine's memory limit on a live 3-node cluster (--sm-memory):
-- a command that allocates without bound fails with the same error on
-- every replica, the servers do not grow past the limit, every replica is
-- left in the same state, and the cluster goes on serving.
local proc = require("support.proc")
local cluster = require("support.cluster")

local c, sm_file

local MACHINE = [[
local sm = state_machine()
local store = { junk = {} }
function sm.commands.put(c) store[c.args.key] = c.args.value return "stored" end
-- Keeps what it allocates, so a replica that stopped elsewhere would hold
-- another number of entries.
function sm.commands.hog(c)
  local junk = store.junk
  for i = 1, math.huge do junk[#junk + 1] = ("x"):rep(100) .. i end
end
function sm.queries.get(q) return store[q.args.key] end
function sm.queries.junk() return #store.junk end
function sm.snapshot() return store end
function sm.restore(s) store = s end
return sm
]]

local function rss_kib(pid)
  local f = assert(io.open(("/proc/%d/status"):format(pid)))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

local CLIENT = [[
local cluster, what, member = ...
local c = copycat.client({ cluster = { cluster }, timeout = 5000 })
if what == "hog" then
  print(c:submit("hog", {}))
  print(c:submit("put", { key = "after", value = "yes" }))
else
  print(c:query("junk", {}, { consistency = "sequential" }), c:query("get", { key = "after" },
    { consistency = "sequential" }))
end
c:close()
]]

local function client(i, what)
  local r = proc.run({ proc.script(CLIENT), c.members[i].address, what }, { timeout = 60 })
  assert.are.equal(0, r.code, r.stderr)
  return r.stdout
end

describe("the state machine's memory limit", function()
  setup(function()
    c = cluster.new(3)
    sm_file = c.dir .. "/hog.lua"
    local f = assert(io.open(sm_file, "w"))
    f:write(MACHINE)
    f:close()
    for i = 1, 3 do
      cluster.start(c, i, "bootstrap", cluster.addresses(c),
        { "--state-machine", sm_file, "--sm-memory", tostring(16 * 1024 * 1024) })
    end
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "k", "v1" }).code)
  end)
  teardown(proc.cleanup)

  it("fails a command that allocates without bound, the same way on every replica", function()
    local out = client(1, "hog")
    assert.matches("^nil\tapplication error: memory limit exceeded %(16777216 bytes%)\n", out)
    assert.matches("\nstored\n", out, 1, true) -- the next command is applied
    local seen
    for i = 1, 3 do
      local line
      for _ = 1, 50 do -- until this replica has applied the put
        line = client(i, "read")
        if line:find("yes", 1, true) then break end
        os.execute("sleep 0.1")
      end
      assert.matches("^%d+\tyes\n", line)
      seen = seen or line
      assert.are.equal(seen, line) -- the same number of entries everywhere
      assert.is_true(rss_kib(c.procs[i].pid) < 128 * 1024)
    end
  end)

  it("refuses a limit below 1 MiB", function()
    local r = proc.run({ "examples/kv/server.lua", "--name", "x", "--address", "127.0.0.1:1",
      "--data", c.dir .. "/x", "--bootstrap", "127.0.0.1:1", "--sm-memory", "1000" })
    assert.are_not.equal(0, r.code)
    assert.matches("sm_memory must be an integer number of bytes, at least 1048576", r.stderr, 1, true)
  end)
end)
