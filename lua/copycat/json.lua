--- copycat.json: a small JSON encoder, for machine-readable output
--- (`copycat-lua ctl status --json`).
---
--- local json = require("copycat.json")
--- print(json.encode({ role = "leader", term = 3, members = { "n1", "n2" } }))
---
--- Tables whose keys are exactly 1..n encode as arrays (an empty table as
--- an empty object, unless marked with json.array); other tables encode as
--- objects with their keys sorted, so the output is stable. Keys become
--- strings. NaN and infinities, which JSON cannot express, encode as null;
--- functions, threads and userdata, and cycles, are errors.
local json = {}

local ARRAY = setmetatable({}, { __name = "copycat.json.array" })

--- Marks t to encode as an array even when it is empty; returns t.
---@param t table|nil
---@return table
function json.array(t)
  return setmetatable(t or {}, ARRAY)
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function is_array(t)
  if getmetatable(t) == ARRAY then return true end
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  return n > 0 and n == #t
end

local encode

local function key_string(k)
  local tk = type(k)
  if tk == "string" then return k end
  if tk == "number" or tk == "boolean" then return tostring(k) end
  error(("json: a table key of type %s cannot be encoded"):format(tk), 0)
end

local function encode_table(t, out, seen)
  if seen[t] then error("json: a table refers to itself", 0) end
  seen[t] = true
  if is_array(t) then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then out[#out + 1] = "," end
      encode(t[i], out, seen)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = key_string(k) end
    table.sort(keys)
    local by_string = {}
    for k, v in pairs(t) do by_string[key_string(k)] = v end
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = quote(k)
      out[#out + 1] = ":"
      encode(by_string[k], out, seen)
    end
    out[#out + 1] = "}"
  end
  seen[t] = nil
end

encode = function(v, out, seen)
  local tv = type(v)
  if v == nil then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif math.type(v) == "integer" then
      out[#out + 1] = ("%d"):format(v)
    else
      out[#out + 1] = ("%.17g"):format(v)
    end
  elseif tv == "string" then
    out[#out + 1] = quote(v)
  elseif tv == "table" then
    encode_table(v, out, seen)
  else
    error(("json: a %s value cannot be encoded"):format(tv), 0)
  end
end

--- Encodes v as JSON text. Raises an error naming what cannot be encoded.
---@param v any
---@return string
function json.encode(v)
  local out = {}
  encode(v, out, {})
  return table.concat(out)
end

return json
