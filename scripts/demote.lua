-- Makes a member PASSIVE: it keeps receiving the log but no longer votes
-- or counts for the quorum. Returns once that has committed.
--   copycat-lua ctl --socket data/n1 run scripts/demote.lua n3
local name = ...
if not name then error("usage: ctl run scripts/demote.lua NAME", 0) end
cluster.demote(name)
print(name .. " is PASSIVE")
