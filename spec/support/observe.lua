--- Strict parsers for what servers expose to operators, for specs:
--- Prometheus text (the metrics page), key=value log lines, JSON log
--- lines; and a raw HTTP client over bash's /dev/tcp.
local proc = require("support.proc")

local M = {}

--- Sends `request` (raw bytes) to 127.0.0.1:port and returns everything
--- the server answered before closing (bounded by `seconds`).
function M.http_raw(port, request, seconds)
  local dir = proc.tmpdir()
  proc.write(dir .. "/req", request)
  local script = ("exec 3<>/dev/tcp/127.0.0.1/%d || exit 1; cat %s >&3; cat <&3"):format(
    port, proc.quote(dir .. "/req"))
  local p = io.popen(("timeout %d bash -c %s 2>/dev/null"):format(seconds or 10, proc.quote(script)))
  local out = p:read("a")
  p:close()
  os.execute("rm -rf " .. proc.quote(dir))
  return out
end

--- GET path; returns status (number or nil), headers (lower-case names)
--- and body.
function M.http_get(port, path)
  local raw = M.http_raw(port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"):format(path))
  return M.parse_response(raw)
end

function M.parse_response(raw)
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  if not head then return nil, {}, raw end
  local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) "))
  local headers = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do headers[k:lower()] = v end
  return status, headers, body
end

-- ---- Prometheus text format 0.0.4 ----

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"

local function parse_value(s)
  if s == "+Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if s == "NaN" then return 0 / 0 end
  if not s:match("^[-+]?%d+%.?%d*[eE]?[-+]?%d*$") then return nil end
  return tonumber(s)
end

