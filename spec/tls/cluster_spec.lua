-- Mutual TLS on a live 3-node kv cluster (real processes, real TLS): a
-- peer without a certificate from the cluster's CA, with an expired one,
-- with another member's or a client's certificate, or whose hello names
-- another member than its certificate, is refused before any Raft message
-- counts: term, last index and data are the same before and after. Clients
-- verify the servers; client certificates are checked the same way.
local proc = require("support.proc")
local cluster = require("support.cluster")
local json = require("support.json")
local observe = require("support.observe")

local c, certs, other, expired, mport

local function ctl(args)
  return proc.run(args, { timeout = 60 })
end

local function kv(args, tls)
  local full = tls or { "--tls-ca", certs .. "/ca.crt" }
  full = { table.unpack(full) }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return cluster.kv(c, full)
end

-- Term and last index of every member, and the value of key "k".
local function state()
  local st = {}
  for i = 1, 3 do
    local r = ctl({ "ctl", "--socket", c.members[i].data, "status", "--json" })
    assert.are.equal(0, r.code, r.stderr)
    local s = json.decode(r.stdout)
    st[i] = { term = s.term, last_index = s.last_index }
  end
  st.k = kv({ "get", "k" }).stdout
  return st
end

-- Connects to member `to` as a server named `claim`, with TLS material
-- (cert/key may be nil), and, unless hello_only, sends a RequestVote that
-- asks for leadership at a far higher term and an AppendEntries at that
-- term, both naming `from` as their sender (default: claim). Prints what
-- the hello got.
local ATTACK = [[
local address, to, claim, ca, cert, key, hello_only, from = ...
from = from ~= "-" and from or claim
local core = require("copycat.core")
local ctx = assert(core.tls.context({ ca = ca, cert = cert ~= "-" and cert or nil,
  key = key ~= "-" and key or nil }))
local conn, err = copycat.net.connect(address, { tls = ctx })
if not conn then print("connect: " .. tostring(err)) return end
conn:send({ "copycat", 1, "copycat", "server", claim, "127.0.0.1:9" })
local reply, rerr = conn:recv(3000)
if type(reply) == "table" then
  print("hello: " .. tostring(reply[1]) .. " " .. tostring(reply[2]))
else
  print("hello: closed " .. tostring(rerr))
end
if hello_only == "yes" then conn:close() return end
local big = 1000000
conn:send({ 1, big, from, to, big, big, false, true })
conn:send({ 3, big, from, to, 0, 0, 0, require("copycat.codec").array() })
copycat.sleep(300)
conn:close()
]]

local function attack(i, claim, dir, name, hello_only, from)
  local cert = name and (dir .. "/" .. name .. ".crt") or "-"
  local key = name and (dir .. "/" .. name .. ".key") or "-"
  local r = proc.run({ proc.script(ATTACK), c.members[i].address, c.members[i].name, claim,
    certs .. "/ca.crt", cert, key, hello_only and "yes" or "no", from or "-" }, { timeout = 30 })
  assert.are.equal(0, r.code, r.stderr)
  return r.stdout
end

local function unchanged(before)
  -- Long enough for a disruption to show: several election timeouts.
  os.execute("sleep 1")
  local after = state()
  assert.are.same(before, after)
end

