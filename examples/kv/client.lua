-- The key-value store's command-line client.
--
--   copycat-lua examples/kv/client.lua --cluster ADDR,... [--cluster-id ID] [--consistency L] COMMAND
--     put KEY VALUE          prints the previous value (nothing if none)
--     get KEY                prints the value (nothing, exit 0, if missing)
--     delete KEY             prints "deleted" or "not found"
--     cas KEY EXPECTED NEW   prints "ok" or "failed" (the value was not EXPECTED)
--     keys PREFIX            prints matching keys, one per line
--   --consistency linearizable|lease|sequential applies to get and keys.
--   --timeout MS (default 5000), --session-timeout MS (default 5000).
--   --tls-ca FILE [--tls-cert FILE --tls-key FILE]: TLS (docs/tls.md).
--   Errors go to stderr, exit status 1; a bad command line exits 2.
local usage = [=[
usage: copycat-lua examples/kv/client.lua --cluster ADDR,... [--consistency linearizable|lease|sequential]
         [--cluster-id ID] [--timeout MS] [--session-timeout MS]
         [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
         (put KEY VALUE | get KEY | delete KEY | cas KEY EXPECTED NEW | keys PREFIX)]=]

local cli = copycat.cli
local spec = { name = "kv", usage = usage, required = { "cluster" }, flags = cli.client_flags({
  consistency = cli.one_of({ "linearizable", "lease", "sequential" }),
}) }
local opts, words = cli.parse(arg, spec)
local level = opts.consistency or "linearizable"

local function fail(msg)
  io.stderr:write("kv: ", msg, "\n")
  os.exit(1)
end

local cmd = cli.command(spec, words, { { "put", 2 }, { "get", 1 }, { "delete", 1 }, { "cas", 3 }, { "keys", 1 } })

local made, client = pcall(copycat.client, cli.client_options(opts))
if not made then fail((tostring(client):gsub("^[^:]*:%d+: ", ""))) end
local q = { consistency = level }
local r, err
if cmd == "put" then
  r, err = client:submit("put", { key = words[2], value = words[3] })
  if r ~= nil then print(r) end
elseif cmd == "get" then
  -- get returns the value and its revision; a failure is nil and a message
  local second
  r, second = client:query("get", { key = words[2] }, q)
  if r ~= nil then print(r) elseif type(second) == "string" then err = second end
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
