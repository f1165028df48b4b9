-- copycat.state_machine: loading, commands, queries, snapshots, sessions,
-- and every way they can fail.
local h = require("state_machine.helper")
local state_machine = require("copycat.state_machine")
local codec = require("copycat.codec")
local proc = require("support.proc")

local function load_error(src)
  local m, err = state_machine.load(src, { source = true, name = "bad" })
  assert.is_nil(m)
  return err
end

describe("copycat.state_machine", function()
  it("is reachable as copycat.state_machine", function()
    assert.are.equal(state_machine, require("copycat").state_machine)
  end)

  describe("load", function()
    it("loads a file and names it by its base name only", function()
      local src = "local sm = state_machine()\nfunction sm.commands.f() error('oops') end\nreturn sm\n"
      local dirs, errs = { proc.tmpdir(), proc.tmpdir() .. "/deeper" }, {}
      for i, dir in ipairs(dirs) do
        os.execute("mkdir -p " .. proc.quote(dir))
        proc.write(dir .. "/machine.lua", src)
        local m = assert(state_machine.load(dir .. "/machine.lua"))
        errs[i] = select(2, m:command("f", nil, h.ctx()))
        os.execute("rm -rf " .. proc.quote(dir))
      end
      assert.are.equal("machine.lua:2: oops", errs[1])
      assert.are.equal(errs[1], errs[2])
      local kv = assert(state_machine.load("examples/kv/state_machine.lua", { name = "kv" }))
      assert.are.same({ true, nil }, { kv:command("put", { key = "a", value = 1 }, h.ctx()) })
      assert.are.same({ true, 1, 1 }, { kv:query("get", { key = "a" }) })
    end)

    it("reports a file it cannot read", function()
      local m, err = state_machine.load("/nonexistent/dir/sm.lua")
      assert.is_nil(m)
      assert.are.equal("cannot read the state machine: /nonexistent/dir/sm.lua: No such file or directory", err)
    end)

    it("reports syntax and runtime errors in the file", function()
      assert.are.equal("bad:2: unexpected symbol near <eof>", load_error("local sm = state_machine(\n"))
      assert.are.equal("bad:1: boom", load_error("error('boom')"))
      assert.are.equal("bad:1: attempt to call a nil value (global 'nope')", load_error("nope()"))
    end)

    it("requires exactly one state machine, returned by the file", function()
      assert.are.equal("bad: the file must create its state machine with state_machine() and return it",
        load_error("return {}"))
      assert.are.equal("bad: the file must return the state machine made by state_machine() (it returned nothing)",
        load_error("local sm = state_machine()"))
      assert.are.equal("bad: the file must return the state machine made by state_machine() (it returned a " ..
        "table value)", load_error("local sm = state_machine() return { commands = sm.commands }"))
      assert.are.equal("bad:1: state_machine() may be called only once per file",
        load_error("local sm = state_machine() state_machine() return sm"))
    end)

    it("checks the shape of the state machine", function()
      local sm = "local sm = state_machine() "
      assert.are.equal("bad: command 'x' is not a function (got number)",
        load_error(sm .. "sm.commands.x = 1 return sm"))
      assert.are.equal("bad: query 'q' is not a function (got table)", load_error(sm .. "sm.queries.q = {} return sm"))
      assert.are.equal("bad: command names must be strings (found number 1)",
        load_error(sm .. "sm.commands[1] = print return sm"))
      assert.are.equal("bad: sm.commands must be a table (got nil)", load_error(sm .. "sm.commands = nil return sm"))
      assert.are.equal("bad: sm.snapshot must be a function (got string)",
        load_error(sm .. "sm.snapshot = 'x' return sm"))
      assert.are.equal("bad: sm.snapshot and sm.restore must be defined together",
        load_error(sm .. "function sm.snapshot() end return sm"))
      assert.are.equal("bad: unknown field 'command' in the state machine (expected commands, queries, timers, " ..
        "snapshot, restore, session_opened or session_closed)", load_error(sm .. "sm.command = {} return sm"))
      assert.are.equal("bad: sm.timers must be a table (got function)", load_error(sm .. "sm.timers = print return sm"))
      assert.are.equal("bad: timer 'x' is not a function (got number)",
        load_error(sm .. "sm.timers = { x = 1 } return sm"))
      assert.are.equal("bad: timer names must be strings (found number 1)",
        load_error(sm .. "sm.timers = { print } return sm"))
      assert.are.equal("bad: sm.timers.a and sm.timers.b are the same function (a timer is saved by the name of its " ..
        "function)", load_error(sm .. "sm.timers = { b = print, a = print } return sm"))
      assert.are.equal("bad: sm.session_opened must be a function (got table)",
        load_error(sm .. "sm.session_opened = {} return sm"))
      -- Several problems: the first in key order is reported, on every replica.
      assert.are.equal("bad: command 'a' is not a function (got number)",
        load_error(sm .. "sm.commands.z = 1 sm.commands.b = 2 sm.commands.a = 3 return sm"))
    end)

    it("refuses precompiled chunks", function()
      assert.are.equal("bad: precompiled chunks are not accepted (a state machine is loaded from source)",
        load_error(string.dump(function() end)))
    end)

    it("checks its options", function()
      assert.has_error(function() state_machine.load(42) end,
        "bad argument #1 to 'load' (path or source string expected, got number)")
      assert.has_error(function() state_machine.load("x", { source = true, budget = 0 }) end,
        "bad argument #2 to 'load' (opts.budget must be a positive integer, got 0)")
      assert.has_error(function() state_machine.load("x", { source = true, name = "" }) end,
        "bad argument #2 to 'load' (opts.name must be a non-empty string)")
      assert.has_error(function() state_machine.load("x", "kv") end,
        "bad argument #2 to 'load' (table expected, got string)")
    end)

    it("gives every machine its own state", function()
      local body = [[
        local n = 0
        function sm.commands.inc() n = n + 1; return n end
        shared = (shared or 0) + 1
        function sm.commands.shared() return shared end
      ]]
      local a, b = h.machine(body), h.machine(body)
      h.ok(a, "inc")
      h.ok(a, "inc")
      assert.are.equal(1, h.ok(b, "inc"))
      assert.are.equal(1, h.ok(a, "shared"))
      assert.are.equal(1, h.ok(b, "shared"))
    end)
  end)

  describe("commands and queries", function()
    local m = h.machine([[
      local n = 0
      function sm.commands.inc() n = n + 1; return n end
      function sm.commands.ctx(c) return c.op, c.index, c.term, c.time, c.session and c.session.id end
      function sm.commands.echo(c) return c.args end
      function sm.commands.multi() return nil, 2, nil end
      function sm.commands.mutate(c) c.args.x = "changed"; return c.args.x end
      function sm.commands.fail() n = n + 100; error("failed on purpose") end
      function sm.commands.fail_table() error({ code = 1 }) end
      function sm.commands.fail_number() error(42) end
      function sm.commands.fail_nolevel() error("plain", 0) end
      function sm.commands.fail_like_unknown() error("unknown command 'nope'", 0) end
      function sm.commands.bad_result() return 1, print end
      function sm.commands.nested_bad() return { ok = { print } } end
      function sm.queries.n(q) return n, q.index end
      function sm.queries.ctx(q) return q.op, q.index, q.term, q.time, q.session and q.session.id end
    ]])

    it("passes args and the entry's context, and returns every result", function()
      assert.are.same({ "ctx", 7, 2, 1500, 99 },
        { h.ok(m, "ctx", nil, { index = 7, term = 2, time = 1500, session = 99 }) })
      assert.are.same({ "ctx", 8, 2 }, { h.ok(m, "ctx", nil, { index = 8, term = 2 }) })
      assert.are.same({ true, "ctx", 3, 1, 5.5, 4 },
        { m:query("ctx", nil, { index = 3, term = 1, time = 5.5, session = 4 }) })
      assert.are.same({ a = { 1, 2, "x" }, b = "\0\255" }, h.ok(m, "echo", { a = { 1, 2, "x" }, b = "\0\255" }))
      local r = table.pack(m:command("multi", nil, h.ctx()))
      assert.are.equal(4, r.n)
      assert.are.same({ true, nil, 2, nil }, { r[1], r[2], r[3], r[4] })
    end)

    it("copies arguments in: the state machine never holds the caller's tables", function()
      local args = { x = "original" }
      assert.are.equal("changed", h.ok(m, "mutate", args))
      assert.are.equal("original", args.x)
    end)

    it("runs queries with an optional context", function()
      local n = h.ok(m, "inc")
      assert.are.same({ true, n }, { m:query("n") })
      assert.are.same({ true, n, 12 }, { m:query("n", nil, { index = 12 }) })
      assert.are.same({ true, "ctx", 3, 1, 5.5 }, { m:query("ctx", nil, { index = 3, term = 1, time = 5.5 }) })
    end)

    it("reports unknown operations with the code unknown_op, and commands and queries are separate", function()
      assert.are.same({ false, "unknown command 'nope'", "unknown_op" }, { m:command("nope", nil, h.ctx()) })
      assert.are.same({ false, "unknown query 'inc'", "unknown_op" }, { m:query("inc") })
      assert.are.same({ false, "unknown command 'n'", "unknown_op" }, { m:command("n", nil, h.ctx()) })
      local long = ("x"):rep(100)
      assert.are.same({ false, "unknown command '" .. ("x"):rep(64) .. "...'", "unknown_op" },
        { m:command(long, nil, h.ctx()) })
      local nil_args = codec.encode(nil)
      assert.are.same({ false, "unknown command 'nope'", "unknown_op" },
        { m:command_reply("nope", nil_args, h.ctx()) })
      assert.are.same({ false, "unknown query 'nope'", "unknown_op" }, { m:query_encoded("nope", nil_args) })
    end)

    it("gives no code to a handler's error, whatever its message says", function()
      assert.are.same({ false, "unknown command 'nope'" }, { m:command("fail_like_unknown", nil, h.ctx()) })
      assert.are.same({ false, "unknown command 'nope'" },
        { m:command_reply("fail_like_unknown", codec.encode(nil), h.ctx()) })
    end)

    it("returns errors raised by a command and stays usable", function()
      local before = h.ok(m, "inc")
      assert.are.equal("t:8: failed on purpose", h.fails(m, "fail"))
      assert.are.equal("(error object is a table value)", h.fails(m, "fail_table"))
      assert.are.equal("42", h.fails(m, "fail_number"))
      assert.are.equal("plain", h.fails(m, "fail_nolevel"))
      -- The change made before the error stays, as it does on every replica.
      assert.are.equal(before + 101, h.ok(m, "inc"))
    end)

    it("fails a command whose results cannot be encoded", function()
      assert.are.equal("command 'bad_result' returned a value that cannot be encoded (result 2: cannot encode " ..
        "a function at value)", h.fails(m, "bad_result"))
      assert.are.equal("command 'nested_bad' returned a value that cannot be encoded (result 1: cannot encode " ..
        "a function at value.ok[1])", h.fails(m, "nested_bad"))
    end)

    it("raises on misuse by the host", function()
      assert.has_error(function() m:command("inc", print, h.ctx()) end,
        "cannot encode the arguments: cannot encode a function at value")
      assert.has_error(function() m:command("inc", nil, { term = 1 }) end, "ctx.index is required (an integer >= 0)")
      assert.has_error(function() m:command("inc", nil, { index = 1.5, term = 1 }) end,
        "ctx.index must be an integer >= 0 (got number)")
      assert.has_error(function() m:command("inc", nil, { index = -1, term = 1 }) end,
        "ctx.index must be an integer >= 0 (got number)")
      assert.has_error(function() m:command("inc", nil, { index = 1, term = 1, time = "now" }) end,
        "ctx.time must be a number of milliseconds (got string)")
      assert.has_error(function() m:command("inc", nil, { index = 1, term = 1, session = 0 }) end,
        "ctx.session must be an integer >= 1 (got number)")
      assert.has_error(function() m:command("inc", nil, { index = 1, term = 1, time = 0 / 0 }) end,
        "ctx.time must be a number of milliseconds (got NaN)")
      assert.has_error(function() m:command("inc", nil) end)
      assert.has_error(function() m:command(nil, nil, h.ctx()) end)
    end)

    it("has encoded forms for the server: codec bytes in, one msgpack array out", function()
      local ok, bytes = m:command_encoded("echo", codec.encode({ k = "v" }), h.ctx())
      assert.is_true(ok)
      assert.are.same({ { k = "v" } }, codec.decode(bytes))
      ok, bytes = m:query_encoded("ctx", codec.encode(nil), { index = 4, term = 1 })
      assert.is_true(ok)
      assert.are.same({ "ctx", 4, 1 }, codec.decode(bytes))
      assert.are.same({ false, "cannot decode the arguments: invalid type byte 0xc1 at offset 0 (never used " ..
        "by msgpack)" }, { m:command_encoded("echo", "\193", h.ctx()) })
      assert.are.same({ false, "cannot decode the arguments: 1 trailing bytes" },
        { m:command_encoded("echo", "\192\192", h.ctx()) })
    end)
  end)

  it("turns stack overflows and misplaced yields into ordinary command errors", function()
    local m = h.machine([[
      local function deep(n) return deep(n + 1) + 1 end
      function sm.commands.deep() return deep(1) end
      function sm.commands.yield() coroutine.yield(1) end
      function sm.commands.fine() return "fine" end
    ]])
    local first = h.fails(m, "deep")
    assert.matches("^t:2: stack overflow", first)
    assert.are.equal(first, h.fails(m, "deep"))
    assert.are.equal("attempt to yield from outside a coroutine", h.fails(m, "yield"))
    assert.are.equal("fine", h.ok(m, "fine"))
  end)

  describe("sessions", function()
    it("calls session_opened and session_closed with a session handle and the context", function()
      local m = h.machine([[
        local log = {}
        function sm.session_opened(session, c)
          log[#log + 1] = { "opened", session.id, c.index, c.time, c.session.id, tostring(session) }
        end
        function sm.session_closed(session, c) log[#log + 1] = { "closed", session.id, c.index, c.time } end
        function sm.queries.log() return log end
      ]])
      assert.are.same({ true }, { m:session_opened(17, { index = 4, term = 1, time = 90 }) })
      assert.are.same({ true }, { m:session_closed(17, { index = 5, term = 1, time = 99 }) })
      assert.are.same({ true, { { "opened", 17, 4, 90, 17, "session 17" }, { "closed", 17, 5, 99 } } },
        { m:query("log") })
      local plain = h.machine("")
      assert.are.same({ true }, { plain:session_opened(1, h.ctx()) })
      assert.are.same({ true }, { plain:session_closed(1, h.ctx()) })
      local failing = h.machine("function sm.session_closed() error('no', 0) end")
      assert.are.same({ false, "no" }, { failing:session_closed(1, h.ctx()) })
      assert.has_error(function() plain:session_opened(0, h.ctx()) end)
      assert.has_error(function() plain:session_closed(1, { term = 1 }) end, "ctx.index is required (an integer >= 0)")
    end)
  end)

  describe("snapshots", function()
    local body = [[
      local store = {}
      function sm.commands.put(c) store[c.args.k] = c.args.v end
      function sm.commands.del(c) store[c.args.k] = nil end
      function sm.queries.all() return store end
      function sm.snapshot() return { store = store } end
      function sm.restore(s) store = s.store end
    ]]

    it("wraps the state machine's value: [version 1, state, timer counter, timers]", function()
      local a = h.machine(body)
      h.ok(a, "put", { k = "x", v = { 1, "y" } })
      local bytes = assert(a:snapshot())
      assert.are.equal(h.snapshot_bytes({ store = { x = { 1, "y" } } }), bytes)
      assert.are.same({ 1, { store = { x = { 1, "y" } } }, 0, {} }, codec.decode(bytes))
    end)

    it("equal states give identical bytes whatever the history", function()
      local a, b = h.machine(body), h.machine(body)
      for i = 1, 200 do h.ok(a, "put", { k = "key" .. i, v = i }) end
      for i = 400, 1, -1 do h.ok(b, "put", { k = "key" .. i, v = i }) end
      for i = 201, 400 do h.ok(b, "del", { k = "key" .. i }) end
      assert.are.equal(a:snapshot(), b:snapshot())
    end)

    it("restores into another machine", function()
      local a, b = h.machine(body), h.machine(body)
      for i = 1, 50 do h.ok(a, "put", { k = i % 2 == 0 and "s" .. i or i, v = { i, tostring(i) } }) end
      local bytes = assert(a:snapshot())
      assert.are.same({ true }, { b:restore(bytes) })
      assert.are.same(select(2, a:query("all")), select(2, b:query("all")))
      assert.are.equal(bytes, b:snapshot())
    end)

    it("reports snapshots that cannot be made or read", function()
      local bad = h.machine([[
        function sm.snapshot() return { f = print } end
        function sm.restore(s) error("cannot restore " .. tostring(s), 0) end
      ]])
      assert.are.same({ nil, "sm.snapshot returned a value that cannot be encoded (result 1: cannot encode a " ..
        "function at value.f)" }, { bad:snapshot() })
      assert.are.same({ nil, "cannot decode the snapshot: invalid type byte 0xc1 at offset 0 (never used by " ..
        "msgpack)" }, { bad:restore("\193") })
      assert.are.same({ nil, "cannot restore 1" }, { bad:restore(h.snapshot_bytes(1)) })
      local wrapper = "cannot decode the snapshot: not a state machine snapshot (an array of 4 values: version, " ..
        "state, timer counter, timers)"
      assert.are.same({ nil, wrapper }, { bad:restore(codec.encode(1)) })
      assert.are.same({ nil, wrapper }, { bad:restore(codec.encode({ 1, 2, 3 })) })
      assert.are.same({ nil, "cannot decode the snapshot: 1 trailing bytes" },
        { bad:restore(h.snapshot_bytes(1) .. "\192") })
      assert.are.same({ nil, "cannot decode the snapshot: unsupported snapshot version (this build reads version 1)" },
        { bad:restore(codec.encode({ 2, 1, 0, codec.array({}) })) })
      local none = h.machine("")
      assert.are.same({ nil, "the state machine has no sm.snapshot" }, { none:snapshot() })
      assert.are.same({ nil, "the state machine has no sm.restore" }, { none:restore(h.snapshot_bytes({})) })
    end)
  end)

  it("limits memory when asked to, and stays usable", function()
    local m = h.machine([[
      local keep = {}
      function sm.commands.grow(c) local t = {} for i = 1, c.args.n do t[i] = i end keep[#keep + 1] = t end
      function sm.commands.drop() keep = {} end
    ]], { memory = 4 * 1024 * 1024 })
    assert.are.equal("memory limit exceeded (4194304 bytes)", h.fails(m, "grow", { n = 1000000 }))
    h.ok(m, "drop")
    h.ok(m, "grow", { n = 1000 })
    assert.is_true(m:memory() > 0 and m:memory() < 4 * 1024 * 1024)
  end)

  it("stops a call over the memory limit even when it catches the error", function()
    local m = h.machine([[
      local n = 0
      function sm.commands.hog()
        local t = {}
        while true do
          local ok = pcall(function() for i = 1, 1e9 do t[#t + 1] = ("x"):rep(100) .. i end end)
          n = n + 1
          if n > 1000 then return "carried on" end
        end
      end
      function sm.commands.count() return n end
      function sm.queries.count() return n end
    ]], { memory = 4 * 1024 * 1024 })
    assert.are.equal("memory limit exceeded (4194304 bytes)", h.fails(m, "hog"))
    -- The garbage of the failed call is gone and the machine goes on.
    assert.is_true(m:memory() < 1024 * 1024)
    h.ok(m, "count")
  end)

  it("can be closed", function()
    local m = h.machine("function sm.commands.x() end")
    m:close()
    assert.has_error(function() m:command("x", nil, h.ctx()) end, "the state machine is closed")
    assert.has_error(function() m:snapshot() end, "the state machine is closed")
    m:close()
  end)
end)
