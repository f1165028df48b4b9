-- `copycat-lua ctl certs`: a CA kept across runs (replaced only when
-- asked), one member certificate per name, client and admin certificates,
-- keys readable by their owner only, and clear refusals of bad input.
local proc = require("support.proc")

local function ctl(args)
  local full = { "ctl", "certs" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return proc.run(full, { timeout = 60 })
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

local function mode(path)
  local p = io.popen("stat -c %a " .. path)
  local m = p:read("l")
  p:close()
  return m
end

local function openssl(args)
  local p = io.popen("openssl " .. args .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

describe("ctl certs", function()
  teardown(proc.cleanup)

  it("writes a CA, member, client and admin certificates with private keys", function()
    local dir = proc.tmpdir() .. "/a/certs"
    local r = ctl({ dir, "n1", "n2" })
    assert.are.equal(0, r.code, r.stderr)
    for _, n in ipairs({ "ca", "n1", "n2", "client", "admin" }) do
      assert.is_truthy(read(dir .. "/" .. n .. ".crt"), n)
      assert.are.equal("600", mode(dir .. "/" .. n .. ".key"), n)
    end
    local out = openssl(("verify -CAfile %s/ca.crt %s/n1.crt %s/admin.crt"):format(dir, dir, dir))
    assert.matches("n1.crt: OK", out)
    assert.matches("admin.crt: OK", out)
    local text = openssl(("x509 -noout -text -in %s/n1.crt"):format(dir))
    assert.matches("DNS:n1", text)
    assert.matches("TLS Web Server Authentication", text)
    text = openssl(("x509 -noout -subject -in %s/admin.crt"):format(dir))
    assert.matches("OU = admin", text)
  end)

  it("keeps an existing CA unless --new-ca, and signs new members with it", function()
    local dir = proc.tmpdir() .. "/certs"
    assert.are.equal(0, ctl({ dir, "n1" }).code)
    local ca = read(dir .. "/ca.crt")
    local r = ctl({ dir, "n4" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(ca, read(dir .. "/ca.crt"))
    assert.matches("n4.crt: OK", openssl(("verify -CAfile %s/ca.crt %s/n4.crt"):format(dir, dir)))
    r = ctl({ dir, "--new-ca" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are_not.equal(ca, read(dir .. "/ca.crt"))
  end)

  it("writes an expired certificate with a negative --days, and refuses bad names", function()
    local dir = proc.tmpdir() .. "/certs"
    assert.are.equal(0, ctl({ dir, "old", "--days", "-2" }).code)
    assert.matches("expired", openssl(("verify -CAfile %s/ca.crt %s/old.crt"):format(dir, dir)))
    local r = ctl({ dir, "ca" })
    assert.are.equal(1, r.code)
    assert.matches("bad certificate name 'ca'", r.stderr)
    r = ctl({ dir, "a/b" })
    assert.are.equal(1, r.code)
    assert.matches("bad certificate name 'a/b'", r.stderr)
    r = ctl({ dir, "n1", "--days", "0" })
    assert.are.equal(2, r.code)
    assert.matches("%-%-days must be", r.stderr)
    r = ctl({})
    assert.are.equal(2, r.code)
  end)
end)
