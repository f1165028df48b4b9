-- Takes a snapshot of this server's state machine now, so its log can be
-- compacted (each server snapshots on its own: run it against each one).
--   copycat-lua ctl --socket data/n1 run scripts/snapshot.lua
local index = cluster.snapshot()
print(("%s: snapshot at index %d"):format(cluster.name(), index))
