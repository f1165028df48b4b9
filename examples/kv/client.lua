-- The key-value store's command-line client.
--
--   copycat-lua examples/kv/client.lua --cluster ADDR,... [--consistency L] COMMAND
--     put KEY VALUE          prints the previous value (nothing if none)
--     get KEY                prints the value (nothing, exit 0, if missing)
--     delete KEY             prints "deleted" or "not found"
--     cas KEY EXPECTED NEW   prints "ok" or "failed" (the value was not EXPECTED)
--     keys PREFIX            prints matching keys, one per line
--   --consistency linearizable|lease|sequential applies to get and keys.
--   --timeout MS (default 5000), --session-timeout MS (default 5000).
--   --tls-ca FILE [--tls-cert FILE --tls-key FILE]: TLS (docs/tls.md).
--   Errors go to stderr, exit status 1.
local usage = [=[
usage: copycat-lua examples/kv/client.lua --cluster ADDR,... [--consistency linearizable|lease|sequential]
         [--cluster-id ID] [--timeout MS] [--session-timeout MS]
         [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
         (put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED NEW | keys PREFIX)]=]

local function fail(msg, code)
  io.stderr:write("kv: ", msg, "\n")
  os.exit(code or 1)
end

local opts, words = {}, {}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "-h" or a == "--help" then print(usage) os.exit(0) end
  if a == "--cluster" or a == "--consistency" or a == "--cluster-id" or a == "--timeout" or
      a == "--session-timeout" or a == "--tls-ca" or a == "--tls-cert" or a == "--tls-key" then
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
if not opts.cluster then fail("--cluster is required\n" .. usage, 2) end
local members = {}
for addr in opts.cluster:gmatch("[^,%s]+") do members[#members + 1] = addr end
local level = opts.consistency or "linearizable"
if level ~= "linearizable" and level ~= "lease" and level ~= "sequential" then
  fail("--consistency must be linearizable, lease or sequential", 2)
end

local arity = { put = 2, get = 1, delete = 1, cas = 3, keys = 1 }
local cmd = words[1]
if not cmd or not arity[cmd] then fail("expected a command\n" .. usage, 2) end
if #words - 1 ~= arity[cmd] then
  fail(("%s takes %d argument(s)\n%s"):format(cmd, arity[cmd], usage), 2)
end

local made, client = pcall(copycat.client, { cluster = members, cluster_id = opts["cluster-id"],
  timeout = tonumber(opts.timeout) or 5000,
  session_timeout = math.tointeger(tonumber(opts["session-timeout"])) or 5000,
  tls = (opts["tls-ca"] or opts["tls-cert"]) and { ca = opts["tls-ca"], cert = opts["tls-cert"],
    key = opts["tls-key"] } or nil })
if not made then fail((tostring(client):gsub("^[^:]*:%d+: ", ""))) end
local q = { consistency = level }
local r, err
if cmd == "put" then
  r, err = client:submit("put", { key = words[2], value = words[3] })
  if r ~= nil then print(r) end
elseif cmd == "get" then
  r, err = client:query("get", { key = words[2] }, q)
  if r ~= nil then print(r) end
elseif cmd == "delete" then
  r, err = client:submit("delete", { key = words[2] })
  if not err then print(r ~= nil and "deleted" or "not found") end
elseif cmd == "cas" then
  r, err = client:submit("cas", { key = words[2], expect = words[3], value = words[4] })
  if not err then print(r and "ok" or "failed") end
elseif cmd == "keys" then
  r, err = client:query("keys", { prefix = words[2] }, q)
  if r then for _, k in ipairs(r) do print(k) end end
end
client:close()
if err then fail(err) end