-- name{a="x",b="y"} value  ->  name, labels, value (or nil, why)
local function parse_sample(line)
  local name, rest = line:match("^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$")
  if not name then return nil, "bad metric name" end
  local labels = {}
  if rest:sub(1, 1) == "{" then
    local i = 2
    while rest:sub(i, i) ~= "}" do
      local k, after = rest:match("^([a-zA-Z_][a-zA-Z0-9_]*)=\"()", i)
      if not k then return nil, "bad label at " .. i end
      i = after
      local v = {}
      while true do
        local c = rest:sub(i, i)
        if c == "" then return nil, "unterminated label value" end
        if c == "\"" then break end
        if c == "\\" then
          local e = rest:sub(i + 1, i + 1)
          if e == "n" then v[#v + 1] = "\n" elseif e == "\\" or e == "\"" then v[#v + 1] = e
          else return nil, "bad escape" end
          i = i + 2
        else
          v[#v + 1] = c
          i = i + 1
        end
      end
      if labels[k] then return nil, "duplicate label " .. k end
      labels[k] = table.concat(v)
      i = i + 1
      local sep = rest:sub(i, i)
      if sep == "," then i = i + 1 elseif sep ~= "}" then return nil, "expected , or }" end
    end
    rest = rest:sub(i + 1)
  end
  local vs = rest:match("^ (%S+)$")
  if not vs then return nil, "expected one space and a value (no timestamp)" end
  local v = parse_value(vs)
  if not v then return nil, "bad value " .. vs end
  return name, labels, v
end

local function label_key(labels, skip)
  local keys = {}
  for k in pairs(labels) do if k ~= skip then keys[#keys + 1] = k end end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. labels[k] end
  return table.concat(parts, ",")
end

--- Parses a metrics page strictly. Returns a table
---   families[name] = {help=, type=, samples = {{name=, labels=, value=}}}
--- or raises an error naming the offending line. Checks: every line is a
--- HELP, TYPE or sample line; HELP and TYPE come once per family, before
--- its samples; every sample belongs to a declared family (histograms:
--- _bucket, _sum, _count); no series twice; histogram buckets cumulative,
--- ending with le="+Inf" equal to _count, with a _sum.
function M.parse_prometheus(text)
  assert(text:sub(-1) == "\n", "the page must end with a newline")
  local fams, current = {}, nil
  local seen = {}
  local n = 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    local where = ("line %d: %q"):format(n, line)
    local kind, name, rest = line:match("^# (%u+) (%S+) ?(.*)$")
    if kind == "HELP" then
      assert(name:match(NAME), where)
      assert(not fams[name], "family declared twice, " .. where)
      fams[name] = { help = rest, samples = {} }
      current = name
    elseif kind == "TYPE" then
      assert(current == name and fams[name] and not fams[name].type, "TYPE must follow its HELP, " .. where)
      assert(({ counter = 1, gauge = 1, histogram = 1, summary = 1, untyped = 1 })[rest], where)
      fams[name].type = rest
    else
      assert(line:sub(1, 1) ~= "#", "unexpected comment, " .. where)
      local sname, labels, value = parse_sample(line)
      assert(sname, tostring(labels) .. ", " .. where)
      local fam = fams[sname]
      if not fam then
        local base, suffix = sname:match("^(.*)_(bucket)$")
        if not base then base, suffix = sname:match("^(.*)_(sum)$") end
        if not base then base, suffix = sname:match("^(.*)_(count)$") end
        fam = base and fams[base]
        assert(fam and fam.type == "histogram", "sample of no declared family, " .. where)
        if suffix == "bucket" then assert(labels.le, "bucket without le, " .. where) end
      end
      assert(fam.type, "sample before TYPE, " .. where)
      assert(fams[current] == fam, "sample outside its family's block, " .. where)
      local id = sname .. "{" .. label_key(labels) .. "}"
      assert(not seen[id], "series twice, " .. where)
      seen[id] = true
      fam.samples[#fam.samples + 1] = { name = sname, labels = labels, value = value }
    end
  end
  for fname, fam in pairs(fams) do
    assert(fam.type, fname .. " has HELP but no TYPE")
    if fam.type == "counter" then
      for _, s in ipairs(fam.samples) do assert(s.value >= 0, fname .. " counter below 0") end
    end
    if fam.type == "histogram" then
      local series = {}
      for _, s in ipairs(fam.samples) do
        local key = label_key(s.labels, "le")
        local h = series[key] or { buckets = {} }
        series[key] = h
        if s.name == fname .. "_bucket" then
          h.buckets[#h.buckets + 1] = { le = parse_value(s.labels.le), value = s.value }
        elseif s.name == fname .. "_sum" then
          h.sum = s.value
        else
          h.count = s.value
        end
      end
      for key, h in pairs(series) do
        local what = fname .. "{" .. key .. "}"
        assert(#h.buckets > 0 and h.sum and h.count, what .. ": needs buckets, _sum and _count")
        for i = 2, #h.buckets do
          assert(h.buckets[i].le > h.buckets[i - 1].le, what .. ": le must increase")
          assert(h.buckets[i].value >= h.buckets[i - 1].value, what .. ": buckets must be cumulative")
        end
        local last = h.buckets[#h.buckets]
        assert(last.le == math.huge, what .. ": the last bucket must be le=\"+Inf\"")
        assert(last.value == h.count, what .. ": +Inf bucket must equal _count")
      end
    end
  end
  return fams
end

--- The value of one series (labels must match exactly the given ones,
--- others ignored), or nil.
function M.value(fams, name, labels)
  local base = fams[name] and name or name:match("^(.*)_[a-z]+$")
  local fam = fams[base]
  if not fam then return nil end
  for _, s in ipairs(fam.samples) do
    if s.name == name then
      local ok = true
      for k, v in pairs(labels or {}) do if s.labels[k] ~= v then ok = false end end
      if ok then return s.value end
    end
  end
  return nil
end

-- ---- key=value log lines ----

--- Parses one key=value line strictly into an ordered list of {key, value}
--- and a map; nil and a reason if it does not parse.
function M.parse_kv(line)
  local list, map, i = {}, {}, 1
  while i <= #line do
    local k, after = line:match("^([%w_.%-]+)=()", i)
    if not k then return nil, "expected key= at " .. i end
    i = after
    local v
    if line:sub(i, i) == "\"" then
      local buf = {}
      i = i + 1
      while true do
        local c = line:sub(i, i)
        if c == "" then return nil, "unterminated quoted value" end
        if c == "\"" then i = i + 1 break end
        if c == "\\" then
          local e = line:sub(i + 1, i + 1)
          if e == "n" then buf[#buf + 1] = "\n" i = i + 2
          elseif e == "r" then buf[#buf + 1] = "\r" i = i + 2
          elseif e == "t" then buf[#buf + 1] = "\t" i = i + 2
          elseif e == "\"" or e == "\\" then buf[#buf + 1] = e i = i + 2
          elseif e == "x" and line:sub(i + 2, i + 3):match("^%x%x$") then
            buf[#buf + 1] = string.char(tonumber(line:sub(i + 2, i + 3), 16))
            i = i + 4
          else return nil, "bad escape at " .. i end
        else
          buf[#buf + 1] = c
          i = i + 1
        end
      end
      v = table.concat(buf)
    else
      v = line:match("^[^%s\"=]+", i)
      if not v then return nil, "empty unquoted value at " .. i end
      i = i + #v
    end
    list[#list + 1] = { k, v }
    if map[k] ~= nil then return nil, "duplicate key " .. k end
    map[k] = v
    if i <= #line then
      if line:sub(i, i) ~= " " then return nil, "expected a space at " .. i end
      i = i + 1
    end
  end
  return list, map
end

-- ---- JSON (log lines): the strict decoder of support/json.lua ----

local json = require("support.json")
--- Decodes one JSON text (must be the whole string); raises on error.
M.json_decode = json.decode

--- The lines of a log text (without the empty tail).
function M.lines(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

return M
