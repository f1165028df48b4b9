-- Benchmark of copycat.codec: encode + decode of a small record with a
-- 256-byte value, against a baseline measured in the same run:
-- string.pack/string.unpack of the same three fields into a new table.
--
--   build/copycat-lua bench/codec.lua
--   lua5.4 -e 'package.cpath="build/?.so;"..package.cpath' bench/codec.lua
--
-- Prints ops/s as the median of 5 runs (CPU time, os.clock) and the ratio
-- codec / baseline. Nothing here asserts a timing.
local ok_core, core = pcall(require, "copycat.core")
local codec = ok_core and core.codec or require("copycat.codec")

local N = tonumber(arg and arg[1]) or 200000
local RUNS = 5

local value = {}
for i = 1, 256 do value[i] = string.char((i * 7) % 256) end
value = table.concat(value)
local record = { key = "k123", value = value, rev = 42 }

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

-- ops/s of fn(n) doing n operations, median of RUNS runs.
local function measure(fn)
  local rates = {}
  fn(N // 10) -- warm up
  for r = 1, RUNS do
    local t0 = os.clock()
    fn(N)
    local dt = os.clock() - t0
    rates[r] = N / dt
  end
  return median(rates)
end

local sink -- keeps results alive so no work is optimized away

local function codec_roundtrip(n)
  local enc, dec = codec.encode, codec.decode
  for _ = 1, n do sink = dec(enc(record)) end
end

local function codec_encode(n)
  local enc = codec.encode
  for _ = 1, n do sink = enc(record) end
end

local encoded = codec.encode(record)
local function codec_decode(n)
  local dec = codec.decode
  for _ = 1, n do sink = dec(encoded) end
end

local function baseline_roundtrip(n)
  local pack, unpack = string.pack, string.unpack
  for _ = 1, n do
    local s = pack("<s4s4j", record.key, record.value, record.rev)
    local k, v, rev = unpack("<s4s4j", s)
    sink = { key = k, value = v, rev = rev }
  end
end

-- Sanity: the benchmarked operation does what it claims.
local back = codec.decode(codec.encode(record))
assert(back.key == record.key and back.value == record.value
  and back.rev == 42 and math.type(back.rev) == "integer")

local rt = measure(codec_roundtrip)
local base = measure(baseline_roundtrip)
local enc = measure(codec_encode)
local dec = measure(codec_decode)
print(string.format("codec bench: record {key, value=<256 bytes>, rev}, "
  .. "%d bytes encoded; %d ops x %d runs, median", #encoded, N, RUNS))
local row = "  %-42s %10.0f ops/s"
print(string.format(row, "codec encode+decode", rt))
print(string.format(row, "baseline string.pack/unpack + new table", base))
print(string.format("  %-42s %10.2f", "ratio codec/baseline", rt / base))
print(string.format(row, "codec encode only", enc))
print(string.format(row, "codec decode only", dec))
assert(sink ~= nil)
