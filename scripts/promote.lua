-- Makes a PASSIVE or RESERVE member ACTIVE (a voter); returns once the
-- configuration that makes it vote has committed.
--   copycat-lua ctl --socket data/n1 run scripts/promote.lua n4
local name = ...
if not name then error("usage: ctl run scripts/promote.lua NAME", 0) end
cluster.promote(name)
print(name .. " is ACTIVE")
