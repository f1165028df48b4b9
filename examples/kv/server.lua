-- The key-value store server.
--
--   copycat-lua examples/kv/server.lua --name NAME --address HOST:PORT
--       [--client-address HOST:PORT] --data DIR
--       (--bootstrap ADDR,... | --join ADDR,... | --empty)
--       [--type active|passive|reserve]
--       [--cluster ID] [--election-timeout MS] [--heartbeat-interval MS]
--       [--snapshot-threshold ENTRIES] [--hash-interval ENTRIES] [--state-machine FILE]
--       [--admin-socket PATH] [--admin-address HOST:PORT --admin-token-file FILE]
--       [--metrics-address HOST:PORT] [--http-address HOST:PORT] [--log-level error|warn|info|debug]
--       [--log-format kv|json]
--       [--tls-ca FILE --tls-cert FILE --tls-key FILE [--tls-require-client-cert]]
--       [--insecure] [--hello-timeout MS] [--max-unauthenticated N]
--       [--sm-memory BYTES]
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
         [--heartbeat-interval MS] [--snapshot-threshold ENTRIES] [--hash-interval ENTRIES]
         [--state-machine FILE]
         [--admin-socket PATH] [--admin-address HOST:PORT --admin-token-file FILE]
         [--metrics-address HOST:PORT] [--http-address HOST:PORT] [--log-level error|warn|info|debug]
         [--log-format kv|json] [--tls-ca FILE --tls-cert FILE --tls-key FILE]
         [--tls-require-client-cert] [--insecure] [--hello-timeout MS]
         [--max-unauthenticated N] [--sm-memory BYTES]]=]

local cli = copycat.cli
local ms = cli.ms(1)
local spec = { name = "kv server", usage = usage, required = { "name", "address", "data" }, flags = {
  name = cli.string, address = cli.address, ["client-address"] = cli.address, data = cli.string,
  bootstrap = cli.addresses, join = cli.addresses, empty = cli.switch,
  type = cli.one_of({ "active", "passive", "reserve" }), cluster = cli.string,
  ["election-timeout"] = ms, ["heartbeat-interval"] = ms,
  ["snapshot-threshold"] = cli.integer(1, nil, "entries"), ["state-machine"] = cli.string,
  ["hash-interval"] = cli.integer(0, nil, "entries"),
  ["admin-socket"] = cli.string, ["admin-address"] = cli.address, ["admin-token-file"] = cli.string,
  ["metrics-address"] = cli.address, ["http-address"] = cli.address,
  ["log-level"] = cli.one_of({ "error", "warn", "info", "debug" }),
  ["log-format"] = cli.one_of({ "kv", "json" }),
  ["tls-ca"] = cli.string, ["tls-cert"] = cli.string, ["tls-key"] = cli.string,
  ["tls-require-client-cert"] = cli.switch, insecure = cli.switch,
  ["hello-timeout"] = cli.ms(100), ["max-unauthenticated"] = cli.integer(1, nil, "connections"),
  ["sm-memory"] = cli.integer(0, nil, "bytes"),
} }
local opts, words = cli.parse(arg, spec)
if #words > 0 then cli.usage_error(spec, "unexpected argument " .. words[1]) end
local modes = (opts.bootstrap and 1 or 0) + (opts.join and 1 or 0) + (opts.empty and 1 or 0)
if modes ~= 1 then
  cli.usage_error(spec, "give either --bootstrap or --join (or --empty, to be added by an operator)")
end

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local ok_start, server = pcall(copycat.server, {
  name = opts.name, address = opts.address, client_address = opts["client-address"],
  data_dir = opts.data, cluster = opts.cluster, type = opts.type,
  state_machine = opts["state-machine"] or (here .. "/state_machine.lua"),
  election_timeout = opts["election-timeout"], heartbeat_interval = opts["heartbeat-interval"],
  snapshot_threshold = opts["snapshot-threshold"], hash_interval = opts["hash-interval"],
  admin_socket = opts["admin-socket"], admin_address = opts["admin-address"],
  admin_token_file = opts["admin-token-file"],
  metrics_address = opts["metrics-address"], http_address = opts["http-address"],
  log_level = opts["log-level"], log_format = opts["log-format"],
  insecure = opts.insecure ~= nil,
  hello_timeout = opts["hello-timeout"], max_unauthenticated = opts["max-unauthenticated"],
  sm_memory = opts["sm-memory"],
  tls = (opts["tls-ca"] or opts["tls-cert"] or opts["tls-key"]) and { ca = opts["tls-ca"],
    cert = opts["tls-cert"], key = opts["tls-key"],
    require_client_cert = opts["tls-require-client-cert"] ~= nil } or nil,
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
  ok, err = server:bootstrap(opts.bootstrap)
else
  ok, err = server:join(opts.join)
end
if not ok then
  io.stderr:write("kv server: ", err, "\n")
  os.exit(1)
end
print(("[%s] serving on %s (data in %s); Ctrl-C stops"):format(opts.name, opts.address, opts.data))
