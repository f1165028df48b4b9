-- Named counters: the smallest useful state machine.
--
--   add {name, by}  -> the new value (by defaults to 1; may be negative)
--   reset {name}    -> the value before
--   get {name}      -> the value (query)
--   all {}          -> {name = value, ...} (query)
--
-- Commands are applied exactly once even when a client resends them after
-- a lost reply, so a counter never counts twice.
local sm = state_machine() -- luacheck: read globals state_machine

local counters = {}

local function name_of(args)
  local name = args and args.name or "default"
  if type(name) ~= "string" then error("name must be a string", 0) end
  return name
end

function sm.commands.add(c)
  local name, by = name_of(c.args), c.args and c.args.by or 1
  if math.type(by) ~= "integer" then error("by must be an integer", 0) end
  counters[name] = (counters[name] or 0) + by
  return counters[name]
end

function sm.commands.reset(c)
  local name = name_of(c.args)
  local old = counters[name] or 0
  counters[name] = nil
  return old
end

function sm.queries.get(q) return counters[name_of(q.args)] or 0 end

function sm.queries.all() return counters end

function sm.snapshot() return counters end

function sm.restore(s) counters = s end

return sm
