-- The key-value example state machine (examples/kv/state_machine.lua).
local h = require("state_machine.helper")
local state_machine = require("copycat.state_machine")

local function kv()
  return assert(state_machine.load("examples/kv/state_machine.lua", { name = "kv" }))
end

describe("examples/kv", function()
  it("puts, gets, deletes and compares-and-sets", function()
    local m = kv()
    assert.is_nil(h.ok(m, "put", { key = "a", value = 1 }, { index = 1, term = 1, time = 10 }))
    assert.are.equal(1, h.ok(m, "put", { key = "a", value = "two" }, { index = 2, term = 1, time = 20 }))
    assert.are.same({ true, "two", 2 }, { m:query("get", { key = "a" }) })
    assert.is_false(h.ok(m, "cas", { key = "a", expect = "one", value = 3 }))
    assert.is_true(h.ok(m, "cas", { key = "a", expect = "two", value = 3 }))
    assert.is_true(h.ok(m, "cas", { key = "new", value = 5 })) -- expect nil: absent
    assert.are.equal(3, h.ok(m, "delete", { key = "a" }))
    assert.is_nil(h.ok(m, "delete", { key = "a" }))
    assert.are.same({ true, nil, nil }, { m:query("get", { key = "a" }) })
    assert.are.equal("key must be a string, got number", h.fails(m, "put", { key = 1, value = 1 }))
  end)

  it("appends to a list, each command once more, and refuses a key that is not a list", function()
    local m = kv()
    assert.are.equal(1, h.ok(m, "append", { key = "l", value = 7 }))
    assert.are.equal(2, h.ok(m, "append", { key = "l", value = 7 }))
    assert.are.equal(3, h.ok(m, "append", { key = "l", value = "x" }))
    assert.are.same({ true, { 7, 7, "x" }, 3 }, { m:query("get", { key = "l" }) })
    h.ok(m, "put", { key = "s", value = "text" })
    assert.are.equal("append: the value at s is a string, not a list", h.fails(m, "append", { key = "s", value = 1 }))
    assert.are.same({ true, "text", 4 }, { m:query("get", { key = "s" }) })
  end)

  it("scans in key order and aggregates", function()
    local m = kv()
    for _, k in ipairs({ "b2", "a1", "b1", "c", "b10" }) do h.ok(m, "put", { key = k, value = #k }) end
    assert.are.same({ true, { { "b1", 2 }, { "b10", 3 }, { "b2", 2 } } }, { m:query("scan", { prefix = "b" }) })
    assert.are.same({ true, { { "a1", 2 }, { "b1", 2 } } }, { m:query("scan", { limit = 2 }) })
    assert.are.same({ true, { keys = 5, rev = 5, sum = 10 } }, { m:query("stats", {}) })
  end)

  it("evicts random keys, the same ones for the same entry", function()
    local a, b = kv(), kv()
    for i = 1, 50 do
      h.ok(a, "put", { key = "k" .. i, value = i }, { index = i, term = 1 })
      h.ok(b, "put", { key = "k" .. (51 - i), value = 51 - i }, { index = i, term = 1 })
    end
    local ra = h.ok(a, "evict", { count = 5 }, { index = 51, term = 1 })
    local rb = h.ok(b, "evict", { count = 5 }, { index = 51, term = 1 })
    assert.are.equal(5, #ra)
    assert.are.same(ra, rb)
    assert.are.same({ true, nil, nil }, { a:query("get", { key = ra[1] }) })
    local other = h.ok(kv(), "evict", { count = 5 }, { index = 51, term = 1 })
    assert.are.same({}, other)
  end)

  it("snapshots and restores the whole store", function()
    local a = kv()
    for i = 1, 20 do h.ok(a, "put", { key = "k" .. i, value = { n = i } }, { index = i, term = 1, time = i }) end
    local b = kv()
    assert.is_true(b:restore(assert(a:snapshot())))
    assert.are.same({ true, { n = 7 }, 7 }, { b:query("get", { key = "k7" }) })
    assert.are.equal(a:snapshot(), b:snapshot())
    assert.are.same({ true }, { b:session_closed(3, { index = 21, term = 1 }) })
  end)
end)
