-- The server's path through the session layer (lua/copycat/sessions.lua):
-- a command's or query's arguments go in as the bytes the client sent and
-- the reply comes out encoded by the machine (machine:command_reply and
-- query_reply), byte for byte what the layer makes of the same call with
-- values; cached replies and snapshots are the same either way.
local sessions = require("copycat.sessions")
local codec = require("copycat.codec")
local state_machine = require("copycat.state_machine")

local SOURCE = [[
local sm = state_machine()
local n = 0
local shapes = {
  none = function() end,
  one_nil = function() return nil end,
  count = function() n = n + 1 return n end,
  three = function() return 1, 2, 3 end,
  nil_first = function() return nil, 2 end,
  trailing_nils = function() return 1, nil, nil end,
  hole = function() return 1, nil, 3 end,
  all_nil = function() return nil, nil, nil end,
  nested = function(c) return { got = c.args, list = { 1, 2, { x = 1.5 } } }, {}, "s" end,
  binary = function() return "\255\0", -7, 2 ^ 53 end,
  fail = function() error("boom") end,
  fail_like_unknown = function() error("unknown command 'no_such_op'", 0) end,
  bad_result = function() return function() end end,
}
for name, fn in pairs(shapes) do sm.commands[name] = fn; sm.queries[name] = fn end
local data = { nil, "s", "\255\0", { 1, nil, 3 }, { a = { b = 1.5 } }, 2 ^ 53, -7, true, {}, { [1.5] = "x" } }
function sm.commands.publish(c)
  for i = 1, 10 do c.session:publish("e" .. i, data[i]) end
end
function sm.snapshot() return n end
function sm.restore(s) n = s end
return sm
]]

local SHAPES = { "none", "one_nil", "count", "three", "nil_first", "trailing_nils", "hole", "all_nil",
  "nested", "binary", "fail", "fail_like_unknown", "bad_result", "no_such_op" }

local function layer(opts)
  return sessions.new(assert(state_machine.load(SOURCE, { source = true, name = "t" })), opts)
end

-- A reply as bytes, whichever form the layer gave it in.
local function bytes_of(r)
  if type(r) == "string" then return r end
  return codec.encode(r)
end

