--- copycat.state_machine: replicated state machines written in Lua.
---
--- A state machine is a Lua file run in a sandbox of its own (a separate Lua
--- state with an allow-listed environment, see docs/state-machine.md). Given
--- the same log, every replica computes the same results and the same
--- snapshot bytes, because nothing in the sandbox can observe the process it
--- runs in: no clock but `c.time`, no randomness but `math.random` seeded
--- from the log entry, `pairs` in a fixed key order, no addresses, and an
--- instruction budget that stops runaway commands at the same instruction on
--- every replica.
---
--- ```lua
--- local machine = assert(copycat.state_machine.load("examples/kv/state_machine.lua", { name = "kv" }))
--- local ok, old = machine:command("put", { key = "a", value = 1 }, { index = 7, term = 2, time = 1700000000000 })
--- local bytes = machine:snapshot()
--- ```
local core = require("copycat.core")

local sandbox = core.sandbox

local M = {}

--- Instructions a command, query, session hook or timer may run.
M.DEFAULT_BUDGET = 10000000
--- Instructions loading the file, sm.snapshot and sm.restore may run.
M.DEFAULT_SETUP_BUDGET = 100000000
--- Bytes a server's state machine may hold (copycat.server's sm_memory,
--- --sm-memory): the limit servers put on by default.
M.DEFAULT_SERVER_MEMORY = 512 * 1024 * 1024
--- Granularity of the budget (instructions between two checks).
M.BUDGET_STEP = sandbox.STEP
--- Most timers one machine:advance call fires (the rest wait for the next).
M.MAX_TIMER_FIRINGS = sandbox.MAX_FIRINGS

--- A loaded state machine: a userdata of copycat.core.sandbox whose methods
--- are implemented in C (machine/sandbox.c), so that argument errors point
--- at the caller. Methods:
---
--- machine:command(op, args, ctx) -> true, results... | false, err
---   Runs `sm.commands[op]` with `c = {args, op, index, term, time,
---   session}` (c.session: a session handle when ctx.session is given).
---   err: unknown command (then a third value, the code "unknown_op":
---   false, "unknown command 'x'", "unknown_op"), an error raised by the
---   handler (its message),
---   results that cannot be encoded, "instruction budget exceeded (N
---   instructions)", "memory limit exceeded (N bytes)". After an error the machine stays
---   usable, and what the handler changed before failing stays changed
---   (timers it scheduled and events it published included), identically on
---   every replica. Misuse raises instead: args that copycat.codec cannot
---   encode, a bad ctx, a closed machine.
--- machine:query(op, args [, ctx]) -> same shape, `sm.queries[op]`. Queries
---   run on one replica only, with a read-only view of the state: a write to
---   a state table (reached through the handler's upvalues, the sm table or
---   the globals) or an assignment to an upvalue fails the query and changes
---   nothing (docs/state-machine.md says what the view covers); publish,
---   sm.schedule and sm.cancel raise in a query.
--- machine:command_encoded(op, args_bytes, ctx) -> true, bytes | false, err
--- machine:query_encoded(op, args_bytes [, ctx]) -> true, bytes | false, err
---   Arguments as copycat.codec bytes (as stored in the log); results as the
---   bytes of one msgpack array.
--- machine:command_reply(op, args_bytes, ctx) -> true, bytes | false, err
--- machine:query_reply(op, args_bytes [, ctx]) -> true, bytes | false, err
---   The same, with the results encoded as the session layer's success reply
---   ({true, r1} or {true, r1, rest}): what the server caches and sends.
--- machine:session_opened(session, ctx) -> true | false, err
--- machine:session_closed(session, ctx) -> true | false, err
---   session: the integer id (> 0). Calls `sm.session_opened(handle, c)` /
---   `sm.session_closed(handle, c)` if the state machine defines it (true
---   otherwise). ctx.index and ctx.term are required.
--- machine:advance(ctx) -> true, fired | false, err, fired
---   ctx = {index, term, time}, all required. Fires, in (deadline, id) order,
---   every pending timer whose deadline <= ctx.time, including those that
---   firing timers schedule when they are due too, each under its own
---   budget; at most MAX_TIMER_FIRINGS per call (then next_deadline() is
---   still <= ctx.time: call again). A timer that raises is consumed, the
---   others still fire, and the first failure is returned as
---   "timer 'NAME' (id N): message". fired counts every timer run.
--- machine:next_deadline() -> number | nil
---   The smallest pending deadline (replicated time must reach it for the
---   timer to fire), or nil when no timer is pending.
--- machine:events([encoded]) -> { {session = id, name = string, data = any}, ... }
---   The events published since the last call, in publish order (decoded
---   copies; with encoded, each data is the copycat.codec bytes of the
---   value published, a string), and clears them. Not part of the state: drain it after each
---   call that may publish; snapshot and restore leave it alone.
--- machine:snapshot() -> bytes | nil, err
---   msgpack [1, state, timer counter, timers]: the canonical copycat.codec
---   encoding of `sm.snapshot()`'s value (nil if the machine has sm.timers
---   but no sm.snapshot) and the pending timers. Equal states give identical
---   bytes on every replica.
--- machine:restore(bytes) -> true | nil, err
---   Passes the decoded state to `sm.restore`, which replaces the state, then
---   replaces the timers.
--- machine:cost()   instructions counted by the last call (steps of
---                  BUDGET_STEP; advance: all the timers it fired)
--- machine:memory() bytes allocated by the sandbox's Lua state
--- machine:close()  frees the sandbox; later calls raise an error
---@class copycat.StateMachine
---@field command fun(self: copycat.StateMachine, op: string, args: any, ctx: copycat.Context): boolean, ...
---@field query fun(self: copycat.StateMachine, op: string, args: any, ctx?: copycat.Context): boolean, ...
---@field command_encoded fun(self: copycat.StateMachine, op: string, args: string, ctx: copycat.Context): boolean, any
---@field query_encoded fun(self: copycat.StateMachine, op: string, args: string, ctx?: copycat.Context): boolean, any
---@field command_reply fun(self: copycat.StateMachine, op: string, args: string, ctx: copycat.Context): boolean, string
---@field query_reply fun(self: copycat.StateMachine, op: string, args: string, ctx?: copycat.Context): boolean, string
---@field session_opened fun(self: copycat.StateMachine, session: integer, ctx: copycat.Context): boolean, string?
---@field session_closed fun(self: copycat.StateMachine, session: integer, ctx: copycat.Context): boolean, string?
---@field advance fun(self: copycat.StateMachine, ctx: copycat.Context): boolean, any, integer?
---@field next_deadline fun(self: copycat.StateMachine): number?
---@field events fun(self: copycat.StateMachine): copycat.SessionEvent[]
---@field snapshot fun(self: copycat.StateMachine): string?, string?
---@field restore fun(self: copycat.StateMachine, bytes: string): boolean?, string?
---@field cost fun(self: copycat.StateMachine): integer
---@field memory fun(self: copycat.StateMachine): integer
---@field close fun(self: copycat.StateMachine)

