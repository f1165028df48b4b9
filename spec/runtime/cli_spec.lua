-- The copycat-lua command line behaves like the lua interpreter.
local proc = require("support.proc")

describe("copycat-lua command line", function()
  it("prints its version with -v and --version and exits 0", function()
    for _, flag in ipairs({ "-v", "--version" }) do
      local r = proc.run({ flag })
      assert.are.equal(0, r.code)
      assert.matches("^copycat%-lua %d+%.%d+%.%d+ %(Lua 5%.4", r.stdout)
    end
  end)

  it("prints usage with -h and --help and exits 0", function()
    for _, flag in ipairs({ "-h", "--help" }) do
      local r = proc.run({ flag })
      assert.are.equal(0, r.code)
      assert.matches("usage: copycat%-lua %[options%] %[script %[args%]%]", r.stdout)
    end
  end)

  it("rejects an unknown option with a message and status 1", function()
    local r = proc.run({ "--frobnicate" })
    assert.are.equal(1, r.code)
    assert.matches("unrecognized option '%-%-frobnicate'", r.stderr)
    assert.matches("usage:", r.stderr)
  end)

  it("rejects -e without code", function()
    local r = proc.run({ "-e" })
    assert.are.equal(1, r.code)
    assert.matches("'%-e' needs an argument", r.stderr)
  end)

  it("gives the script its arguments in arg and ...", function()
    local path = proc.script([[
      print(arg[0], arg[1], arg[2], #arg, select("#", ...), ...)
      print(arg[-1] ~= nil)
    ]])
    local r = proc.run({ path, "one", "two words" })
    assert.are.equal(0, r.code)
    assert.are.equal(path .. "\tone\ttwo words\t2\t2\tone\ttwo words\ntrue\n", r.stdout)
  end)

  it("puts options before the script at negative arg indexes", function()
    local path = proc.script("print(arg[-1], arg[-2])")
    local r = proc.run({ "-e", "x = 1", path })
    assert.are.equal(0, r.code)
    assert.are.equal("x = 1\t-e\n", r.stdout)
  end)

  it("runs -e chunks in order, before the script", function()
    local path = proc.script("print('script', x)")
    local r = proc.run({ "-e", "x = 1", "-e", "x = x + 1; print('e', x)", path })
    assert.are.equal(0, r.code)
    assert.are.equal("e\t2\nscript\t2\n", r.stdout)
  end)

  it("loads a library into a global with -l", function()
    local r = proc.run({ "-l", "string", "-e", "print(string.rep('a', 3))" })
    assert.are.equal(0, r.code)
    assert.are.equal("aaa\n", r.stdout)
  end)

  it("runs the script on stdin with -", function()
    local r = proc.run({ "-", "a" }, { stdin = "print('from stdin', ...)" })
    assert.are.equal(0, r.code)
    assert.are.equal("from stdin\ta\n", r.stdout)
  end)

  it("reads stdin when given no script and stdin is not a terminal", function()
    local r = proc.run({}, { stdin = "print(6 * 7)" })
    assert.are.equal(0, r.code)
    assert.are.equal("42\n", r.stdout)
  end)

  it("exits with the status given to os.exit", function()
    assert.are.equal(7, proc.run({ "-e", "os.exit(7)" }).code)
    assert.are.equal(1, proc.run({ "-e", "os.exit(false)" }).code)
    assert.are.equal(0, proc.run({ "-e", "os.exit(true)" }).code)
  end)

  it("exits 0 when the script returns", function()
    assert.are.equal(0, proc.run({ "-e", "local x = 1" }).code)
  end)

  it("reports an uncaught error with a traceback and exits 1", function()
    local path = proc.script([[
      local function inner() error("boom") end
      local function outer() inner() end
      outer()
    ]])
    local r = proc.run({ path })
    assert.are.equal(1, r.code)
    assert.matches("copycat%-lua: [^\n]*script%.lua:1: boom\n", r.stderr)
    assert.matches("stack traceback:", r.stderr)
    assert.matches("in upvalue 'inner'", r.stderr)
    assert.matches("in local 'outer'", r.stderr)
  end)

  it("reports an error object that is not a string", function()
    local r = proc.run({ "-e", "error({})" })
    assert.are.equal(1, r.code)
    assert.matches("error object is a table value", r.stderr)
  end)

  it("uses __tostring of an error object", function()
    local r = proc.run({ "-e", "error(setmetatable({}, {__tostring = function() return 'custom' end}))" })
    assert.are.equal(1, r.code)
    assert.matches("copycat%-lua: custom", r.stderr)
  end)

  it("reports a syntax error with file and line and runs nothing", function()
    local path = proc.script("print('ran')\nlocal = 1\n")
    local r = proc.run({ path })
    assert.are.equal(1, r.code)
    assert.are.equal("", r.stdout)
    assert.matches("script%.lua:2:", r.stderr)
  end)

  it("reports a missing script file", function()
    local r = proc.run({ "/nonexistent/script.lua" })
    assert.are.equal(1, r.code)
    assert.matches("cannot open /nonexistent/script%.lua", r.stderr)
  end)

  it("has the copycat library built in as a global and as a module", function()
    local r = proc.run({ "-e", "print(copycat == require('copycat'), type(copycat.sleep), copycat.version)" })
    assert.are.equal(0, r.code)
    assert.matches("^true\tfunction\t%d+%.%d+%.%d+\n$", r.stdout)
  end)
end)
