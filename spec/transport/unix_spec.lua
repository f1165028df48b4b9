-- copycat.net over Unix sockets ("unix:PATH"), as the admin channel uses.
local proc = require("support.proc")

local function run(source)
  return proc.run({ proc.script(source) })
end

describe("copycat.net on Unix sockets", function()
  it("carries values both ways, creates the socket mode 0600 and removes it on close", function()
    local dir = proc.tmpdir()
    local r = run(([[
      local net, path = copycat.net, %q
      local l = assert(net.listen("unix:" .. path, function(conn)
        local m = conn:recv()
        conn:send({ echo = m, peer = conn:peer() })
        conn:close("done", true)
      end))
      print(l:address())
      local p = io.popen("stat -c %%a " .. path); print(p:read("l")); p:close()
      local c = assert(net.connect("unix:" .. path))
      c:send({ 1, "two" })
      local m = c:recv(5000)
      print(m.echo[2], m.peer, c:recv(5000))
      l:close()
      copycat.sleep(10)
      print(io.open(path) == nil)
    ]]):format(dir .. "/s.sock"))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(("unix:%s/s.sock\n600\ntwo\tunix socket\tnil\tpeer closed the connection\ntrue\n")
      :format(dir), r.stdout)
  end)

  it("refuses a path in use, a missing socket and a path too long, with clear errors", function()
    local dir = proc.tmpdir()
    local r = run(([[
      local net, path = copycat.net, %q
      local l = assert(net.listen("unix:" .. path, function() end))
      print(net.listen("unix:" .. path, function() end))
      print(net.connect("unix:" .. path .. ".missing"))
      print(net.listen("unix:/" .. string.rep("x", 120), function() end))
      print(net.listen("unix:", function() end))
      l:close()
    ]]):format(dir .. "/s.sock"))
    assert.are.equal(0, r.code, r.stderr)
    local lines = {}
    for line in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.matches("^nil\tcannot listen on unix:.*address already in use", lines[1])
    assert.matches("^nil\tcannot connect to unix:.*s%.sock%.missing: no such file or directory", lines[2])
    assert.matches("^nil\tcannot listen on 'unix:/x+': a Unix socket path must be 1 to 107 bytes long", lines[3])
    assert.matches("^nil\tcannot listen on 'unix:': a Unix socket path must be", lines[4])
  end)
end)
