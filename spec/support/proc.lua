--- Running copycat-lua (and other programs) as child processes from specs.
---
--- Every process a spec starts is bounded in time (`timeout`) and can be
--- killed by PID; M.cleanup() kills whatever is still running.
local M = {}

M.build = os.getenv("COPYCAT_BUILD") or "build"
M.bin = M.build .. "/copycat-lua"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
M.slurp = slurp

local function tmpdir()
  local p = io.popen("mktemp -d")
  local dir = p:read("l")
  p:close()
  return dir
end
M.tmpdir = tmpdir

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end
M.write = write

--- Writes a script into a fresh temporary file and returns its path.
function M.script(source)
  local path = tmpdir() .. "/script.lua"
  write(path, source)
  return path
end

-- Under the sanitizer run, busted itself has the ASan runtime preloaded
-- with leak detection off; the programs we start get neither, so leaks in
-- copycat-lua are reported (and fail the spec through its exit status).
local env_prefix = ""
if (os.getenv("LD_PRELOAD") or "") ~= "" then
  env_prefix = "env -u LD_PRELOAD ASAN_OPTIONS=detect_leaks=1 "
end

local function command(args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = quote(a) end
  return table.concat(parts, " ")
end

--- Runs copycat-lua with args and waits for it.
---@param args string[]
---@param opts? {stdin?: string, timeout?: number, bin?: string}
---@return {code: integer, signal: boolean, stdout: string, stderr: string}
function M.run(args, opts)
  opts = opts or {}
  local dir = tmpdir()
  write(dir .. "/in", opts.stdin or "")
  local cmd = ("timeout -k 2 %d %s %s <%s >%s 2>%s"):format(opts.timeout or 20,
    env_prefix .. quote(opts.bin or M.bin), command(args), quote(dir .. "/in"),
    quote(dir .. "/out"), quote(dir .. "/err"))
  local _, how, code = os.execute(cmd)
  local r = { code = code, signal = how == "signal",
    stdout = slurp(dir .. "/out"), stderr = slurp(dir .. "/err") }
  os.execute("rm -rf " .. quote(dir))
  return r
end

local running = {}

--- Starts copycat-lua in the background. Returns a handle with the PID,
--- :kill(sig), :wait(seconds) -> exit code or nil, :stdout(), :stderr().
---@param args string[]
function M.start(args, opts)
  opts = opts or {}
  local dir = tmpdir()
  local inner = ("%s %s >%s 2>%s </dev/null & echo $! >%s; wait $!; echo $? >%s"):format(
    env_prefix .. quote(opts.bin or M.bin), command(args), quote(dir .. "/out"), quote(dir .. "/err"),
    quote(dir .. "/pid"), quote(dir .. "/rc"))
  os.execute(("timeout -k 2 %d sh -c %s >/dev/null 2>&1 &"):format(opts.timeout or 60, quote(inner)))
  local pid
  for _ = 1, 500 do
    pid = tonumber(slurp(dir .. "/pid"):match("%d+"))
    if pid then break end
    os.execute("sleep 0.01")
  end
  assert(pid, "process did not start")
  local h = { pid = pid, dir = dir }
  running[h] = true
  function h:kill(sig)
    os.execute(("kill -%s %d 2>/dev/null"):format(sig or "KILL", self.pid))
  end
  function h:wait(seconds)
    local deadline = os.time() + (seconds or 10)
    repeat
      local rc = tonumber(slurp(self.dir .. "/rc"):match("%d+"))
      if rc then
        running[self] = nil
        return rc
      end
      os.execute("sleep 0.02")
    until os.time() > deadline
    return nil
  end
  function h:stdout() return slurp(self.dir .. "/out") end
  function h:stderr() return slurp(self.dir .. "/err") end
  --- Waits until stdout contains pattern (plain text); true if it did.
  function h:wait_output(text, seconds)
    local deadline = os.time() + (seconds or 10)
    repeat
      if self:stdout():find(text, 1, true) then return true end
      os.execute("sleep 0.02")
    until os.time() > deadline
    return false
  end
  return h
end

--- Kills (SIGKILL) every process started with M.start that is still running.
function M.cleanup()
  for h in pairs(running) do
    h:kill("KILL")
    running[h] = nil
  end
end

return M
