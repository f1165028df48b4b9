-- The metrics page (docs/metrics.md) on real servers: strict Prometheus
-- text whose numbers move with writes, and an HTTP endpoint that survives
-- bad requests.
local proc = require("support.proc")
local cluster = require("support.cluster")
local obs = require("support.observe")

local function eventually(fn, tries)
  for _ = 1, tries or 100 do
    local v = fn()
    if v then return v end
    os.execute("sleep 0.1")
  end
  return nil
end

local function scrape(port)
  local status, headers, body = obs.http_get(port, "/metrics")
  assert.are.equal(200, status, body)
  assert.matches("^text/plain; version=0%.0%.4", headers["content-type"])
  assert.are.equal(#body, tonumber(headers["content-length"]))
  return obs.parse_prometheus(body)
end

local function v(fams, name, labels)
  local x = obs.value(fams, name, labels)
  assert(x, "no sample " .. name)
  return x
end

describe("the metrics page", function()
  after_each(function() proc.cleanup() end)

  it("parses as Prometheus text and its numbers move when writes happen", function()
    local c = cluster.new(3)
    local mports = cluster.free_ports(3)
    for i = 1, 3 do
      cluster.start(c, i, "bootstrap", cluster.addresses(c), { "--metrics-address", "127.0.0.1:" .. mports[i] })
    end
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    local leader = eventually(function()
      for i = 1, 3 do
        if v(scrape(mports[i]), "copycat_role", { role = "leader" }) == 1 then return i end
      end
    end)
    assert.is_truthy(leader, "no server reports the leader role")
    local before = scrape(mports[leader])
    for _, fam in pairs(before) do assert.is_truthy(fam.help ~= "") end
    for _, name in ipairs({ "copycat_term", "copycat_commit_index", "copycat_applied_index",
      "copycat_last_log_index", "copycat_leader_changes_total", "copycat_elections_started_total",
      "copycat_sessions", "copycat_commands_total", "copycat_queries_total",
      "copycat_storage_append_batch_entries", "copycat_storage_fsync_seconds",
      "copycat_replication_lag_entries", "copycat_snapshot_size_bytes",
      "copycat_snapshot_duration_seconds", "copycat_role", "copycat_members", "copycat_loop_lag_seconds" }) do
      assert.is_truthy(before[name], "missing family " .. name)
    end
    assert.are.equal("histogram", before.copycat_storage_fsync_seconds.type)
    assert.are.equal("counter", before.copycat_commands_total.type)
    assert.is_true(v(before, "copycat_elections_started_total") >= 1)
    assert.is_true(v(before, "copycat_leader_changes_total") >= 1)
    assert.are.equal(3, v(before, "copycat_members", { type = "active" }))
    assert.is_true(v(before, "copycat_sessions") >= 0)
    -- the leader reports the lag of each other member
    local peers = 0
    for _, s in ipairs(before.copycat_replication_lag_entries.samples) do
      peers = peers + 1
      assert.are_not.equal(c.members[leader].name, s.labels.peer)
    end
    assert.are.equal(2, peers)

    for k = 1, 5 do
      assert.are.equal(0, cluster.kv(c, { "put", "k" .. k, "v" }).code)
    end
    assert.are.equal("v\n", cluster.kv(c, { "get", "k5" }).stdout)
    local after = eventually(function()
      local f = scrape(mports[leader])
      return v(f, "copycat_storage_fsync_seconds_count") > v(before, "copycat_storage_fsync_seconds_count") and f
    end)
    assert.is_truthy(after, "the fsync histogram did not move")
    assert.is_true(v(after, "copycat_commit_index") >= v(before, "copycat_commit_index") + 5)
    assert.is_true(v(after, "copycat_applied_index") >= v(before, "copycat_applied_index") + 5)
    assert.is_true(v(after, "copycat_last_log_index") >= v(before, "copycat_last_log_index") + 5)
    assert.is_true(v(after, "copycat_commands_total", { outcome = "ok" })
      >= v(before, "copycat_commands_total", { outcome = "ok" }) + 5)
    assert.is_true(v(after, "copycat_queries_total", { outcome = "ok" })
      >= v(before, "copycat_queries_total", { outcome = "ok" }) + 1)
    assert.is_true(v(after, "copycat_storage_append_batch_entries_count")
      > v(before, "copycat_storage_append_batch_entries_count"))
    assert.is_true(v(after, "copycat_storage_written_bytes_total") > v(before, "copycat_storage_written_bytes_total"))

    -- a client holding a session open shows in the sessions gauge
    local holder = proc.start({ "-e", ([[
      local c = copycat.client{ cluster = { %q } }
      local _, err = c:submit("put", { key = "held", value = 1 })
      assert(not err, err)
      print("holding")
      io.stdout:flush()
      copycat.sleep(20000)
    ]]):format(c.members[leader].address) }, { timeout = 30 })
    assert.is_true(holder:wait_output("holding", 20), holder:stderr())
    assert.is_true(v(scrape(mports[leader]), "copycat_sessions") >= 1)
    holder:kill("KILL")

    -- a follower: its role, and the commit index catching up
    local f = leader % 3 + 1
    local fol = eventually(function()
      local m = scrape(mports[f])
      return v(m, "copycat_applied_index") >= v(after, "copycat_commit_index") and m
    end)
    assert.is_truthy(fol, "the follower did not catch up")
    assert.are.equal(1, v(fol, "copycat_role", { role = "follower" }))
    assert.are.equal(0, v(fol, "copycat_role", { role = "leader" }))
    assert.are.equal(0, #fol.copycat_replication_lag_entries.samples)
    assert.is_true(v(fol, "copycat_storage_fsync_seconds_count") > 0)
    -- a follower forwards a command and a linearizable query to the
    -- leader and relays the answers: nothing is redirected
    local r = proc.run({ "-e", ([[
      local conn = assert(copycat.net.connect(%q))
      conn:send({ "copycat", 1, "copycat", "client", "", "" })
      print(conn:recv(5000)[1])
      conn:send({ "submit", 1, 1, 1, 0, "put", { key = "r", value = 1 } })
      print(conn:recv(5000)[1])
      conn:send({ "query", 2, "get", { key = "r" }, "linearizable", 0, 0 })
      print(conn:recv(5000)[1])
      conn:close()
    ]]):format(c.members[f].address) })
    assert.are.equal("ok\nresult\nresult\n", r.stdout, r.stderr)
    local m = scrape(mports[f])
    assert.are.equal(v(fol, "copycat_commands_total", { outcome = "redirect" }),
      v(m, "copycat_commands_total", { outcome = "redirect" }))
    assert.are.equal(v(fol, "copycat_queries_total", { outcome = "redirect" }),
      v(m, "copycat_queries_total", { outcome = "redirect" }))
  end)

  it("answers bad requests with an error or a close, and keeps serving", function()
    local c = cluster.new(1)
    local mport = cluster.free_ports(1)[1]
    cluster.start(c, 1, "bootstrap", c.members[1].address, { "--metrics-address", "127.0.0.1:" .. mport })
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    local function status(request, seconds)
      return (obs.parse_response(obs.http_raw(mport, request, seconds)))
    end
    assert.are.equal(404, status("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert.are.equal(404, status("GET / HTTP/1.0\r\n\r\n"))
    assert.are.equal(405, status("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"))
    assert.are.equal(400, status("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"))
    assert.are.equal(400, status("GET /metrics HTTP/1.1\r\nno header here\r\n\r\n"))
    assert.are.equal(400, status("GET /metrics\r\n\r\n"))
    -- H2O takes request heads up to about 400 KiB (8 KiB + 4 KiB per header)
    local huge = status("GET /metrics HTTP/1.1\r\nX-Big: " .. ("a"):rep(500000) .. "\r\n\r\n")
    assert.is_true(huge == 400 or huge == 431 or huge == nil, "huge head: " .. tostring(huge))
    -- a request that never ends is not answered; the connection is dropped
    assert.are.equal("", obs.http_raw(mport, "GET /metr", 1))
    -- HEAD: the headers only
    local raw = obs.http_raw(mport, "HEAD /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
    local st, headers, body = obs.parse_response(raw)
    assert.are.equal(200, st)
    assert.are.equal("", body)
    assert.is_true(tonumber(headers["content-length"]) > 100)
    -- still serving, pages and writes alike
    local fams = scrape(mport)
    assert.are.equal(1, v(fams, "copycat_role", { role = "leader" }))
    assert.are.equal(0, cluster.kv(c, { "put", "b", "2" }).code)
    assert.is_nil(c.procs[1]:wait(0))
  end)

  it("counts the ticks a stalled event loop delayed in copycat_loop_lag_seconds", function()
    local c = cluster.new(1)
    local mport = cluster.free_ports(1)[1]
    cluster.start(c, 1, "bootstrap", c.members[1].address, { "--metrics-address", "127.0.0.1:" .. mport })
    assert.are.equal(0, cluster.kv_until_ok(c, { "put", "a", "1" }).code)
    -- ticks late by more than 0.25 s
    local function late(f)
      return v(f, "copycat_loop_lag_seconds_count") - v(f, "copycat_loop_lag_seconds_bucket", { le = "0.25" })
    end
    local before = scrape(mport)
    assert.are.equal("histogram", before.copycat_loop_lag_seconds.type)
    assert.is_true(v(before, "copycat_loop_lag_seconds_count") > 0, "no tick observed")
    -- the process is not scheduled for 0.6 s: its next tick is that late
    c.procs[1]:kill("STOP")
    os.execute("sleep 0.6")
    c.procs[1]:kill("CONT")
    local after = eventually(function()
      local f = scrape(mport)
      return late(f) > late(before) and f
    end)
    assert.is_truthy(after, "a 0.6 s stall was not counted as a tick more than 0.25 s late")
    assert.is_nil(c.procs[1]:wait(0))
  end)

  it("refuses a bad or busy metrics address with a clear error", function()
    local ports = cluster.free_ports(2)
    local a = "127.0.0.1:" .. ports[1]
    local r = proc.run({ "examples/kv/server.lua", "--name", "n1", "--address", a, "--data", proc.tmpdir(),
      "--bootstrap", a, "--metrics-address", "nowhere" })
    assert.are.equal(2, r.code)
    assert.matches('%-%-metrics%-address expects HOST:PORT, got "nowhere"', r.stderr)
    r = proc.run({ "-e", [[copycat.server{ name = "n1", address = "127.0.0.1:1", memory = true,
      metrics_address = "nowhere", state_machine = "examples/kv/state_machine.lua" }]] })
    assert.are_not.equal(0, r.code)
    assert.matches("metrics_address must be \"host:port\"", r.stderr)
    r = proc.run({ "-e", ([[
      local s = copycat.server{ name = "n1", address = %q, memory = true, metrics_address = %q,
        state_machine = "examples/kv/state_machine.lua" }
      print(s:metrics_address() ~= nil)
      local ok, err = pcall(copycat.server, { name = "n2", address = "127.0.0.1:0", memory = true,
        metrics_address = s:metrics_address(), state_machine = "examples/kv/state_machine.lua" })
      print(ok, err)
      local page = s:metrics()
      print(page:match("copycat_sessions 0") ~= nil)
      s:set_sessions(7)
      print(s:metrics():match("copycat_sessions 7") ~= nil)
      s:stop()
    ]]):format(a, "127.0.0.1:" .. ports[2]) })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches(
      "^true\nfalse\t[^\n]*cannot serve metrics on 127%.0%.0%.1:%d+: address already in use\ntrue\ntrue\n$",
      r.stdout)
  end)
end)

describe("the strict Prometheus parser of these specs", function()
  it("refuses pages that break the format", function()
    local good = "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"1\"} 3\n"
    assert.is_truthy(obs.parse_prometheus(good).x_total)
    local bad = {
      "x_total 3\n", -- no HELP/TYPE
      "# HELP x X.\nx 1\n", -- no TYPE
      "# HELP x X.\n# TYPE x gauge\nx{a=\"1} 1\n", -- unterminated label
      "# HELP x X.\n# TYPE x gauge\nx 1 123\n", -- timestamp
      "# HELP x X.\n# TYPE x gauge\nx one\n", -- value
      "# HELP x X.\n# TYPE x gauge\nx 1\nx 2\n", -- series twice
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", -- no +Inf
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n", -- +Inf ~= count
    }
    for _, page in ipairs(bad) do
      assert.has_error(function() obs.parse_prometheus(page) end)
    end
  end)
end)
