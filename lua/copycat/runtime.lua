--- The task scheduler: coroutines driven by the libuv loop.
---
--- Every piece of user code runs in a *task*: a coroutine that the runtime
--- resumes when what it waits for has happened. A call that waits (sleep, and
--- later connecting or submitting) suspends only its own task; the loop goes
--- on serving everything else, so scripts read top to bottom.
---
--- Error policy: an error that escapes a task is never swallowed. It is
--- written to stderr with the task's traceback and the program stops with
--- status 1. Wrap work in pcall where failure is expected.
local core = require("copycat.core")

local M = {}

-- The value our own waiting primitives yield, so that a task that calls
-- coroutine.yield() itself can be told apart: such a bare yield just gives
-- way to the rest of the program and is resumed on the next loop turn.
local WAIT = setmetatable({}, { __name = "copycat.wait" })

---@class copycat.Task
---@field private co thread
---@field private origin string where the task was started, for error reports
---@field private waiting boolean suspended in M.suspend, owed one M.wake
---@field private done boolean
---@field private results table|nil the function's return values once done
---@field private joiners thread[] tasks blocked in Task:wait()
local Task = {}
Task.__index = Task
Task.__name = "copycat.Task"

local tasks = setmetatable({}, { __mode = "k" }) -- coroutine -> Task
local hooks = {}                                  -- shutdown hooks, in order
local stopping = false

local function message(err)
  if type(err) == "string" then return err end
  local mt = getmetatable(err)
  if mt and mt.__tostring then return tostring(err) end
  if type(err) == "number" then return tostring(err) end
  return ("(error object is a %s value)"):format(type(err))
end

local function fail(task, err)
  local msg = message(err)
  if task.origin ~= "main chunk" then
    msg = ("%s (in a task started at %s)"):format(msg, task.origin)
  end
  io.stdout:flush()
  io.stderr:write("copycat-lua: ", debug.traceback(task.co, msg), "\n")
  io.stderr:flush()
  core.exit(1)
end

local step

local function finish(task, ...)
  task.done = true
  task.results = table.pack(...)
  tasks[task.co] = nil
  for _, joiner in ipairs(task.joiners) do
    M.wake(joiner)
  end
  task.joiners = nil
end

local function after_resume(task, ok, first, ...)
  if not ok then return fail(task, first) end
  if coroutine.status(task.co) == "dead" then return finish(task, first, ...) end
  if first ~= WAIT then
    -- A bare coroutine.yield(): give way, then carry on.
    core.timer(0, 0, function() step(task) end)
  end
end

step = function(task, ...)
  return after_resume(task, coroutine.resume(task.co, ...))
end

local function origin(level)
  local info = debug.getinfo(level + 1, "Sl")
  if not info then return "?" end
  return ("%s:%d"):format(info.short_src, info.currentline or 0)
end

local function start(fn, where, ...)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'spawn' (function expected, got %s)"):format(type(fn)), 3)
  end
  local task = setmetatable({ co = coroutine.create(fn), origin = where,
    waiting = false, done = false, joiners = {} }, Task)
  tasks[task.co] = task
  step(task, ...)
  return task
end

--- The task the caller runs in, or an error naming the call that needs one.
---@param what string the name of the waiting call, for the error message
---@return copycat.Task
function M.current(what)
  local co = coroutine.running()
  local task = tasks[co]
  if not task then
    error(("%s waits, so it must be called inside a task (the main chunk, " ..
      "copycat.spawn or a timer callback)"):format(what), 3)
  end
  return task
end

--- Suspends the current task until M.wake(task, ...) is called; returns the
--- values given to wake. Every suspend is owed exactly one wake.
---@param what string the name of the waiting call, for error messages
function M.suspend(what)
  local task = M.current(what)
  task.waiting = true
  return coroutine.yield(WAIT)
end

