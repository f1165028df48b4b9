-- Used by bench/kv_cluster.sh: writes in a loop; prints the time from the
-- moment the file named by arg[2] appears (the leader was killed) to the
-- completion of the first write issued after it. Commands are resent
-- within the session until a new leader commits them, so the write that
-- was in flight at the kill also waits for the new leader.
-- Usage: copycat-lua bench/kv_failover.lua ADDRS FLAGFILE
local members = {}
for a in arg[1]:gmatch("[^,]+") do members[#members + 1] = a end
local flag = arg[2]
local client = copycat.client{ cluster = members, timeout = 200 }
local function exists(p) local f = io.open(p) if f then f:close() return true end return false end
local killed_at
local watch = copycat.every(1, function()
  if not killed_at and exists(flag) then killed_at = copycat.now() end
end)
for i = 1, 100000 do
  local started = copycat.now()
  local _, err = client:submit("put", { key = "failover", value = i })
  if killed_at and started > killed_at and not err then
    print(("failover_ms %.1f"):format(copycat.now() - killed_at))
    break
  end
  if err then copycat.sleep(5) end
end
watch:stop()
client:close()
