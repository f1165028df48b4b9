--- copycat.restore: `copycat-lua restore`, building the data directory of
--- one member of a new cluster from a backup (`ctl snapshot save`).
---
---   copycat-lua restore FILE --data DIR --name NAME --bootstrap NAME=HOST:PORT,...
---                       [--cluster ID]
---
--- Run it once per member, each with its own --data and --name and the
--- same --bootstrap list (and --cluster, if given). The new cluster starts
--- from the backup's state at its index, with the members listed (all
--- active) and a cluster id of its own, so that its members and clients
--- never mix with the old cluster's. The backup is checked completely
--- before anything is written; a damaged file changes nothing.
local core = require("copycat.core")
local cli = require("copycat.cli")

local restore = {}

local usage = [=[
usage: copycat-lua restore FILE --data DIR --name NAME --bootstrap NAME=HOST:PORT,...
                           [--cluster ID]
Prepares the data directory DIR of member NAME of a new cluster that starts
from the state in the backup FILE (made with ctl snapshot save). Run it once
for each member listed in --bootstrap, with the same list; then start each
server on its directory (its stored configuration wins over its flags).
  --data DIR       the member's data directory: new, or holding no server data
  --name NAME      this member's name (one of the --bootstrap list)
  --bootstrap L    every member of the new cluster, as NAME=HOST:PORT
  --cluster ID     the new cluster's id (default: derived from the backup and
                   the member list, never the old cluster's); give members
                   nothing else, and clients --cluster-id ID
Exit status: 0 done, 1 the backup or the directory was refused, 2 usage error.]=]

-- NAME=HOST:PORT,... into {{name=, address=}, ...}.
local function members(s)
  local out, seen = {}, {}
  for item in (s .. ","):gmatch("([^,]*),") do
    item = item:match("^%s*(.-)%s*$")
    local name, address = item:match("^([^=%s]+)=(.+)$")
    if not name or not cli.address(address) then return nil, "NAME=HOST:PORT[,NAME=HOST:PORT...]" end
    if seen[name] then return nil, "distinct member names (" .. name .. " appears twice)" end
    seen[name] = true
    out[#out + 1] = { name = name, address = address, type = "active" }
  end
  return out
end

local spec = { name = "restore", usage = usage, required = { "data", "name", "bootstrap" }, flags = {
  data = cli.string, name = cli.string, bootstrap = members, cluster = cli.string,
} }

-- 32-bit FNV-1a, as hex: a short tag that differs with its input.
local function tag(s)
  local h = 0x811c9dc5
  for i = 1, #s do h = ((h ~ s:byte(i)) * 0x01000193) & 0xffffffff end
  return ("%08x"):format(h)
end

local function fail(msg)
  io.stdout:flush()
  io.stderr:write("restore: ", msg, "\n")
  os.exit(1)
end

--- Entry point: `copycat-lua restore ARGS...`.
function restore.main(...)
  local opts, words = cli.parse({ ... }, spec)
  if #words ~= 1 then
    cli.usage_error(spec, #words == 0 and "give the backup FILE" or "unexpected argument " .. words[2])
  end
  local file = words[1]
  local list = opts.bootstrap
  local me
  for _, m in ipairs(list) do if m.name == opts.name then me = m end end
  if not me then
    cli.usage_error(spec, ("--name %s is not in the --bootstrap list"):format(opts.name))
  end
  local info, err = core.backup.read(file)
  if not info then fail(err) end
  local old = tostring((info.info or {}).cluster or "copycat")
  local names = {}
  for _, m in ipairs(list) do names[#names + 1] = m.name .. "=" .. m.address end
  table.sort(names)
  local cluster = opts.cluster or ("%s-restored-%d-%s"):format(old, info.index,
    tag(info.checksum .. "|" .. table.concat(names, ",")))
  if #cluster >= 64 then cluster = "restored-" .. info.index .. "-" .. tag(cluster) end
  if cluster == old then
    fail(("--cluster %s is the backed-up cluster's own id: give the new cluster another one"):format(cluster))
  end
  local done, rerr = core.backup.restore(file, opts.data, list, cluster)
  if not done then fail(rerr) end
  print(("restored %s into %s for member %s: index %d, term %d, %d bytes of state"):format(file, opts.data,
    opts.name, done.index, done.term, done.data_bytes))
  print(("new cluster %s with members %s"):format(cluster, table.concat(names, ", ")))
  local addresses = {}
  for _, m in ipairs(list) do addresses[#addresses + 1] = m.address end
  print(("start it: copycat-lua examples/kv/server.lua --name %s --address %s --data %s --bootstrap %s"):format(
    opts.name, me.address, opts.data, table.concat(addresses, ",")))
  print(("clients of the new cluster give --cluster-id %s"):format(cluster))
  os.exit(0)
end

return restore
