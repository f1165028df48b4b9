-- The key-value store's state machine. It runs in the state machine
-- sandbox (docs/state-machine.md): deterministic on every replica.
--
-- Every key has a revision: the store-wide revision of the command that
-- last wrote it (etcd's mod_revision), so clients can compare-and-set.
local sm = state_machine()

local store = {}   -- key -> { value = v, rev = n }
local revision = 0 -- bumped by every write

local function check_key(key)
  if type(key) ~= "string" or key == "" then error("key must be a non-empty string", 0) end
end

--- put {key, value} -> previous value (nil if none), new revision
function sm.commands.put(c)
  check_key(c.args.key)
  if c.args.value == nil then error("put needs a value (use delete to remove a key)", 0) end
  revision = revision + 1
  local old = store[c.args.key]
  store[c.args.key] = { value = c.args.value, rev = revision }
  return { previous = old and old.value, revision = revision }
end

--- delete {key} -> deleted (boolean)
function sm.commands.delete(c)
  check_key(c.args.key)
  if store[c.args.key] == nil then return { deleted = false } end
  revision = revision + 1
  store[c.args.key] = nil
  return { deleted = true, revision = revision }
end

--- cas {key, expected, value}: sets value only if the current value equals
--- expected (nil expected: only if the key is absent).
function sm.commands.cas(c)
  check_key(c.args.key)
  local cur = store[c.args.key]
  local current = cur and cur.value
  if current ~= c.args.expected then
    return { succeeded = false, current = current }
  end
  revision = revision + 1
  store[c.args.key] = { value = c.args.value, rev = revision }
  return { succeeded = true, revision = revision }
end

--- get {key} -> {value, revision} or nil
function sm.queries.get(q)
  check_key(q.args.key)
  local e = store[q.args.key]
  if not e then return nil end
  return { value = e.value, revision = e.rev }
end

--- keys {prefix} -> sorted list of keys starting with prefix
function sm.queries.keys(q)
  local prefix = q.args.prefix or ""
  local out = {}
  for k in pairs(store) do
    if k:sub(1, #prefix) == prefix then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

function sm.snapshot()
  return { store = store, revision = revision }
end

function sm.restore(s)
  store, revision = s.store, s.revision
end

return sm
