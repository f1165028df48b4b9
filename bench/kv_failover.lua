-- Used by bench/kv_cluster.sh: writes in a loop; prints the time from the
-- moment the file named by arg[2] appears (the leader was killed) to the
-- next committed write. Usage: copycat-lua bench/kv_failover.lua ADDRS FLAGFILE
local members = {}
for a in arg[1]:gmatch("[^,]+") do members[#members + 1] = a end
local flag = arg[2]
local client = copycat.client{ cluster = members, timeout = 200 }
local function exists(p) local f = io.open(p) if f then f:close() return true end return false end
local killed_at
for i = 1, 100000 do
  local _, err = client:submit("put", { key = "failover", value = i })
  if not killed_at and exists(flag) then killed_at = copycat.now() end
  if killed_at and not err and copycat.now() > killed_at then
    print(("failover_ms %.1f"):format(copycat.now() - killed_at))
    break
  end
  if err then copycat.sleep(5) end
end
client:close()
