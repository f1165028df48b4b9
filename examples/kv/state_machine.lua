-- A key-value store as a copycat state machine.
--
-- This file runs in the state-machine sandbox (docs/state-machine.md): it
-- sees only deterministic functions, `pairs` visits keys in sorted order on
-- every replica, and `math.random` is seeded from the log entry, so every
-- replica that applies the same log computes the same results and the same
-- snapshot.
local sm = state_machine() -- luacheck: read globals state_machine

local store = {} -- key -> { value = any, rev = integer, time = ms }
local rev = 0    -- bumped by every change

local function check_key(key)
  if type(key) ~= "string" then
    -- Level 0: the client gets the message without a file position.
    error(("key must be a string, got %s"):format(type(key)), 0)
  end
end

--- put {key, value} -> the previous value (or nil)
function sm.commands.put(c)
  check_key(c.args.key)
  rev = rev + 1
  local old = store[c.args.key]
  store[c.args.key] = { value = c.args.value, rev = rev, time = c.time }
  return old and old.value
end

--- delete {key} -> the deleted value (or nil)
function sm.commands.delete(c)
  check_key(c.args.key)
  local old = store[c.args.key]
  if old == nil then return nil end
  rev = rev + 1
  store[c.args.key] = nil
  return old.value
end

--- cas {key, expect, value} -> true if the value was `expect` and is now `value`
function sm.commands.cas(c)
  check_key(c.args.key)
  local old = store[c.args.key]
  if (old and old.value) ~= c.args.expect then return false end
  rev = rev + 1
  store[c.args.key] = { value = c.args.value, rev = rev, time = c.time }
  return true
end

--- append {key, value} -> the list's new length: value added at the end of
--- the list at key (a missing key is an empty list). Not idempotent, so
--- that a command applied twice shows (the fault suite relies on it).
function sm.commands.append(c)
  check_key(c.args.key)
  local old = store[c.args.key]
  local list = old and old.value
  if list == nil then
    list = {}
  elseif type(list) ~= "table" then
    error(("append: the value at %s is a %s, not a list"):format(c.args.key, type(list)), 0)
  end
  list[#list + 1] = c.args.value
  rev = rev + 1
  store[c.args.key] = { value = list, rev = rev, time = c.time }
  return #list
end

--- evict {count} -> the keys removed, chosen at random among all keys
function sm.commands.evict(c)
  local keys = {}
  for k in pairs(store) do keys[#keys + 1] = k end -- same order everywhere
  local removed = {}
  for _ = 1, math.min(c.args.count or 1, #keys) do
    local i = math.random(#keys)                    -- same choice everywhere
    removed[#removed + 1] = keys[i]
    store[keys[i]] = nil
    keys[i] = keys[#keys]
    keys[#keys] = nil
  end
  if #removed > 0 then rev = rev + 1 end
  return removed
end

--- get {key} -> value, rev
function sm.queries.get(q)
  local e = store[q.args.key]
  return e and e.value, e and e.rev
end

--- scan {prefix, limit} -> { {key, value}, ... } in key order
function sm.queries.scan(q)
  local prefix, limit = q.args.prefix or "", q.args.limit or math.huge
  local out = {}
  for k, e in pairs(store) do
    if #out >= limit then break end
    if k:sub(1, #prefix) == prefix then out[#out + 1] = { k, e.value } end
  end
  return out
end

--- keys {prefix} -> the keys starting with prefix, in order
function sm.queries.keys(q)
  local prefix = q.args.prefix or ""
  local out = {}
  for k in pairs(store) do -- pairs visits keys in sorted order here
    if k:sub(1, #prefix) == prefix then out[#out + 1] = k end
  end
  return out
end

--- stats {} -> { keys = n, rev = rev, sum = sum of the numeric values }
function sm.queries.stats()
  local n, sum = 0, 0
  for _, e in pairs(store) do
    n = n + 1
    if type(e.value) == "number" then sum = sum + e.value end
  end
  return { keys = n, rev = rev, sum = sum }
end

function sm.snapshot()
  return { store = store, rev = rev }
end

function sm.restore(s)
  store, rev = s.store, s.rev
end

-- session is a handle: session.id, session:publish(name, data).
function sm.session_closed(session) -- luacheck: no unused args
  -- The store keeps no per-session state.
end

return sm