describe("sessions with encoded arguments", function()
  it("reply to commands with the bytes the value path encodes", function()
    local values, bytes = layer(), layer()
    values:apply(1, 1, { 1000, "o", 5000 })
    bytes:apply(1, 1, { 1000, "o", 5000 })
    local args = { k = "v", list = { 1, 2 } }
    for i, op in ipairs(SHAPES) do
      local index = i + 1
      local a = values:apply(index, 1, { 1000 + i, "c", 1, i, 0, op, args })
      local b = bytes:apply(index, 1, { 1000 + i, "c", 1, i, 0, op }, codec.encode(args))
      assert.equal(bytes_of(a), bytes_of(b), op)
      if a[1] then assert.is_string(b, op) end
    end
    -- a resend gets the cached reply, the same bytes
    local again = bytes:apply(40, 1, { 2000, "c", 1, 4, 0, "three" }, codec.encode(args))
    assert.equal(codec.encode({ true, 1, codec.array({ 2, 3 }) }), bytes_of(again))
    values:apply(40, 1, { 2000, "c", 1, 4, 0, "three", args })
    -- the snapshots (cached replies included) are identical
    assert.equal(values:snapshot(), bytes:snapshot())
    local s1, m1 = values:state()
    local s2, m2 = bytes:state()
    assert.equal(s1, s2)
    assert.equal(m1, m2)
  end)

  it("reply to queries with the bytes the value path encodes", function()
    local l = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    for _, op in ipairs(SHAPES) do
      local a = l:query(op, { q = 1 }, 1, 1)
      local b = l:query(op, codec.encode({ q = 1 }), 1, 1, true)
      assert.equal(bytes_of(a), bytes_of(b), op)
    end
  end)

  it("fail an unknown command or query with the code unknown_op, a handler's error with application", function()
    local l = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    local r = l:apply(2, 1, { 1001, "c", 1, 1, 0, "no_such_op", {} })
    assert.same({ false, "unknown command 'no_such_op'", "unknown_op" }, r)
    -- decided by the machine, not by the message: the same text raised by a handler
    r = l:apply(3, 1, { 1002, "c", 1, 2, 0, "fail_like_unknown" }, codec.encode({}))
    assert.same({ false, "unknown command 'no_such_op'", "application" }, r)
    r = l:apply(4, 1, { 1003, "c", 1, 3, 0, "no_such_op" }, codec.encode({}))
    assert.same({ false, "unknown command 'no_such_op'", "unknown_op" }, r)
    assert.same({ false, "unknown query 'no_such_op'", "unknown_op" }, l:query("no_such_op", {}, 1, 4))
    assert.same({ false, "unknown query 'no_such_op'", "unknown_op" },
      l:query("no_such_op", codec.encode({}), 1, 4, true))
    -- the code is cached with the result, and kept by a snapshot
    local copy = layer()
    assert.is_true(copy:restore(l:snapshot()))
    assert.same({ false, "unknown command 'no_such_op'", "unknown_op" },
      (copy:apply(5, 1, { 1004, "c", 1, 1, 0, "no_such_op", {} })))
  end)

  it("keep and hand back events' data as the bytes the value path encodes", function()
    local values, bytes = layer(), layer({ encoded_events = true })
    values:apply(1, 1, { 1000, "o", 5000 })
    bytes:apply(1, 1, { 1000, "o", 5000 })
    local _, ev_v = values:apply(2, 1, { 1001, "c", 1, 1, 0, "publish", {} })
    local _, ev_b = bytes:apply(2, 1, { 1001, "c", 1, 1, 0, "publish" }, codec.encode({}))
    assert.equal(10, #ev_v)
    assert.equal(#ev_v, #ev_b)
    for i = 1, #ev_v do
      assert.same({ 1, i, "e" .. i }, { ev_b[i][1], ev_b[i][2], ev_b[i][3] })
      assert.same({ ev_v[i][1], ev_v[i][2], ev_v[i][3] }, { ev_b[i][1], ev_b[i][2], ev_b[i][3] })
      assert.is_string(ev_b[i][4])
      assert.equal(codec.encode(ev_v[i][4]), ev_b[i][4], "event " .. i)
    end
    -- the snapshots and the hashed state are the same bytes
    assert.equal(values:snapshot(), bytes:snapshot())
    assert.equal((values:state()), (bytes:state()))
    -- a keep-alive that acknowledges nothing resends the same bytes
    local _, again = bytes:apply(3, 1, { 1002, "k", { { 1, 1, 0 } } })
    assert.equal(10, #again)
    for i = 1, #again do assert.equal(ev_b[i][4], again[i][4]) end
    values:apply(3, 1, { 1002, "k", { { 1, 1, 0 } } })
    -- a snapshot restores into either kind of layer, the data as each keeps it
    local into_bytes, into_values = layer({ encoded_events = true }), layer()
    assert.is_true(into_bytes:restore(values:snapshot()))
    assert.is_true(into_values:restore(bytes:snapshot()))
    local kept_b, kept_v = into_bytes:events_of(1), into_values:events_of(1)
    assert.equal(10, #kept_b)
    for i = 1, #kept_b do
      assert.equal(ev_b[i][4], kept_b[i][3])
      assert.equal(codec.encode(ev_v[i][4]), codec.encode(kept_v[i][3]))
    end
    assert.equal(bytes:snapshot(), into_bytes:snapshot())
    -- acknowledged events are gone from the bytes layer's queue too
    bytes:apply(4, 1, { 1003, "k", { { 1, 1, 4 } } })
    assert.equal(6, #bytes:events_of(1))
    assert.equal(5, bytes:events_of(1)[1][1])
  end)

  it("fail a command whose argument bytes do not decode, using up its sequence number", function()
    local l = layer()
    l:apply(1, 1, { 1000, "o", 5000 })
    local r = l:apply(2, 1, { 1001, "c", 1, 1, 0, "count" }, "\193")
    assert.same({ false, "cannot decode the arguments: invalid type byte 0xc1 at offset 0 (never used by msgpack)",
      "application" }, r)
    local ok = l:apply(3, 1, { 1002, "c", 1, 2, 0, "count" }, codec.encode({}))
    assert.equal(codec.encode({ true, 1 }), ok)
  end)
end)
