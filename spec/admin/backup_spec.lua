-- Backups (`ctl snapshot save`, `ctl snapshot status`) and `restore`: a
-- backup taken under write load builds a new 3-node cluster holding the
-- same keys, values and revisions, under a cluster id of its own; a backup
-- cut short anywhere in its header, or with any bit flipped, is refused.
local cluster = require("support.cluster")
local proc = require("support.proc")
local json = require("support.json")
local core = require("copycat.core")

local function ctl(args)
  local full = { "ctl" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return proc.run(full, { timeout = 120 })
end

local function restore(args)
  local full = { "restore" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return proc.run(full, { timeout = 60 })
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Every key of a kv cluster with its value and revision, as "key=value@rev"
-- lines in key order (a client script: keys, then get of each).
local DUMP = [[
local members, id = {}, arg[2] ~= "" and arg[2] or nil
for a in arg[1]:gmatch("[^,]+") do members[#members + 1] = a end
local c = copycat.client{ cluster = members, cluster_id = id, timeout = 10000 }
local keys = assert(c:query("keys", { prefix = "" }))
for _, k in ipairs(keys) do
  local v, rev = c:query("get", { key = k })
  print(("%s=%s@%s"):format(k, tostring(v), tostring(rev)))
end
c:close()
]]

local function dump(members, id)
  local r = proc.run({ proc.script(DUMP), members, id or "" }, { timeout = 60 })
  assert.are.equal(0, r.code, r.stderr)
  local out = {}
  for line in r.stdout:gmatch("[^\n]+") do
    local k, rest = line:match("^([^=]+)=(.*)$")
    out[k] = rest
  end
  return out
end

-- Writes keys w1, w2, ... one after the other (each once) until the file
-- arg[2] exists, then prints "done N".
local WRITER = [[
local c = copycat.client{ cluster = { arg[1] }, timeout = 10000 }
local function put(k, v)
  local _, err = c:submit("put", { key = k, value = v })
  assert(err == nil, err)
end
local i = 0
repeat
  i = i + 1
  put("w" .. i, "v" .. i)
  local stop = io.open(arg[2], "rb")
  if stop then stop:close() end
until stop
print("done " .. i)
c:close()
]]

local PRELOAD = [[
local c = copycat.client{ cluster = { arg[1] }, timeout = 10000 }
local function put(k, v)
  local _, err = c:submit("put", { key = k, value = v })
  assert(err == nil, err)
end
for i = 1, 200 do put("p" .. i, i * 3) end
for i = 1, 50 do put("p" .. i, "again" .. i) end
c:close()
]]

describe("ctl snapshot save and copycat-lua restore", function()
  after_each(proc.cleanup)

  it("saves under write load and restores a new 3-node cluster with the same keys, values and revisions", function()
    local old = cluster.new(1, {})
    cluster.start(old, 1, "bootstrap", old.members[1].address, { "--snapshot-threshold", "100" })
    local addr, data = old.members[1].address, old.members[1].data
    assert.are.equal(0, cluster.kv_until_ok(old, { "put", "first", "1" }).code)
    local pre = proc.run({ proc.script(PRELOAD), addr }, { timeout = 60 })
    assert.are.equal(0, pre.code, pre.stderr)
    local stop = old.dir .. "/stop"
    local writer = proc.start({ proc.script(WRITER), addr, stop }, { timeout = 120 })
    -- Save while the writer is busy.
    os.execute("sleep 0.3")
    local file = old.dir .. "/backup.ccb"
    local r = ctl({ "--socket", data, "snapshot", "save", file })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("saved .*backup.ccb: index %d+", r.stdout)
    write(stop, "")
    assert.are.equal(0, writer:wait(100), writer:stderr())
    local written = tonumber(writer:stdout():match("done (%d+)"))

    -- The status describes it, in text and JSON.
    r = ctl({ "snapshot", "status", file })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("members%s+n1=" .. addr:gsub("%.", "%%."), r.stdout)
    r = ctl({ "snapshot", "status", file, "--json" })
    assert.are.equal(0, r.code, r.stderr)
    local st = json.decode(r.stdout)
    assert.are.equal("copycat", st.cluster)
    assert.are.equal("n1", st.member)
    assert.are.equal(1, #st.members)
    assert.is_true(st.index > 250)
    assert.matches("^crc32c:%x+$", st.checksum)
    assert.matches("state_machine.lua$", st.state_machine)

    -- What the old cluster holds now (the writer wrote each key once).
    local before = dump(addr)

    -- Restore into three new members.
    local new = cluster.new(3, {})
    local list = {}
    for i, m in ipairs(new.members) do list[i] = m.name .. "=" .. m.address end
    local id
    for _, m in ipairs(new.members) do
      r = restore({ file, "--data", m.data, "--name", m.name, "--bootstrap", table.concat(list, ",") })
      assert.are.equal(0, r.code, r.stderr)
      local this = r.stdout:match("new cluster (%S+)")
      assert.is_truthy(this)
      if id then assert.are.equal(id, this) end -- every member the same id
      id = this
    end
    assert.are_not.equal("copycat", id)
    cluster.bootstrap_all(new)
    local after = dump(cluster.addresses(new), id)

    -- Every preloaded key, with its value and revision; the written keys
    -- up to the backup's index, a contiguous run w1..wm, the same too.
    local n_pre, n_w = 0, 0
    for k, v in pairs(after) do
      assert.are.equal(before[k], v, k)
      if k:match("^p%d+$") then n_pre = n_pre + 1 elseif k:match("^w%d+$") then n_w = n_w + 1 end
    end
    assert.are.equal(200, n_pre)
    for i = 1, n_w do assert.is_truthy(after["w" .. i], "w" .. i) end
    assert.is_true(n_w <= written)
    assert.matches("^again7@", after.p7)
    assert.matches("^1@1$", after.first)

    -- The new cluster takes writes, and refuses a client of the old id.
    local ok = proc.run({ "examples/kv/client.lua", "--cluster", cluster.addresses(new), "--cluster-id", id,
      "--timeout", "10000", "put", "fresh", "yes" }, { timeout = 30 })
    assert.are.equal(0, ok.code, ok.stderr)
    local wrong = proc.run({ "examples/kv/client.lua", "--cluster", new.members[1].address,
      "--timeout", "1000", "get", "p1" }, { timeout = 30 })
    assert.are.equal(1, wrong.code)
    assert.matches("wrong cluster", wrong.stderr)
    -- A member restarted with another --cluster is refused with the reason.
    new.procs[2]:kill("TERM")
    assert.is_truthy(new.procs[2]:wait(20))
    local bad = cluster.start(new, 2, "bootstrap", cluster.addresses(new), { "--cluster", "copycat" })
    assert.are.equal(1, bad:wait(20))
    assert.matches("belongs to cluster " .. id:gsub("%-", "%%-"), bad:stderr())
  end)

  it("refuses a save over an existing file, and a restore into a server's data directory", function()
    local c = cluster.new(1, {})
    cluster.start(c, 1, "bootstrap", c.members[1].address)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    local file = c.dir .. "/b.ccb"
    assert.are.equal(0, ctl({ "--socket", c.members[1].data, "snapshot", "save", file }).code)
    local r = ctl({ "--socket", c.members[1].data, "snapshot", "save", file })
    assert.are.equal(1, r.code)
    assert.matches("exists", r.stderr)
    r = restore({ file, "--data", c.members[1].data, "--name", "x", "--bootstrap", "x=127.0.0.1:1" })
    assert.are.equal(1, r.code)
    assert.matches("already holds a server's data", r.stderr)
    r = restore({ file, "--data", c.dir .. "/new", "--name", "y", "--bootstrap", "x=127.0.0.1:1" })
    assert.are.equal(2, r.code)
    assert.matches("not in the %-%-bootstrap list", r.stderr)
  end)

  it("refuses every truncation of the header and every bit flip", function()
    local c = cluster.new(1, {})
    cluster.start(c, 1, "bootstrap", c.members[1].address)
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    local file = c.dir .. "/b.ccb"
    assert.are.equal(0, ctl({ "--socket", c.members[1].data, "snapshot", "save", file }).code)
    local good = slurp(file)
    assert.is_truthy(core.backup.read(file))
    local header = string.unpack("<I4", good, 13)
    assert.is_true(header > 64 and header < #good)
    local bad = c.dir .. "/bad.ccb"
    -- Every cut inside the header, and a sample of cuts after it.
    for len = 0, #good - 1 do
      if len <= header or len % 7 == 0 or len > #good - 30 then
        write(bad, good:sub(1, len))
        local info, err = core.backup.read(bad)
        assert.is_nil(info, "accepted a cut at " .. len)
        assert.matches("truncated", err, 1, false, "cut at " .. len .. ": " .. tostring(err))
      end
    end
    -- One flipped bit in every byte of the file (a different bit each time).
    for i = 1, #good do
      local b = good:byte(i) ~ (1 << (i % 8))
      write(bad, good:sub(1, i - 1) .. string.char(b) .. good:sub(i + 1))
      local info, err = core.backup.read(bad)
      assert.is_nil(info, "accepted a flip at byte " .. (i - 1))
      assert.is_truthy(err:find("offset", 1, true) or err:find("version", 1, true), err)
    end
    -- The command-line tools say what is wrong and change nothing.
    write(bad, good:sub(1, header + 10))
    local r = ctl({ "snapshot", "status", bad })
    assert.are.equal(1, r.code)
    assert.matches("truncated", r.stderr)
    r = restore({ bad, "--data", c.dir .. "/r1", "--name", "x", "--bootstrap", "x=127.0.0.1:1" })
    assert.are.equal(1, r.code)
    assert.matches("truncated", r.stderr)
    assert.is_nil(io.open(c.dir .. "/r1/metadata", "rb"))
    r = restore({ c.members[1].data .. "/metadata", "--data", c.dir .. "/r2", "--name", "x",
      "--bootstrap", "x=127.0.0.1:1" })
    assert.are.equal(1, r.code)
    assert.matches("not a copycat%-lua backup", r.stderr)
  end)
end)
