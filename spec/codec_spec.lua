-- Specs for copycat.codec: msgpack encoding/decoding of Lua values.
local ok_core, core = pcall(require, "copycat.core")
local codec = ok_core and core.codec or require("copycat.codec")
local gen = require("support.gen")

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function unhex(h)
  return (h:gsub("%s", ""):gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

local function roundtrip(v)
  return codec.decode(codec.encode(v))
end

-- The error message of f(...), which must fail.
local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error, got success")
  return tostring(err)
end

local function assert_same(a, b)
  local ok, why = gen.same(codec, a, b)
  assert(ok, why)
end

describe("copycat.codec", function()
  describe("scalars", function()
    it("round-trips nil and booleans with their exact encodings", function()
      assert.equal("c0", hex(codec.encode(nil)))
      assert.equal("c2", hex(codec.encode(false)))
      assert.equal("c3", hex(codec.encode(true)))
      assert.is_nil(roundtrip(nil))
      assert.is_true(roundtrip(true))
      assert.is_false(roundtrip(false))
    end)

    it("requires an argument", function()
      assert.matches("value expected", err_of(codec.encode))
    end)

    it("writes integers in the smallest msgpack form", function()
      local cases = {
        { 0, "00" }, { 127, "7f" }, { 128, "cc80" }, { 255, "ccff" },
        { 256, "cd0100" }, { 65535, "cdffff" }, { 65536, "ce00010000" },
        { 4294967295, "ceffffffff" }, { 4294967296, "cf0000000100000000" },
        { -1, "ff" }, { -32, "e0" }, { -33, "d0df" }, { -128, "d080" },
        { -129, "d1ff7f" }, { -32768, "d18000" }, { -32769, "d2ffff7fff" },
        { -2147483648, "d280000000" }, { -2147483649, "d3ffffffff7fffffff" },
        { math.maxinteger, "cf7fffffffffffffff" },
        { math.mininteger, "d38000000000000000" },
      }
      for _, c in ipairs(cases) do
        assert.equal(c[2], hex(codec.encode(c[1])), "encoding " .. c[1])
        local back = codec.decode(unhex(c[2]))
        assert.equal("integer", math.type(back))
        assert.equal(c[1], back)
      end
    end)

    it("keeps integers and floats distinct", function()
      assert.equal("integer", math.type(roundtrip(1)))
      assert.equal("float", math.type(roundtrip(1.0)))
      assert.equal("cb3ff0000000000000", hex(codec.encode(1.0)))
      assert.equal("float", math.type(roundtrip(0.0)))
      assert.equal("float", math.type(roundtrip(2.0 ^ 63)))
      assert.equal(2.0 ^ 63, roundtrip(2.0 ^ 63))
    end)

    it("writes floats as float64, bit for bit", function()
      local values = { 0.5, -0.0, 0.0, 1 / 0, -1 / 0, 0 / 0, -(0 / 0), 1e308,
        4.9e-324, math.pi, -123.456, 2.0 ^ 53 + 2 }
      for _, f in ipairs(values) do
        local s = codec.encode(f)
        assert.equal(9, #s)
        assert.equal(0xcb, s:byte(1))
        assert.equal(string.pack(">d", f), s:sub(2))
        local back = codec.decode(s)
        assert.equal("float", math.type(back))
        assert.equal(string.pack("<d", f), string.pack("<d", back))
      end
      assert.equal(-1 / 0, 1 / roundtrip(-0.0)) -- the sign of zero survives
      local nan = roundtrip(0 / 0)
      assert.is_true(nan ~= nan)
    end)

    it("decodes float32 exactly", function()
      local v = codec.decode(unhex("ca3fc00000"))
      assert.equal("float", math.type(v))
      assert.equal(1.5, v)
      local inf = codec.decode(unhex("ca7f800000"))
      assert.equal(1 / 0, inf)
    end)

    it("decodes every integer form, including non-minimal ones", function()
      assert.equal(5, codec.decode(unhex("cc05")))
      assert.equal(5, codec.decode(unhex("cd0005")))
      assert.equal(5, codec.decode(unhex("ce00000005")))
      assert.equal(5, codec.decode(unhex("cf0000000000000005")))
      assert.equal(-5, codec.decode(unhex("d0fb")))
      assert.equal(-5, codec.decode(unhex("d1fffb")))
      assert.equal(-5, codec.decode(unhex("d2fffffffb")))
      assert.equal(-5, codec.decode(unhex("d3fffffffffffffffb")))
      assert.equal(127, codec.decode(unhex("d07f")))
    end)

    it("rejects uint64 values above math.maxinteger", function()
      local e = err_of(codec.decode, unhex("cf8000000000000000"))
      assert.matches("integer 9223372036854775808 at offset 0 is above math.maxinteger", e, 1, true)
      assert.matches("above math.maxinteger", err_of(codec.decode, unhex("cfffffffffffffffff")))
    end)
  end)

  describe("strings", function()
    it("are binary-safe: embedded zeros and all 256 byte values", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      all = table.concat(all)
      assert.equal(all, roundtrip(all))
      assert.equal("a\0b\0", roundtrip("a\0b\0"))
      assert.equal("", roundtrip(""))
      assert.equal("a0", hex(codec.encode("")))
    end)

    it("use str for UTF-8 and bin for other bytes", function()
      assert.equal("a3616263", hex(codec.encode("abc")))
      assert.equal("a3e282ac", hex(codec.encode("\u{20ac}")))
      assert.equal("c401ff", hex(codec.encode("\xff")))
      assert.equal("c402c080", hex(codec.encode("\xc0\x80"))) -- overlong
      assert.equal("c403eda080", hex(codec.encode("\xed\xa0\x80"))) -- surrogate
      assert.equal("c404f4908080", hex(codec.encode("\xf4\x90\x80\x80"))) -- > U+10FFFF
      assert.equal("c402e282", hex(codec.encode("\xe2\x82"))) -- truncated sequence
      assert.equal("\xff", codec.decode(unhex("c401ff")))
      assert.equal("abc", codec.decode(unhex("c403616263")))
    end)

    it("use the length forms at their boundaries", function()
      local forms = { { 31, "bf" }, { 32, "d920" }, { 255, "d9ff" },
        { 256, "da0100" }, { 65535, "daffff" }, { 65536, "db00010000" } }
      for _, f in ipairs(forms) do
        local s = ("x"):rep(f[1])
        local e = codec.encode(s)
        assert.equal(f[2], hex(e:sub(1, #f[2] // 2)))
        assert.equal(s, codec.decode(e))
      end
      local bin = ("\xff"):rep(70000)
      assert.equal("c600011170", hex(codec.encode(bin):sub(1, 5)))
      assert.equal(bin, roundtrip(bin))
    end)

    it("round-trip long strings", function()
      local s = {}
      for i = 1, 300000 do s[i] = string.char(i % 256) end
      s = table.concat(s)
      assert.equal(s, roundtrip(s))
    end)
  end)

  describe("tables", function()
    it("encodes keys exactly 1..n as an array", function()
      assert.equal("93010203", hex(codec.encode({ 1, 2, 3 })))
      assert.same({ 1, 2, 3 }, roundtrip({ 1, 2, 3 }))
      assert.is_false(codec.is_array(roundtrip({ 1, 2, 3 })))
    end)

    it("encodes an unmarked empty table as an empty map", function()
      assert.equal("80", hex(codec.encode({})))
      local t = codec.decode(unhex("80"))
      assert.same({}, t)
      assert.is_nil(getmetatable(t))
    end)

    it("encodes codec.array() as an empty array and decodes it marked", function()
      assert.equal("90", hex(codec.encode(codec.array())))
      local t = codec.decode(unhex("90"))
      assert.same({}, t)
      assert.is_true(codec.is_array(t))
      assert.equal("90", hex(codec.encode(t)))
    end)

    it("treats unmarked tables with holes as maps", function()
      local t = { 1, nil, 3 }
      assert.equal("820101" .. "0303", hex(codec.encode(t)))
      local back = roundtrip(t)
      assert.same({ [1] = 1, [3] = 3 }, back)
      assert.is_nil(getmetatable(back))
    end)

    it("encodes marked arrays with holes as nil and restores them", function()
      local t = codec.array({ 1, nil, 3 })
      t[5] = 5
      assert.equal("9501c003c005", hex(codec.encode(t)))
      local back = roundtrip(t)
      assert.is_true(codec.is_array(back))
      assert.equal(1, back[1]); assert.is_nil(back[2]); assert.equal(5, back[5])
      assert.equal(codec.encode(t), codec.encode(back))
    end)

    it("drops trailing nils of a decoded array (Lua cannot hold them)", function()
      local back = codec.decode(unhex("9201c0"))
      assert.is_true(codec.is_array(back))
      assert.equal("9101", hex(codec.encode(back)))
    end)

    it("encodes codec.map tables as maps even with keys 1..n", function()
      local t = codec.map({ "a", "b" })
      assert.equal("8201a16102a162", hex(codec.encode(t)))
      local back = codec.decode(codec.encode(t))
      assert.is_true(codec.is_map(back))
      assert.same({ "a", "b" }, back)
      assert.equal(codec.encode(t), codec.encode(back))
    end)

    it("decodes a foreign map with keys 1..n marked, so it re-encodes as a map", function()
      local bytes = unhex("82 01 a161 02 a162")
      assert.equal(hex(bytes), hex(codec.encode(codec.decode(bytes))))
    end)

    it("normalizes integral float keys to integers, like Lua does", function()
      local t = codec.decode(unhex("81 cb4000000000000000 a178")) -- {[2.0]="x"}
      assert.equal("x", t[2])
      assert.equal("integer", math.type(next(t)))
    end)

    it("drops map entries whose value is nil", function()
      local t = codec.decode(unhex("82 a161 c0 a162 01"))
      assert.same({ b = 1 }, t)
    end)

    it("round-trips nested tables", function()
      local v = { a = { b = { c = { 1, 2, { d = "e" } } } }, [true] = false,
        [-1] = 1.5, [0.25] = "q", list = codec.array() }
      assert_same(v, roundtrip(v))
    end)

    it("allows shared (non-cyclic) references, encoding them twice", function()
      local shared = { x = 1 }
      local v = { a = shared, b = shared }
      assert.same({ a = { x = 1 }, b = { x = 1 } }, roundtrip(v))
    end)

    it("ignores other metatables and uses raw access", function()
      local t = setmetatable({ a = 1 }, { __index = function() return 99 end,
        __pairs = function() error("must not be called") end })
      assert.same({ a = 1 }, roundtrip(t))
    end)

    it("round-trips large arrays and maps", function()
      local arr, map = {}, {}
      for i = 1, 100000 do
        arr[i] = i * 3
        map["k" .. i] = i
      end
      local s = codec.encode(arr)
      assert.equal("dd000186a0", hex(s:sub(1, 5)))
      assert.same(arr, codec.decode(s))
      s = codec.encode(map)
      assert.equal("df000186a0", hex(s:sub(1, 5)))
      assert.same(map, codec.decode(s))
      -- keys come out sorted bytewise: "k1" < "k10" < "k100" ...
      assert.equal("a26b31" .. "01" .. "a36b3130" .. "0a", hex(s:sub(6, 14)))
    end)

    it("accepts MAX_DEPTH levels of nesting", function()
      local t = "leaf"
      for _ = 1, codec.MAX_DEPTH do t = { t } end
      local back = roundtrip(t)
      for _ = 1, codec.MAX_DEPTH do back = back[1] end
      assert.equal("leaf", back)
    end)
  end)

  describe("markers", function()
    it("array/map mark a given or new table and return it", function()
      local t = {}
      assert.equal(t, codec.array(t))
      assert.is_true(codec.is_array(t))
      assert.is_false(codec.is_map(t))
      assert.equal(t, codec.map(t))
      assert.is_true(codec.is_map(t))
      assert.is_true(codec.is_map(codec.map()))
      assert.is_false(codec.is_array({}))
      assert.is_false(codec.is_array("x"))
    end)

    it("share one metatable for all marked tables", function()
      assert.equal(getmetatable(codec.array()), getmetatable(codec.array()))
      assert.equal(getmetatable(codec.array()), getmetatable(codec.decode(unhex("90"))))
    end)

    it("reject non-tables", function()
      assert.matches("table expected", err_of(codec.array, 5))
    end)
  end)

  describe("canonical encoding", function()
    it("orders keys: booleans, then numbers numerically, then strings bytewise", function()
      local t = { b = 1, a = 1, ab = 1, ["a\0"] = 1, [2] = 1, [1.5] = 1, [-7] = 1,
        [true] = 1, [false] = 1, [math.maxinteger] = 1, [2.0 ^ 63] = 1,
        [-1 / 0] = 1 }
      local expect = "8c" .. "c201" .. "c301"
        .. "cbfff0000000000000" .. "01" -- -inf
        .. "f901" -- -7
        .. "cb3ff8000000000000" .. "01" -- 1.5
        .. "0201"
        .. "cf7fffffffffffffff" .. "01" -- maxinteger
        .. "cb43e0000000000000" .. "01" -- 2^63 (float, above maxinteger)
        .. "a16101" .. "a2610001" .. "a2616201" .. "a16201"
      assert.equal(expect, hex(codec.encode(t)))
    end)

    it("gives identical bytes for the same table built in different orders", function()
      local keys = {}
      for i = 1, 200 do keys[#keys + 1] = "k" .. i end
      for i = -20, 40 do keys[#keys + 1] = i end
      for i = 1, 20 do keys[#keys + 1] = i + 0.5 end
      keys[#keys + 1] = true
      keys[#keys + 1] = false
      local function build(order, churn)
        local t = {}
        if churn then -- grow and shrink the hash part first
          for i = 1, 1000 do t["tmp" .. i] = i end
          for i = 1, 1000 do t["tmp" .. i] = nil end
        end
        for _, i in ipairs(order) do t[keys[i]] = tostring(keys[i]) end
        return t
      end
      local order = {}
      for i = 1, #keys do order[i] = i end
      local reference = codec.encode(build(order))
      local r = gen.new(7, codec)
      for round = 1, 20 do
        for i = #order, 2, -1 do -- Fisher-Yates with the seeded generator
          local j = r.r:int(1, i)
          order[i], order[j] = order[j], order[i]
        end
        assert.equal(reference, codec.encode(build(order, round % 2 == 0)),
          "insertion order round " .. round)
      end
    end)
  end)

  describe("random round trips", function()
    it("round-trips thousands of seeded random values exactly", function()
      local seed = tonumber(os.getenv("CODEC_SEED") or "") or 20261126
      local g = gen.new(seed, codec)
      for case = 1, 3000 do
        local v = g:value(4)
        local s = codec.encode(v)
        local back = codec.decode(s)
        local ok, why = gen.same(codec, v, back)
        if not ok then
          error(string.format("seed %d case %d: %s", seed, case, why))
        end
        if codec.encode(back) ~= s then
          error(string.format("seed %d case %d: re-encoding differs", seed, case))
        end
      end
    end)
  end)

  describe("decode rejects bad input", function()
    local sample = codec.encode({ key = "k123", value = ("v"):rep(40),
      rev = 42, list = { 1, 2.5, true, false, math.mininteger },
      nested = { a = { b = "c" } }, bin = "\0\255" })

    it("rejects arguments that are not bytes", function()
      local want = "copycat.codec.decode: expected bytes %(a string or a codec view%), got "
      assert.matches(want .. "nil", err_of(codec.decode, nil))
      assert.matches(want .. "number", err_of(codec.decode, 123))
      assert.matches(want .. "table", err_of(codec.decode, {}))
    end)

    it("rejects the input truncated at every byte offset", function()
      assert.not_nil(codec.decode(sample))
      for i = 0, #sample - 1 do
        local e = err_of(codec.decode, sample:sub(1, i))
        assert.matches("^copycat.codec.decode: truncated input", e)
      end
    end)

    it("rejects trailing bytes", function()
      local e = err_of(codec.decode, sample .. "\0")
      assert.matches("trailing bytes: the value ends at offset " .. #sample, e, 1, true)
      assert.matches("trailing bytes", err_of(codec.decode, "\xc0\xc0"))
    end)

    it("rejects huge declared lengths before allocating", function()
      local cases = {
        { "dbffffffff", "truncated input: str at offset 0 needs 4294967295 more bytes" },
        { "c6ffffffff", "truncated input: bin at offset 0 needs 4294967295 more bytes" },
        { "ddffffffff", "truncated input: array of 4294967295 elements declared at offset 0" },
        { "dfffffffff", "truncated input: map of 4294967295 pairs declared at offset 0" },
        { "dcffff", "array of 65535 elements declared" },
        { "deffff00", "map of 65535 pairs declared" },
        { "9f01", "array of 15 elements declared" },
        { "9200" .. "dd7fffffff", "array of 2147483647 elements declared at offset 2" },
        { "91dd7fffffff", "array of 2147483647 elements declared at offset 1" },
      }
      for _, c in ipairs(cases) do
        local e = err_of(codec.decode, unhex(c[1]))
        assert.matches(c[2], e, 1, true)
      end
    end)

    it("rejects a depth bomb", function()
      local e = err_of(codec.decode, ("\x91"):rep(1000000) .. "\0")
      assert.matches("nesting deeper than " .. codec.MAX_DEPTH .. " tables at offset "
        .. codec.MAX_DEPTH, e, 1, true)
      e = err_of(codec.decode, ("\x81\x00"):rep(100000) .. "\0")
      assert.matches("nesting deeper than", e)
      local ok = ("\x91"):rep(codec.MAX_DEPTH) .. "\0"
      assert.not_nil(codec.decode(ok))
    end)

    it("rejects the never-used byte 0xc1", function()
      assert.matches("invalid type byte 0xc1 at offset 0", err_of(codec.decode, "\xc1"))
      assert.matches("invalid type byte 0xc1 at offset 3", err_of(codec.decode, unhex("930102c1")))
    end)

    it("rejects ext types", function()
      for _, h in ipairs({ "d40100", "d5010000", "d601" .. ("00"):rep(4),
        "d701" .. ("00"):rep(8), "d801" .. ("00"):rep(16), "c7010100",
        "c800010100", "c90000000101", "d4ff00" }) do
        local e = err_of(codec.decode, unhex(h))
        assert.matches("ext type values are not supported", e)
      end
    end)

    it("rejects map keys that Lua cannot hold", function()
      assert.matches("map key at offset 1 is nil", err_of(codec.decode, unhex("81c001")))
      assert.matches("map key at offset 1 is an array or map",
        err_of(codec.decode, unhex("819001")))
      assert.matches("map key at offset 1 is an array or map",
        err_of(codec.decode, unhex("818001")))
      assert.matches("map key at offset 1 is NaN",
        err_of(codec.decode, unhex("81cb7ff8000000000000" .. "01")))
      assert.matches("map key at offset 1 is NaN",
        err_of(codec.decode, unhex("81ca7fc00000" .. "01")))
    end)

    it("rejects duplicate map keys", function()
      assert.matches("duplicate map key at offset 4",
        err_of(codec.decode, unhex("82 a161 01 a161 02")))
      -- 2 and 2.0 are the same Lua key
      assert.matches("duplicate map key",
        err_of(codec.decode, unhex("82 02 01 cb4000000000000000 02")))
    end)

    it("survives random corruption with a value or a clear error", function()
      local seed = 424242
      local r = gen.new(seed, codec).r
      local base = { sample, codec.encode({ 1, { 2, { 3, { a = "b" } } }, "x" }) }
      for case = 1, 20000 do
        local s = base[case % 2 + 1]
        local bytes = { s:byte(1, -1) }
        for _ = 1, r:int(1, 4) do
          bytes[r:int(1, #bytes)] = r:int(0, 255)
        end
        local input = string.char(table.unpack(bytes))
        if r:int(1, 4) == 1 then input = input:sub(1, r:int(0, #input)) end
        local ok, res = pcall(codec.decode, input)
        if not ok then
          assert(tostring(res):match("^copycat%.codec%.decode: "),
            string.format("seed %d case %d: unexpected error %s", seed, case, tostring(res)))
        end
      end
    end)

    it("survives random byte strings with a value or a clear error", function()
      local seed = 99
      local r = gen.new(seed, codec).r
      local decoded = 0
      for case = 1, 20000 do
        local bytes = {}
        for i = 1, r:int(0, 24) do bytes[i] = r:int(0, 255) end
        local ok, res = pcall(codec.decode, string.char(table.unpack(bytes)))
        if ok then
          decoded = decoded + 1
        else
          assert(tostring(res):match("^copycat%.codec%.decode: "),
            string.format("seed %d case %d: unexpected error %s", seed, case, tostring(res)))
        end
      end
      assert.is_true(decoded > 0) -- the generator does reach valid inputs too
    end)
  end)

  describe("encode rejects values with no encoding", function()
    it("rejects cycles, naming the path", function()
      local t = { a = { b = {} } }
      t.a.b.back = t
      local e = err_of(codec.encode, t)
      assert.equal("copycat.codec.encode: cycle: a table contains itself at "
        .. "value.a.b.back (the same table as at value)", e)
      local inner = { x = {} }
      inner.x.y = inner
      e = err_of(codec.encode, { list = { inner } })
      assert.matches("at value.list[1].x.y (the same table as at value.list[1])", e, 1, true)
      local s = {}
      s[1] = s
      assert.matches("cycle.* at value%[1%]", err_of(codec.encode, s))
    end)

    it("rejects functions, userdata and coroutines, naming the path", function()
      assert.equal("copycat.codec.encode: cannot encode a function at value.a[2]",
        err_of(codec.encode, { a = { 1, print } }))
      assert.equal("copycat.codec.encode: cannot encode a userdata at value[\"x y\"]",
        err_of(codec.encode, { ["x y"] = io.stdout }))
      assert.equal("copycat.codec.encode: cannot encode a thread at value[true][1.5]",
        err_of(codec.encode, { [true] = { [1.5] = coroutine.create(print) } }))
      assert.equal("copycat.codec.encode: cannot encode a function at value[\"\\000\\255\"]",
        err_of(codec.encode, { ["\0\255"] = print }))
      assert.matches("cannot encode a function at value$",
        err_of(codec.encode, print))
    end)

    it("rejects table keys that are not strings, numbers or booleans", function()
      local prefix = "copycat.codec.encode: "
      assert.equal(prefix .. "cannot encode a table key of type table at value.t",
        err_of(codec.encode, { t = { [{}] = 1 } }))
      assert.equal(prefix .. "cannot encode a table key of type function at value",
        err_of(codec.encode, { [print] = 1 }))
      assert.equal(prefix .. "cannot encode a table key of type function at value.a.b",
        err_of(codec.encode, { a = { b = codec.array({ [print] = 1 }) } }))
      assert.equal(prefix .. "cannot encode a table key of type table at value.m[1]",
        err_of(codec.encode, { m = { codec.map({ [{}] = 1 }) } }))
    end)

    it("rejects marked arrays with non-index keys or too many holes", function()
      local prefix = "copycat.codec.encode: "
      assert.equal(prefix .. "table marked as array has a key that is not a positive integer at value.list.x",
        err_of(codec.encode, { list = codec.array({ 1, x = 2 }) }))
      assert.equal(prefix .. "table marked as array has a key that is not a positive integer at value[0]",
        err_of(codec.encode, codec.array({ [0] = 1 })))
      assert.equal(prefix .. "table marked as array has a key that is not a positive integer at value.a[1.5]",
        err_of(codec.encode, { a = codec.array({ 1, 2, [1.5] = 1 }) }))
      assert.equal(prefix .. "table marked as array is too sparse (1 elements, largest index 1000000000)"
        .. " at value.s",
        err_of(codec.encode, { s = codec.array({ [1000000000] = 1 }) }))
      -- holes up to 2 * elements + 16 are accepted
      assert.equal(20, #codec.decode(codec.encode(codec.array({ 1, 2, [20] = 3 }))))
    end)

    it("rejects nesting deeper than MAX_DEPTH", function()
      local t = {}
      for _ = 1, codec.MAX_DEPTH do t = { t } end
      local e = err_of(codec.encode, t)
      assert.matches("nesting deeper than " .. codec.MAX_DEPTH .. " tables at value"
        .. ("[1]"):rep(codec.MAX_DEPTH), e, 1, true)
    end)

    it("stays usable after an error", function()
      pcall(codec.encode, { a = print })
      assert.equal("81a16101", hex(codec.encode({ a = 1 })))
    end)
  end)
end)
