-- A member of a group that elects a leader among its clients.
--
--   copycat-lua examples/election/member.lua --cluster ADDR,... [--session-timeout MS] NAME
--
-- Joins the group as NAME and prints a line whenever the leader changes:
-- "leader NAME epoch=N (me)" when this member leads. Runs until killed or
-- Ctrl-C (which leaves the group at once rather than at session expiry).
local usage = [=[
usage: copycat-lua examples/election/member.lua --cluster ADDR,... [--session-timeout MS] NAME]=]

local function fail(msg, code)
  io.stderr:write("member: ", msg, "\n")
  os.exit(code or 1)
end

local opts, name = {}, nil
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
    name = a
    i = i + 1
  end
end
if not opts.cluster or not name then fail(usage, 2) end
local members = {}
for addr in opts.cluster:gmatch("[^,%s]+") do members[#members + 1] = addr end

local client = copycat.client{ cluster = members,
  session_timeout = math.tointeger(tonumber(opts["session-timeout"])) or 5000 }
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
