-- copycat.net: framed msgpack over TCP between tasks and processes.
local proc = require("support.proc")

local function run(source)
  return proc.run({ proc.script(source) })
end

-- An echo server in its own process; it prints its address, then one line
-- for every connection that closes.
local server_src = [[
  local l = assert(copycat.net.listen("127.0.0.1:0", function(conn)
    while true do
      local m, err = conn:recv()
      if m == nil then print("closed: " .. err) return end
      conn:send({ echo = m })
    end
  end, { max_frame = 1024 * 1024 }))
  print("listening " .. l:address())
]]

-- Sends raw bytes (a printf format) to address and closes.
local function send_raw(address, printf_format)
  local host, port = address:match("^(.*):(%d+)$")
  os.execute(("bash -c %s"):format(proc.quote(
    ("printf '%s' > /dev/tcp/%s/%s"):format(printf_format, host, port))))
end

describe("copycat.net", function()
  after_each(proc.cleanup)

  it("carries values both ways in order, small and large", function()
    local r = run([[
      local net = copycat.net
      local l = assert(net.listen("127.0.0.1:0", function(conn)
        while true do
          local m = conn:recv()
          if m == nil then return end
          conn:send(m)
        end
      end))
      local c = assert(net.connect(l:address()))
      for i = 1, 1000 do c:send({ seq = i, pad = ("p"):rep(i % 50) }) end
      local ok = 0
      for i = 1, 1000 do
        local m = c:recv(5000)
        if m and m.seq == i and #m.pad == i % 50 then ok = ok + 1 end
      end
      local big = ("\0\1\2\255"):rep(256 * 1024)
      c:send({ big = big })
      local m = c:recv(5000)
      print(ok, m and m.big == big)
      c:close()
      l:close()
    ]])
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("1000\ttrue\n", r.stdout)
  end)

  it("reports a refused connection and a bad address", function()
    local r = run([[
      print(copycat.net.connect("127.0.0.1:1"))
      print(copycat.net.connect("no-port-here"))
      print(copycat.net.listen("999.1.1.1:80", function() end))
    ]])
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("nil\tcannot connect to 127.0.0.1:1: connection refused\n", r.stdout, 1, true)
    assert.matches("nil\tcannot connect to 'no-port-here': address must be host:port", r.stdout, 1, true)
    assert.matches("nil\tcannot listen on '999.1.1.1:80': expected IP:PORT", r.stdout, 1, true)
  end)

  it("refuses to listen on an address in use, saying so", function()
    local r = run([[
      local a = assert(copycat.net.listen("127.0.0.1:0", function() end))
      print(copycat.net.listen(a:address(), function() end))
      a:close()
    ]])
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("cannot listen on 127.0.0.1:%d+: address already in use", r.stdout)
  end)

  it("times out a recv with nothing to read", function()
    local r = run([[
      local l = assert(copycat.net.listen("127.0.0.1:0", function(conn) conn:recv() end))
      local c = assert(copycat.net.connect(l:address()))
      print(c:recv(20))
      c:close(); l:close()
    ]])
    assert.are.equal("nil\ttimeout\n", r.stdout)
  end)

  it("refuses to send what the codec cannot encode", function()
    local r = run([[
      local l = assert(copycat.net.listen("127.0.0.1:0", function(conn) conn:recv() end))
      local c = assert(copycat.net.connect(l:address()))
      print(pcall(c.send, c, { f = print }))
      c:close(); l:close()
    ]])
    assert.matches("^false\t.*cannot encode a function", r.stdout)
  end)

  it("closes only the connection that sends a bad frame, and keeps serving", function()
    local server = proc.start({ proc.script(server_src) })
    assert.is_true(server:wait_output("listening ", 10))
    local address = server:stdout():match("listening (%S+)")
    local cases = {
      { "\\x00\\x00\\x00\\x01\\xc1", "malformed frame from 127.0.0.1:%d+: .*" },        -- invalid msgpack
      { "\\xff\\xff\\xff\\xff", "frame larger than the limit of 1048576 bytes" },       -- 4 GiB prefix
      { "\\x00\\x20\\x00\\x00", "frame larger than the limit of 1048576 bytes" },       -- over max_frame
      { "\\x00\\x00\\x00\\x02\\x01\\x02", "malformed frame from .*after the value" },   -- trailing bytes
      { "\\x00\\x00\\x00\\x0a\\x01\\x02", "peer closed the connection" },               -- truncated frame
      { "GET / HTTP/1.1\\r\\n\\r\\n", "frame larger than the limit" },                  -- garbage
    }
    for i, case in ipairs(cases) do
      send_raw(address, case[1])
      local lines
      for _ = 1, 250 do
        lines = {}
        for l in server:stdout():gmatch("closed: [^\n]*") do lines[#lines + 1] = l end
        if #lines >= i then break end
        os.execute("sleep 0.02")
      end
      assert.are.equal(i, #lines, "no close reported for case " .. i)
      assert.matches(case[2], lines[i])
    end
    local r = run(([[
      local c = assert(copycat.net.connect(%q))
      c:send("still serving")
      print(c:recv(5000).echo)
      c:close()
    ]]):format(address))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("still serving\n", r.stdout)
    server:kill("TERM")
    assert.are.equal(0, server:wait(10))
  end)
end)