---@class copycat.SessionEvent
---@field session integer the session the event is for (dropped by the session layer if it is not open)
---@field name string
---@field data any

---@class copycat.StateMachineOptions
---@field name? string name for error messages (default: the file's base name, or "state_machine" for source)
---@field source? boolean the first argument is Lua source text, not a path
---@field budget? integer instructions per command, query, session hook or timer (default M.DEFAULT_BUDGET)
---@field setup_budget? integer instructions for loading, snapshot and restore (default M.DEFAULT_SETUP_BUDGET)
---@field memory? integer bytes the sandbox may hold (default 0: no limit; servers: sm_memory, 512 MiB)

---@class copycat.Context
---@field index integer the log index of the entry (required but for queries)
---@field term integer the term of the entry (required but for queries)
---@field time? number milliseconds, assigned by the leader and replicated (required by advance and sm.schedule)
---@field session? integer the client session id (> 0): c.session is a handle for it

local function bad_arg(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function check_count(opts, field, default)
  local v = opts[field]
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < 0 or (v == 0 and field ~= "memory") then
    bad_arg(2, "load", ("opts.%s must be a positive integer, got %s"):format(field, tostring(v)))
  end
  return v
end

--- Loads a state machine file (or source text with opts.source) into a new
--- sandbox. The file must call `state_machine()` once and return its result.
--- Returns the machine, or nil and a message that is the same on every
--- replica for the same source and name (file read errors aside).
---@param path_or_source string
---@param opts? copycat.StateMachineOptions
---@return copycat.StateMachine|nil
---@return string|nil err
function M.load(path_or_source, opts)
  if type(path_or_source) ~= "string" then
    bad_arg(1, "load", "path or source string expected, got " .. type(path_or_source))
  end
  if opts ~= nil and type(opts) ~= "table" then
    bad_arg(2, "load", "table expected, got " .. type(opts))
  end
  opts = opts or {}
  if opts.name ~= nil and (type(opts.name) ~= "string" or opts.name == "") then
    bad_arg(2, "load", "opts.name must be a non-empty string")
  end
  local budget = check_count(opts, "budget", M.DEFAULT_BUDGET)
  local setup = check_count(opts, "setup_budget", M.DEFAULT_SETUP_BUDGET)
  local memory = check_count(opts, "memory", 0)
  local source, name
  if opts.source then
    source, name = path_or_source, opts.name or "state_machine"
  else
    local f, err = io.open(path_or_source, "rb")
    if not f then return nil, "cannot read the state machine: " .. err end
    source = f:read("a")
    f:close()
    -- Only the base name: replicas keep the file in different places, and
    -- error messages must not differ.
    name = opts.name or path_or_source:match("([^/]+)$") or path_or_source
  end
  return sandbox.new(source, name, budget, setup, memory)
end

return M
