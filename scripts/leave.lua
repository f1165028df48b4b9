-- Removes a member from the cluster; returns once the removal committed.
--   copycat-lua ctl --socket data/n1 run scripts/leave.lua n4
-- Stop the removed server afterwards.
local name = ...
if not name then error("usage: ctl run scripts/leave.lua NAME", 0) end
cluster.remove(name)
print(name .. " has left the cluster")
