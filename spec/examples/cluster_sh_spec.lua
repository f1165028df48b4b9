-- examples/kv/cluster.sh (make run): BASE_PORT moves the three servers'
-- ports, the commands it prints work as printed, and a data directory of
-- a cluster on other ports is refused rather than started on stale
-- addresses.
local proc = require("support.proc")

local q = proc.quote

local function sh(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1")
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

-- A port p such that p, p+1 and p+2 are free now (bounded tries).
local function three_free_ports()
  for _ = 1, 20 do
    local r = proc.run({ "-e", [[
      local first = assert(copycat.net.listen("127.0.0.1:0", function() end))
      local p = tonumber(first:address():match(":(%d+)$"))
      first:close()
      if p > 65000 then print("none") return end
      local ls = {}
      for i = 0, 2 do
        local l = copycat.net.listen("127.0.0.1:" .. (p + i), function() end)
        if not l then print("none") return end
        ls[#ls + 1] = l
      end
      for _, l in ipairs(ls) do l:close() end
      print(p)
    ]] })
    local p = tonumber(r.stdout:match("^(%d+)"))
    if p then return p end
  end
  error("no three consecutive free ports")
end

describe("examples/kv/cluster.sh", function()
  after_each(proc.cleanup)

  it("starts the cluster on BASE_PORT and prints commands that work", function()
    local base = three_free_ports()
    local data = proc.tmpdir() .. "/data"
    local h = proc.start({ "BASE_PORT=" .. base, "DATA=" .. data, "BIN=" .. proc.bin, "sh", "examples/kv/cluster.sh" },
      { bin = "env", timeout = 60 })
    finally(function() h:kill("TERM"); h:wait(20) end)
    assert.is_true(h:wait_output("Ctrl-C stops all three servers.", 20), h:stdout() .. h:stderr())
    local members = ("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d"):format(base, base + 1, base + 2)
    local out = h:stdout()
    local put = out:match("\n  ([^\n]+ put greeting hello)\n")
    local get = out:match("\n  ([^\n]+ get greeting)\n")
    local status = out:match("\n  ([^\n]+ ctl %-%-socket [^\n]+ status)\n")
    -- The cluster speaks TLS, with the certificates the script made.
    assert.are.equal(proc.bin .. " examples/kv/client.lua --cluster " .. members .. " --tls-ca " .. data ..
      "/certs/ca.crt put greeting hello", put)
    assert.are.equal(proc.bin .. " ctl --socket " .. data .. "/n1 status", status)
    local code, text
    for _ = 1, 50 do
      code, text = sh(put)
      if code == 0 then break end
      os.execute("sleep 0.2")
    end
    assert.are.equal(0, code, text)
    code, text = sh(get)
    assert.are.equal(0, code, text)
    assert.are.equal("hello\n", text)
    -- The printed curl commands reach the HTTP API over TLS.
    local curl_put = out:match("\n  (curl [^\n]+/v1/commands/put)\n")
    local curl_get = out:match("\n  (curl [^\n]+/v1/queries/get)\n")
    assert.is_truthy(curl_put, out)
    -- curl runs without the sanitizer run's LD_PRELOAD (it deadlocks at
    -- start with libasan preloaded), and bounded in time.
    local function curl(cmd) return sh("env -u LD_PRELOAD " .. cmd .. " -sS --max-time 20") end
    code, text = curl(curl_put)
    assert.are.equal(0, code, text)
    assert.matches('^{"result":"hello","index":%d+}', text)
    code, text = curl(curl_get)
    assert.are.equal(0, code, text)
    assert.matches('^{"result":"hello","index":%d+', text)
    code = sh(proc.bin .. " examples/kv/client.lua --timeout 1000 --cluster " .. members .. " get greeting")
    assert.are_not.equal(0, code) -- a plain client cannot talk to it
    code, text = sh(status)
    assert.are.equal(0, code, text)
    assert.matches("127%.0%.0%.1:" .. base, text)
    h:kill("TERM")
    assert.are.equal(0, h:wait(30), h:stderr())
    assert.are.equal(tostring(base) .. "\n", proc.slurp(data .. "/base_port"))
  end)

  it("runs from any directory by its path, as installed, printing paths that work there", function()
    local base = three_free_ports()
    local top = io.popen("pwd"):read("l")
    local cwd = proc.tmpdir()
    local bin = proc.bin:sub(1, 1) == "/" and proc.bin or top .. "/" .. proc.bin
    local h = proc.start({ "sh", "-c", ("cd %s && BASE_PORT=%d DATA=data BIN=%s exec sh %s/examples/kv/cluster.sh")
      :format(q(cwd), base, q(bin), q(top)) }, { bin = "env", timeout = 60 })
    finally(function() h:kill("TERM"); h:wait(20) end)
    assert.is_true(h:wait_output("Ctrl-C stops all three servers.", 20), h:stdout() .. h:stderr())
    local out = h:stdout()
    local put = out:match("\n  ([^\n]+ put greeting hello)\n")
    local transfer = out:match("\n  ([^\n]+ run [^\n]+ n2)\n")
    assert.are.equal(bin .. " " .. top .. "/examples/kv/client.lua --cluster " ..
      ("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d"):format(base, base + 1, base + 2) ..
      " --tls-ca data/certs/ca.crt put greeting hello", put)
    assert.matches(" run " .. top:gsub("%p", "%%%0") .. "/scripts/transfer%-leadership%.lua n2$", transfer)
    local code, text
    for _ = 1, 50 do
      code, text = sh("cd " .. q(cwd) .. " && " .. put)
      if code == 0 then break end
      os.execute("sleep 0.2")
    end
    assert.are.equal(0, code, text)
    h:kill("TERM")
    assert.are.equal(0, h:wait(30), h:stderr())
  end)

  it("refuses a data directory of a cluster on other ports, and a bad BASE_PORT", function()
    local data = proc.tmpdir()
    proc.write(data .. "/base_port", "6001\n")
    local code, out = sh(("BASE_PORT=6011 DATA=%s BIN=/nonexistent sh examples/kv/cluster.sh"):format(q(data)))
    assert.are.equal(1, code)
    assert.matches(data:gsub("%p", "%%%0") .. "/ holds a cluster on ports from 6001, not 6011", out)
    code, out = sh("BASE_PORT=x sh examples/kv/cluster.sh")
    assert.are.equal(2, code)
    assert.matches("BASE_PORT must be a port number, got 'x'", out)
    code, out = sh("BASE_PORT=65531 sh examples/kv/cluster.sh")
    assert.are.equal(2, code)
    assert.matches("BASE_PORT must be from 1 to 65530, got 65531", out)
    os.execute("rm -rf " .. q(data))
  end)
end)
