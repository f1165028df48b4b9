-- Seeded generator of random Lua values for codec round-trip specs, and a
-- deep comparison that also checks math.type and codec markers.
--
-- gen.new(seed, codec) returns an object whose :value(depth) returns a random
-- value: nil (only inside arrays), booleans, integers (small, boundary and
-- full-range), floats (fractions, huge, tiny, +-inf, -0.0, NaN), strings
-- (empty, ASCII, arbitrary bytes, long), and tables (arrays, arrays with
-- holes marked with codec.array, maps with mixed key types, maps marked with
-- codec.map, empty tables). The sequence depends only on the seed.
local gen = {}

-- A small xorshift64* generator, so the sequence does not depend on Lua's
-- math.random implementation.
local Rng = {}
Rng.__index = Rng

local function rng(seed)
  local s = seed ~ 0x9E3779B97F4A7C15
  if s == 0 then s = 1 end
  return setmetatable({ s = s }, Rng)
end

function Rng:next()
  local x = self.s
  x = x ~ (x >> 12)
  x = x ~ (x << 25)
  x = x ~ (x >> 27)
  self.s = x
  return x * 0x2545F4914F6CDD1D
end

-- Uniform-ish integer in [lo, hi] (hi - lo < 2^62).
function Rng:int(lo, hi)
  return lo + ((self:next() >> 2) % (hi - lo + 1))
end

function Rng:pick(list)
  return list[self:int(1, #list)]
end

local special_ints = {
  0, 1, -1, 127, 128, 255, 256, -32, -33, -128, -129, 32767, 32768, 65535,
  65536, -32768, -32769, 2147483647, 2147483648, 4294967295, 4294967296,
  -2147483648, -2147483649, math.maxinteger, math.mininteger,
  math.maxinteger - 1, math.mininteger + 1,
}

local special_floats = {
  0.0, -0.0, 1.0, -1.0, 0.5, 1 / 0, -1 / 0, 0 / 0, 2.0 ^ 63, -(2.0 ^ 63),
  2.0 ^ 53, 1e308, 4.9e-324, -4.9e-324, 3.14159, 1e-300, 123456789.0,
}

local function rand_string(r)
  local kind = r:int(1, 6)
  if kind == 1 then return "" end
  local n = kind == 6 and r:int(200, 3000) or r:int(1, 40)
  local t = {}
  for i = 1, n do
    if kind == 2 then
      t[i] = string.char(r:int(97, 122)) -- ASCII letters
    else
      t[i] = string.char(r:int(0, 255))
    end
  end
  return table.concat(t)
end

function gen.new(seed, codec)
  local self = { r = rng(seed), codec = codec }

  function self.scalar(_, allow_nil)
    local r = self.r
    local k = r:int(allow_nil and 0 or 1, 8)
    if k == 0 then return nil end
    if k == 1 then return r:int(0, 1) == 1 end
    if k == 2 then return r:pick(special_ints) end
    if k == 3 then return r:int(-1000, 1000) end
    if k == 4 then return r:next() end -- full 64-bit range
    if k == 5 then return r:pick(special_floats) end
    if k == 6 then return (r:int(-1000000, 1000000)) / 64.0 + 0.25 end
    return rand_string(r)
  end

  function self.key(_)
    local r = self.r
    local k = r:int(1, 6)
    if k == 1 then return r:int(0, 1) == 1 end
    if k == 2 then return r:int(-5, 20) end
    if k == 3 then return r:pick(special_ints) end
    if k == 4 then
      local f = r:pick(special_floats)
      if f ~= f then f = 0.5 end -- NaN cannot be a key
      return f
    end
    return rand_string(r)
  end

  function self.value(_, depth)
    local r = self.r
    if depth <= 0 or r:int(1, 3) > 1 then return self:scalar(false) end
    local shape = r:int(1, 5)
    local n = r:int(0, 8)
    if shape == 1 then -- plain array
      local t = {}
      for i = 1, n do t[i] = self:value(depth - 1) end
      return t
    elseif shape == 2 then -- marked array, possibly with holes or empty
      local t = codec.array()
      for i = 1, n do
        if r:int(1, 4) > 1 then t[i] = self:value(depth - 1) end
      end
      return t
    elseif shape == 3 then -- map marked explicitly (keys may be 1..n)
      local t = codec.map()
      for i = 1, n do t[i] = self:value(depth - 1) end
      return t
    else -- map with mixed keys
      local t = {}
      for _ = 1, n do
        local key = self:key()
        t[key] = self:value(depth - 1)
      end
      return t
    end
  end

  return self
end

-- Is table t encoded as an array by the codec's rule?
local function encodes_as_array(codec, t)
  if codec.is_array(t) then return true end
  if codec.is_map(t) then return false end
  local n, max = 0, 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
    if k > max then max = k end
  end
  return n > 0 and max == n
end

-- Deep comparison: same types, same math.type, bitwise-equal floats
-- (NaN equals NaN, -0.0 differs from 0.0), same array/map classification.
-- Returns true, or false and a path describing the first difference.
function gen.same(codec, a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then
    return false, path .. ": type " .. type(a) .. " vs " .. type(b)
  end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then
      return false, path .. ": " .. math.type(a) .. " vs " .. math.type(b)
    end
    if math.type(a) == "float" then
      if string.pack("<d", a) ~= string.pack("<d", b) then
        return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
      end
      return true
    end
  end
  if type(a) ~= "table" then
    if a ~= b then
      return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
    end
    return true
  end
  if encodes_as_array(codec, a) ~= encodes_as_array(codec, b) then
    return false, path .. ": array/map classification differs"
  end
  for k, v in pairs(a) do
    local ok, why = gen.same(codec, v, rawget(b, k), path .. "[" .. tostring(k) .. "]")
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if rawget(a, k) == nil then
      return false, path .. "[" .. tostring(k) .. "]: extra key after decode"
    end
  end
  return true
end

return gen
