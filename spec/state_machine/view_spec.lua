-- Queries see the state read-only (machine/sandbox_view.c): every way a
-- query usually reaches the state - upvalues, nested tables, the sm table,
-- globals, helper functions - refuses writes with an error and leaves the
-- state as it was, while reads see everything as before.
local h = require("state_machine.helper")

local BODY = [[
  local store = { a = { v = 1, list = { 1, 2, 3 } }, b = 2 }
  local count = 0
  local M = {}
  function M.bump() store.b = 3 end
  function M.read() return store.b end
  function sm.commands.put(c) store[c.args.k] = c.args.v; count = count + 1; return count end
  function sm.queries.get(q) return store[q.args.k] end
  function sm.queries.poke() store.x = 1 end
  function sm.queries.deep() store.a.v = 99 end
  function sm.queries.insert() table.insert(store.a.list, 4) end
  function sm.queries.raw() rawset(store, "x", 1) end
  function sm.queries.counter() count = count + 1; return count end
  function sm.queries.replace() store = {} end
  function sm.queries.global() new_global = 1 end
  function sm.queries.handlers() sm.commands.put = nil end
  function sm.queries.helper() M.bump() end
  function sm.queries.helper_read() return M.read() end
  function sm.queries.caught()
    local ok = pcall(function() store.a.v = 5 end)
    return ok, store.a.v
  end
  function sm.queries.keys()
    local out = {}
    for k, v in pairs(store) do out[#out + 1] = k .. "=" .. type(v) end
    local first = next(store)
    return out, first, #store.a.list, rawget(store, "b"), rawlen(store.a.list)
  end
  function sm.queries.items()
    local out = {}
    for i, x in ipairs(store.a.list) do out[i] = x end
    return out, { nested = store.a }, getmetatable(store)
  end
  function sm.queries.fail() local _ = store.a; error("boom") end
  function sm.queries.spin() local x = store.a.v; while true do x = x + 1 end end
  function sm.snapshot() return { store = store, count = count } end
  function sm.restore(s) store, count = s.store, s.count end
]]

describe("read-only queries", function()
  local m, before
  before_each(function()
    m = h.machine(BODY, { budget = 100000 })
    before = m:snapshot()
  end)

  local function refused(op, pattern)
    local ok, err = m:query(op, {})
    assert.is_false(ok, op)
    assert.matches(pattern, err)
    assert.are.equal(before, m:snapshot(), op .. " changed the state")
  end

  it("refuses writes to the state at any depth, and changes nothing", function()
    refused("poke", "query 'poke' tried to write to the state %(key 'x'%): a query has a read%-only view of it")
    refused("deep", "tried to write to the state %(key 'v'%)")
    refused("insert", "tried to write to the state %(key 4%)")
    refused("raw", "tried to write to the state %(key 'x'%)")
  end)

  it("refuses assignments to upvalues and undoes them", function()
    refused("counter", "query 'counter' assigned to 'count': a query has a read%-only view")
    refused("replace", "assigned to 'store'")
    -- the commands still see the real state afterwards
    assert.are.same({ true, 1 }, { m:command("put", { k = "c", v = 7 }, h.ctx()) })
    assert.are.same({ true, 7 }, { m:query("get", { k = "c" }) })
  end)

  it("covers globals, the sm table and helper functions reached from the query", function()
    refused("global", "tried to write to the state %(key 'new_global'%)")
    refused("handlers", "tried to write to the state %(key 'put'%)")
    refused("helper", "tried to write to the state %(key 'b'%)")
    assert.are.same({ true, 2 }, { m:query("helper_read", {}) })
  end)

  it("leaves the state unchanged when the query catches the error", function()
    assert.are.same({ true, false, 1 }, { m:query("caught", {}) })
    assert.are.equal(before, m:snapshot())
  end)

  it("reads through views: indexing, pairs, next, #, ipairs, rawget, rawlen", function()
    local ok, keys, first, len, b, rawn = m:query("keys", {})
    assert.is_true(ok)
    assert.are.same({ "a=table", "b=number" }, keys)
    assert.are.equal("a", first)
    assert.are.equal(3, len)
    assert.are.equal(2, b)
    assert.are.equal(3, rawn)
    local ok2, items, wrapped, mt = m:query("items", {})
    assert.is_true(ok2)
    assert.are.same({ 1, 2, 3 }, items)
    -- state tables in the results are sent as they are, not as views
    assert.are.same({ nested = { v = 1, list = { 1, 2, 3 } } }, wrapped)
    assert.are.equal("read-only view", mt)
    assert.are.same({ true, { v = 1, list = { 1, 2, 3 } } }, { m:query("get", { k = "a" }) })
  end)

  it("puts everything back after a query that fails or runs out of budget", function()
    assert.matches("boom", select(2, m:query("fail", {})))
    assert.matches("instruction budget exceeded", select(2, m:query("spin", {})))
    assert.are.equal(before, m:snapshot())
    -- commands write to the real tables again
    h.ok(m, "put", { k = "a", v = "new" })
    assert.are.same({ true, "new" }, { m:query("get", { k = "a" }) })
  end)

  it("does not change what commands do", function()
    h.ok(m, "put", { k = "z", v = 1 })
    local ok, err = m:command("put", { k = "y", v = 2 }, h.ctx())
    assert.is_true(ok, err)
    assert.are.same({ true, 2 }, { m:query("get", { k = "y" }) })
  end)
end)
