-- The key-value store server.
--
--   copycat-lua examples/kv/server.lua --name NAME --address HOST:PORT
--       [--client-address HOST:PORT] --data DIR
--       (--bootstrap ADDR,... | --join ADDR,... | --empty)
--       [--type active|passive|reserve]
--       [--cluster ID] [--election-timeout MS] [--heartbeat-interval MS]
--       [--snapshot-threshold ENTRIES] [--state-machine FILE]
--       [--admin-socket PATH] [--admin-address HOST:PORT --admin-token-file FILE]
--       [--metrics-address HOST:PORT] [--log-level error|warn|info|debug]
--       [--log-format kv|json]
--       [--tls-ca FILE --tls-cert FILE --tls-key FILE [--tls-require-client-cert]]
--       [--insecure]
--
-- --state-machine runs another state machine file with the same server
-- (examples/counter, examples/lock and examples/election use it).
--
-- --bootstrap lists the initial members (this server included) by address;
-- --join lists any current members; --empty starts without either and
-- waits for an operator to add the server (ctl run scripts/join.lua). On
-- a restart any may be given: the configuration stored in --data wins.
-- The admin socket is DIR/admin.sock unless --admin-socket says otherwise;
-- --admin-address adds a TCP admin address that requires the token.
-- --tls-* run every TCP connection over TLS (docs/tls.md); without them
-- the server listens on loopback addresses only, unless --insecure.
local usage = [=[
usage: copycat-lua examples/kv/server.lua --name NAME --address HOST:PORT --data DIR
         (--bootstrap ADDR,... | --join ADDR,... | --empty) [--type active|passive|reserve]
         [--client-address HOST:PORT] [--cluster ID] [--election-timeout MS]
         [--heartbeat-interval MS] [--snapshot-threshold ENTRIES] [--state-machine FILE]
         [--admin-socket PATH] [--admin-address HOST:PORT --admin-token-file FILE]
         [--metrics-address HOST:PORT] [--log-level error|warn|info|debug]
         [--log-format kv|json] [--tls-ca FILE --tls-cert FILE --tls-key FILE]
         [--tls-require-client-cert] [--insecure]]=]

local function die(msg)
  io.stderr:write("kv server: ", msg, "\n", usage, "\n")
  os.exit(2)
end

local opts, flags = {}, {
  ["--name"] = "name", ["--address"] = "address", ["--client-address"] = "client_address",
  ["--data"] = "data", ["--bootstrap"] = "bootstrap", ["--join"] = "join", ["--type"] = "type",
  ["--cluster"] = "cluster", ["--election-timeout"] = "election_timeout",
  ["--heartbeat-interval"] = "heartbeat_interval", ["--snapshot-threshold"] = "snapshot_threshold",
  ["--state-machine"] = "state_machine",
  ["--admin-socket"] = "admin_socket", ["--admin-address"] = "admin_address",
  ["--admin-token-file"] = "admin_token_file",
  ["--metrics-address"] = "metrics_address", ["--log-level"] = "log_level", ["--log-format"] = "log_format",
  ["--tls-ca"] = "tls_ca", ["--tls-cert"] = "tls_cert", ["--tls-key"] = "tls_key",
}
local switches = { ["--empty"] = "empty", ["--insecure"] = "insecure",
  ["--tls-require-client-cert"] = "tls_require_client_cert" }
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "-h" or a == "--help" then print(usage) os.exit(0) end
  if switches[a] then
    opts[switches[a]] = true
    i = i + 1
  else
    local key = flags[a]
    if not key then die("unknown option " .. a) end
    if arg[i + 1] == nil then die(a .. " needs a value") end
    opts[key] = arg[i + 1]
    i = i + 2
  end
end
for _, k in ipairs({ "name", "address", "data" }) do
  if not opts[k] then die("--" .. k .. " is required") end
end
local modes = (opts.bootstrap and 1 or 0) + (opts.join and 1 or 0) + (opts.empty and 1 or 0)
if modes ~= 1 then die("give either --bootstrap or --join (or --empty, to be added by an operator)") end
local function number(k)
  if opts[k] == nil then return nil end
  return tonumber(opts[k]) or die("--" .. k:gsub("_", "-") .. " must be a number")
end
local function list(s)
  local out = {}
  for item in s:gmatch("[^,%s]+") do out[#out + 1] = item end
  if #out == 0 then die("the member list is empty") end
  return out
end

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local ok_start, server = pcall(copycat.server, {
  name = opts.name, address = opts.address, client_address = opts.client_address,
  data_dir = opts.data, cluster = opts.cluster, type = opts.type,
  state_machine = opts.state_machine or (here .. "/state_machine.lua"),
  election_timeout = number("election_timeout"), heartbeat_interval = number("heartbeat_interval"),
  snapshot_threshold = number("snapshot_threshold"),
  admin_socket = opts.admin_socket, admin_address = opts.admin_address,
  admin_token_file = opts.admin_token_file,
  metrics_address = opts.metrics_address, log_level = opts.log_level, log_format = opts.log_format,
  insecure = opts.insecure,
  tls = (opts.tls_ca or opts.tls_cert or opts.tls_key) and { ca = opts.tls_ca, cert = opts.tls_cert,
    key = opts.tls_key, require_client_cert = opts.tls_require_client_cert } or nil,
})
if not ok_start then -- a configuration problem: say it plainly, no traceback
  io.stderr:write("kv server: ", (tostring(server):gsub("^[^:]*:%d+: ", "")), "\n")
  os.exit(1)
end
server:on("leader", function(detail) print(("[%s] %s"):format(opts.name, detail)) end)
server:on("config", function(detail) print(("[%s] %s"):format(opts.name, detail)) end)

local ok, err
if opts.empty then
  ok = true -- an operator adds this server: ctl run scripts/join.lua
elseif opts.bootstrap then
  ok, err = server:bootstrap(list(opts.bootstrap))
else
  ok, err = server:join(list(opts.join))
end
if not ok then
  io.stderr:write("kv server: ", err, "\n")
  os.exit(1)
end
print(("[%s] serving on %s (data in %s); Ctrl-C stops"):format(opts.name, opts.address, opts.data))
