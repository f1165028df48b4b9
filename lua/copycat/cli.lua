--- copycat.cli: the command line of a script (flags, their values, usage
--- errors). The example clients and server use it; so can your own tools.
---
--- local cli = copycat.cli
--- local opts, words = cli.parse(arg, {
---   name = "kv", usage = "usage: ...", required = { "cluster" },
---   flags = cli.client_flags({ consistency = cli.one_of({ "linearizable", "lease" }) }),
--- })
--- local client = copycat.client(cli.client_options(opts))
---
--- Flags are `--NAME VALUE` or `--NAME=VALUE` and may come anywhere among
--- the words; `--` ends them. `-h`/`--help` prints the usage on stdout and
--- exits 0. A bad command line is a usage error: one line "NAME: what is
--- wrong" and the usage on stderr, exit status 2, no traceback.
local cli = {}

---@alias copycat.cli.Check fun(value: string): any, string?
--- A check returns the parsed value, or nil and what the flag expects
--- (e.g. "a whole number of milliseconds >= 1").

---@class copycat.cli.Spec
---@field name string the program's name, first on every error line
---@field usage string printed with --help and after every usage error
---@field flags table<string, copycat.cli.Check> flag name (without "--") to its check
---@field required? string[] flags that must be given

--- The flag value of a switch: a flag without a value (`--empty`).
---@type copycat.cli.Check
function cli.switch()
  return true
end

--- Any non-empty string.
---@type copycat.cli.Check
function cli.string(s)
  if s == "" then return nil, "a non-empty value" end
  return s
end

local function port_ok(p)
  local n = math.tointeger(tonumber(p))
  return n ~= nil and n >= 1 and n <= 65535 and p:match("^%d+$") ~= nil
end

--- HOST:PORT (a name or an IP address, a port from 1 to 65535).
---@type copycat.cli.Check
function cli.address(s)
  local host, port = s:match("^([^%s,]+):(%d+)$")
  if not host or not port_ok(port) then return nil, "HOST:PORT" end
  return s
end

