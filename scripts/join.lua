-- Adds a member to the cluster. Start the new server first, empty:
--   copycat-lua examples/kv/server.lua --name n4 --address 127.0.0.1:5004 --data data/n4 --empty
-- then, against any current member:
--   copycat-lua ctl --socket data/n1 run scripts/join.lua n4 127.0.0.1:5004 [active|passive|reserve]
-- An ACTIVE member catches up as PASSIVE first; the script returns once it
-- is a member of the committed configuration.
local name, address, type_ = ...
if not name or not address then
  error("usage: ctl run scripts/join.lua NAME HOST:PORT [active|passive|reserve]", 0)
end
type_ = type_ or "active"
cluster.add(name, address, type_)
print(("%s at %s is now a member (%s)"):format(name, address, type_))