describe("TLS between members", function()
  setup(function()
    -- Long timeouts: a spurious election on a loaded machine would read as
    -- a disruption.
    c = cluster.new(3, { election_timeout = 1500, heartbeat_interval = 100 })
    certs = c.dir .. "/certs"
    other = c.dir .. "/other"
    expired = c.dir .. "/expired"
    assert.are.equal(0, ctl({ "ctl", "certs", certs, "n1", "n2", "n3", "n4", "n9" }).code)
    assert.are.equal(0, ctl({ "ctl", "certs", other, "n2" }).code)
    -- The same CA, an expired certificate for a member's name.
    os.execute(("mkdir -p %s && cp %s/ca.crt %s/ca.key %s/"):format(expired, certs, certs, expired))
    local r = ctl({ "ctl", "certs", expired, "n2", "--days", "-1" })
    assert.are.equal(0, r.code, r.stderr)
    local all = cluster.addresses(c)
    mport = cluster.free_ports(1)[1]
    local tf = assert(io.open(c.dir .. "/token", "w"))
    tf:write("s3cret-admin\n")
    tf:close()
    for i = 1, 3 do
      local n = "n" .. i
      cluster.start(c, i, "bootstrap", all, { "--tls-ca", certs .. "/ca.crt",
        "--tls-cert", certs .. "/" .. n .. ".crt", "--tls-key", certs .. "/" .. n .. ".key",
        "--admin-token-file", c.dir .. "/token",
        i == 2 and "--metrics-address" or nil, i == 2 and "127.0.0.1:" .. mport or nil })
    end
    r = nil
    for _ = 1, 60 do
      r = kv({ "put", "k", "v1" })
      if r.code == 0 then break end
      os.execute("sleep 0.2")
    end
    assert.are.equal(0, r.code, r.stderr)
  end)
  teardown(proc.cleanup)

  it("the cluster elects, replicates and serves clients over TLS", function()
    local st = state()
    assert.are.equal("v1\n", st.k)
    assert.are.equal(st[1].term, st[2].term)
    assert.is_truthy(c.procs[1]:stderr():find("tls=on", 1, true))
  end)

  it("a peer without a certificate cannot change the term, the log or the state", function()
    local before = state()
    local out = attack(1, "n2", nil, nil)
    assert.matches("hello: error a server must present its member certificate %(this one: none%)", out)
    unchanged(before)
  end)

  it("a peer with a certificate from another CA is refused at the handshake", function()
    local before = state()
    local out = attack(1, "n2", other, "n2")
    assert.matches("hello: closed", out)
    unchanged(before)
    assert.is_truthy(c.procs[1]:stderr():find("event=tls_refused", 1, true))
  end)

  it("a peer with an expired certificate is refused at the handshake", function()
    local before = state()
    local out = attack(2, "n2", expired, "n2")
    assert.matches("hello: closed", out)
    unchanged(before)
    local log = c.procs[2]:stderr()
    assert.is_truthy(log:find("event=tls_refused[^\n]*certificate has expired"), log)
  end)

  it("a valid certificate of a name that is not a member cannot speak for a member", function()
    local before = state()
    local out = attack(3, "n2", certs, "n9")
    assert.matches("hello: error hello names member 'n2' but the certificate names 'n9'", out)
    out = attack(3, "n1", certs, "client")
    assert.matches("hello: error a server must present its member certificate %(this one: a client's%)", out)
    unchanged(before)
  end)

  it("a message naming another member than the connection's is dropped, counted and logged once", function()
    local before = state()
    -- Authenticated as n2 (its own certificate), speaking for n1.
    local out = attack(3, "n2", certs, "n2", false, "n1")
    assert.matches("hello: ok n3", out)
    unchanged(before)
    local log = c.procs[3]:stderr()
    local _, lines = log:gsub("event=raft_message_dropped[^\n]*from=n1", "")
    assert.are.equal(1, lines, log) -- two messages, one line
    assert.is_truthy(log:find("event=raft_message_dropped[^\n]*member=n2[^\n]*another sender"), log)
  end)

  it("a valid certificate of a name that is not a member cannot change the term, the log or the state", function()
    local before = state()
    local out = attack(2, "n9", certs, "n9")
    assert.matches("hello: ok n2", out) -- it may be a server being added
    unchanged(before)
    local log = c.procs[2]:stderr()
    assert.is_truthy(log:find("event=raft_message_dropped[^\n]*member=n9[^\n]*not a member"), log)
    local _, _, body = observe.http_get(mport, "/metrics")
    assert.matches('copycat_raft_messages_dropped_total{reason="not_member"} 2\n', body, 1, true)
  end)

  it("clients verify the servers and are verified by them", function()
    assert.are.equal("v1\n", kv({ "get", "k" }).stdout) -- no client certificate: optional
    local r = kv({ "get", "k" }, { "--tls-ca", certs .. "/ca.crt", "--tls-cert", certs .. "/client.crt",
      "--tls-key", certs .. "/client.key" })
    assert.are.equal(0, r.code, r.stderr)
    local before = state()
    -- A client trusting another CA does not talk to these servers.
    r = kv({ "put", "k", "other-ca" }, { "--tls-ca", other .. "/ca.crt", "--timeout", "1500" })
    assert.are_not.equal(0, r.code)
    -- An expired or foreign client certificate is refused.
    r = kv({ "put", "k", "expired" }, { "--tls-ca", certs .. "/ca.crt", "--tls-cert",
      expired .. "/n2.crt", "--tls-key", expired .. "/n2.key", "--timeout", "1500" })
    assert.are_not.equal(0, r.code)
    r = kv({ "put", "k", "foreign" }, { "--tls-ca", certs .. "/ca.crt", "--tls-cert",
      other .. "/n2.crt", "--tls-key", other .. "/n2.key", "--timeout", "1500" })
    assert.are_not.equal(0, r.code)
    -- A plain client cannot talk to a TLS server at all.
    r = cluster.kv(c, { "--timeout", "1500", "put", "k", "plain" })
    assert.are_not.equal(0, r.code)
    unchanged(before)
  end)

  -- Runs change, remove and transfer as a client with certificate `name`
  -- (nil: none); prints one line per request.
  local ADMIN = [[
local cluster, ca, cert, key, token = ...
local c = copycat.client({ cluster = { cluster }, timeout = 2000, admin_token = token,
  tls = { ca = ca, cert = cert ~= "-" and cert or nil, key = key ~= "-" and key or nil } })
local spare = "127.0.0.1:9"
local function show(what, ok, err) print(what .. ": " .. tostring(ok) .. " " .. tostring(err)) end
show("change", c:change("n5", spare, "reserve"))
show("remove", c:remove("n5"))
show("remove-n3", c:remove(ARG_REMOVE_N3 and "n3" or "nobody"))
show("transfer", c:transfer("n9"))
c:close()
]]

  local function members()
    local r = ctl({ "ctl", "--socket", c.members[1].data, "status", "--json" })
    assert.are.equal(0, r.code, r.stderr)
    local names = {}
    for _, m in ipairs(json.decode(r.stdout).members) do names[#names + 1] = m.name .. "/" .. m.type end
    table.sort(names)
    return table.concat(names, ",")
  end

  local function as_client(name, remove_n3, token)
    local src = ADMIN:gsub("ARG_REMOVE_N3", remove_n3 and "true" or "false")
    local cert = name and (certs .. "/" .. name .. ".crt") or "-"
    local key = name and (certs .. "/" .. name .. ".key") or "-"
    local r = proc.run({ proc.script(src), c.members[2].address, certs .. "/ca.crt", cert, key, token },
      { timeout = 60 })
    assert.are.equal(0, r.code, r.stderr)
    return r.stdout
  end

  it("membership and leadership changes need admin rights", function()
    local before = members()
    for _, who in ipairs({ false, "client" }) do
      local out = as_client(who or nil, true)
      for _, verb in ipairs({ "change", "remove", "transfer" }) do
        assert.matches(verb .. ": nil denied: " .. verb .. " needs admin rights", out, 1, true)
      end
      assert.matches("remove-n3: nil denied: remove needs admin rights", out, 1, true)
      assert.are.equal(before, members())
    end
    -- Refused by the member the client reached, not forwarded.
    assert.is_truthy(c.procs[2]:stderr():find("event=request_denied[^\n]*certificate=client[^\n]*role=client"))
    -- The admin certificate holds the rights: n5 is added, then removed;
    -- n9 is no member, so the transfer fails on that, not on rights.
    local out = as_client("admin", false)
    assert.matches("change: true nil", out, 1, true)
    assert.matches("remove: true nil", out, 1, true)
    assert.matches("transfer: nil no such member", out, 1, true)
    assert.are.equal(before, members())
  end)

  it("the servers' admin token grants the same rights; a wrong one is refused", function()
    local before = members()
    local out = as_client(nil, false, "s3cret-admin")
    assert.matches("change: true nil", out, 1, true)
    assert.matches("remove: true nil", out, 1, true)
    assert.are.equal(before, members())
    out = as_client(nil, true, "not-the-token")
    assert.matches("change: nil [^\n]*wrong admin token", out)
    assert.matches("remove%-n3: nil [^\n]*wrong admin token", out)
    assert.are.equal(before, members())
  end)

  it("a new member joins over TLS with its own certificate", function()
    local port = cluster.free_ports(1)[1]
    local h = proc.start({ "examples/kv/server.lua", "--name", "n4", "--address", "127.0.0.1:" .. port,
      "--data", c.dir .. "/n4", "--join", cluster.addresses(c), "--election-timeout", "1500",
      "--heartbeat-interval", "100", "--tls-ca", certs .. "/ca.crt", "--tls-cert", certs .. "/n4.crt",
      "--tls-key", certs .. "/n4.key" }, { timeout = 120 })
    assert.is_truthy(h:wait_output("serving on 127.0.0.1:" .. port, 60), h:stderr())
    local r = ctl({ "ctl", "--socket", c.dir .. "/n4", "status", "--json" })
    assert.are.equal(0, r.code, r.stderr)
    local st = json.decode(r.stdout)
    assert.are.equal(4, #st.members)
    assert.are.equal("v1\n", kv({ "get", "k" }, { "--tls-ca", certs .. "/ca.crt", "--consistency",
      "sequential", "--cluster", "127.0.0.1:" .. port }).stdout)
  end)

  it("a malformed TLS record closes that connection only", function()
    local r = proc.run({ "-e", ([[
      local conn = assert(copycat.net.connect(%q))
      conn:send(string.rep("\22\3\3\0\5garbage", 50))
      print(conn:recv(2000))
    ]]):format(c.members[1].address) }, { timeout = 30 })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("v1\n", kv({ "get", "k" }).stdout)
    assert.is_nil(c.procs[1]:wait(0))
  end)

  -- Last: it disrupts the cluster on purpose.
  it("the same messages under a member's own certificate do move the term (the checks are not vacuous)", function()
    local before = state()
    local out = attack(1, "n3", certs, "n3")
    assert.matches("hello: ok n1", out)
    os.execute("sleep 1")
    local after = state()
    assert.is_true(after[1].term > before[1].term)
  end)
end)
