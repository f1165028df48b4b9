-- Group membership and leader election among clients.
--
--   join {name}  -> {leader = name, epoch = n}: this session joins the
--                   group under `name` (names need not be unique)
--   leave {}     -> true if this session was a member
--   members {}   -> { {session, name}, ... } in joining order (query)
--   leader {}    -> {session, name, epoch} or nil (query)
--
-- The longest-standing member leads. Whenever the leader changes, every
-- member gets a "leader" event {session, name, epoch}; whenever the group
-- changes, a "members" event with the new list. A member whose session
-- expires (its process died or was cut off) leaves the group at the same
-- log index on every server, and the next member takes over with a higher
-- epoch, so two members never both believe they lead in the same epoch.
local sm = state_machine() -- luacheck: read globals state_machine

local members = {} -- { {session, name}, ... } oldest first
local epoch = 0
local leader -- session id of the leader, or nil

local function tell(name, data)
  for _, m in ipairs(members) do sm.session(m[1]):publish(name, data) end
end

local function leader_info()
  local m = members[1]
  return m and { session = m[1], name = m[2], epoch = epoch }
end

-- Re-elects if the oldest member is not the leader, then tells everyone.
local function changed()
  local first = members[1]
  if first and first[1] ~= leader then
    leader = first[1]
    epoch = epoch + 1
    tell("leader", leader_info())
  elseif not first then
    leader = nil
  end
  tell("members", members)
end

local function remove(id)
  for i, m in ipairs(members) do
    if m[1] == id then
      table.remove(members, i)
      return true
    end
  end
  return false
end

function sm.commands.join(c)
  local name = c.args and c.args.name
  if type(name) ~= "string" or name == "" then error("name must be a non-empty string", 0) end
  remove(c.session.id)
  members[#members + 1] = { c.session.id, name }
  changed()
  return leader_info()
end

function sm.commands.leave(c)
  local was = remove(c.session.id)
  if was then changed() end
  return was
end

function sm.queries.members() return members end

function sm.queries.leader() return leader_info() end

function sm.session_closed(session)
  if remove(session.id) then changed() end
end

function sm.snapshot() return { members = members, epoch = epoch, leader = leader } end

function sm.restore(s) members, epoch, leader = s.members, s.epoch, s.leader end

return sm
