-- Follower forwarding (host/server/forward.c) on real servers: a client
-- that talks to a follower only, over the native protocol, gets its
-- commands applied (once) and its linearizable and lease queries
-- answered by the leader, through the follower; sequential queries stay
-- on the follower.
local proc = require("support.proc")
local cluster = require("support.cluster")

describe("a follower", function()
  after_each(function() proc.cleanup() end)

  it("forwards commands, sessions and leader queries, and relays the answers", function()
    local c = cluster.new(3)
    for i = 1, 3 do cluster.start(c, i, "bootstrap", cluster.addresses(c)) end
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    local li = cluster.index_of(c, cluster.leader(c))
    local f = li % 3 + 1
    local r = proc.run({ "-e", ([[
      local conn = assert(copycat.net.connect(%q))
      local function call(req)
        conn:send(req)
        local reply = conn:recv(10000)
        assert(reply, "no answer")
        return reply
      end
      print(call({ "copycat", 1, "copycat", "client", "", "" })[1])
      local open = call({ "open", 1, 5000 })
      print(open[1], open[2], open[3][1])
      local sid = open[3][2]
      local put = call({ "submit", 2, sid, 1, 0, "put", { key = "f", value = "one" } })
      print(put[1], put[2], put[3][1])
      -- the same sequence number again (a lost answer): the same result, applied once
      local again = call({ "submit", 3, sid, 1, 0, "put", { key = "f", value = "one" } })
      print(again[1], again[3][1], again[3][2] == put[3][2])
      local put2 = call({ "submit", 4, sid, 2, 1, "put", { key = "f", value = "two" } })
      print(put2[1], put2[3][2])
      for i, level in ipairs({ "linearizable", "lease", "sequential" }) do
        local q = call({ "query", 4 + i, "get", { key = "f" }, level, sid, put2[4] })
        print(q[1], q[2], q[3][2])
      end
      local ka = call({ "keepalive", 9, sid, 2, 0 })
      print(ka[1], #ka[3][2])
      local cl = call({ "close", 10, sid })
      print(cl[1], cl[3][1])
      local gone = call({ "submit", 11, sid, 3, 2, "put", { key = "f", value = "three" } })
      print(gone[1], gone[3][3])
      conn:close()
    ]]):format(c.members[f].address) })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(table.concat({
      "ok", "result\t1\ttrue", "result\t2\ttrue", "result\ttrue\ttrue", "result\tone",
      "result\t5\ttwo", "result\t6\ttwo", "result\t7\ttwo", "result\t0", "result\ttrue",
      "result\texpired", "" }, "\n"), r.stdout)
  end)

  it("forwards a leadership transfer to the leader", function()
    local c = cluster.new(3)
    for i = 1, 3 do cluster.start(c, i, "bootstrap", cluster.addresses(c)) end
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    local li = cluster.index_of(c, cluster.leader(c))
    local f = li % 3 + 1
    local r = proc.run({ "-e", ([[
      local conn = assert(copycat.net.connect(%q))
      conn:send({ "copycat", 1, "copycat", "client", "", "" })
      assert(conn:recv(5000)[1] == "ok")
      conn:send({ "transfer", 7, %q })
      local reply = conn:recv(10000)
      print(reply[1], reply[2])
      conn:close()
    ]]):format(c.members[f].address, c.members[f].name) })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("ok\t7\n", r.stdout)
    local led
    for _ = 1, 100 do
      led = cluster.leader(c)
      if led == c.members[f].name then break end
      os.execute("sleep 0.1")
    end
    assert.are.equal(c.members[f].name, led)
  end)
end)
