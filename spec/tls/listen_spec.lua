-- Secure by default: a server without TLS refuses to listen where other
-- machines could reach it (0.0.0.0, the machine's own address) unless it
-- is told --insecure, and says why; loopback addresses need nothing. Only
-- the bind decision is checked: nothing connects to 0.0.0.0.
local proc = require("support.proc")
local cluster = require("support.cluster")

local function serve(extra, data)
  local args = { "examples/kv/server.lua", "--name", "n1", "--data", data, "--empty" }
  for _, a in ipairs(extra) do args[#args + 1] = a end
  return args
end

describe("plain listeners", function()
  teardown(proc.cleanup)

  it("a non-loopback address without TLS is refused, naming the flags that fix it", function()
    local port = cluster.free_ports(1)[1]
    local dir = proc.tmpdir()
    local r = proc.run(serve({ "--address", "0.0.0.0:" .. port }, dir .. "/a"), { timeout = 30 })
    assert.are.equal(1, r.code)
    assert.matches("refusing to listen on 0%.0%.0%.0:%d+ %(address%) without TLS", r.stderr)
    assert.matches("%-%-tls%-ca", r.stderr)
    assert.matches("%-%-insecure", r.stderr)
    -- The same for the client and metrics addresses.
    r = proc.run(serve({ "--address", "127.0.0.1:" .. port, "--client-address", "0.0.0.0:" .. port + 1 },
      dir .. "/b"), { timeout = 30 })
    assert.are.equal(1, r.code)
    assert.matches("%(client_address%) without TLS", r.stderr)
    r = proc.run(serve({ "--address", "127.0.0.1:" .. port, "--metrics-address", "[::]:" .. port + 1 },
      dir .. "/c"), { timeout = 30 })
    assert.are.equal(1, r.code)
    assert.matches("%(metrics_address%) without TLS", r.stderr)
  end)

  it("--insecure accepts the risk, and loopback needs no flag", function()
    local port = cluster.free_ports(1)[1]
    local dir = proc.tmpdir()
    local h = proc.start(serve({ "--address", "0.0.0.0:" .. port, "--insecure" }, dir .. "/a"), { timeout = 30 })
    assert.is_truthy(h:wait_output("serving on 0.0.0.0:" .. port, 20), h:stderr())
    h:kill("TERM")
    h:wait(10)
    port = cluster.free_ports(1)[1]
    h = proc.start(serve({ "--address", "127.0.0.1:" .. port }, dir .. "/b"), { timeout = 30 })
    assert.is_truthy(h:wait_output("serving on 127.0.0.1:" .. port, 20), h:stderr())
    h:kill("TERM")
    h:wait(10)
  end)
end)
