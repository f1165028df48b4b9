---@meta state_machine
-- LuaLS definitions of the state machine sandbox (docs/state-machine.md):
-- what a state machine file sees. The sandbox also has the allow-listed
-- standard library (string, table, math, utf8, coroutine, pairs, pcall...);
-- io, os, require, load, debug and the like raise an error there.
--
--   local sm = state_machine()
--   function sm.commands.put(c) ... end     -- c: copycat.sm.Call
--   return sm

---@class copycat.sm.Session a session handle: keep session ids, not handles, in the state
---@field id integer
local Session = {}

--- Sends an event to the session's client (commands, timers and session
--- hooks only; dropped if the session is not open).
---@param name string
---@param data any encodable by copycat.codec
function Session:publish(name, data) end

---@class copycat.sm.Call what a command, query or session hook receives
---@field args any the arguments, decoded from the log entry
---@field op string the command or query name
---@field index? integer the log entry's index (commands, session hooks)
---@field term? integer the log entry's term
---@field time number milliseconds assigned by the leader: the only clock
---@field session? copycat.sm.Session the caller's session

---@class copycat.sm.TimerCall what a timer receives first
---@field time number the replicated time of the advance that fires it
---@field index integer
---@field term integer
---@field deadline number
---@field id integer the timer id sm.schedule returned
---@field name string its name in sm.timers

---@class copycat.sm.Machine
---@field commands table<string, fun(c: copycat.sm.Call): ...> applied on every replica, in log order
---@field queries table<string, fun(q: copycat.sm.Call): ...> run on one replica; must not change the state
---@field timers table<string, fun(t: copycat.sm.TimerCall, ...)> the functions sm.schedule may call
---@field snapshot? fun(): any the whole state, encodable by copycat.codec
---@field restore? fun(state: any) replaces the whole state with what snapshot returned
---@field session_opened? fun(session: copycat.sm.Session, c: copycat.sm.Call)
---@field session_closed? fun(session: copycat.sm.Session, c: copycat.sm.Call) expired or closed
local Machine = {}

--- A handle for session id (> 0), to publish to it.
---@param id integer
---@return copycat.sm.Session
function Machine.session(id) end

--- Calls fn(t, ...) once the replicated time reaches the current call's
--- time + delay_ms; fn must be one of sm.timers. Returns the timer id.
---@param delay_ms number
---@param fn fun(t: copycat.sm.TimerCall, ...)
---@param ... any encodable by copycat.codec
---@return integer
function Machine.schedule(delay_ms, fn, ...) end

--- Cancels a pending timer; true if it was pending.
---@param id integer
---@return boolean
function Machine.cancel(id) end

--- Declares the state machine; call it once and return its result.
---@return copycat.sm.Machine
function state_machine() end
