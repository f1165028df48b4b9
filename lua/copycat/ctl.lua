--- copycat.ctl: `copycat-lua ctl`, the operator's command line. It sends a
--- script to a running server's admin channel (copycat.admin), prints the
--- script's output as it arrives, then its result or error.
local core = require("copycat.core")
local net = require("copycat.net")
local json = require("copycat.json")
local tls = require("copycat.tls")

local ctl = {}

local usage = [=[
usage: copycat-lua ctl [--socket PATH | --server HOST:PORT] [--token-file FILE]
                       [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
                       [--timeout SECONDS] COMMAND
Commands:
  run SCRIPT [ARGS...]  run an operator script on the server (see scripts/ and
                        docs/operators.md); prints its output, then its result
  status [--json]       the cluster as the server sees it: a table, or JSON
  reload-certs          make the server read its TLS certificate, key and CA
                        files again (new connections use them)
  certs DIR NAME... [--days N] [--new-ca]
                        write a CA (DIR/ca.crt, ca.key; kept if it exists,
                        unless --new-ca) and a member certificate and key for
                        each NAME (DIR/NAME.crt, NAME.key), plus DIR/client.*
                        and DIR/admin.* if missing; keys are mode 0600.
                        --days: validity of the certificates written (default
                        1825; negative: already expired, for tests). The CA is
                        valid for 3650 days. See docs/tls.md
  help                  this text
Options:
  --socket PATH         the server's admin socket; PATH may be the server's data
                        directory (then PATH/admin.sock). Default: the
                        environment variable COPYCAT_ADMIN_SOCKET
  --server HOST:PORT    the server's TCP admin address (needs the token)
  --token-file FILE     file holding the admin token (default: the environment
                        variable COPYCAT_ADMIN_TOKEN)
  --tls-ca FILE         --server speaks TLS: trust servers with a member
                        certificate from this CA (docs/tls.md)
  --tls-cert FILE, --tls-key FILE
                        a client certificate; one with the admin role stands
                        in for the token
  --timeout SECONDS     time limit of the script on the server (default 30)
Exit status: 0 on success, 1 if the script failed or the server could not be
reached, 2 for a usage error.]=]

local function fail(msg, code)
  io.stdout:flush()
  io.stderr:write("ctl: ", msg, "\n")
  os.exit(code or 1)
end

local function usage_error(msg)
  fail(msg .. "\n" .. usage, 2)
end

local function read_file(path, what)
  local f, err = io.open(path, "rb")
  if not f then fail(("cannot read the %s: %s"):format(what, err)) end
  local data, rerr = f:read("a")
  f:close()
  if not data then fail(("cannot read the %s %s: %s"):format(what, path, rerr)) end
  return data
end

-- A path that names a directory (fopen succeeds, reading says EISDIR).
local function is_dir(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local _, _, code = f:read(1)
  f:close()
  return code == 21
end

local function parse(args)
  local o = { words = {} }
  local i = 1
  local valued = { ["--socket"] = "socket", ["--server"] = "server",
    ["--token-file"] = "token_file", ["--timeout"] = "timeout",
    ["--tls-ca"] = "tls_ca", ["--tls-cert"] = "tls_cert", ["--tls-key"] = "tls_key",
    ["--days"] = "days" }
  while i <= #args do
    local a = args[i]
    if #o.words > 0 and o.words[1] == "run" then -- the script's own arguments
      o.words[#o.words + 1] = a
      i = i + 1
    elseif a == "-h" or a == "--help" then
      o.words = { "help" }
      break
    elseif valued[a] then
      if args[i + 1] == nil then usage_error(a .. " needs a value") end
      o[valued[a]] = args[i + 1]
      i = i + 2
    elseif a == "--json" then
      o.json = true
      i = i + 1
    elseif a == "--new-ca" then
      o.new_ca = true
      i = i + 1
    elseif a:sub(1, 2) == "--" then
      usage_error("unknown option " .. a)
    else
      o.words[#o.words + 1] = a
      i = i + 1
    end
  end
  if o.socket and o.server then usage_error("give --socket or --server, not both") end
  if o.timeout then
    local t = tonumber(o.timeout)
    if not t or t <= 0 then usage_error("--timeout must be a positive number of seconds") end
    o.timeout_ms = math.floor(t * 1000)
  end
  return o
end

-- Connects and says hello; returns the connection, or exits with a clear
-- error naming the socket or address.
local function connect(o)
  local address, what
  if o.server then
    address, what = o.server, "the admin address " .. o.server
  else
    local path = o.socket or os.getenv("COPYCAT_ADMIN_SOCKET")
    if not path or path == "" then
      usage_error("give --socket PATH (e.g. the server's data directory) or --server HOST:PORT")
    end
    if is_dir(path) then path = path:gsub("/+$", "") .. "/admin.sock" end
    address, what = "unix:" .. path, "the admin socket " .. path
  end
  local token
  if o.token_file then
    token = read_file(o.token_file, "token file"):gsub("%s+$", "")
  else
    token = os.getenv("COPYCAT_ADMIN_TOKEN")
  end
  local nopts
  if o.tls_ca then
    if not o.server then usage_error("--tls-ca goes with --server (a Unix socket needs no TLS)") end
    local ctx, terr = tls.context({ ca = o.tls_ca, cert = o.tls_cert, key = o.tls_key })
    if not ctx then fail(terr) end
    nopts = { tls = ctx }
  elseif o.tls_cert or o.tls_key then
    usage_error("--tls-cert and --tls-key need --tls-ca")
  end
  local conn, err = net.connect(address, nopts)
  if not conn then
    fail(("cannot reach %s: %s (is the server running?)"):format(what,
      tostring(err):gsub("^cannot connect to [^:]*:?[^:]*: ", "")))
  end
  conn:send({ "copycat-admin", 1, token })
  local reply, rerr = conn:recv(10000)
  if type(reply) ~= "table" then
    fail(("%s did not answer: %s"):format(what, tostring(rerr)))
  end
  if reply[1] ~= "ok" then fail(("%s refused: %s"):format(what, tostring(reply[2]))) end
  return conn, what
end

-- Runs source on the server; on_print(line) for each line, returns the
-- result table (with n) or exits with the script's error.
local function run(o, source, name, args, on_print)
  local conn, what = connect(o)
  local timeout_ms = o.timeout_ms or 30000
  conn:send({ "run", source, name, args, { timeout = timeout_ms } })
  while true do
    local msg, err = conn:recv(timeout_ms + 15000)
    if type(msg) ~= "table" then
      fail(("%s closed the connection before the script finished: %s"):format(what, tostring(err)))
    end
    if msg[1] == "print" then
      on_print(tostring(msg[2]))
    elseif msg[1] == "result" then
      conn:close()
      local res = type(msg[2]) == "table" and msg[2] or {}
      res.n = math.tointeger(msg[3]) or #res
      return res
    elseif msg[1] == "error" then
      conn:close()
      fail("error: " .. tostring(msg[2]))
    else
      conn:close()
      fail(("unexpected message from %s: %s"):format(what, tostring(msg[1])))
    end
  end
end

local function show(v)
  if type(v) == "table" then return json.encode(v) end
  return tostring(v)
end

local function pad(s, n)
  s = tostring(s)
  return s .. string.rep(" ", n - #s)
end

-- The human table of `ctl status`.
local function render(st)
  local out = {}
  out[#out + 1] = ("server %s (%s), term %d, leader %s%s"):format(st.name, st.role, st.term,
    st.leader or "unknown", st.leader_address and (" at " .. st.leader_address) or "")
  out[#out + 1] = ("commit %d, applied %d, log %d..%d (%d entries), snapshot %d, configuration at %d (%s)%s")
    :format(st.commit_index, st.applied_index, st.first_index, st.last_index, st.log_entries,
      st.snapshot_index, st.config_index, st.config_committed and "committed" or "not yet committed",
      st.sessions and (", sessions " .. st.sessions) or "")
  out[#out + 1] = ""
  local rows = { { "NAME", "ADDRESS", "TYPE", "ROLE", "MATCH", "LAG" } }
  for _, m in ipairs(st.members or {}) do
    local role = m.leader and "leader" or (m.type == "active" and "follower" or "-")
    if m.self then role = st.role end
    rows[#rows + 1] = { m.name .. (m.self and " *" or ""), m.address, m.type, role,
      m.match_index and tostring(m.match_index) or "-", m.lag and tostring(m.lag) or "-" }
  end
  local widths = {}
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do widths[i] = math.max(widths[i] or 0, #c) end
  end
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do cells[i] = i < #r and pad(c, widths[i]) or c end
    out[#out + 1] = table.concat(cells, "  ")
  end
  if #rows == 1 then out[#out + 1] = "(no members: the server is not part of a cluster yet)" end
  out[#out + 1] = "* this server"
  if st.role ~= "leader" then
    out[#out + 1] = "MATCH and LAG are known on the leader: run ctl status against it"
  end
  return table.concat(out, "\n")
end

-- `ctl certs DIR NAME...`: the CA (unless it exists), one member
-- certificate per name, and client and admin certificates if missing.
local function certs(o)
  local dir = o.words[2]
  if not dir then usage_error("certs: give the directory (and the member names)") end
  local days = 1825
  if o.days then
    days = math.tointeger(tonumber(o.days))
    if not days or days == 0 then usage_error("--days must be a whole number of days, not 0") end
  end
  local function exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
  end
  if o.new_ca or not exists(dir .. "/ca.key") then
    local ok, err = core.tls.make_ca(dir, 3650, o.new_ca)
    if not ok then fail(err) end
    print("wrote " .. dir .. "/ca.crt and ca.key")
  end
  local function make(name, role)
    local ok, err = core.tls.make_cert(dir, name, role, days)
    if not ok then fail(err) end
    print(("wrote %s/%s.crt and %s.key (%s)"):format(dir, name, name, role))
  end
  for i = 3, #o.words do
    local name = o.words[i]
    if name == "client" or name == "admin" then make(name, name) else make(name, "member") end
  end
  for _, name in ipairs({ "client", "admin" }) do
    if not exists(dir .. "/" .. name .. ".crt") then make(name, name) end
  end
  os.exit(0)
end

--- Entry point: `copycat-lua ctl ARGS...`. Exits with the status above.
function ctl.main(...)
  local o = parse({ ... })
  local cmd = o.words[1]
  if cmd == nil then usage_error("expected a command") end
  if cmd == "help" then
    print(usage)
    os.exit(0)
  elseif cmd == "run" then
    local path = o.words[2]
    if not path then usage_error("run: give the script to run") end
    local source = read_file(path, "script")
    local args = {}
    for i = 3, #o.words do args[#args + 1] = o.words[i] end
    local name = path:match("([^/]+)$")
    local res = run(o, source, name, args, function(line)
      io.stdout:write(line, "\n")
      io.stdout:flush()
    end)
    for i = 1, res.n do
      if res[i] ~= nil then print(show(res[i])) end
    end
    os.exit(0)
  elseif cmd == "certs" then
    certs(o)
  elseif cmd == "reload-certs" then
    if #o.words > 1 then usage_error("reload-certs takes no arguments") end
    run(o, "return cluster.reload_certs()", "ctl reload-certs", {}, print)
    print("certificates reloaded")
    os.exit(0)
  elseif cmd == "status" then
    if #o.words > 1 then usage_error("status takes no arguments (only --json)") end
    local res = run(o, "return cluster.status()", "ctl status", {}, print)
    local st = res[1]
    if o.json then
      st.members = json.array(st.members)
      print(json.encode(st))
    else
      print(render(st))
    end
    os.exit(0)
  else
    usage_error("unknown command " .. tostring(cmd))
  end
end

return ctl
