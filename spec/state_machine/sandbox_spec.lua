-- The sandbox environment: what a state machine can and cannot use, and the
-- deterministic replacements of pairs, next, table.sort, tostring,
-- string.format, math.random and setmetatable.
local h = require("state_machine.helper")

describe("state machine sandbox", function()
  describe("globals", function()
    local m = h.machine([[
      function sm.commands.get(c) return _G[c.args.name] ~= nil end
      function sm.commands.use(c) local x = _G[c.args.name]; return type(x) end
      function sm.commands.direct() return os.time() end
      function sm.commands.newglobal() leaked = 1 end
      helper_defined_at_load = 1
      function sm.commands.loadtime() return helper_defined_at_load end
    ]])

    it("offers exactly the allow-listed globals", function()
      for _, name in ipairs({ "assert", "error", "ipairs", "pairs", "next", "pcall", "xpcall",
        "select", "tonumber", "tostring", "type", "rawequal", "rawget", "rawset", "rawlen",
        "setmetatable", "getmetatable", "print", "string", "table", "math", "utf8", "coroutine",
        "_G", "_VERSION", "state_machine" }) do
        assert.is_true(h.ok(m, "get", { name = name }), name)
      end
      for _, name in ipairs({ "unpack", "gcinfo", "newproxy", "arg", "copycat", "jit" }) do
        assert.is_false(h.ok(m, "get", { name = name }), name)
      end
    end)

    it("explains why each forbidden global is missing", function()
      for _, name in ipairs({ "io", "os", "require", "load", "loadstring", "dofile", "loadfile",
        "debug", "collectgarbage", "package", "module", "setfenv", "getfenv", "warn" }) do
        assert.are.equal(("t:3: %s is not available in a state machine (state machines must be " ..
          "deterministic)"):format(name), h.fails(m, "use", { name = name }))
      end
      assert.are.equal("t:4: os is not available in a state machine (state machines must be " ..
        "deterministic)", h.fails(m, "direct"))
    end)

    it("refuses new globals once the file has loaded, but keeps those made while loading", function()
      assert.are.equal("t:5: assignment to undefined global 'leaked' (a state machine keeps its " ..
        "state in locals of its file, saved by sm.snapshot)", h.fails(m, "newglobal"))
      assert.are.equal(1, h.ok(m, "loadtime"))
    end)

    it("has no string.dump, not even through a string's methods", function()
      local d = h.machine([[
        function sm.commands.a() return string.dump(print) end
        function sm.commands.b() return ("x"):dump() end
        function sm.commands.c() return ("x"):upper(), string.missing end
      ]])
      local msg = "string.dump is not available in a state machine (state machines must be deterministic)"
      assert.are.equal("t:2: " .. msg, h.fails(d, "a"))
      assert.are.equal("t:3: " .. msg, h.fails(d, "b"))
      assert.are.same({ "X" }, { h.ok(d, "c") })
    end)
  end)

  describe("pairs and next", function()
    local m = h.machine([[
      local function order(t)
        local ks = {}
        for k in pairs(t) do ks[#ks + 1] = k end
        return ks
      end
      function sm.commands.keys(c) return order(c.args) end
      function sm.commands.mixed()
        local t = { [true] = 1, [false] = 2, [2.5] = 3, [-1] = 4, [10] = 5, b = 6, a = 7,
          ["\0"] = 8, ab = 9, [math.mininteger] = 10, [1/0] = 11, [-1/0] = 12 }
        local ks = order(t)
        for i, k in ipairs(ks) do ks[i] = tostring(k) end
        return ks
      end
      function sm.commands.tablekey() for _ in pairs({ [{}] = 1 }) do end end
      function sm.commands.funckey() return next({ [print] = 1 }) end
      function sm.commands.delete_while_iterating()
        local t, seen = { a = 1, b = 2, c = 3, d = 4 }, {}
        for k in pairs(t) do seen[#seen + 1] = k; t.c = nil; t.z = 26 end
        return seen
      end
      function sm.commands.next_walk(c)
        local ks, k = {}, nil
        repeat k = next(c.args, k); ks[#ks + 1] = k until k == nil
        return ks, next({}), (next({ x = 1 }))
      end
      function sm.commands.custom()
        local t = setmetatable({}, { __pairs = function() return function(_, k)
          if not k then return 1, "one" end end, nil, nil end })
        local r = {}
        for k, v in pairs(t) do r[k] = v end
        return r
      end
    ]])

    it("visits keys in the canonical order: booleans, numbers, strings bytewise", function()
      assert.are.same({ "false", "true", "-inf", tostring(math.mininteger), "-1", "2.5", "10", "inf",
        "\0", "a", "ab", "b" }, h.ok(m, "mixed"))
      local keys, expected = {}, {}
      for i = 1, 300 do keys["k" .. i] = i; expected[i] = "k" .. i end
      table.sort(expected)
      assert.are.same(expected, h.ok(m, "keys", keys))
    end)

    it("refuses keys that have no canonical order", function()
      assert.are.equal("t:15: pairs: a table with table keys has no deterministic order (use string, " ..
        "number or boolean keys)", h.fails(m, "tablekey"))
      assert.are.equal("t:16: next: a table with function keys has no deterministic order (use " ..
        "string, number or boolean keys)", h.fails(m, "funckey"))
    end)

    it("skips keys removed during the traversal and does not visit keys added", function()
      assert.are.same({ "a", "b", "d" }, h.ok(m, "delete_while_iterating"))
    end)

    it("next walks the same order", function()
      local ks, empty, first = h.ok(m, "next_walk", { b = 1, a = 2, [3] = 3, c = 4 })
      assert.are.same({ 3, "a", "b", "c" }, ks)
      assert.is_nil(empty)
      assert.are.equal("x", first)
    end)

    it("honours __pairs", function()
      assert.are.same({ "one" }, h.ok(m, "custom"))
    end)
  end)

  describe("table.sort", function()
    local m = h.machine([[
      function sm.commands.sort(c)
        local recs = c.args
        table.sort(recs, function(a, b) return a.k < b.k end)
        local ids = {}
        for i, r in ipairs(recs) do ids[i] = r.id end
        return ids
      end
      function sm.commands.plain(c) table.sort(c.args); return c.args end
      function sm.commands.desc(c) table.sort(c.args, function(a, b) return a > b end); return c.args end
      function sm.commands.bad() table.sort({ 3, "x", 1 }) end
    ]])

    it("is stable: equal elements keep their order", function()
      local recs, expected = {}, {}
      for i = 1, 1000 do recs[i] = { k = (i * 7919) % 5, id = i } end
      for k = 0, 4 do
        for i = 1, 1000 do if (i * 7919) % 5 == k then expected[#expected + 1] = i end end
      end
      assert.are.same(expected, h.ok(m, "sort", recs))
    end)

    it("sorts like the standard sort", function()
      local xs, ys = {}, {}
      for i = 1, 777 do xs[i] = (i * 104729) % 1000 - 500; ys[i] = xs[i] end
      table.sort(ys)
      assert.are.same(ys, h.ok(m, "plain", xs))
      table.sort(ys, function(a, b) return a > b end)
      assert.are.same(ys, h.ok(m, "desc", xs))
      assert.are.same({}, h.ok(m, "plain", {}))
      assert.are.same({ "a" }, h.ok(m, "plain", { "a" }))
      assert.matches("attempt to compare", h.fails(m, "bad"))
    end)
  end)

  describe("no addresses", function()
    local m = h.machine([[
      local obj = setmetatable({}, { __tostring = function() return "obj!" end })
      function sm.commands.show()
        return tostring({}), tostring(print), tostring(sm.commands.show),
          tostring(coroutine.create(print)), tostring(obj), tostring(nil), tostring(1.5)
      end
      function sm.commands.fmt()
        return string.format("%s|%s|%s|%5.2s|%d%%", {}, print, obj, {}, 3), ("%s"):format(true)
      end
      function sm.commands.p() return string.format("%p", {}) end
      function sm.commands.p2() return ("%-5p"):format({}) end
    ]])

    it("tostring shows type names instead of addresses, __tostring otherwise", function()
      assert.are.same({ "table", "function", "function", "thread", "obj!", "nil", "1.5" },
        { h.ok(m, "show") })
    end)

    it("string.format %s shows no addresses and %p is refused", function()
      assert.are.same({ "table|function|obj!|   ta|3%", "true" }, { h.ok(m, "fmt") })
      local msg = "string.format: '%p' is not available in a state machine (addresses differ between replicas)"
      assert.are.equal("t:10: " .. msg, h.fails(m, "p"))
      assert.are.equal("t:11: " .. msg, h.fails(m, "p2"))
    end)
  end)

  describe("math.random", function()
    local m = h.machine([[
      function sm.commands.roll(c)
        local r = {}
        for i = 1, 5 do r[i] = math.random(c.args.n) end
        return r, math.random(), math.random(-3, 3), math.type(math.random(0))
      end
      function sm.commands.seeded(c)
        math.randomseed(c.args.seed)
        return math.random(1000000), math.random(1000000)
      end
      function sm.commands.unseeded() math.randomseed() end
      function sm.commands.empty() return math.random(5, 1) end
    ]])

    it("is seeded from the entry's index and term", function()
      local a = { h.ok(m, "roll", { n = 1000000 }, { index = 7, term = 2 }) }
      local b = { h.ok(m, "roll", { n = 1000000 }, { index = 7, term = 2 }) }
      local c = { h.ok(m, "roll", { n = 1000000 }, { index = 8, term = 2 }) }
      local d = { h.ok(m, "roll", { n = 1000000 }, { index = 7, term = 3 }) }
      assert.are.same(a, b)
      assert.are_not.same(a[1], c[1])
      assert.are_not.same(a[1], d[1])
      assert.is_true(a[2] >= 0 and a[2] < 1)
      assert.is_true(a[3] >= -3 and a[3] <= 3)
      assert.are.equal("integer", a[4])
    end)

    it("gives pinned values for a pinned entry", function()
      -- Pinned so that a change of generator (which would fork replicas
      -- running different versions) cannot go unnoticed.
      local m2 = h.machine([[
        function sm.commands.roll(c)
          local r = {}
          for i = 1, 5 do r[i] = math.random(c.args.n) end
          return r, math.random(), math.random(-3, 3), math.random(0)
        end
      ]])
      local r, f, x, y = h.ok(m2, "roll", { n = 100 }, { index = 1, term = 1 })
      assert.are.same({ 74, 65, 55, 7, 48 }, r)
      assert.are.equal("0.70149063672706014", ("%.17g"):format(f))
      assert.are.equal(3, x)
      assert.are.equal(856323655657574873, y)
    end)

    it("randomseed needs an explicit seed and is then deterministic", function()
      local a = { h.ok(m, "seeded", { seed = 42 }, { index = 1, term = 1 }) }
      local b = { h.ok(m, "seeded", { seed = 42 }, { index = 99, term = 5 }) }
      assert.are.same(a, b)
      assert.are.equal("t:11: math.randomseed needs a seed in a state machine (the generator is " ..
        "seeded from the log entry of each call)", h.fails(m, "unseeded"))
      assert.matches("interval is empty", h.fails(m, "empty"))
    end)
  end)

  describe("metatables", function()
    local m = h.machine([[
      function sm.commands.gc() setmetatable({}, { __gc = function() end }) end
      function sm.commands.weak() setmetatable({}, { __mode = "k" }) end
      function sm.commands.class()
        local C = { __index = { hello = function() return "hi" end }, __tostring = function() return "C" end }
        local o = setmetatable({}, C)
        return o.hello(), tostring(o), getmetatable(o) == C
      end
      function sm.commands.marker(c) return getmetatable(c.args.list) == nil end
      function sm.commands.protected()
        local o = setmetatable({}, { __metatable = "locked" })
        return getmetatable(o), pcall(setmetatable, o, {})
      end
    ]])

    it("refuses __gc and __mode", function()
      assert.are.equal("t:2: setmetatable: __gc is not available in a state machine (finalizers run " ..
        "when the garbage collector decides, at moments that differ between replicas)", h.fails(m, "gc"))
      assert.are.equal("t:3: setmetatable: __mode is not available in a state machine (weak tables " ..
        "lose entries when the garbage collector runs, at moments that differ between replicas)",
        h.fails(m, "weak"))
    end)

    it("allows every other metatable, and keeps __metatable protection", function()
      assert.are.same({ "hi", "C", true }, { h.ok(m, "class") })
      assert.are.same({ "locked", false, "cannot change a protected metatable" }, { h.ok(m, "protected") })
    end)

    it("hides the codec's shared array/map markers", function()
      local codec = require("copycat.codec")
      assert.is_true(h.ok(m, "marker", { list = codec.array({}) }))
    end)
  end)
end)
