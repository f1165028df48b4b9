-- Take a lock, hold it, release it.
--
--   copycat-lua examples/lock/client.lua --cluster ADDR,... [--cluster-id ID] [--timeout MS]
--       [--session-timeout MS] NAME [HOLD_MS]
--
-- Waits until the lock is ours (printing "waiting for NAME" if another
-- session holds it), prints "acquired NAME session=ID", holds it for
-- HOLD_MS (default: until killed or Ctrl-C), then releases it and prints
-- "released NAME". If this process dies, its session expires and the lock
-- passes to the next waiter.
local usage = [=[
usage: copycat-lua examples/lock/client.lua --cluster ADDR,... [--cluster-id ID] [--timeout MS]
         [--session-timeout MS] NAME [HOLD_MS]]=]

local cli = copycat.cli
local spec = { name = "lock", usage = usage, required = { "cluster" }, flags = cli.client_flags() }
local opts, words = cli.parse(arg, spec)
if not words[1] then cli.usage_error(spec, "expected the lock's NAME") end
if #words > 2 then cli.usage_error(spec, "expected NAME [HOLD_MS], got " .. #words .. " arguments") end
local name = words[1]
local hold = words[2] and cli.word(spec, "HOLD_MS", words[2], cli.ms(0))

local function fail(msg)
  io.stderr:write("lock: ", msg, "\n")
  os.exit(1)
end

local client = copycat.client(cli.client_options(opts))
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
