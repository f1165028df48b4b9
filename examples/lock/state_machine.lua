-- A distributed lock service.
--
--   lock {name}      -> true if this session now holds the lock; false if it
--                       queued behind the holder (it gets an "acquired"
--                       event with {name = name} when its turn comes)
--   try_lock {name}  -> true or false, never queues
--   unlock {name}    -> true if this session held it (the next waiter gets
--                       the lock and its "acquired" event)
--   holder {name}    -> the holding session id, or nil (query)
--   released {session} -> {index, time} at which that session's locks were
--                       released on expiry or close, or nil (query)
--
-- A lock belongs to a client session: when the session expires (the
-- client crashed or was cut off) or closes, every lock it held passes to
-- the next waiter, at the same log index on every server.
local sm = state_machine() -- luacheck: read globals state_machine

local locks = {}    -- name -> { holder = session id, waiters = { session id, ... } }
local released = {} -- session id -> { index, time }

local function name_of(c)
  local name = c.args and c.args.name
  if type(name) ~= "string" or name == "" then error("name must be a non-empty string", 0) end
  return name
end

-- Gives lock `name` to its next waiter, or frees it.
local function pass(name)
  local l = locks[name]
  local next_id = table.remove(l.waiters, 1)
  if next_id then
    l.holder = next_id
    sm.session(next_id):publish("acquired", { name = name })
  else
    locks[name] = nil
  end
end

local function acquire(c, queue)
  local name, me = name_of(c), c.session.id
  local l = locks[name]
  if not l then
    locks[name] = { holder = me, waiters = {} }
    return true
  end
  if l.holder == me then return true end
  if queue then
    for _, w in ipairs(l.waiters) do
      if w == me then return false end
    end
    l.waiters[#l.waiters + 1] = me
  end
  return false
end

function sm.commands.lock(c) return acquire(c, true) end

function sm.commands.try_lock(c) return acquire(c, false) end

function sm.commands.unlock(c)
  local name = name_of(c)
  local l = locks[name]
  if not l or l.holder ~= c.session.id then return false end
  pass(name)
  return true
end

function sm.queries.holder(q)
  local l = locks[name_of(q)]
  return l and l.holder
end

function sm.queries.released(q) return released[q.args.session] end

function sm.session_closed(session, c)
  local gone = session.id
  local names = {}
  for name, l in pairs(locks) do -- the sandbox's pairs runs in key order
    for i = #l.waiters, 1, -1 do
      if l.waiters[i] == gone then table.remove(l.waiters, i) end
    end
    if l.holder == gone then names[#names + 1] = name end
  end
  for _, name in ipairs(names) do pass(name) end
  released[gone] = { c.index, c.time }
end

function sm.snapshot() return { locks = locks, released = released } end

function sm.restore(s) locks, released = s.locks, s.released end

return sm
