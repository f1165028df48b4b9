-- Load generator for bench/kv_cluster.sh and bench/etcd_compare.sh (not run
-- on its own by make bench: it needs a cluster).
-- Usage: copycat-lua bench/kv_load.lua ADDRS TASKS OPS|SECONDSs [distinct]
-- Each task puts values of 100 bytes to 100 keys of its own, or with
-- "distinct" to keys never used before (the state then grows with every
-- put): OPS puts each, or as many as fit in SECONDS (e.g. "10s"), counting
-- the puts that complete.
-- Tasks share one copycat.client (one connection, one session), each with
-- one put in flight. With BENCH_PIPELINE=N the client is a lean one over
-- the native protocol instead: TASKS connections, each with its own session
-- and N submits in flight (the reply of one sends the next), so that one
-- client process can offer far more load than it could through tasks.
-- With BENCH_OP=get the tasks read instead of writing: queries "get" of the
-- same keys (written by an earlier run), at BENCH_CONSISTENCY
-- ("linearizable" by default), and the first figure is reads/s.
-- With BENCH_TLS_CA=FILE set, the client speaks TLS trusting that CA.
-- With BENCH_CPU_PIDS="label:pid,..." set, a second line gives the CPU use
-- during the load, in % of one core, of this client and of each listed
-- process (the format of bench/etcd_load.py):
--   cpu  client N% (1 process: N%)  label N%  label N%
if not arg[1] or arg[1]:match("^%-") or not arg[3] then
  io.stderr:write("usage: copycat-lua bench/kv_load.lua ADDR,ADDR,... TASKS OPS|SECONDSs [distinct]\n")
  os.exit(2)
