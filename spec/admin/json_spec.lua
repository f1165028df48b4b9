-- copycat.json: the encoder behind `ctl status --json`.
local json = require("copycat.json")
local decode = require("support.json").decode

describe("copycat.json", function()
  it("encodes scalars, arrays and objects (keys sorted) as JSON that parses back", function()
    local v = { name = "n1", term = 3, ratio = 0.5, ok = true, off = false,
      members = { { name = "a" }, { name = "b" } }, empty = json.array() }
    local text = json.encode(v)
    assert.are.equal('{"empty":[],"members":[{"name":"a"},{"name":"b"}],"name":"n1","off":false,' ..
      '"ok":true,"ratio":0.5,"term":3}', text)
    assert.are.same({ name = "n1", term = 3, ratio = 0.5, ok = true, off = false,
      members = { { name = "a" }, { name = "b" } }, empty = {} }, decode(text))
  end)

  it("escapes what strings must not contain raw", function()
    local s = 'quote " backslash \\ newline \n tab \t bell \a'
    local text = json.encode(s)
    assert.are.equal('"quote \\" backslash \\\\ newline \\n tab \\t bell \\u0007"', text)
    assert.are.equal(s, decode(text))
  end)

  it("writes tables with holes or non-integer keys as objects, and non-finite numbers as null", function()
    assert.are.equal('{"1":"a","3":"c"}', json.encode({ [1] = "a", [3] = "c" }))
    assert.are.equal('{"1":true,"x":1}', json.encode({ [1] = true, x = 1 }))
    assert.are.equal("[null,null,null]", json.encode({ 0 / 0, math.huge, -math.huge }))
    assert.are.equal("{}", json.encode({}))
  end)

  it("refuses functions and cycles with a clear error", function()
    assert.has_error(function() json.encode({ f = print }) end, "json: a function value cannot be encoded")
    local t = {}
    t.self = t
    assert.has_error(function() json.encode(t) end, "json: a table refers to itself")
  end)
end)
