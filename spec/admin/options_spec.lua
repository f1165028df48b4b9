-- copycat.server's admin options: where the socket goes, and the token
-- the TCP admin address requires before the server starts.
local proc = require("support.proc")
local cluster = require("support.cluster")

-- A one-member memory server with extra options (Lua source), which runs
-- `body` once it leads, then stops.
local function server_script(port, options, body)
  return ([[
    local s = copycat.server{ name = "m1", address = "127.0.0.1:%d", memory = true,
      state_machine = "examples/kv/state_machine.lua", election_timeout = 200, %s }
    assert(s:bootstrap{ "127.0.0.1:%d" })
    while s:status().role ~= "leader" do copycat.sleep(10) end
    %s
    copycat.exit(0)
  ]]):format(port, options, port, body)
end

describe("admin options of copycat.server", function()
  after_each(proc.cleanup)
  it("gives a memory server a socket only where admin_socket says", function()
    local port = cluster.free_ports(1)[1]
    local dir = proc.tmpdir()
    local h = proc.start({ "-e", server_script(port, ("admin_socket = %q"):format(dir .. "/adm.sock"), [[
      print("ready")
      copycat.sleep(60000)
    ]]) }, { timeout = 60 })
    assert.is_true(h:wait_output("ready", 20), h:stderr())
    local r = proc.run({ "ctl", "--socket", dir .. "/adm.sock", "run",
      proc.script("print(cluster.name(), cluster.status().role)") })
    h:kill("TERM")
    assert.are.equal(0, h:wait(10))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("m1\tleader\n", r.stdout)
    assert.is_nil(io.open(dir .. "/adm.sock")) -- removed when the server stopped
    r = proc.run({ "-e", server_script(port, "", [[
      print(s.admin.socket, s.admin.address)
    ]]) })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("nil\tnil\n", r.stdout)
  end)

  it("refuses to start a TCP admin address without a token, or with an unreadable one", function()
    local ports = cluster.free_ports(2)
    local r = proc.run({ "-e", server_script(ports[1], ("admin_address = '127.0.0.1:%d'"):format(ports[2]), "") },
      { timeout = 20 })
    assert.are_not.equal(0, r.code)
    assert.matches("the TCP admin address 127%.0%.0%.1:%d+ needs a token", r.stderr)
    r = proc.run({ "-e", server_script(ports[1], ("admin_address = '127.0.0.1:%d', admin_token_file = '/nonexistent'")
      :format(ports[2]), "") }, { timeout = 20 })
    assert.are_not.equal(0, r.code)
    assert.matches("cannot read the admin token file: /nonexistent", r.stderr)
  end)
end)