end
local members = {}
for a in arg[1]:gmatch("[^,]+") do members[#members + 1] = a end
local tasks = tonumber(arg[2])
local seconds = tonumber(arg[3]:match("^([%d.]+)s$") or "")
local ops = seconds and math.huge or tonumber(arg[3])
local distinct = arg[4] == "distinct"
local pipeline = tonumber(os.getenv("BENCH_PIPELINE") or "") or 0
local op = os.getenv("BENCH_OP") or "put"
local consistency = os.getenv("BENCH_CONSISTENCY") or "linearizable"
if op ~= "put" and op ~= "get" then
  io.stderr:write("kv_load: BENCH_OP must be put or get, not ", op, "\n")
  os.exit(2)
end
if op == "get" and pipeline > 0 then
  io.stderr:write("kv_load: BENCH_OP=get runs with tasks, not BENCH_PIPELINE\n")
  os.exit(2)
end
local tls_ca = os.getenv("BENCH_TLS_CA")
local tls = tls_ca and tls_ca ~= "" and { ca = tls_ca } or nil
local lat, failed = {}, 0
local value = ("v"):rep(100)
local function key_of(t, i) return ("k%d-%d"):format(t, distinct and i or i % 100) end

local watch = {}
for label, pid in (os.getenv("BENCH_CPU_PIDS") or ""):gmatch("([^,]+):(%d+)") do
  watch[#watch + 1] = { label = label, pid = pid }
end
local clk_tck = tonumber(os.getenv("BENCH_CLK_TCK") or "") or 100
local function process_cpu(pid) -- CPU seconds, all threads (proc(5) fields 14, 15)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return 0 end
  local rest = f:read("a"):match("^.*%)(.*)$")
  f:close()
  local fields = {}
  for x in rest:gmatch("%S+") do fields[#fields + 1] = x end
  return (tonumber(fields[12]) + tonumber(fields[13])) / clk_tck
end

-- ---- the lean pipelining client (BENCH_PIPELINE) ----

local net_opts = tls and { tls = require("copycat.tls").context(tls) } or nil

-- Sends req on conn and waits for its reply (nothing else is in flight on
-- conn yet).
local function ask(conn, req)
  if not conn:send(req) then return nil end
  local msg = conn:recv(10000)
  return type(msg) == "table" and msg or nil
end

-- A connection to the leader, and a session opened on it.
local function lean_connect()
  local prefer
  for _ = 1, 50 do
    for _, address in ipairs(prefer and { prefer } or members) do
      local conn = copycat.net.connect(address, net_opts)
      if conn then
        local hello = ask(conn, { "copycat", 1, "copycat", "client", "", "" })
        local r = hello and hello[1] == "ok" and ask(conn, { "open", 0, 10000 })
        if r and r[1] == "result" and r[3][1] then return conn, r[3][2] end
        prefer = r and r[1] == "redirect" and r[3] or nil
        conn:close()
        if prefer then break end
      end
    end
    copycat.sleep(50)
  end
  error("kv_load: no leader accepted a session")
end

local lean = {} -- task -> { conn, session }, connected before the clock starts

local function lean_task(t, deadline)
  local conn, session = lean[t][1], lean[t][2]
  local sent, acked, next_id = 0, 0, 0
  local started = {}
  local function send_one()
    sent = sent + 1
    next_id = next_id + 1
    started[next_id] = copycat.now()
    conn:send({ "submit", next_id, session, sent, acked, "put", { key = key_of(t, sent), value = value } })
  end
  local ka = copycat.every(1000, function()
    next_id = next_id + 1
    conn:send({ "keepalive", next_id, session, acked, 0 })
  end)
  for _ = 1, math.min(pipeline, ops) do send_one() end
  local outstanding = math.min(pipeline, ops)
  while outstanding > 0 do
    local msg, err = conn:recv(10000)
    if msg == nil then
      failed = failed + outstanding
      io.stderr:write("kv_load: connection lost: ", tostring(err), "\n")
      break
    end
    local s = started[msg[2]]
    if s then
      started[msg[2]] = nil
      outstanding = outstanding - 1
      local r = msg[3]
      if msg[1] == "result" and type(r) == "table" and r[1] then
        lat[#lat + 1] = copycat.now() - s
      else
        failed = failed + 1
        if failed <= 3 then
          io.stderr:write("kv_load: refused: ", require("copycat.json").encode(msg), "\n")
        end
      end
      -- Replies come in the order of the submits: this one is the lowest.
      acked = acked + 1
      if sent < ops and copycat.now() < deadline then
        send_one()
        outstanding = outstanding + 1
      end
    end
  end
  ka:stop()
  conn:close()
end

-- ---- the ordinary client: tasks sharing one copycat.client ----

local client
local function client_task(t, deadline)
  local i = 0
  while i < ops and copycat.now() < deadline do
    i = i + 1
    local s = copycat.now()
    local v, err
    if op == "get" then
      v, err = client:query("get", { key = key_of(t, i) }, { consistency = consistency })
    else
      v, err = client:submit("put", { key = key_of(t, i), value = value })
    end
    -- a failure is nil and a message (a get's results are value, revision)
    if v == nil and type(err) == "string" then
      failed = failed + 1
      if failed <= 3 then io.stderr:write("kv_load: ", op, " failed: ", tostring(err), "\n") end
    else
      lat[#lat + 1] = copycat.now() - s
    end
  end
end

if pipeline == 0 then
  client = copycat.client{ cluster = members, timeout = 10000, tls = tls }
  assert(client:submit("put", { key = "warmup", value = 0 }) ~= false)
else
  local dialers = {}
  for t = 1, tasks do
    dialers[t] = copycat.spawn(function() lean[t] = { lean_connect() } end)
  end
  for _, d in ipairs(dialers) do d:wait() end
end

for _, w in ipairs(watch) do w.before = process_cpu(w.pid) end
local cpu0 = os.clock()
local t0 = copycat.now()
local deadline = seconds and t0 + seconds * 1000 or math.huge
local all = {}
for t = 1, tasks do
  all[t] = copycat.spawn(pipeline > 0 and lean_task or client_task, t, deadline)
end
for _, t in ipairs(all) do t:wait() end
local elapsed = copycat.now() - t0
local cpu1 = os.clock()
for _, w in ipairs(watch) do w.after = process_cpu(w.pid) end
table.sort(lat)
local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] or 0 end
local rate_label = op == "get" and "reads/s" or "writes/s"
print((rate_label .. " %.0f  p50 %.2f ms  p99 %.2f ms  ok %d  failed %d  max %.1f ms"):format(
  #lat / elapsed * 1000, pct(0.5), pct(0.99), #lat, failed, lat[#lat] or 0))
if #watch > 0 then
  local own = (cpu1 - cpu0) / elapsed * 100000
  local line = ("cpu  client %.0f%% (1 process: %.0f%%)"):format(own, own)
  for _, w in ipairs(watch) do
    line = line .. ("  %s %.0f%%"):format(w.label, (w.after - w.before) / elapsed * 100000)
  end
  print(line)
end
if client then client:close() end
