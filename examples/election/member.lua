-- A member of a group that elects a leader among its clients.
--
--   copycat-lua examples/election/member.lua --cluster ADDR,... [--cluster-id ID] [--timeout MS]
--       [--session-timeout MS] NAME
--
-- Joins the group as NAME and prints a line whenever the leader changes:
-- "leader NAME epoch=N (me)" when this member leads. Runs until killed or
-- Ctrl-C (which leaves the group at once rather than at session expiry).
local usage = [=[
usage: copycat-lua examples/election/member.lua --cluster ADDR,... [--cluster-id ID] [--timeout MS]
         [--session-timeout MS] NAME]=]

local cli = copycat.cli
local spec = { name = "member", usage = usage, required = { "cluster" }, flags = cli.client_flags() }
local opts, words = cli.parse(arg, spec)
if #words ~= 1 then cli.usage_error(spec, "expected one NAME, got " .. #words .. " arguments") end
local name = words[1]

local function fail(msg)
  io.stderr:write("member: ", msg, "\n")
  os.exit(1)
end

local client = copycat.client(cli.client_options(opts))
local epoch = 0

local function show(info)
  if not info or info.epoch <= epoch then return end
  epoch = info.epoch
  local me = info.session == client:session_id()
  print(("leader %s epoch=%d%s"):format(info.name, info.epoch, me and " (me)" or ""))
  io.stdout:flush()
end

client:on("leader", show)
client:on("session:lost", function(why) fail(why) end)
local info, err = client:submit("join", { name = name })
if err then fail(err) end
show(info)
copycat.on_shutdown(function()
  client:submit("leave", {})
  client:close()
end)
while true do copycat.sleep(1000) end
