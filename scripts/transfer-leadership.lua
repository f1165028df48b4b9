-- Hands leadership to an ACTIVE member; returns once it leads and serves.
--   copycat-lua ctl --socket data/n1 run scripts/transfer-leadership.lua n2
local name = ...
if not name then error("usage: ctl run scripts/transfer-leadership.lua NAME", 0) end
local before = cluster.leader()
cluster.transfer(name)
if before == name then
  print(name .. " already leads")
else
  print(("leadership moved from %s to %s"):format(before or "nobody", name))
end
