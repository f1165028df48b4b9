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

--- Instructions a command, query or session_closed call may run.
M.DEFAULT_BUDGET = 10000000
--- Instructions loading the file, sm.snapshot and sm.restore may run.
M.DEFAULT_SETUP_BUDGET = 100000000
--- Granularity of the budget (instructions between two checks).
M.BUDGET_STEP = sandbox.STEP

---@class copycat.StateMachine
---@field name string the name used in error messages ("kv:12: ...")
---@field private sb userdata the sandbox (copycat.core.sandbox)
local Machine = {}
Machine.__index = Machine
Machine.__name = "copycat.StateMachine"

---@class copycat.StateMachineOptions
---@field name? string name for error messages (default: the file's base name, or "state_machine" for source)
---@field source? boolean the first argument is Lua source text, not a path
---@field budget? integer instructions per command/query/session_closed (default M.DEFAULT_BUDGET)
---@field setup_budget? integer instructions for loading, snapshot and restore (default M.DEFAULT_SETUP_BUDGET)
---@field memory? integer bytes the sandbox may allocate (default 0: no limit)

---@class copycat.Context
---@field index integer the log index of the entry (required for commands and session_closed)
---@field term integer the term of the entry (required for commands and session_closed)
---@field time? number milliseconds, assigned by the leader and replicated
---@field session? integer the client session id

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
  local sb, err = sandbox.new(source, name, budget, setup, memory)
  if not sb then return nil, err end
  return setmetatable({ name = name, sb = sb }, Machine)
end

local function check_op(op, fname)
  if type(op) ~= "string" then bad_arg(1, fname, "operation name expected, got " .. type(op)) end
end

--- Applies a command: runs `sm.commands[op]` with `{args, op, index, term,
--- time, session}`. Returns true and the handler's results, or false and an
--- error message (unknown command, an error raised by the handler, results
--- that cannot be encoded, "instruction budget exceeded (N instructions)").
--- After an error the machine stays usable; whatever the handler changed
--- before failing stays changed, identically on every replica.
---@param op string
---@param args any a value copycat.codec can encode (it is copied in)
---@param ctx copycat.Context
---@return boolean ok
---@return any ... results, or the error message
function Machine:command(op, args, ctx)
  check_op(op, "command")
  return self.sb:call("command", op, args, ctx)
end

--- Runs a query: `sm.queries[op]`, same shape as command. ctx is optional
--- (index/term, when given, seed math.random). Queries must not change the
--- state: they run on one replica only, so a change would make replicas
--- diverge. This is not enforced.
---@param op string
---@param args any
---@param ctx? copycat.Context
---@return boolean ok
---@return any ...
function Machine:query(op, args, ctx)
  check_op(op, "query")
  return self.sb:call("query", op, args, ctx)
end

--- command with the arguments given as copycat.codec bytes (as stored in the
--- log) and the results returned as the bytes of one msgpack array.
---@param op string
---@param args_bytes string
---@param ctx copycat.Context
---@return boolean ok
---@return string bytes_or_error
function Machine:command_encoded(op, args_bytes, ctx)
  check_op(op, "command_encoded")
  return self.sb:call_encoded("command", op, args_bytes, ctx)
end

--- query with encoded arguments and results, like command_encoded.
---@param op string
---@param args_bytes string
---@param ctx? copycat.Context
---@return boolean ok
---@return string bytes_or_error
function Machine:query_encoded(op, args_bytes, ctx)
  check_op(op, "query_encoded")
  return self.sb:call_encoded("query", op, args_bytes, ctx)
end

--- Tells the state machine that a session expired or was closed (an entry
--- of the log): calls `sm.session_closed(session, c)` if it is defined.
---@param session integer
---@param ctx copycat.Context
---@return boolean ok
---@return string|nil err
function Machine:session_closed(session, ctx)
  return self.sb:session_closed(session, ctx)
end

--- The canonical copycat.codec encoding of `sm.snapshot()`'s value: equal
--- states give identical bytes on every replica.
---@return string|nil bytes
---@return string|nil err
function Machine:snapshot()
  return self.sb:snapshot()
end

--- Decodes bytes made by snapshot() and passes the value to `sm.restore`,
--- which must replace the whole state.
---@param bytes string
---@return boolean|nil ok
---@return string|nil err
function Machine:restore(bytes)
  if type(bytes) ~= "string" then bad_arg(1, "restore", "snapshot bytes expected, got " .. type(bytes)) end
  return self.sb:restore(bytes)
end

--- Instructions counted by the last call (command, query, snapshot, ...):
--- the same on every replica.
---@return integer
function Machine:cost()
  return self.sb:cost()
end

--- Bytes currently allocated by the sandbox's Lua state.
---@return integer
function Machine:memory()
  return self.sb:memory()
end

--- Frees the sandbox. Any later call raises an error.
function Machine:close()
  self.sb:close()
end

return M
