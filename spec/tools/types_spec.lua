-- The LuaLS definition files (types/*.lua) against the code they describe:
-- every public function of the library, the operator API and the sandbox's
-- state_machine() table is declared, so an editor completes all of them.
local proc = require("support.proc")

local function names(path, pattern)
  local found = {}
  for name in proc.slurp(path):gmatch(pattern) do found[name] = true end
  return found
end

local function missing(want, have, except)
  local out = {}
  for name in pairs(want) do
    if not have[name] and not (except and except[name]) then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

describe("types/", function()
  local copycat_types = proc.slurp("types/copycat.lua")

  it("are LuaLS meta files that load as Lua", function()
    for _, f in ipairs({ "types/copycat.lua", "types/state_machine.lua", "types/operator.lua" }) do
      assert.matches("^%-%-%-@meta ", proc.slurp(f), f)
      assert.is_function(loadfile(f), f)
    end
  end)

  it("declare every method of the client, server, connection and task", function()
    local internal = { lose = true, open = true, deliver = true } -- the client's own helpers
    for file, class in pairs({ ["lua/copycat/client.lua"] = "Client", ["lua/copycat/server.lua"] = "Server",
      ["lua/copycat/net.lua"] = "Conn", ["lua/copycat/runtime.lua"] = "Task" }) do
      local want = names(file, "\nfunction " .. class .. ":([%w_]+)")
      assert.is_not_nil(next(want), file)
      local have = names("types/copycat.lua", "\nfunction " .. class .. ":([%w_]+)")
      assert.are.same({}, missing(want, have, internal), class)
    end
  end)

  it("declare every field of the copycat table and every function of copycat.cli and copycat.net", function()
    local init = proc.slurp("lua/copycat/init.lua")
    for key in init:gmatch("\n  ([%w][%w_]*) = ") do
      assert.is_truthy(copycat_types:find("function copycat%." .. key .. "%(") or
        copycat_types:find("@field " .. key .. " "), "copycat." .. key)
    end
    local cli = missing(names("lua/copycat/cli.lua", "\nfunction cli%.([%w_]+)"),
      names("types/copycat.lua", "\nfunction copycat%.cli%.([%w_]+)"))
    assert.are.same({}, cli)
    local net = missing(names("lua/copycat/net.lua", "\nfunction net%.([%w_]+)"),
      names("types/copycat.lua", "\nfunction copycat%.net%.([%w_]+)"))
    assert.are.same({}, net)
  end)

  it("declare every call of the operator API", function()
    local want = names("lua/copycat/operator.lua", "\n  function api%.([%w_]+)")
    assert.is_not_nil(next(want))
    assert.are.same({}, missing(want, names("types/operator.lua", "\nfunction cluster%.([%w_]+)")))
  end)

  it("declare what state_machine() gives a state machine", function()
    local sm = names("types/state_machine.lua", "\nfunction Machine%.([%w_]+)")
    assert.are.same({ session = true, schedule = true, cancel = true }, sm)
    for _, field in ipairs({ "commands", "queries", "timers", "snapshot", "restore", "session_opened",
      "session_closed" }) do
      assert.matches("@field " .. field .. "%??", proc.slurp("types/state_machine.lua"))
    end
  end)

  it("are what .luarc.json gives the editor", function()
    local luarc = proc.slurp(".luarc.json")
    assert.matches('"workspace.library": %[%s*"types"%s*%]', luarc)
    assert.matches('"runtime.version": "Lua 5.4"', luarc)
  end)
end)
