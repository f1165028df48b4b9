-- The state machine of spec/server/divergence_spec.lua: a small store.
-- The spec runs one member with a copy in which DRIFT is 1, so that its
-- `put` of a number stores one more than the others do: a replica that
-- computes a different state from the same log.
local sm = state_machine() -- luacheck: read globals state_machine

local DRIFT = 0
local store = {}
local writes = 0

-- put {key, value} -> the previous value, and the entry's index
function sm.commands.put(c)
  local old = store[c.args.key]
  local v = c.args.value
  if math.type(v) == "integer" then v = v + DRIFT end
  store[c.args.key] = v
  writes = writes + 1
  return old, c.index
end

-- several results, to show they all reach the client
function sm.commands.multi(c) return c.args.a, c.args.b, c.args.c end

function sm.queries.get(q) return store[q.args.key] end

-- queries that try to write: to the store, to an upvalue, to a global
function sm.queries.poke(q)
  store[q.args.key] = "poked"
  return true
end
function sm.queries.count_up()
  writes = writes + 1
  return writes
end
function sm.queries.set_global() leaked = true end -- luacheck: ignore leaked

function sm.snapshot() return { store = store, writes = writes } end
function sm.restore(s) store, writes = s.store, s.writes end

return sm
