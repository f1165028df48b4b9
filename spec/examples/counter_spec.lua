-- examples/counter against a real cluster: exactly-once additions from
-- many tasks of one client, resets, and bad input.
local proc = require("support.proc")
local cluster = require("support.cluster")

local function counter(c, args)
  local full = { "examples/counter/client.lua", "--cluster", cluster.addresses(c) }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return proc.run(full, { timeout = 60 })
end

describe("the counter example", function()
  after_each(proc.cleanup)

  it("counts every addition once, from many tasks, and answers gets and resets", function()
    local c = cluster.new(3)
    local list = cluster.addresses(c)
    for i = 1, 3 do
      cluster.start(c, i, "bootstrap", list, { "--state-machine", "examples/counter/state_machine.lua" })
    end
    local r
    for _ = 1, 50 do
      r = counter(c, { "add", "hits", "5" })
      if r.code == 0 then break end
      os.execute("sleep 0.2")
    end
    assert.equal("5\n", r.stdout, r.stderr)
    r = counter(c, { "bump", "hits", "400", "8" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("405\n", r.stdout)
    assert.equal("405\n", counter(c, { "get", "hits" }).stdout)
    assert.equal("405\n", counter(c, { "reset", "hits" }).stdout)
    assert.equal("0\n", counter(c, { "get", "hits", "--consistency", "sequential" }).stdout)
    r = counter(c, { "add", "hits", "1.5" })
    assert.equal(1, r.code)
    assert.matches("by must be an integer", r.stderr)
    r = counter(c, { "frobnicate" })
    assert.equal(2, r.code)
    assert.matches("usage", r.stderr)
  end)
end)