--- Resumes a task suspended in M.suspend with the given values.
---@param task copycat.Task
function M.wake(task, ...)
  assert(task.waiting, "copycat: woke a task that was not waiting")
  task.waiting = false
  step(task, ...)
end

--- Starts fn(...) as a new task. It runs at once, until it first waits.
---@param fn function
---@return copycat.Task
function M.spawn(fn, ...)
  return start(fn, origin(2), ...)
end

--- Waits until the task has finished and returns its function's results.
---@return any ...
function Task:wait()
  if not self.done then
    local me = M.current("task:wait")
    self.joiners[#self.joiners + 1] = me
    M.suspend("task:wait")
  end
  return table.unpack(self.results, 1, self.results.n)
end

--- True once the task's function has returned.
function Task:finished()
  return self.done
end

--- Suspends the current task for ms milliseconds (0: until the next loop
--- turn); other tasks run meanwhile.
---@param ms number
function M.sleep(ms)
  if type(ms) ~= "number" or ms ~= ms or ms < 0 then
    error(("bad argument #1 to 'sleep' (milliseconds expected, got %s)"):format(tostring(ms)), 2)
  end
  local task = M.current("copycat.sleep")
  core.timer(ms, 0, function() M.wake(task) end)
  M.suspend("copycat.sleep")
end

local function check_timer_args(name, ms, fn)
  if type(ms) ~= "number" or ms ~= ms or ms < 0 then
    error(("bad argument #1 to '%s' (milliseconds expected, got %s)"):format(name, tostring(ms)), 3)
  end
  if type(fn) ~= "function" then
    error(("bad argument #2 to '%s' (function expected, got %s)"):format(name, type(fn)), 3)
  end
end

--- Calls fn in a new task after ms milliseconds. Returns a handle with
--- :stop() and :active().
function M.timer(ms, fn)
  check_timer_args("timer", ms, fn)
  local where = origin(2)
  return core.timer(ms, 0, function() start(fn, where) end)
end

--- Calls fn in a new task every ms milliseconds until the handle is stopped.
function M.every(ms, fn)
  check_timer_args("every", ms, fn)
  if ms <= 0 then error("bad argument #1 to 'every' (interval must be more than 0 ms)", 2) end
  local where = origin(2)
  return core.timer(ms, ms, function() start(fn, where) end)
end

--- Registers fn to run when the program is asked to stop (SIGINT, SIGTERM
--- or copycat.exit). Hooks run last-registered first, each in the shutdown
--- task, so they may wait (e.g. to leave a cluster).
function M.on_shutdown(fn)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'on_shutdown' (function expected, got %s)"):format(type(fn)), 2)
  end
  hooks[#hooks + 1] = fn
end

--- Runs the shutdown hooks, then stops the program with the given status
--- (1 if a hook failed). A second request while hooks run stops at once
--- with `forced` (default: the same status).
---@param status integer|nil
---@param forced integer|nil
function M.exit(status, forced)
  status = status or 0
  if stopping then return core.exit(forced or status) end
  stopping = true
  start(function()
    for i = #hooks, 1, -1 do
      local ok, err = xpcall(hooks[i], debug.traceback)
      if not ok then
        io.stderr:write("copycat-lua: shutdown hook failed: ", message(err), "\n")
        status = 1
      end
    end
    core.exit(status)
  end, "shutdown")
end

--- Runs fn(...) as the main chunk: SIGINT and SIGTERM start an orderly
--- shutdown (a second one forces it, with status 128 + signal number).
function M.main(fn, ...)
  core.signal("SIGINT", function() M.exit(0, 130) end)
  core.signal("SIGTERM", function() M.exit(0, 143) end)
  return start(fn, "main chunk", ...)
end

--- Runs the loop until nothing is pending or exit is requested; returns the
--- exit status. Only for plain lua5.4 programs: copycat-lua runs the loop.
function M.run()
  local status = core.run()
  return status < 0 and 0 or status
end

M.now = core.now

return M
