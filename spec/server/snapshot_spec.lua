-- Snapshots written by a forked child (host/server/snapshot.c): the server
-- goes on serving while one is serialized and written, and a child that
-- fails or dies costs nothing but that snapshot.
local cluster = require("support.cluster")
local proc = require("support.proc")

-- A kv-like machine. `fill` makes the state large (a snapshot of 300,000
-- keys takes the child a second or more to write), and the key "mode" set
-- to "fail" makes the snapshot handler fail.
local MACHINE = [[
local sm = state_machine() -- luacheck: read globals state_machine
local store = {}
function sm.commands.put(c) local old = store[c.args.key]; store[c.args.key] = c.args.value; return old end
function sm.commands.fill(c) for i = 1, c.args.n do store["x" .. i] = i end end
function sm.queries.get(c) return store[c.args.key] end
function sm.snapshot()
  if store.mode == "fail" then error("snapshot refused on purpose", 0) end
  return store
end
function sm.restore(s) store = s end
return sm
]]

local function start(extra)
  local c = cluster.new(1, {})
  local path = c.dir .. "/machine.lua"
  local f = assert(io.open(path, "w"))
  f:write(MACHINE)
  f:close()
  local args = { "--state-machine", path, "--snapshot-threshold", "4" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  cluster.start(c, 1, "bootstrap", c.members[1].address, args)
  return c
end

local function count(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

local function children_of(pid)
  local f = io.open(("/proc/%d/task/%d/children"):format(pid, pid))
  if not f then return {} end
  local out = {}
  for p in f:read("a"):gmatch("%d+") do out[#out + 1] = tonumber(p) end
  f:close()
  return out
end

local function alive(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return false end
  local st = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  return st ~= nil and st ~= "Z"
end

local function until_true(fn, seconds)
  local deadline = os.time() + seconds
  repeat
    local v = fn()
    if v then return v end
    os.execute("sleep 0.05")
  until os.time() > deadline
  return nil
end

-- The server's log (stderr) matches `pattern` within `seconds`.
local function wait_log(p, pattern, seconds)
  return until_true(function() return p:stderr():match(pattern) ~= nil end, seconds)
end

local function put(c, key, value)
  return cluster.kv_until_ok(c, { "put", key, value })
end

local function state_of(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return nil end
  local st = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  return st
end

-- A large state, then puts until a child is found writing a snapshot;
-- returns its pid, stopped (SIGSTOP) so that it cannot finish before the
-- test has looked. (Each snapshot of the large state takes the child a
-- second or more; a put takes a fraction of that.)
local function snapshot_child(c, p, prefix)
  local r = proc.run({ "-e", ([[
    local c = copycat.client{ cluster = { %q } }
    local ok, err = c:submit("fill", { n = 300000 })
    if err then print(err) os.exit(1) end
    c:close()
  ]]):format(c.members[1].address) }, { timeout = 60 })
  assert.are.equal(0, r.code, r.stdout .. r.stderr)
  for i = 1, 60 do
    for _, kid in ipairs(children_of(p.pid)) do
      os.execute("kill -STOP " .. kid)
      if state_of(kid) == "T" then return kid end
    end
    assert.are.equal(0, put(c, prefix .. i, tostring(i)).code)
  end
  error("no snapshot process found:\n" .. p:stderr())
end

describe("forked snapshots", function()
  after_each(proc.cleanup)

  it("the server answers writes and reads while its child writes a snapshot", function()
    local c = start()
    local p = c.procs[1]
    local child = snapshot_child(c, p, "a")
    -- The child is stopped mid-snapshot: the server serves regardless.
    assert.are.equal(0, put(c, "during", "yes").code)
    assert.are.equal("yes\n", cluster.kv(c, { "get", "during" }).stdout)
    local log = p:stderr()
    assert.are.equal(count(log, "event=snapshot_started"), count(log, "event=snapshot_taken") + 1, log)
    os.execute("kill -CONT " .. child)
    assert.is_truthy(wait_log(p, "event=snapshot_taken[^\n]*by=child", 60), p:stderr())
    -- The snapshot file is complete, and a restart loads it.
    p:kill("TERM")
    assert.are.equal(0, p:wait(20))
    cluster.start(c, 1, "bootstrap", c.members[1].address,
      { "--state-machine", c.dir .. "/machine.lua", "--snapshot-threshold", "1000" })
    assert.are.equal("yes\n", cluster.kv_until_ok(c, { "get", "during" }).stdout)
    assert.are.equal("299999\n", cluster.kv(c, { "get", "x299999" }).stdout)
  end)

  it("a failing snapshot handler is logged and the server goes on; the next snapshot works", function()
    local c = start()
    local p = c.procs[1]
    assert.are.equal(0, put(c, "mode", "fail").code)
    for i = 1, 5 do assert.are.equal(0, put(c, "b" .. i, tostring(i)).code) end
    assert.is_truthy(wait_log(p, "event=snapshot_failed[^\n]*snapshot handler failed", 20), p:stderr())
    assert.matches("snapshot refused on purpose", p:stderr())
    assert.are.equal(0, put(c, "mode", "ok").code)
    for i = 1, 5 do assert.are.equal(0, put(c, "c" .. i, tostring(i)).code) end
    assert.is_truthy(wait_log(p, "event=snapshot_taken[^\n]*by=child", 20), p:stderr())
    assert.are.equal("5\n", cluster.kv(c, { "get", "b5" }).stdout)
  end)

  it("a snapshot file that cannot be written fails with the disk's error, and the next one is written", function()
    local c = start()
    local p = c.procs[1]
    assert.are.equal(0, put(c, "a", "1").code)
    -- Every snapshot the next puts can start writes to /dev/full: the
    -- child's first write into its temporary file fails (ENOSPC).
    local data = c.members[1].data
    assert.are.equal(0, count(p:stderr(), "event=snapshot_failed"), p:stderr())
    for i = 1, 400 do
      os.execute(("ln -s /dev/full %s/snapshot-%020d.tmp"):format(data, i))
    end
    for i = 1, 5 do assert.are.equal(0, put(c, "g" .. i, tostring(i)).code) end
    assert.is_truthy(wait_log(p, "event=snapshot_failed[^\n]*No space left on device", 20), p:stderr())
    assert.is_nil(p:stderr():find("snapshot handler failed", 1, true))
    os.execute(("rm -f %s/snapshot-*.tmp"):format(data))
    local taken = count(p:stderr(), "event=snapshot_taken[^\n]*by=child")
    for i = 1, 5 do assert.are.equal(0, put(c, "h" .. i, tostring(i)).code) end
    assert.is_truthy(until_true(function()
      return count(p:stderr(), "event=snapshot_taken[^\n]*by=child") > taken
    end, 20), p:stderr())
    assert.are.equal("5\n", cluster.kv(c, { "get", "h5" }).stdout)
  end)

  it("a snapshot process killed midway is reported, and the next one is written", function()
    local c = start()
    local p = c.procs[1]
    local child = snapshot_child(c, p, "d")
    os.execute("kill -KILL " .. child)
    assert.is_truthy(wait_log(p, "event=snapshot_failed[^\n]*killed by signal 9", 20), p:stderr())
    for i = 1, 5 do assert.are.equal(0, put(c, "e" .. i, tostring(i)).code) end
    assert.is_truthy(wait_log(p, "event=snapshot_taken[^\n]*by=child", 60), p:stderr())
    assert.are.equal("5\n", cluster.kv(c, { "get", "e5" }).stdout)
  end)

  it("a server stopped while its child writes a snapshot ends the child too", function()
    local c = start()
    local p = c.procs[1]
    local child = snapshot_child(c, p, "f")
    p:kill("TERM")
    assert.are.equal(0, p:wait(20))
    assert.is_truthy(until_true(function() return not alive(child) end, 10), "snapshot process still running")
    assert.is_nil(p:stderr():find("event=snapshot_taken", 1, true))
  end)
end)
