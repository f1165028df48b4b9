-- `copycat-lua ctl` and the admin channel against a live 3-node kv cluster:
-- broken and runaway scripts get a clear error and leave the server
-- serving; output streams as the script runs; the TCP admin address
-- refuses a missing token, a wrong token and garbage. One cluster is
-- shared by the file.
local proc = require("support.proc")
local cluster = require("support.cluster")

local c, token_file, admin_port

local function ctl(args, opts)
  return proc.run(args, opts or { timeout = 60 })
end

local function on_socket(i, args)
  local full = { "ctl", "--socket", c.members[i].data }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return ctl(full)
end

local function run_source(i, source, extra)
  local path = proc.script(source)
  local args = { "run", path }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return on_socket(i, args)
end

-- The server still takes writes, and its process is alive.
local function still_serving(tag)
  local r = cluster.kv(c, { "put", "alive", tag })
  assert.are.equal(0, r.code, r.stderr)
  assert.are.equal(tag .. "\n", cluster.kv(c, { "get", "alive" }).stdout)
  assert.is_nil(c.procs[1]:wait(0))
end

describe("ctl and the admin channel", function()
  setup(function()
    c = cluster.new(3)
    admin_port = cluster.free_ports(1)[1]
    token_file = proc.tmpdir() .. "/token"
    proc.write(token_file, "s3cret-token\n")
    local all = cluster.addresses(c)
    cluster.start(c, 1, "bootstrap", all, { "--admin-address", "127.0.0.1:" .. admin_port,
      "--admin-token-file", token_file })
    for i = 2, 3 do cluster.start(c, i, "bootstrap", all) end
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "alive", "start" }).code)
  end)
  teardown(proc.cleanup)

  it("runs a script with arguments and prints its output, then its results", function()
    local r = run_source(1, [[
      local a, b = ...
      print("args", a, b, #arg)
      print(cluster.name(), type(cluster.status().term))
      return { x = 1 }, 42, "done"
    ]], { "one", "two" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("args\tone\ttwo\t2\nn1\tnumber\n{\"x\":1}\n42\ndone\n", r.stdout)
  end)

  it("streams print output while the script is still running", function()
    local path = proc.script([[
      local target = cluster.status().commit_index + 1
      print("first")
      assert(cluster.wait_for(target, 20000))
      print("second")
    ]])
    local h = proc.start({ "ctl", "--socket", c.members[1].data, "run", path }, { timeout = 60 })
    assert.is_true(h:wait_output("first", 30), h:stderr())
    assert.is_nil(h:stdout():find("second", 1, true)) -- waits for the write below
    assert.are.equal(0, cluster.kv(c, { "put", "wake", "up" }).code)
    assert.are.equal(0, h:wait(30))
    assert.are.equal("first\nsecond\n", h:stdout())
  end)

  it("reports a syntax error clearly and keeps serving", function()
    local r = run_source(1, "print('a'\n")
    assert.are.equal(1, r.code)
    assert.matches("^ctl: error: syntax error: script%.lua:2: '%)' expected", r.stderr)
    still_serving("syntax")
  end)

  it("reports a runtime error with its line and keeps serving", function()
    local r = run_source(1, "print('before')\nlocal t\nreturn t.field\n")
    assert.are.equal(1, r.code)
    assert.are.equal("before\n", r.stdout)
    assert.matches("ctl: error: script%.lua:3: attempt to index a nil value", r.stderr)
    -- an error object is not turned into text by running the script's code
    r = run_source(1, "error(setmetatable({}, { __tostring = function() while true do end end }))")
    assert.are.equal(1, r.code)
    assert.matches("ctl: error: %(error object is a table value%)", r.stderr)
    -- a result too large to send is an error, not a hang
    r = run_source(1, "local s = string.rep('x', 1 << 20) return s .. s .. s .. s .. s")
    assert.are.equal(1, r.code)
    assert.matches("ctl: error: the script's result cannot be sent: frame larger than the limit", r.stderr)
    still_serving("runtime")
  end)

  it("stops an infinite loop with the instruction budget (even one that catches errors) or the memory limit", function()
    local r = run_source(1, "while true do end")
    assert.are.equal(1, r.code)
    assert.matches("ctl: error: instruction budget of %d+ exceeded", r.stderr)
    r = run_source(1, "while true do pcall(function() while true do end end) end")
    assert.are.equal(1, r.code)
    assert.matches("instruction budget of %d+ exceeded", r.stderr)
    r = run_source(1, "local t = {} while true do t[#t + 1] = string.rep('x', 1000) .. #t end")
    assert.are.equal(1, r.code)
    assert.matches("memory limit of %d+ bytes exceeded", r.stderr)
    still_serving("loop")
  end)

  it("stops a script that waits past its time limit", function()
    local r = on_socket(2, { "--timeout", "0.5", "run", proc.script("while true do cluster.sleep(10) end") })
    assert.are.equal(1, r.code)
    assert.matches("ctl: error: time limit of 500 ms exceeded", r.stderr)
    still_serving("time")
  end)

  it("refuses what the operator environment does not offer", function()
    local cases = {
      ["return io.open('/etc/passwd')"] = "io is not available",
      ["return os.execute('true')"] = "os.execute is not available",
      ["return require('copycat')"] = "require is not available",
      ["return load('return 1')"] = "load is not available",
      ["return debug.getinfo(1)"] = "debug is not available",
      ["return cluster.state_machine.snapshot()"] = "cluster.state_machine is not available",
      ["return getmetatable('').__index"] = "attempt to index a nil value",
    }
    for source, msg in pairs(cases) do
      local r = run_source(1, source)
      assert.are.equal(1, r.code, source)
      assert.matches(msg, r.stderr, 1, true)
    end
    still_serving("refused")
  end)

  it("makes the Unix socket readable and writable by its owner only", function()
    local p = io.popen("stat -c %a " .. proc.quote(c.members[1].data .. "/admin.sock"))
    local mode = p:read("l")
    p:close()
    assert.are.equal("600", mode)
  end)

  it("names the socket or address it cannot reach", function()
    local r = ctl({ "ctl", "--socket", "/nonexistent/admin.sock", "status" })
    assert.are.equal(1, r.code)
    assert.matches("cannot reach the admin socket /nonexistent/admin.sock: .*is the server running", r.stderr)
    local port = cluster.free_ports(1)[1]
    r = ctl({ "ctl", "--server", "127.0.0.1:" .. port, "status" })
    assert.are.equal(1, r.code)
    assert.matches("cannot reach the admin address 127.0.0.1:" .. port, r.stderr)
  end)

  it("explains its usage", function()
    local r = ctl({ "ctl" })
    assert.are.equal(2, r.code)
    assert.matches("expected a command", r.stderr)
    assert.matches("usage: copycat%-lua ctl", r.stderr)
    r = ctl({ "ctl", "--bogus", "status" })
    assert.are.equal(2, r.code)
    assert.matches("unknown option %-%-bogus", r.stderr)
    r = ctl({ "ctl", "help" })
    assert.are.equal(0, r.code)
    assert.matches("run SCRIPT", r.stdout)
    r = ctl({ "ctl", "--socket", c.members[1].data, "run", "/nonexistent.lua" })
    assert.are.equal(1, r.code)
    assert.matches("cannot read the script", r.stderr)
  end)

  describe("the TCP admin address", function()
    local function server_args(...)
      local args = { "ctl", "--server", "127.0.0.1:" .. admin_port }
      for _, a in ipairs({ ... }) do args[#args + 1] = a end
      return args
    end

    it("serves a client with the token", function()
      local r = ctl(server_args("--token-file", token_file, "status"))
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("server n1", r.stdout)
    end)

    it("refuses a missing token and a wrong token", function()
      local r = ctl(server_args("status"))
      assert.are.equal(1, r.code)
      assert.matches("refused: a token is required", r.stderr)
      local wrong = proc.tmpdir() .. "/wrong"
      proc.write(wrong, "s3cret-tokem\n")
      r = ctl(server_args("--token-file", wrong, "status"))
      assert.are.equal(1, r.code)
      assert.matches("refused: wrong admin token", r.stderr)
      still_serving("token")
    end)

    it("refuses garbage and closes the connection", function()
      -- raw bytes, an undecodable frame, and a well-formed frame that is no hello
      local inputs = { "GET / HTTP/1.0\\r\\n\\r\\n", "\\x00\\x00\\x00\\x03\\xc1\\xc1\\xc1",
        "\\x00\\x00\\x00\\x02\\xa1x" }
      for _, bytes in ipairs(inputs) do
        local cmd = ("timeout 20 bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; printf \"%s\" >&3; cat <&3' 2>/dev/null")
          :format(admin_port, bytes)
        local p = io.popen(cmd)
        local reply = p:read("a")
        local ok = p:close()
        assert.is_true(ok, "the server did not close the connection") -- cat saw EOF
        if bytes:find("xa1x", 1, true) then
          assert.matches("not an admin request", reply, 1, true)
        else
          assert.are.equal("", reply)
        end
      end
      local log = c.procs[1]:stderr()
      assert.matches("event=admin_refused .*frame larger than the limit", log)
      assert.matches("event=admin_refused .*malformed frame", log)
      assert.matches("event=admin_refused .*not an admin request", log)
      still_serving("garbage")
    end)
  end)
end)
