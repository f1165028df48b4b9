-- examples/election against a real cluster: the oldest member leads; when
-- its process is killed, its session expires and the next member takes
-- over with a higher epoch, and every member is told by an event.
local proc = require("support.proc")
local cluster = require("support.cluster")

describe("the election example", function()
  after_each(proc.cleanup)

  it("elects the oldest member and hands over when it dies", function()
    local c = cluster.new(3)
    local list = cluster.addresses(c)
    for i = 1, 3 do
      cluster.start(c, i, "bootstrap", list, { "--state-machine", "examples/election/state_machine.lua" })
    end
    local function member(name)
      return proc.start({ "examples/election/member.lua", "--cluster", list, "--session-timeout", "1000", name },
        { timeout = 120 })
    end
    local a = member("alpha")
    assert.is_true(a:wait_output("leader alpha epoch=1 (me)", 30), a:stderr())
    local b = member("beta")
    assert.is_true(b:wait_output("leader alpha epoch=1\n", 30), b:stderr())
    local g = member("gamma")
    assert.is_true(g:wait_output("leader alpha epoch=1\n", 30), g:stderr())
    a:kill("KILL")
    assert.is_true(b:wait_output("leader beta epoch=2 (me)", 30), b:stdout() .. b:stderr())
    assert.is_true(g:wait_output("leader beta epoch=2\n", 30), g:stdout() .. g:stderr())
    -- an orderly stop leaves at once (no expiry wait), and gamma takes over
    b:kill("TERM")
    assert.is_true(g:wait_output("leader gamma epoch=3 (me)", 30), g:stdout() .. g:stderr())
    assert.is_nil(g:stdout():find("epoch=2 (me)", 1, true))
  end)
end)
