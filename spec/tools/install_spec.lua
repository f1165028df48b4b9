-- make install / make uninstall into a temporary DESTDIR, from the existing
-- build: the installed copycat-lua runs a 1-node kv cluster with the
-- installed examples and scripts, plain lua5.4 loads the installed library,
-- and uninstall removes every file install put there.
local proc = require("support.proc")
local cluster = require("support.cluster")

local q = proc.quote

-- Runs a shell command; returns its exit code and its output (both streams).
local function sh(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1")
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

-- make from the spec's own process: not a sub-make of `make test`.
local function make(target, destdir)
  return sh(("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -s %s BUILD=%s DESTDIR=%s PREFIX=/usr")
    :format(target, q(proc.build), q(destdir)))
end

local function files_under(dir)
  local _, out = sh("cd " .. q(dir) .. " && find . -type f -o -type l | sort")
  local list = {}
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line:sub(2) end
  return list
end

describe("make install", function()
  after_each(proc.cleanup)

  it("installs a tree that runs a cluster and loads into lua5.4, and make uninstall removes it", function()
    local dest = proc.tmpdir()
    local code, out = make("install", dest)
    assert.are.equal(0, code, out)
    local files = files_under(dest)
    local set = {}
    for _, f in ipairs(files) do set[f] = true end
    for _, f in ipairs({ "/usr/bin/copycat-lua", "/usr/lib/lua/5.4/copycat/core.so",
      "/usr/share/lua/5.4/copycat/init.lua", "/usr/share/lua/5.4/copycat/cli.lua",
      "/usr/share/copycat-lua/scripts/join.lua", "/usr/share/copycat-lua/examples/kv/server.lua",
      "/usr/share/copycat-lua/types/copycat.lua", "/usr/share/doc/copycat-lua/README.md",
      "/usr/share/doc/copycat-lua/operators.md", "/usr/share/man/man1/copycat-lua.1",
      "/usr/share/doc/copycat-lua/examples/copycat-lua@.service" }) do
      assert.is_true(set[f], f .. " is not installed: " .. out)
    end
    assert.matches("\nExecStart=/usr/bin/copycat%-lua /usr/share/copycat%-lua/examples/kv/server%.lua ",
      proc.slurp(dest .. "/usr/share/doc/copycat-lua/examples/copycat-lua@.service"))

    -- the installed program, examples and scripts
    local bin = dest .. "/usr/bin/copycat-lua"
    local share = dest .. "/usr/share/copycat-lua"
    local data = proc.tmpdir()
    local addr = "127.0.0.1:" .. cluster.free_ports(1)[1]
    local server = proc.start({ share .. "/examples/kv/server.lua", "--name", "n1", "--address", addr,
      "--data", data .. "/n1", "--bootstrap", addr }, { bin = bin, timeout = 60 })
    local r
    for _ = 1, 50 do
      r = proc.run({ share .. "/examples/kv/client.lua", "--cluster", addr, "put", "greeting", "hello" },
        { bin = bin })
      if r.code == 0 then break end
      os.execute("sleep 0.2")
    end
    assert.are.equal(0, r.code, r.stderr .. server:stderr())
    r = proc.run({ share .. "/examples/kv/client.lua", "--cluster", addr, "get", "greeting" }, { bin = bin })
    assert.are.equal("hello\n", r.stdout, r.stderr)
    r = proc.run({ "ctl", "--socket", data .. "/n1", "run", share .. "/scripts/status.lua" }, { bin = bin })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("n1 is leader", r.stdout)

    -- plain lua5.4 finds the library in the DESTDIR only, and talks to the cluster
    local lua_env = ("LUA_PATH=%s LUA_CPATH=%s"):format(
      q(dest .. "/usr/share/lua/5.4/?.lua;" .. dest .. "/usr/share/lua/5.4/?/init.lua"),
      q(dest .. "/usr/lib/lua/5.4/?.so"))
    local script = proc.script(([[
      local copycat = require("copycat")
      print(package.searchpath("copycat", package.path))
      print(package.searchpath("copycat.core", package.cpath))
      copycat.spawn(function()
        local c = copycat.client{ cluster = { %q } }
        local value = assert(c:query("get", { key = "greeting" }))
        print(value)
        c:close()
      end)
      copycat.run()
    ]]):format(addr))
    code, out = sh(("cd / && env %s lua5.4 %s"):format(lua_env, q(script)))
    assert.are.equal(0, code, out)
    assert.are.equal(dest .. "/usr/share/lua/5.4/copycat/init.lua\n" ..
      dest .. "/usr/lib/lua/5.4/copycat/core.so\nhello\n", out)
    server:kill("TERM")
    assert.are.equal(0, server:wait(20), server:stderr())

    code, out = make("uninstall", dest)
    assert.are.equal(0, code, out)
    assert.are.same({}, files_under(dest))
    for _, d in ipairs({ "/usr/share/lua/5.4/copycat", "/usr/lib/lua/5.4/copycat", "/usr/share/copycat-lua",
      "/usr/share/doc/copycat-lua" }) do
      assert.are.equal(1, (sh("test -e " .. q(dest .. d))), d .. " is left")
    end
    os.execute("rm -rf " .. q(dest) .. " " .. q(data))
  end)

  it("removes only what it installed", function()
    local dest = proc.tmpdir()
    assert.are.equal(0, (make("install", dest)))
    proc.write(dest .. "/usr/share/copycat-lua/scripts/mine.lua", "print('mine')\n")
    local code, out = make("uninstall", dest)
    assert.are.equal(0, code, out)
    assert.are.same({ "/usr/share/copycat-lua/scripts/mine.lua" }, files_under(dest))
    os.execute("rm -rf " .. q(dest))
  end)
end)
