-- Load generator for bench/kv_cluster.sh (not run on its own by make bench:
-- it needs a cluster). Usage: copycat-lua bench/kv_load.lua ADDRS TASKS OPS
if not arg[1] or arg[1]:match("^%-") or not arg[3] then
  io.stderr:write("usage: copycat-lua bench/kv_load.lua ADDR,ADDR,... TASKS OPS_PER_TASK\n")
  os.exit(2)
end
local members = {}
for a in arg[1]:gmatch("[^,]+") do members[#members + 1] = a end
local tasks, ops = tonumber(arg[2]), tonumber(arg[3])
local client = copycat.client{ cluster = members, timeout = 10000 }
assert(client:submit("put", { key = "warmup", value = 0 }) ~= false)
local lat, failed = {}, 0
local value = ("v"):rep(100)
local t0 = copycat.now()
local all = {}
for t = 1, tasks do
  all[t] = copycat.spawn(function()
    for i = 1, ops do
      local s = copycat.now()
      local _, err = client:submit("put", { key = ("k%d-%d"):format(t, i % 100), value = value })
      if err then failed = failed + 1 else lat[#lat + 1] = copycat.now() - s end
    end
  end)
end
for _, t in ipairs(all) do t:wait() end
local elapsed = copycat.now() - t0
table.sort(lat)
local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] or 0 end
print(("writes/s %.0f  p50 %.2f ms  p99 %.2f ms  ok %d  failed %d"):format(
  #lat / elapsed * 1000, pct(0.5), pct(0.99), #lat, failed))
client:close()
