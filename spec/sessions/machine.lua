-- The state machine the session specs run: an ordered log of values,
-- events on request, a replicated timer, and a record of closed sessions.
local sm = state_machine() -- luacheck: read globals state_machine

local list, fired, closed = {}, {}, {}

function sm.commands.append(c)
  list[#list + 1] = c.args.v
  return #list
end

-- publish {session, from, to}: events "n" with data from..to to a session.
function sm.commands.publish(c)
  for i = c.args.from, c.args.to do sm.session(c.args.session):publish("n", i) end
  return true
end

-- raise {message}: fails with exactly that message (no position).
function sm.commands.raise(c) error(c.args.message, 0) end

sm.timers = {}
function sm.timers.fire(t, key) fired[key] = { t.index, t.time, t.deadline } end

-- later {delay, key}: a timer that records when it fired.
function sm.commands.later(c)
  sm.schedule(c.args.delay, sm.timers.fire, c.args.key)
  return c.time + c.args.delay
end

function sm.queries.list() return list end
function sm.queries.count() return #list end
function sm.queries.last() return list[#list] end
function sm.queries.fired(q) return fired[q.args.key] end
function sm.queries.closed(q) return closed[q.args.session] end

function sm.session_closed(session, c) closed[session.id] = c.index end

function sm.snapshot() return { list = list, fired = fired, closed = closed } end
function sm.restore(s) list, fired, closed = s.list, s.fired, s.closed end

return sm