--- A comma-separated list of HOST:PORT; returns the list.
---@type copycat.cli.Check
function cli.addresses(s)
  local out = {}
  for item in (s .. ","):gmatch("([^,]*),") do
    item = item:match("^%s*(.-)%s*$")
    if not cli.address(item) then return nil, "HOST:PORT[,HOST:PORT...]" end
    out[#out + 1] = item
  end
  return out
end

--- A whole number at least min (and at most max, if given).
---@param min integer
---@param max? integer
---@param unit? string what it counts, e.g. "milliseconds"
---@return copycat.cli.Check
function cli.integer(min, max, unit)
  local what = "a whole number" .. (unit and (" of " .. unit) or "") .. " >= " .. min
  if max then what = what .. " and <= " .. max end
  return function(s)
    local n = s:match("^%s*[+-]?%d+%s*$") and math.tointeger(tonumber(s))
    if not n or n < min or (max and n > max) then return nil, what end
    return n
  end
end

--- A whole number of milliseconds, at least min.
---@param min integer
---@return copycat.cli.Check
function cli.ms(min)
  return cli.integer(min, nil, "milliseconds")
end

--- One of the given words.
---@param words string[]
---@return copycat.cli.Check
function cli.one_of(words)
  local set = {}
  for _, w in ipairs(words) do set[w] = true end
  local what = #words == 1 and words[1] or
      (table.concat(words, ", ", 1, #words - 1) .. " or " .. words[#words])
  return function(s)
    if not set[s] then return nil, what end
    return s
  end
end

local function shown(s)
  if s == "" then return "an empty value" end
  return ("%q"):format(s)
end

--- The flags of a cluster client: --cluster (required: list it in the
--- spec's `required`), --cluster-id, --timeout, --session-timeout and
--- --tls-ca, --tls-cert, --tls-key (docs/tls.md), plus the extra ones given.
---@param extra? table<string, copycat.cli.Check>
---@return table<string, copycat.cli.Check>
function cli.client_flags(extra)
  local flags = { cluster = cli.addresses, ["cluster-id"] = cli.string, timeout = cli.ms(1),
    ["session-timeout"] = cli.ms(200), ["tls-ca"] = cli.string, ["tls-cert"] = cli.string,
    ["tls-key"] = cli.string }
  for k, v in pairs(extra or {}) do flags[k] = v end
  return flags
end

--- copycat.client's options from the parsed client flags (timeouts
--- default to 5000 ms).
---@param opts table<string, any> what cli.parse returned
---@return copycat.ClientOptions
function cli.client_options(opts)
  local tls
  if opts["tls-ca"] or opts["tls-cert"] or opts["tls-key"] then
    tls = { ca = opts["tls-ca"], cert = opts["tls-cert"], key = opts["tls-key"] }
  end
  return { cluster = opts.cluster, cluster_id = opts["cluster-id"], timeout = opts.timeout or 5000,
    session_timeout = opts["session-timeout"] or 5000, tls = tls }
end

--- The message for a value that failed its check.
---@param what string the flag ("--timeout") or word ("BY")
---@param value string
---@param expected string
---@return string
function cli.expected(what, value, expected)
  return ("%s expects %s, got %s"):format(what, expected, shown(value))
end

--- Parses args against spec without exiting.
---@param args string[]
---@param spec copycat.cli.Spec
---@return table<string, any>? opts by flag name, the checked values
---@return string[]|string words, or the usage error's message
---@return boolean? help true if -h/--help was given
function cli.try_parse(args, spec)
  local opts, words = {}, {}
  local i, n, flags_done = 1, #args, false
  while i <= n do
    local a = args[i]
    if flags_done or a:sub(1, 2) ~= "--" and a ~= "-h" then
      words[#words + 1] = a
    elseif a == "--" then
      flags_done = true
    elseif a == "-h" or a == "--help" then
      return opts, words, true
    else
      local flag, value = a:match("^%-%-([^=]+)=(.*)$")
      flag = flag or a:sub(3)
      local check = spec.flags[flag]
      if not check then return nil, "unknown option --" .. flag end
      if check == cli.switch then
        if value then return nil, "--" .. flag .. " takes no value" end
        value = ""
      elseif not value then
        if i == n then return nil, "--" .. flag .. " needs a value" end
        i = i + 1
        value = args[i]
      end
      local v, expected = check(value)
      if v == nil then return nil, cli.expected("--" .. flag, value, expected) end
      opts[flag] = v
    end
    i = i + 1
  end
  for _, flag in ipairs(spec.required or {}) do
    if opts[flag] == nil then return nil, "--" .. flag .. " is required" end
  end
  return opts, words
end

--- Writes "NAME: msg" and the usage to stderr and exits 2.
---@param spec copycat.cli.Spec
---@param msg string
function cli.usage_error(spec, msg)
  io.stderr:write(spec.name, ": ", msg, "\n", spec.usage, "\n")
  io.stderr:flush()
  os.exit(2)
end

--- Parses args (a script's `arg`) against spec; a usage error exits 2.
---@param args string[]
---@param spec copycat.cli.Spec
---@return table<string, any> opts by flag name, the checked values
---@return string[] words the other arguments, in order
function cli.parse(args, spec)
  local opts, words, help = cli.try_parse(args, spec)
  if help then
    io.stdout:write(spec.usage, "\n")
    io.stdout:flush()
    os.exit(0)
  end
  if not opts then cli.usage_error(spec, words --[[@as string]]) end
  return opts --[[@as table]], words --[[@as string[] ]]
end

--- Checks a positional word (e.g. a count) like a flag's value; a usage
--- error exits 2.
---@param spec copycat.cli.Spec
---@param what string how the usage names it ("BY", "HOLD_MS")
---@param value string
---@param check copycat.cli.Check
---@return any
function cli.word(spec, what, value, check)
  local v, expected = check(value)
  if v == nil then cli.usage_error(spec, cli.expected(what, value, expected)) end
  return v
end

--- Checks the command word and its number of arguments: commands lists
--- {name, min[, max]} in the order the usage gives them (max defaults to
--- min). Returns the command; a missing or unknown one, or a wrong count,
--- is a usage error (exit 2).
---@param spec copycat.cli.Spec
---@param words string[] the words after the flags; words[1] is the command
---@param commands {[1]: string, [2]: integer, [3]: integer|nil}[]
---@return string
function cli.command(spec, words, commands)
  local cmd, names = words[1], {}
  for i, c in ipairs(commands) do names[i] = c[1] end
  local list = #names > 1 and table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names] or names[1]
  if not cmd then cli.usage_error(spec, "expected a command: " .. list) end
  for _, c in ipairs(commands) do
    if c[1] == cmd then
      local min, max = c[2], c[3] or c[2]
      if #words - 1 < min or #words - 1 > max then
        cli.usage_error(spec, ("%s takes %s argument(s)"):format(cmd, min == max and min or (min .. " to " .. max)))
      end
      return cmd
    end
  end
  cli.usage_error(spec, "unknown command " .. cmd)
end

return cli
