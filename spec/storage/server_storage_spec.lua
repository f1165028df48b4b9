-- The store as a real server sees it: a server whose disk refuses writes
-- stops accepting writes (and acknowledges nothing), and a server asked for
-- memory-only storage serves without touching the disk.
local proc = require("support.proc")
local cluster = require("support.cluster")

--- Waits (bounded) until fn() is true.
local function eventually(fn, seconds)
  local deadline = os.time() + (seconds or 30)
  repeat
    if fn() then return true end
    os.execute("sleep 0.1")
  until os.time() > deadline
  return false
end

local function files_in(dir)
  local p = io.popen("ls -A " .. proc.quote(dir) .. " 2>/dev/null")
  local out = p:read("a")
  p:close()
  return out
end

describe("a server's storage", function()
  after_each(proc.cleanup)

  it("stops accepting writes after a write error, acknowledging nothing it did not store", function()
    -- A file size limit below the segment size: every segment file the
    -- store tries to create fails (EFBIG) as a full disk would. SIGXFSZ is
    -- ignored so that the failing call returns an error instead.
    local wrapper = proc.script("")
    proc.write(wrapper, ("#!/bin/sh\nulimit -f 2048\ntrap '' XFSZ\nexec %s \"$@\"\n"):format(proc.quote(proc.bin)))
    os.execute("chmod +x " .. proc.quote(wrapper))
    local c = cluster.new(1)
    local m = c.members[1]
    local h = proc.start({ "examples/kv/server.lua", "--name", m.name, "--address", m.address, "--data", m.data,
      "--bootstrap", m.address, "--election-timeout", "300", "--heartbeat-interval", "30" },
      { bin = wrapper, timeout = 60 })
    assert.is_true(eventually(function() return h:stderr():find("event=storage_failed", 1, true) ~= nil end),
      "no storage_failed event: " .. h:stderr())
    local log = h:stderr()
    assert.matches("segment%-%d+%.tmp", log) -- names the file
    assert.matches("fix the disk, then restart the server", log)
    -- The core is no longer driven: no election is won afterwards.
    os.execute("sleep 1")
    local after = h:stderr():match("event=storage_failed.*$")
    assert.not_matches("event=election_won", after)
    -- Clients are refused with the reason, not left waiting; the process
    -- stays up to say so.
    local r = cluster.kv(c, { "put", "k", "v" })
    assert.are_not.equal(0, r.code)
    assert.matches("stopped accepting writes after a storage failure", r.stderr)
    assert.is_nil(h:wait(0), "the server exited: " .. h:stderr())
    -- Nothing reached a segment file, so nothing was acknowledged.
    assert.not_matches("segment%-%d+\n", files_in(m.data) .. "\n")
  end)

  it("keeps its log in memory only when asked explicitly", function()
    -- Neither a data directory nor memory = true: refused, saying how.
    local r = proc.run({ "-e", [[copycat.server{ name = "m1", address = "127.0.0.1:1",
      state_machine = "examples/kv/state_machine.lua" }]] })
    assert.are.equal(1, r.code)
    assert.matches("give data_dir = \"path\" %(or memory = true to keep nothing on disk%)", r.stderr)
    -- memory = true: serves reads and writes with no data directory.
    local ports = cluster.free_ports(1)
    local address = "127.0.0.1:" .. ports[1]
    local script = proc.script(([[
      local server = copycat.server{ name = "m1", address = %q, memory = true,
        state_machine = "examples/kv/state_machine.lua", election_timeout = 300, heartbeat_interval = 30 }
      assert(server:bootstrap({ %q }))
    ]]):format(address, address))
    local h = proc.start({ script }, { timeout = 60 })
    local c = { members = { { address = address } } }
    r = cluster.kv_until_ok(c, { "put", "k", "v1" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("v1\n", cluster.kv(c, { "get", "k" }).stdout)
    assert.is_nil(h:wait(0), "the server exited: " .. h:stderr())
  end)
end)
