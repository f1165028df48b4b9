-- tools/deps.sh, the first thing `make run` and `make test` run on a new
-- machine: run in a sandbox PATH holding only stand-ins for dpkg-query,
-- apt-get and id (and the few tools the script uses), so every case of a
-- fresh machine is reproduced without touching the real package database.
local proc = require("support.proc")

local q = proc.quote
local script = (os.getenv("PWD") or ".") .. "/tools/deps.sh"

-- Builds a sandbox: `installed` lists the packages dpkg-query reports as
-- installed ("*" for all); apt_update/apt_install are the stand-ins' exit
-- statuses (nil: no apt-get at all); uid is what `id -u` prints.
local function sandbox(opts)
  local dir = proc.tmpdir()
  local bin = dir .. "/bin"
  os.execute("mkdir -p " .. q(bin))
  for _, tool in ipairs({ "grep", "tee", "chmod", "rm", "cat" }) do
    local p = io.popen("command -v " .. tool)
    local path = p:read("l")
    p:close()
    os.execute(("ln -s %s %s"):format(q(path), q(bin .. "/" .. tool)))
  end
  local installed = opts.installed or ""
  proc.write(bin .. "/dpkg-query", ([[#!/bin/sh
# dpkg-query -W -f=FORMAT PACKAGE
for p in %s; do
  if [ "$p" = "*" ] || [ "$p" = "$3" ]; then echo "install ok installed"; exit 0; fi
done
echo "dpkg-query: no packages found matching $3" >&2
exit 1
]]):format(installed))
  if opts.apt_install ~= nil then
    proc.write(bin .. "/apt-get", ([[#!/bin/sh
echo "$*" >>%s
case "$1" in
  update) exit %d ;;
  install) [ %d -eq 0 ] || echo "E: Unable to locate package" >&2; exit %d ;;
esac
]]):format(q(dir .. "/apt.log"), opts.apt_update or 0, opts.apt_install, opts.apt_install))
  end
  proc.write(bin .. "/id", ("#!/bin/sh\necho %d\n"):format(opts.uid or 0))
  os.execute("chmod +x " .. q(bin) .. "/*")
  return dir
end

local function run(dir, args)
  local cmd = ("cd %s && PATH=%s /bin/sh %s %s >%s 2>%s"):format(q(dir), q(dir .. "/bin"), q(script),
    args or "", q(dir .. "/out"), q(dir .. "/err"))
  local _, _, code = os.execute(cmd)
  return { code = code, stdout = proc.slurp(dir .. "/out"), stderr = proc.slurp(dir .. "/err"),
    apt = proc.slurp(dir .. "/apt.log") }
end

describe("tools/deps.sh", function()
  it("is silent and succeeds when every package is installed", function()
    local r = run(sandbox({ installed = "'*'", apt_install = 0 }))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    assert.are.equal("", r.stderr)
    assert.are.equal("", r.apt) -- apt-get is never called
  end)

  it("installs what is missing and exits 0 on the first run", function()
    local r = run(sandbox({ installed = "gcc make pkg-config", apt_install = 0 }))
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("deps: installing liblua5.4%-dev", r.stdout)
    assert.matches("deps: done", r.stdout)
    assert.matches("^update", r.apt)
    local install = r.apt:match("install[^\n]*")
    assert.truthy(install, r.apt)
    assert.truthy(install:find("liblua5.4-dev", 1, true))
    assert.falsy(install:find(" gcc", 1, true)) -- installed ones are not asked for again
  end)

  it("exits 1 and says what failed when apt-get install fails", function()
    local r = run(sandbox({ installed = "", apt_install = 100 }))
    assert.are.equal(1, r.code)
    assert.matches("apt%-get install.*failed", r.stderr)
    assert.matches("make deps", r.stderr)
    assert.falsy(r.stdout:find("deps: done", 1, true))
  end)

  it("exits 1 and says so when apt-get update fails", function()
    local r = run(sandbox({ installed = "", apt_update = 100, apt_install = 0 }))
    assert.are.equal(1, r.code)
    assert.matches("apt%-get update' failed", r.stderr)
  end)

  it("asks for root when not root and without sudo, installing nothing", function()
    local r = run(sandbox({ installed = "", apt_install = 0, uid = 1000 }))
    assert.are.equal(1, r.code)
    assert.matches("run 'make deps' as root", r.stderr)
    assert.matches("missing packages: gcc", r.stderr)
    assert.are.equal("", r.apt)
  end)

  it("names the missing packages when there is no apt-get", function()
    local r = run(sandbox({ installed = "" }))
    assert.are.equal(1, r.code)
    assert.matches("no apt%-get here", r.stderr)
    assert.matches("lua%-busted", r.stderr)
  end)

  it("refuses an unknown argument with a usage line and status 2", function()
    local r = run(sandbox({ installed = "'*'", apt_install = 0 }), "--bogus")
    assert.are.equal(2, r.code)
    assert.matches("usage: tools/deps.sh", r.stderr)
  end)
end)
