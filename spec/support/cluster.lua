--- Real kv clusters for specs: servers are copycat-lua processes on
--- 127.0.0.1 with free ports, data in a temporary directory, killed by PID
--- in M.cleanup (proc.cleanup).
local proc = require("support.proc")

local M = {}

--- n free TCP ports on 127.0.0.1 (bound, read, closed).
function M.free_ports(n)
  local r = proc.run({ "-e", ([[
    local ls = {}
    for i = 1, %d do ls[i] = assert(copycat.net.listen("127.0.0.1:0", function() end)) end
    for i = 1, #ls do print((ls[i]:address():match(":(%%d+)$"))); ls[i]:close() end
  ]]):format(n) })
  local ports = {}
  for p in r.stdout:gmatch("%d+") do ports[#ports + 1] = tonumber(p) end
  assert(#ports == n, "could not find free ports: " .. r.stderr)
  return ports
end

--- Starts a cluster description: n servers (not yet running).
---@return table cluster with .members {name, address, port, data}, .dir
function M.new(n, opts)
  opts = opts or {}
  local c = { dir = proc.tmpdir(), members = {}, procs = {}, opts = opts }
  local ports = M.free_ports(n)
  for i = 1, n do
    c.members[i] = { name = "n" .. i, port = ports[i], address = "127.0.0.1:" .. ports[i] }
    c.members[i].data = c.dir .. "/n" .. i
  end
  return c
end

function M.addresses(c, first, last)
  local out = {}
  for i = first or 1, last or #c.members do out[#out + 1] = c.members[i].address end
  return table.concat(out, ",")
end

--- Starts member i with --bootstrap (the first `initial` members) or
--- --join, plus extra flags.
function M.start(c, i, mode, list, extra)
  local m = c.members[i]
  local args = { "examples/kv/server.lua", "--name", m.name, "--address", m.address,
    "--data", m.data, "--" .. mode, list,
    "--election-timeout", tostring(c.opts.election_timeout or 300),
    "--heartbeat-interval", tostring(c.opts.heartbeat_interval or 30) }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  c.procs[i] = proc.start(args, { timeout = c.opts.timeout or 120 })
  return c.procs[i]
end

function M.bootstrap_all(c)
  local list = M.addresses(c)
  for i = 1, #c.members do M.start(c, i, "bootstrap", list) end
end

--- Runs the kv client with args against the given members (default: all).
function M.kv(c, args, members)
  local full = { "examples/kv/client.lua", "--cluster", members or M.addresses(c), "--timeout", "3000" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return proc.run(full, { timeout = 30 })
end

--- Retries a kv command until it exits 0 (bounded); returns the last run.
function M.kv_until_ok(c, args, members, tries)
  local r
  for _ = 1, tries or 40 do
    r = M.kv(c, args, members)
    if r.code == 0 then return r end
    os.execute("sleep 0.2")
  end
  return r
end

--- The name of the member that stdout logs say leads, via the "[x]
--- leader=NAME" lines of the most recent reports (or nil).
function M.leader(c)
  local best_term, leader = -1, nil
  for i, p in pairs(c.procs) do
    if p then
      for name, term in (p:stdout() .. ""):gmatch("leader=(%S+) term=(%d+)") do
        term = tonumber(term)
        if term >= best_term and name ~= "none" then best_term, leader = term, name end
      end
    end
    local _ = i
  end
  return leader, best_term
end

function M.index_of(c, name)
  for i, m in ipairs(c.members) do if m.name == name then return i end end
end

return M
