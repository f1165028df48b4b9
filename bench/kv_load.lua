-- Load generator for bench/kv_cluster.sh and bench/etcd_compare.sh (not run
-- on its own by make bench: it needs a cluster).
-- Usage: copycat-lua bench/kv_load.lua ADDRS TASKS OPS [distinct]
-- Each task puts OPS values to 100 keys of its own, or with "distinct" to
-- OPS keys of its own (the state then grows with every put).
-- With BENCH_TLS_CA=FILE set, the client speaks TLS trusting that CA.
-- With BENCH_CPU_PIDS="label:pid,..." set, a second line gives the CPU use
-- during the load, in % of one core, of this client and of each listed
-- process (the format of bench/etcd_load.py):
--   cpu  client N% (1 process: N%)  label N%  label N%
if not arg[1] or arg[1]:match("^%-") or not arg[3] then
  io.stderr:write("usage: copycat-lua bench/kv_load.lua ADDR,ADDR,... TASKS OPS_PER_TASK\n")
  os.exit(2)
end
local members = {}
for a in arg[1]:gmatch("[^,]+") do members[#members + 1] = a end
local tasks, ops = tonumber(arg[2]), tonumber(arg[3])
local key_span = arg[4] == "distinct" and math.huge or 100
local tls_ca = os.getenv("BENCH_TLS_CA")
local client = copycat.client{ cluster = members, timeout = 10000,
  tls = tls_ca and tls_ca ~= "" and { ca = tls_ca } or nil }
assert(client:submit("put", { key = "warmup", value = 0 }) ~= false)
local lat, failed = {}, 0
local value = ("v"):rep(100)
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
for _, w in ipairs(watch) do w.before = process_cpu(w.pid) end
local cpu0 = os.clock()
local t0 = copycat.now()
local all = {}
for t = 1, tasks do
  all[t] = copycat.spawn(function()
    for i = 1, ops do
      local s = copycat.now()
      local key = ("k%d-%d"):format(t, key_span == math.huge and i or i % 100)
      local _, err = client:submit("put", { key = key, value = value })
      if err then failed = failed + 1 else lat[#lat + 1] = copycat.now() - s end
    end
  end)
end
for _, t in ipairs(all) do t:wait() end
local elapsed = copycat.now() - t0
local cpu1 = os.clock()
for _, w in ipairs(watch) do w.after = process_cpu(w.pid) end
table.sort(lat)
local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] or 0 end
print(("writes/s %.0f  p50 %.2f ms  p99 %.2f ms  ok %d  failed %d  max %.1f ms"):format(
  #lat / elapsed * 1000, pct(0.5), pct(0.99), #lat, failed, lat[#lat] or 0))
if #watch > 0 then
  local own = (cpu1 - cpu0) / elapsed * 100000
  local line = ("cpu  client %.0f%% (1 process: %.0f%%)"):format(own, own)
  for _, w in ipairs(watch) do
    line = line .. ("  %s %.0f%%"):format(w.label, (w.after - w.before) / elapsed * 100000)
  end
  print(line)
end
client:close()
