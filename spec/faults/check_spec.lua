-- The fault suite's checker (tests/faults/check.lua) on small histories
-- whose verdict is known: it must accept every correct one and name the
-- anomaly of every broken one.
package.path = "tests/faults/?.lua;" .. package.path
local check = require("check")

-- op{p, f, k, ...}: an operation; t0/t1 in ms.
local function h(list)
  for i, op in ipairs(list) do op.id = i end
  return list
end
local function put(p, k, v, t0, t1, r, kind)
  return { p = p, f = "put", k = k, v = v, t0 = t0, t1 = kind ~= "info" and t1 or nil, type = kind or "ok", r = r }
end
local function get(p, k, r, t0, t1, lvl, rev)
  return { p = p, f = "get", k = k, r = r, t0 = t0, t1 = t1, type = "ok", lvl = lvl or "linearizable", rev = rev }
end
local function cas(p, k, e, v, t0, t1, r, kind)
  return { p = p, f = "cas", k = k, e = e, v = v, t0 = t0, t1 = kind ~= "info" and t1 or nil, type = kind or "ok",
    r = r }
end
local function append(p, k, v, t0, t1, r, kind)
  return { p = p, f = "append", k = k, v = v, t0 = t0, t1 = kind ~= "info" and t1 or nil, type = kind or "ok", r = r }
end
local function read(p, k, r, t0, t1, final, lvl)
  return { p = p, f = "read", k = k, r = r, t0 = t0, t1 = t1, type = "ok", lvl = lvl or "linearizable",
    final = final }
end

describe("fault suite checker", function()
  it("accepts a register history with overlapping writes read in either order", function()
    local r = check.check(h({
      put("a", "r1", 1, 0, 10, nil),
      put("b", "r1", 2, 5, 15, 1),
      get("c", "r1", 2, 16, 20),
      cas("a", "r1", 2, 3, 21, 30, true),
      cas("b", "r1", 2, 4, 22, 31, false),
      get("c", "r1", 3, 32, 33),
    }))
    assert.is_true(r.valid, table.concat(r.anomalies, "\n"))
    assert.are.equal(6, r.counts.ok)
  end)

  it("finds a stale read and names the operation that cannot be placed", function()
    local r = check.check(h({
      put("a", "r1", 1, 0, 10, nil),
      put("a", "r1", 2, 11, 20, 1),
      get("b", "r1", 1, 25, 30, "lease"),
    }))
    assert.is_false(r.valid)
    assert.truthy(r.anomalies[1]:find("register r1 is not linearizable", 1, true))
    assert.truthy(r.anomalies[1]:find("client b get r1 (lease)", 1, true))
  end)

  it("finds a put whose reported previous value is impossible", function()
    local r = check.check(h({
      put("a", "r1", 1, 0, 10, nil),
      put("b", "r1", 2, 20, 30, nil), -- the value was 1
    }))
    assert.is_false(r.valid)
  end)

  it("lets an indeterminate write take effect late, or never", function()
    local late = check.check(h({
      put("a", "r1", 1, 0, 10, nil),
      put("b", "r1", 2, 11, nil, nil, "info"),
      get("c", "r1", 1, 20, 25),
      get("c", "r1", 2, 30, 35),
    }))
    assert.is_true(late.valid, table.concat(late.anomalies, "\n"))
    local never = check.check(h({
      put("a", "r1", 1, 0, 10, nil),
      put("b", "r1", 2, 11, nil, nil, "info"),
      get("c", "r1", 1, 40, 45),
    }))
    assert.is_true(never.valid, table.concat(never.anomalies, "\n"))
    assert.are.equal(1, never.counts.info)
  end)

  it("finds a sequential read going back in time for one client", function()
    local r = check.check(h({
      put("a", "r1", 1, 0, 10, nil),
      put("a", "r1", 2, 11, 20, 1),
      get("c", "r1", 2, 21, 22, "sequential", 5),
      get("c", "r1", 1, 23, 24, "sequential", 4),
    }))
    assert.is_false(r.valid)
    assert.truthy(r.anomalies[1]:find("went back in time for client c", 1, true))
  end)

  it("finds a lost append, a duplicate, a phantom and a stale list read", function()
    local r = check.check(h({
      append("a", "l1", 10, 0, 5, 1),
      append("b", "l1", 20, 6, 9, 2),
      append("a", "l1", 30, 10, 15, 3),
      read("c", "l1", { 10 }, 16, 18, nil, "lease"),
      read("z", "l1", { 10, 20, 20, 99 }, 100, 101, true),
    }))
    assert.is_false(r.valid)
    local all = table.concat(r.anomalies, "\n")
    assert.truthy(all:find("an acknowledged append is lost", 1, true))
    assert.truthy(all:find("20 appears twice", 1, true))
    assert.truthy(all:find("99 is in the list at 4, but nobody appended it", 1, true))
    assert.truthy(all:find("a lease read missed an append acknowledged before it began", 1, true))
  end)

  it("accepts lists where indeterminate appends landed or not", function()
    local r = check.check(h({
      append("a", "l1", 10, 0, 5, 1),
      append("b", "l1", 20, 6, nil, nil, "info"),
      append("b", "l1", 21, 7, nil, nil, "info"),
      append("a", "l1", 30, 10, 15, 3),
      read("c", "l1", { 10, 20 }, 8, 9, nil, "sequential"),
      read("z", "l1", { 10, 20, 30 }, 100, 101, true),
    }))
    assert.is_true(r.valid, table.concat(r.anomalies, "\n"))
  end)
end)
