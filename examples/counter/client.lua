-- The counter's command-line client.
--
--   copycat-lua examples/counter/client.lua --cluster ADDR,... [--cluster-id ID] add [NAME] [BY]
--   copycat-lua examples/counter/client.lua --cluster ADDR,... get [NAME]
--   copycat-lua examples/counter/client.lua --cluster ADDR,... bump NAME N TASKS
--
-- bump submits N additions of 1 from TASKS concurrent tasks of one client
-- (one session) and prints the final value: every addition counts once,
-- whatever the cluster went through meanwhile.
local usage = [=[
usage: copycat-lua examples/counter/client.lua --cluster ADDR,... [--cluster-id ID]
         [--consistency linearizable|lease|sequential] [--timeout MS] [--session-timeout MS]
         (add [NAME] [BY] | get [NAME] | reset NAME | bump NAME N TASKS)]=]

local cli = copycat.cli
local spec = { name = "counter", usage = usage, required = { "cluster" }, flags = cli.client_flags({
  consistency = cli.one_of({ "linearizable", "lease", "sequential" }),
}) }
local opts, words = cli.parse(arg, spec)
local level = opts.consistency or "linearizable"

local function fail(msg)
  io.stderr:write("counter: ", msg, "\n")
  os.exit(1)
end

local cmd = cli.command(spec, words, { { "add", 0, 2 }, { "get", 0, 1 }, { "reset", 1 }, { "bump", 3 } })
local by, n, tasks
if cmd == "add" and words[3] then
  -- Any number goes to the cluster, whose state machine refuses one that
  -- is not whole (counter/state_machine.lua).
  by = tonumber(words[3])
  if not by then cli.usage_error(spec, cli.expected("BY", words[3], "a number")) end
  by = math.tointeger(by) or by
elseif cmd == "bump" then
  n = cli.word(spec, "N", words[3], cli.integer(0))
  tasks = cli.word(spec, "TASKS", words[4], cli.integer(1))
end

local client = copycat.client(cli.client_options(opts))
local r, err
if cmd == "add" then
  r, err = client:submit("add", { name = words[2], by = by or 1 })
elseif cmd == "get" then
  r, err = client:query("get", { name = words[2] }, { consistency = level })
elseif cmd == "reset" then
  r, err = client:submit("reset", { name = words[2] })
else -- bump
  local running = {}
  for t = 1, tasks do
    running[t] = copycat.spawn(function()
      for _ = t, n, tasks do
        local _, e = client:submit("add", { name = words[2] })
        if e then return e end
      end
    end)
  end
  for _, t in ipairs(running) do err = err or t:wait() end
  if not err then r, err = client:query("get", { name = words[2] }) end
end
client:close()
if err then fail(err) end
print(r)
