-- Take a lock, hold it, release it.
--
--   copycat-lua examples/lock/client.lua --cluster ADDR,... [--session-timeout MS] NAME [HOLD_MS]
--
-- Waits until the lock is ours (printing "waiting for NAME" if another
-- session holds it), prints "acquired NAME session=ID", holds it for
-- HOLD_MS (default: until killed or Ctrl-C), then releases it and prints
-- "released NAME". If this process dies, its session expires and the lock
-- passes to the next waiter.
local usage = [=[
usage: copycat-lua examples/lock/client.lua --cluster ADDR,... [--session-timeout MS] NAME [HOLD_MS]]=]

local function fail(msg, code)
  io.stderr:write("lock: ", msg, "\n")
  os.exit(code or 1)
end

local opts, words = {}, {}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "-h" or a == "--help" then print(usage) os.exit(0) end
  if a == "--cluster" or a == "--session-timeout" then
    if not arg[i + 1] then fail(a .. " needs a value\n" .. usage, 2) end
    opts[a:sub(3)] = arg[i + 1]
    i = i + 2
  elseif a:sub(1, 2) == "--" then
    fail("unknown option " .. a .. "\n" .. usage, 2)
  else
    words[#words + 1] = a
    i = i + 1
  end
end
if not opts.cluster or not words[1] then fail(usage, 2) end
local members = {}
for addr in opts.cluster:gmatch("[^,%s]+") do members[#members + 1] = addr end
local name, hold = words[1], tonumber(words[2])

local client = copycat.client{ cluster = members,
  session_timeout = math.tointeger(tonumber(opts["session-timeout"])) or 5000 }
local acquired = false
client:on("acquired", function(data)
  if data.name == name then acquired = true end
end)
client:on("session:lost", function(why) fail(why) end)

local got, err = client:submit("lock", { name = name })
if err then fail(err) end
if not got and not acquired then
  print("waiting for " .. name)
  io.stdout:flush()
  -- The event handler runs in a task of its own and sets the flag.
  while not acquired do copycat.sleep(20) end
end
print(("acquired %s session=%d"):format(name, client:session_id()))
io.stdout:flush()
if not hold then
  copycat.on_shutdown(function() client:submit("unlock", { name = name }); client:close() end)
  while true do copycat.sleep(1000) end
end
copycat.sleep(hold)
local ok, uerr = client:submit("unlock", { name = name })
if uerr then fail(uerr) end
print(ok and ("released " .. name) or ("did not hold " .. name))
client:close()
