--- Helpers for the state machine specs.
local state_machine = require("copycat.state_machine")
local codec = require("copycat.codec")

local M = {}

local ctx_index = 0

--- A machine from the body of a state machine file (between
--- `local sm = state_machine()` and `return sm`), named "t".
function M.machine(body, opts)
  opts = opts or {}
  opts.source = true
  opts.name = opts.name or "t"
  local src = "local sm = state_machine()\n" .. body .. "\nreturn sm\n"
  return assert(state_machine.load(src, opts))
end

--- A context for a command: a fresh index each time unless given.
function M.ctx(index, term)
  if not index then
    ctx_index = ctx_index + 1
    index = ctx_index
  end
  return { index = index, term = term or 1, time = 1000 * index }
end

--- Runs command op and returns its results after asserting it succeeded.
function M.ok(m, op, args, ctx)
  local r = table.pack(m:command(op, args, ctx or M.ctx()))
  assert(r[1] == true, ("command %s failed: %s"):format(op, tostring(r[2])))
  return table.unpack(r, 2, r.n)
end

--- Runs command op, asserts it failed, returns the message.
function M.fails(m, op, args, ctx)
  local ok, err = m:command(op, args, ctx or M.ctx())
  assert(ok == false, ("command %s should have failed"):format(op))
  return err
end

--- The bytes of a machine snapshot (docs/state-machine.md): format version 1,
--- the state machine's own state, the timer counter and the pending timers
--- ({id, deadline, name, args}, in id order).
function M.snapshot_bytes(state, counter, timers)
  local list = {}
  for i, t in ipairs(timers or {}) do list[i] = codec.array({ t[1], t[2], t[3], codec.array(t[4] or {}) }) end
  return codec.encode(codec.array({ 1, state, counter or 0, codec.array(list) }))
end

return M
