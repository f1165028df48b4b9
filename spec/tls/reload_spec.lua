-- Certificate reload under load: while writes go on, every member's CA
-- file and certificate are replaced (a move to a new CA: the trust file
-- holds both CAs during the move) and reloaded with `ctl reload-certs` or
-- SIGHUP. No write fails; new connections get the new certificates (a
-- client that trusts only the old CA can no longer connect, one that
-- trusts the new one can), established ones go on.
local proc = require("support.proc")
local cluster = require("support.cluster")

local function ctl(args)
  return proc.run(args, { timeout = 60 })
end

local function copy(from, to)
  local f = assert(io.open(from, "rb"))
  local data = f:read("a")
  f:close()
  proc.write(to, data)
end

local function cat(paths, to)
  local parts = {}
  for _, p in ipairs(paths) do
    local f = assert(io.open(p, "rb"))
    parts[#parts + 1] = f:read("a")
    f:close()
  end
  proc.write(to, table.concat(parts))
end

-- Puts from 8 tasks of one client for `seconds`; prints "ok=N failed=M".
local LOAD = [[
local members, ca, seconds = ...
local list = {}
for a in members:gmatch("[^,]+") do list[#list + 1] = a end
local client = copycat.client({ cluster = list, tls = { ca = ca }, timeout = 3000 })
local ok, failed, running = 0, 0, 8
local deadline = copycat.now() + tonumber(seconds) * 1000
for t = 1, 8 do
  copycat.spawn(function()
    local i = 0
    while copycat.now() < deadline do
      i = i + 1
      local _, err = client:submit("put", { key = "k" .. t, value = i })
      if err then failed = failed + 1; io.stderr:write(tostring(err), "\n") else ok = ok + 1 end
    end
    running = running - 1
  end)
end
while running > 0 do copycat.sleep(50) end
print(("ok=%d failed=%d"):format(ok, failed))
client:close()
]]

describe("certificate reload", function()
  teardown(proc.cleanup)

  it("replaces certificates under load without a failed write; new connections need the new CA", function()
    local c = cluster.new(3)
    local old, new, live = c.dir .. "/old", c.dir .. "/new", c.dir .. "/live"
    assert.are.equal(0, ctl({ "ctl", "certs", old, "n1", "n2", "n3" }).code)
    assert.are.equal(0, ctl({ "ctl", "certs", new, "n1", "n2", "n3" }).code)
    cat({ old .. "/ca.crt", new .. "/ca.crt" }, c.dir .. "/both.crt")
    os.execute("mkdir -p " .. live)
    copy(old .. "/ca.crt", live .. "/ca.crt")
    local all = cluster.addresses(c)
    for i = 1, 3 do
      local n = "n" .. i
      copy(old .. "/" .. n .. ".crt", live .. "/" .. n .. ".crt")
      copy(old .. "/" .. n .. ".key", live .. "/" .. n .. ".key")
      cluster.start(c, i, "bootstrap", all, { "--tls-ca", live .. "/ca.crt",
        "--tls-cert", live .. "/" .. n .. ".crt", "--tls-key", live .. "/" .. n .. ".key" })
    end
    local function kv(ca, args)
      local full = { "--tls-ca", ca }
      for _, a in ipairs(args) do full[#full + 1] = a end
      return cluster.kv(c, full)
    end
    local r
    for _ = 1, 60 do
      r = kv(old .. "/ca.crt", { "put", "before", "1" })
      if r.code == 0 then break end
      os.execute("sleep 0.2")
    end
    assert.are.equal(0, r.code, r.stderr)

    local load = proc.start({ proc.script(LOAD), all, c.dir .. "/both.crt", "6" }, { timeout = 60 })
    os.execute("sleep 1.5")
    -- Every member first trusts both CAs, then presents its new certificate.
    copy(c.dir .. "/both.crt", live .. "/ca.crt")
    for i = 1, 3 do
      local n = "n" .. i
      copy(new .. "/" .. n .. ".crt", live .. "/" .. n .. ".crt")
      copy(new .. "/" .. n .. ".key", live .. "/" .. n .. ".key")
    end
    r = ctl({ "ctl", "--socket", c.members[1].data, "reload-certs" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("certificates reloaded\n", r.stdout)
    c.procs[2]:kill("HUP")
    r = ctl({ "ctl", "--socket", c.members[3].data, "reload-certs" })
    assert.are.equal(0, r.code, r.stderr)

    -- New connections: the new CA works, the old one alone does not.
    r = kv(new .. "/ca.crt", { "get", "before" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("1\n", r.stdout)
    r = kv(old .. "/ca.crt", { "--timeout", "1500", "get", "before" })
    assert.are_not.equal(0, r.code)

    assert.are.equal(0, load:wait(40))
    local ok, failed = load:stdout():match("ok=(%d+) failed=(%d+)")
    assert.is_truthy(ok, load:stderr())
    assert.are.equal(0, tonumber(failed), load:stderr())
    assert.is_true(tonumber(ok) > 50)
    for i = 1, 3 do
      assert.is_truthy(c.procs[i]:stderr():find("event=tls_reloaded name=n" .. i, 1, true))
    end
    -- A bad file is refused and the server keeps the certificates it has.
    proc.write(live .. "/n1.key", "not a key\n")
    r = ctl({ "ctl", "--socket", c.members[1].data, "reload-certs" })
    assert.are.equal(1, r.code)
    assert.matches("reload: cannot use the key file", r.stderr)
    assert.are.equal(0, kv(new .. "/ca.crt", { "put", "after", "2" }).code)
  end)
end)
