-- The counter's command-line client.
--
--   copycat-lua examples/counter/client.lua --cluster ADDR,... add [NAME] [BY]
--   copycat-lua examples/counter/client.lua --cluster ADDR,... get [NAME]
--   copycat-lua examples/counter/client.lua --cluster ADDR,... bump NAME N TASKS
--
-- bump submits N additions of 1 from TASKS concurrent tasks of one client
-- (one session) and prints the final value: every addition counts once,
-- whatever the cluster went through meanwhile.
local usage = [=[
usage: copycat-lua examples/counter/client.lua --cluster ADDR,... [--consistency LEVEL]
         (add [NAME] [BY] | get [NAME] | reset NAME | bump NAME N TASKS)]=]

local function fail(msg, code)
  io.stderr:write("counter: ", msg, "\n")
  os.exit(code or 1)
end

local cluster, level, words = nil, "linearizable", {}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "-h" or a == "--help" then print(usage) os.exit(0) end
  if a == "--cluster" or a == "--consistency" then
    if not arg[i + 1] then fail(a .. " needs a value\n" .. usage, 2) end
    if a == "--cluster" then cluster = arg[i + 1] else level = arg[i + 1] end
    i = i + 2
  elseif a:sub(1, 2) == "--" then
    fail("unknown option " .. a .. "\n" .. usage, 2)
  else
    words[#words + 1] = a
    i = i + 1
  end
end
if not cluster then fail("--cluster is required\n" .. usage, 2) end
local members = {}
for addr in cluster:gmatch("[^,%s]+") do members[#members + 1] = addr end

local client = copycat.client{ cluster = members }
local cmd, r, err = words[1], nil, nil
if cmd == "add" then
  local by = tonumber(words[3] or "1") -- the state machine checks it is whole
  r, err = client:submit("add", { name = words[2], by = math.tointeger(by) or by })
elseif cmd == "get" then
  r, err = client:query("get", { name = words[2] }, { consistency = level })
elseif cmd == "reset" and words[2] then
  r, err = client:submit("reset", { name = words[2] })
elseif cmd == "bump" and #words == 4 then
  local n, tasks = math.tointeger(tonumber(words[3])), math.tointeger(tonumber(words[4]))
  if not n or not tasks or tasks < 1 then fail("bump NAME N TASKS takes whole numbers", 2) end
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
else
  fail("expected a command\n" .. usage, 2)
end
client:close()
if err then fail(err) end
print(r)
