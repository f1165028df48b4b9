--- copycat.ctl: `copycat-lua ctl`, the operator's command line. Every verb
--- sends a script to a running server's admin channel (copycat.admin),
--- prints the script's output as it arrives, then what it did or why not.
---
--- The verbs are the table `verbs` below, one entry each:
---   verb("name", { args = "ARGS", help = "what it does",
---     options = { ["--flag"] = { key = "flag", value = true } },  -- optional
---     json = true,                                 -- takes --json
---     run = function(o, argv, v) ... end })
---   subcommand("name", "word", { <the same fields> })  -- `ctl name word ...`
--- where o holds the parsed options (o.flag) and argv the words after the
--- verb (after the subcommand for a subcommand); run prints what it did,
--- or exits through fail / usage_error. `ctl help` lists the verbs in the
--- order they are added.
local core = require("copycat.core")
local net = require("copycat.net")
local json = require("copycat.json")
local tls = require("copycat.tls")

local ctl = {}

local verbs, order = {}, {}

-- Adds a verb (see the top of the file).
local function verb(name, v)
  assert(not verbs[name], name)
  v.name = name
  verbs[name] = v
  order[#order + 1] = v
end

-- Adds subcommand `word` to verb `name` (which runs alone without one).
local function subcommand(name, word, v)
  local parent = assert(verbs[name], name)
  parent.sub = parent.sub or {}
  assert(not parent.sub[word], word)
  v.name = name .. " " .. word
  parent.sub[word] = v
end

-- Options every verb takes.
local GLOBAL = {
  ["--socket"] = { key = "socket", value = true },
  ["--server"] = { key = "server", value = true },
  ["--token-file"] = { key = "token_file", value = true },
  ["--timeout"] = { key = "timeout", value = true },
  ["--tls-ca"] = { key = "tls_ca", value = true },
  ["--tls-cert"] = { key = "tls_cert", value = true },
  ["--tls-key"] = { key = "tls_key", value = true },
  ["--json"] = { key = "json" }, -- checked against the verb after parsing
}

local function usage_text()
  local lines = {
    "usage: copycat-lua ctl [--socket PATH | --server HOST:PORT] [--token-file FILE]",
    "                       [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]",
    "                       [--timeout SECONDS] COMMAND",
    "Commands:",
  }
  local function add(words, v)
    local head = "  " .. words .. (v.args and (" " .. v.args) or "")
    local help = {}
    for line in (v.help .. "\n"):gmatch("(.-)\n") do help[#help + 1] = line end
    if #head > 22 then
      lines[#lines + 1] = head
    else
      lines[#lines + 1] = head .. string.rep(" ", 24 - #head) .. table.remove(help, 1)
    end
    for _, h in ipairs(help) do lines[#lines + 1] = string.rep(" ", 24) .. h end
  end
  for _, v in ipairs(order) do
    add(v.name, v)
    local subs = {}
    for word in pairs(v.sub or {}) do subs[#subs + 1] = word end
    table.sort(subs)
    for _, word in ipairs(subs) do add(v.sub[word].name, v.sub[word]) end
  end
  for _, l in ipairs({
    "Options:",
    "  --socket PATH         the server's admin socket; PATH may be the server's data",
    "                        directory (then PATH/admin.sock). Default: the",
    "                        environment variable COPYCAT_ADMIN_SOCKET",
    "  --server HOST:PORT    the server's TCP admin address (needs the token)",
    "  --token-file FILE     file holding the admin token (default: the environment",
    "                        variable COPYCAT_ADMIN_TOKEN)",
    "  --tls-ca FILE         --server speaks TLS: trust servers with a member",
    "                        certificate from this CA (docs/tls.md)",
    "  --tls-cert FILE, --tls-key FILE",
    "                        a client certificate; one with the admin role stands",
    "                        in for the token",
    "  --timeout SECONDS     time limit of the command on the server (default 30)",
    "Any member will do: changes are forwarded to the leader. Each change returns",
    "once it has committed and is in effect on the server asked.",
    "Exit status: 0 on success, 1 if the command failed or the server could not be",
    "reached, 2 for a usage error.",
  }) do lines[#lines + 1] = l end
  return table.concat(lines, "\n")
end

local function fail(msg, code)
  io.stdout:flush()
  io.stderr:write("ctl: ", msg, "\n")
  os.exit(code or 1)
end

local function usage_error(msg)
  fail(msg .. "\n" .. usage_text(), 2)
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

-- The entry for the words given: the verb, or its subcommand.
local function lookup(words)
  local v = verbs[words[1]]
  if v and v.sub and words[2] and v.sub[words[2]] then return v.sub[words[2]], 3 end
  return v, 2
end

local function parse(args)
  local o = { words = {} }
  local i = 1
  while i <= #args do
    local a = args[i]
    local v = lookup(o.words)
    local spec = GLOBAL[a] or (v and v.options and v.options[a])
    if v and v.raw and #o.words >= 2 then -- run: the script's own arguments
      o.words[#o.words + 1] = a
      i = i + 1
    elseif a == "-h" or a == "--help" then
      o.words = { "help" }
      break
    elseif spec and spec.value then
      if args[i + 1] == nil then usage_error(a .. " needs a value") end
      o[spec.key] = args[i + 1]
      i = i + 2
    elseif spec then
      o[spec.key] = true
      i = i + 1
    elseif a:sub(1, 2) == "--" then
      usage_error("unknown option " .. a .. (v and (" for " .. v.name) or ""))
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

-- What to do about a failed command, added to its message.
local function advice(msg)
  msg = msg:gsub("^ctl [%w ]+:%d+: ", "") -- where in the verb's script: not the user's
  if msg:find("no member named", 1, true) then
    return msg .. " (ctl members lists them)"
  elseif msg:find("time limit", 1, true) then
    return msg .. " (the change may still complete: check with ctl members; give more time with --timeout SECONDS)"
  end
  return msg
end

-- Runs source on the server; on_print(line) for each line, returns the
-- result table (with n) or exits with the script's error (prefixed by
-- `prefix`, "error: " for a script of the user's).
local function run(o, source, name, args, on_print, prefix)
  local conn, what = connect(o)
  local timeout_ms = o.timeout_ms or 30000
  conn:send({ "run", source, name, args, { timeout = timeout_ms } })
  while true do
    local msg, err = conn:recv(timeout_ms + 15000)
    if type(msg) ~= "table" then
      fail(("%s closed the connection before the command finished: %s"):format(what, tostring(err)))
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
      fail((prefix or "") .. advice(tostring(msg[2])))
    else
      conn:close()
      fail(("unexpected message from %s: %s"):format(what, tostring(msg[1])))
    end
  end
end

-- Prints a line at once (progress streams as it happens).
local function stream(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

-- Runs one of the verbs' scripts: its output streams, its error becomes
-- ctl's; returns its first result.
local function call(o, source, name, args)
  return run(o, source, "ctl " .. name, args or {}, stream)[1]
end

local function show(v)
  if type(v) == "table" then return json.encode(v) end
  return tostring(v)
end

local function pad(s, n)
  s = tostring(s)
  return s .. string.rep(" ", n - #s)
end

local function seconds(ms)
  return ("%.1f s"):format(ms / 1000)
end

-- A member's ROLE cell: its role, or how long it has been silent.
local function role_cell(m)
  if m.unreachable then
    if m.last_contact_ms then return ("unreachable (last contact %s ago)"):format(seconds(m.last_contact_ms)) end
    return ("unreachable (no contact in %s)"):format(seconds(m.silent_ms or 0))
  end
  return m.role or "-"
end

-- The members table of `ctl status` and `ctl members`.
local function member_rows(members, out)
  local rows = { { "NAME", "ADDRESS", "TYPE", "ROLE", "MATCH", "LAG" } }
  for _, m in ipairs(members or {}) do
    rows[#rows + 1] = { m.name .. (m.self and " *" or ""), m.address, m.type, role_cell(m),
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
end

local function footnote(st, out)
  if st.role ~= "leader" then
    out[#out + 1] = "MATCH, LAG and the contact with members other than the leader are known on the"
    out[#out + 1] = "leader: run ctl status against it"
  end
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
  local d = st.diverged
  if d then
    out[#out + 1] = ("DIVERGED at index %d: hash %s, the majority's (%s) %s; this server applies and serves "
      .. "nothing until rebuilt (docs/operators.md)"):format(d.index, d.hash, d.majority, d.majority_hash)
  end
  out[#out + 1] = ""
  member_rows(st.members, out)
  footnote(st, out)
  return table.concat(out, "\n")
end

-- ---- arguments of the verbs ----

local TYPES = { active = true, passive = true, reserve = true }

local function want(argv, n, v)
  if #argv ~= n then
    usage_error(("%s: expected %s"):format(v.name, v.args or "no arguments"))
  end
end

local function check_name(name, v)
  if name == "" or #name >= 64 or name:find("[%c%s]") then
    usage_error(("%s: '%s' is not a member name (1 to 63 characters, no spaces)"):format(v.name, name))
  end
end

local function check_address(address, v)
  local host, port = address:match("^(.+):(%d+)$")
  port = tonumber(port)
  if not host or host:find("[%s/]") or not port or port < 1 or port > 65535 then
    usage_error(("%s: '%s' is not an address: give HOST:PORT, e.g. 127.0.0.1:5004"):format(v.name, address))
  end
end

-- ---- the verbs ----

verb("status", {
  args = "[--json]",
  help = "the cluster as the server sees it: a table, or JSON;\n" ..
    "a member silent for an election timeout is unreachable",
  json = true,
  run = function(o, argv)
    if #argv > 0 then usage_error("status takes no arguments (only --json)") end
    local st = call(o, "return cluster.status()", "status")
    if o.json then
      st.members = json.array(st.members)
      print(json.encode(st))
    else
      print(render(st))
    end
  end,
})

verb("members", {
  args = "[--json]",
  help = "the members: name, address, type, role, progress",
  json = true,
  run = function(o, argv)
    if #argv > 0 then usage_error("members takes no arguments (only --json)") end
    local st = call(o, "return cluster.status()", "members")
    if o.json then
      print(json.encode(json.array(st.members)))
    else
      local out = {}
      member_rows(st.members, out)
      footnote(st, out)
      print(table.concat(out, "\n"))
    end
  end,
})

verb("add", {
  args = "NAME HOST:PORT [--type passive|reserve]",
  help = "add the running server NAME (e.g. started --empty);\n" ..
    "by default it catches up as passive, showing its\n" ..
    "progress, then becomes active (a voter)",
  options = { ["--type"] = { key = "type", value = true } },
  run = function(o, argv, v)
    want(argv, 2, v)
    local name, address, type_ = argv[1], argv[2], o.type or "active"
    check_name(name, v)
    check_address(address, v)
    if not TYPES[type_] then
      usage_error(("add: --type must be passive or reserve (or active, the default), not '%s'"):format(type_))
    end
    local r = call(o, [[
      local name, address, type_ = ...
      local function find(st)
        for _, m in ipairs(st.members) do if m.name == name then return m end end
      end
      local before = find(cluster.status())
      cluster.add(name, address, type_)
      local st = cluster.status()
      return { was = before and before.type, config_index = st.config_index }
    ]], "add", { name, address, type_ })
    if r.was == type_ then
      print(("%s is already a member (%s); nothing changed"):format(name, type_))
    else
      print(("added %s at %s as %s (configuration %d committed)"):format(name, address, type_, r.config_index))
    end
  end,
})

verb("remove", {
  args = "NAME",
  help = "remove member NAME (stop its server afterwards)",
  run = function(o, argv, v)
    want(argv, 1, v)
    local r = call(o, [[
      local name = ...
      cluster.remove(name)
      return { config_index = cluster.status().config_index }
    ]], "remove", { argv[1] })
    print(("removed %s (configuration %d committed); stop its server now"):format(argv[1], r.config_index))
  end,
})

-- promote and demote: set a member's type, saying what it was.
local function retype(word, target, api_call, what)
  return function(o, argv, v)
    want(argv, 1, v)
    local r = call(o, ([[
      local name = ...
      local function find(st)
        for _, m in ipairs(st.members) do if m.name == name then return m end end
      end
      local m = find(cluster.status())
      local was = m and m.type
      cluster.%s(name)
      return { was = was, config_index = cluster.status().config_index }
    ]]):format(api_call), word, { argv[1] })
    if r.was == target then
      print(("%s is already %s; nothing changed"):format(argv[1], target))
    else
      print(("%s %s: %s -> %s, %s (configuration %d committed)"):format(word == "promote" and "promoted" or "demoted",
        argv[1], r.was, target, what, r.config_index))
    end
  end
end

verb("promote", {
  args = "NAME",
  help = "make member NAME active (a voter); a reserve one\n" ..
    "catches up first",
  run = retype("promote", "active", "promote", "it votes"),
})

verb("demote", {
  args = "NAME",
  help = "make member NAME passive (receives the log, does\n" ..
    "not vote)",
  run = retype("demote", "passive", "demote", "it no longer votes"),
})

verb("transfer", {
  args = "NAME",
  help = "hand leadership to active member NAME; returns\n" ..
    "once it leads and serves",
  run = function(o, argv, v)
    want(argv, 1, v)
    local r = call(o, [[
      local name = ...
      local before = cluster.leader()
      cluster.transfer(name)
      return { before = before, term = cluster.status().term }
    ]], "transfer", { argv[1] })
    if r.before == argv[1] then
      print(("%s already leads (term %d); nothing changed"):format(argv[1], r.term))
    else
      print(("leadership moved from %s to %s (term %d)"):format(r.before or "nobody", argv[1], r.term))
    end
  end,
})

verb("snapshot", {
  help = "snapshot the server's state machine now (each server\n" ..
    "snapshots its own: run it against each to compact\n" ..
    "every log)",
  sub = {}, -- subcommands (`subcommand("snapshot", WORD, {...})`)
  run = function(o, argv)
    if #argv > 0 then
      local words = {}
      for word in pairs(verbs.snapshot.sub) do words[#words + 1] = word end
      table.sort(words)
      usage_error(("snapshot: unknown subcommand '%s'%s"):format(argv[1],
        #words > 0 and (" (it has " .. table.concat(words, ", ") .. ")") or " (it takes none)"))
    end
    local r = call(o, [[
      local before = cluster.status().snapshot_index
      local index = cluster.snapshot()
      return { name = cluster.name(), before = before, index = index }
    ]], "snapshot")
    if r.index == r.before then
      print(("%s: snapshot at index %d is current (nothing applied since)"):format(r.name, r.index))
    else
      print(("%s: took a snapshot at index %d"):format(r.name, r.index))
    end
  end,
})

local function mib(bytes)
  if bytes >= 1 << 30 then return ("%.2f GiB"):format(bytes / (1 << 30)) end
  if bytes >= 1 << 20 then return ("%.1f MiB"):format(bytes / (1 << 20)) end
  if bytes >= 1 << 10 then return ("%.1f KiB"):format(bytes / (1 << 10)) end
  return ("%d bytes"):format(bytes)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The description of a backup file, for `snapshot status` and after
-- `snapshot save`.
local function describe(path, info)
  local out = {}
  local meta = info.info or {}
  out[#out + 1] = ("%s: backup of index %d, term %d"):format(path, info.index, info.term)
  out[#out + 1] = ("  size          %d bytes (%s; state machine data %s in %d chunks)"):format(info.size,
    mib(info.size), mib(info.data_bytes), info.chunks)
  out[#out + 1] = ("  checksum      %s (every chunk, the header and the trailer checked)"):format(info.checksum)
  out[#out + 1] = ("  state machine %s"):format(tostring(meta.state_machine or "?"))
  out[#out + 1] = ("  cluster       %s (taken from member %s%s)"):format(tostring(meta.cluster or "?"),
    tostring(meta.member or "?"), meta.created and (", " .. os.date("!%Y-%m-%d %H:%M:%S UTC", meta.created)) or "")
  local names = {}
  for _, m in ipairs(info.members or {}) do names[#names + 1] = ("%s=%s (%s)"):format(m.name, m.address, m.type) end
  out[#out + 1] = ("  members       %s"):format(#names > 0 and table.concat(names, ", ") or "(none)")
  return table.concat(out, "\n")
end

local function info_json(path, info)
  local members = {}
  for i, m in ipairs(info.members or {}) do members[i] = m end
  local meta = info.info or {}
  return json.encode({ file = path, index = info.index, term = info.term, size = info.size,
    data_bytes = info.data_bytes, chunks = info.chunks, checksum = info.checksum,
    members = json.array(members), state_machine = meta.state_machine, cluster = meta.cluster,
    member = meta.member, created = meta.created, version = meta.version })
end

subcommand("snapshot", "save", {
  args = "FILE",
  help = "write a backup of the server's state to FILE (a new\n" ..
    "file): a fresh snapshot, taken while writes go on,\n" ..
    "streamed and checked; progress on stderr. Restore it\n" ..
    "with copycat-lua restore (docs/operators.md)",
  run = function(o, argv, v)
    want(argv, 1, v)
    local file = argv[1]
    if exists(file) then fail(("%s exists: give a new file name (a backup never overwrites one)"):format(file)) end
    local tmp = file .. ".part"
    local conn, what = connect(o)
    local timeout_ms = o.timeout_ms or 600000
    conn:send({ "snapshot-save", { timeout = timeout_ms } })
    local msg, err = conn:recv(timeout_ms + 15000)
    if type(msg) ~= "table" then fail(("%s closed the connection: %s"):format(what, tostring(err))) end
    if msg[1] == "error" then fail("snapshot save: " .. tostring(msg[2])) end
    if msg[1] ~= "begin" or type(msg[2]) ~= "table" then
      fail(("unexpected answer from %s (is it an older server?): %s"):format(what, tostring(msg[1])))
    end
    local total = math.tointeger(msg[2].size) or 0
    local f, ferr = io.open(tmp, "wb")
    if not f then fail(("cannot write %s: %s"):format(tmp, ferr)) end
    local function abort(why)
      f:close()
      os.remove(tmp)
      fail("snapshot save: " .. why .. " (nothing was written to " .. file .. ")")
    end
    local got, t0 = 0, core.now()
    local shown = t0
    while true do
      msg, err = conn:recv(timeout_ms + 15000)
      if type(msg) ~= "table" then abort(("%s closed the connection: %s"):format(what, tostring(err))) end
      if msg[1] == "data" and type(msg[2]) == "string" then
        local ok, werr = f:write(msg[2])
        if not ok then abort(("cannot write %s: %s"):format(tmp, tostring(werr))) end
        got = got + #msg[2]
        local now = core.now()
        if now - shown >= 1000 then
          shown = now
          io.stderr:write(("snapshot save: %s of %s (%d%%)\n"):format(mib(got), mib(total),
            total > 0 and got * 100 // total or 100))
        end
      elseif msg[1] == "done" then
        break
      elseif msg[1] == "error" then
        abort(tostring(msg[2]))
      else
        abort(("unexpected message from %s: %s"):format(what, tostring(msg[1])))
      end
    end
    conn:close()
    local ok, werr = f:close()
    if not ok then abort(("cannot write %s: %s"):format(tmp, tostring(werr))) end
    local info, rerr = core.backup.read(tmp)
    if not info then
      os.remove(tmp)
      fail("snapshot save: the received backup does not check: " .. tostring(rerr))
    end
    local fok, ferr2 = core.backup.finish(tmp, file)
    if not fok then
      os.remove(tmp)
      fail("snapshot save: " .. tostring(ferr2))
    end
    print(("saved %s: index %d, term %d, %s in %.1f s"):format(file, info.index, info.term, mib(info.size),
      (core.now() - t0) / 1000))
    print(describe(file, info))
  end,
})

subcommand("snapshot", "status", {
  args = "FILE [--json]",
  help = "check a backup file and describe it: index, term,\n" ..
    "members, size, checksum, state machine (needs no\n" ..
    "server); exit status 1 if it is damaged",
  json = true,
  run = function(o, argv, v)
    want(argv, 1, v)
    local info, err = core.backup.read(argv[1])
    if not info then fail(err) end
    if o.json then print(info_json(argv[1], info)) else print(describe(argv[1], info)) end
  end,
})

verb("run", {
  args = "SCRIPT [ARGS...]",
  help = "run an operator script on the server (see scripts/\n" ..
    "and docs/operators.md); prints its output, then its\n" ..
    "result",
  raw = true,
  run = function(o, argv)
    local path = argv[1]
    if not path then usage_error("run: give the script to run") end
    local source = read_file(path, "script")
    local args = {}
    for i = 2, #argv do args[#args + 1] = argv[i] end
    local name = path:match("([^/]+)$")
    local res = run(o, source, name, args, stream, "error: ")
    for i = 1, res.n do
      if res[i] ~= nil then print(show(res[i])) end
    end
  end,
})

verb("reload-certs", {
  help = "make the server read its TLS certificate, key and CA\n" ..
    "files again (new connections use them; docs/tls.md)",
  run = function(o, argv, v)
    want(argv, 0, v)
    call(o, "return cluster.reload_certs()", "reload-certs")
    print("certificates reloaded")
  end,
})

-- Writes the CA (unless it exists), a member certificate per name, and
-- client and admin certificates if missing. Needs no server.
verb("certs", {
  args = "DIR NAME... [--days N] [--new-ca]",
  help = "write a CA (DIR/ca.crt, ca.key; kept if it exists,\n" ..
    "unless --new-ca) and a member certificate and key for\n" ..
    "each NAME (DIR/NAME.crt, NAME.key), plus DIR/client.*\n" ..
    "and DIR/admin.* if missing; keys are mode 0600.\n" ..
    "--days: validity of the certificates written (default\n" ..
    "1825; negative: already expired, for tests). The CA is\n" ..
    "valid for 3650 days. See docs/tls.md",
  options = { ["--days"] = { key = "days", value = true }, ["--new-ca"] = { key = "new_ca" } },
  run = function(o, argv)
    local dir = argv[1]
    if not dir then usage_error("certs: give the directory (and the member names)") end
    local days = 1825
    if o.days then
      days = math.tointeger(tonumber(o.days))
      if not days or days == 0 then usage_error("--days must be a whole number of days, not 0") end
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
    for i = 2, #argv do
      local name = argv[i]
      if name == "client" or name == "admin" then make(name, name) else make(name, "member") end
    end
    for _, name in ipairs({ "client", "admin" }) do
      if not exists(dir .. "/" .. name .. ".crt") then make(name, name) end
    end
  end,
})

--- Adds a verb, or a subcommand of one (see the top of the file): the
--- table is open, so a tool that wraps ctl.main can add its own.
---@type fun(name: string, v: table)
ctl.verb = verb
---@type fun(name: string, word: string, v: table)
ctl.subcommand = subcommand

verb("help", {
  help = "this text",
  run = function()
    print(usage_text())
  end,
})

--- Entry point: `copycat-lua ctl ARGS...`. Exits with the status above.
function ctl.main(...)
  local o = parse({ ... })
  if o.words[1] == nil then usage_error("expected a command") end
  local v, first = lookup(o.words)
  if not v then usage_error("unknown command " .. tostring(o.words[1])) end
  if o.json and not v.json then usage_error(v.name .. " does not take --json") end
  local argv = table.move(o.words, first, #o.words, 1, {})
  v.run(o, argv, v)
  os.exit(0)
end

return ctl
