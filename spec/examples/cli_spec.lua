-- The example clients' command lines (lua/copycat/cli.lua): every bad flag
-- value is a usage error (exit 2, one line naming the flag and what it
-- expects, then the usage, no traceback), and every client reaches a
-- cluster started with --cluster ID when given --cluster-id ID.
local proc = require("support.proc")
local cluster = require("support.cluster")
local cli = require("copycat.cli")

local CLIENTS = {
  { script = "examples/kv/client.lua", name = "kv", words = { "get", "k" }, consistency = true },
  { script = "examples/counter/client.lua", name = "counter", words = { "get", "c" }, consistency = true },
  { script = "examples/lock/client.lua", name = "lock", words = { "L", "10" } },
  { script = "examples/election/member.lua", name = "member", words = { "alpha" } },
}

-- Nothing listens on port 1: a client that got past its command line
-- would fail with exit status 1, never 2.
local GOOD = "127.0.0.1:1"

-- flag arguments, then the text the error line must hold after "NAME: "
local BAD_FLAGS = {
  { { "--cluster", "notanaddress" }, '--cluster expects HOST:PORT[,HOST:PORT...], got "notanaddress"' },
  { { "--cluster", "" }, "--cluster expects HOST:PORT[,HOST:PORT...], got an empty value" },
  { { "--cluster", "127.0.0.1:5001,," }, '--cluster expects HOST:PORT[,HOST:PORT...], got "127.0.0.1:5001,,"' },
  { { "--cluster", "127.0.0.1:99999" }, '--cluster expects HOST:PORT[,HOST:PORT...], got "127.0.0.1:99999"' },
  { { "--cluster", GOOD, "--timeout", "abc" }, '--timeout expects a whole number of milliseconds >= 1, got "abc"' },
  { { "--cluster", GOOD, "--timeout", "-5" }, '--timeout expects a whole number of milliseconds >= 1, got "-5"' },
  { { "--cluster", GOOD, "--timeout", "0" }, '--timeout expects a whole number of milliseconds >= 1, got "0"' },
  { { "--cluster", GOOD, "--timeout", "1.5" }, '--timeout expects a whole number of milliseconds >= 1, got "1.5"' },
  { { "--cluster", GOOD, "--session-timeout", "0" },
    '--session-timeout expects a whole number of milliseconds >= 200, got "0"' },
  { { "--cluster", GOOD, "--session-timeout", "199" },
    '--session-timeout expects a whole number of milliseconds >= 200, got "199"' },
  { { "--cluster", GOOD, "--session-timeout=x" },
    '--session-timeout expects a whole number of milliseconds >= 200, got "x"' },
  { { "--cluster", GOOD, "--cluster-id", "" }, "--cluster-id expects a non-empty value, got an empty value" },
  { { "--cluster", GOOD, "--frob", "1" }, "unknown option --frob" },
  { { "--timeout", "100" }, "--cluster is required" },
}

local function run(client, flags, words)
  local args = { client.script }
  for _, a in ipairs(flags) do args[#args + 1] = a end
  for _, a in ipairs(words or client.words) do args[#args + 1] = a end
  return proc.run(args, { timeout = 20 })
end

local function assert_usage_error(r, client, message)
  assert.are.equal(2, r.code, r.stderr)
  local first = r.stderr:match("^[^\n]*")
  assert.are.equal(client.name .. ": " .. message, first)
  assert.matches("\nusage: copycat%-lua " .. client.script:gsub("%p", "%%%0"), r.stderr)
  assert.is_nil(r.stderr:find("traceback", 1, true), r.stderr)
  assert.are.equal("", r.stdout)
end

describe("the example clients' command lines", function()
  for _, client in ipairs(CLIENTS) do
    describe(client.name, function()
      for _, case in ipairs(BAD_FLAGS) do
        it("refuses " .. table.concat(case[1], " "), function()
          assert_usage_error(run(client, case[1]), client, case[2])
        end)
      end

      it("refuses a flag without its value", function()
        assert_usage_error(run(client, { "--cluster", GOOD, "--timeout" }, {}), client, "--timeout needs a value")
      end)

      if client.consistency then
        it("refuses an unknown consistency level", function()
          assert_usage_error(run(client, { "--cluster", GOOD, "--consistency", "strong" }), client,
            '--consistency expects linearizable, lease or sequential, got "strong"')
        end)
      end

      it("prints the usage on stdout for --help, exit 0", function()
        local r = run(client, { "--help" }, {})
        assert.are.equal(0, r.code, r.stderr)
        assert.matches("^usage: copycat%-lua ", r.stdout)
        assert.matches("%-%-cluster%-id ID", r.stdout)
      end)

      it("gets past a good command line (and fails on the unreachable cluster with status 1)", function()
        local r = run(client, { "--cluster", GOOD, "--cluster-id", "blue", "--timeout", "200",
          "--session-timeout", "600" })
        assert.are.equal(1, r.code, r.stderr)
        assert.is_nil(r.stderr:find("usage", 1, true), r.stderr)
        assert.is_nil(r.stderr:find("traceback", 1, true), r.stderr)
      end)
    end)
  end

  it("checks the clients' positional arguments", function()
    local kv, counter, lock, member = CLIENTS[1], CLIENTS[2], CLIENTS[3], CLIENTS[4]
    local c = { "--cluster", GOOD }
    assert_usage_error(run(kv, c, {}), kv, "expected a command: put, get, delete, cas or keys")
    assert_usage_error(run(kv, c, { "frob" }), kv, "unknown command frob")
    assert_usage_error(run(kv, c, { "put", "k" }), kv, "put takes 2 argument(s)")
    assert_usage_error(run(counter, c, { "add", "c", "x" }), counter, 'BY expects a number, got "x"')
    assert_usage_error(run(counter, c, { "bump", "c", "ten", "2" }), counter,
      'N expects a whole number >= 0, got "ten"')
    assert_usage_error(run(counter, c, { "bump", "c", "10", "0" }), counter,
      'TASKS expects a whole number >= 1, got "0"')
    assert_usage_error(run(counter, c, { "reset" }), counter, "reset takes 1 argument(s)")
    assert_usage_error(run(lock, c, {}), lock, "expected the lock's NAME")
    assert_usage_error(run(lock, c, { "L", "-1" }), lock,
      'HOLD_MS expects a whole number of milliseconds >= 0, got "-1"')
    assert_usage_error(run(member, c, { "a", "b" }), member, "expected one NAME, got 2 arguments")
  end)

  it("checks the kv server's flag values the same way", function()
    local server = { script = "examples/kv/server.lua", name = "kv server" }
    local base = { "--name", "n1", "--data", proc.tmpdir(), "--empty" }
    local function with(...)
      local args = { table.unpack(base) }
      for _, a in ipairs({ ... }) do args[#args + 1] = a end
      return args
    end
    assert_usage_error(run(server, with("--address", "nohost"), {}), server,
      '--address expects HOST:PORT, got "nohost"')
    assert_usage_error(run(server, with("--address", GOOD, "--election-timeout", "fast"), {}), server,
      '--election-timeout expects a whole number of milliseconds >= 1, got "fast"')
    assert_usage_error(run(server, with("--address", GOOD, "--snapshot-threshold", "0"), {}), server,
      '--snapshot-threshold expects a whole number of entries >= 1, got "0"')
    assert_usage_error(run(server, with("--address", GOOD, "--type", "voter"), {}), server,
      '--type expects active, passive or reserve, got "voter"')
    assert_usage_error(run(server, with("--address", GOOD, "--log-level", "loud"), {}), server,
      '--log-level expects error, warn, info or debug, got "loud"')
    assert_usage_error(run(server, with("--address", GOOD, "--empty=yes"), {}), server,
      "--empty takes no value")
  end)
end)

describe("copycat.cli", function()
  local spec = { name = "t", usage = "usage: t", required = { "cluster" }, flags = {
    cluster = cli.addresses, n = cli.integer(-3, 3), empty = cli.switch, level = cli.one_of({ "a", "b" }) } }

  it("returns the checked values and the other words in order", function()
    local opts, words = cli.try_parse({ "x", "--cluster", "h:1, 127.0.0.1:65535", "y", "--n=-3", "--empty",
      "--", "--level", "z" }, spec)
    assert.are.same({ cluster = { "h:1", "127.0.0.1:65535" }, n = -3, empty = true }, opts)
    assert.are.same({ "x", "y", "--level", "z" }, words)
  end)

  it("says what a value must be", function()
    assert.are.same({ nil, '--n expects a whole number >= -3 and <= 3, got "4"' },
      { cli.try_parse({ "--cluster", "h:1", "--n", "4" }, spec) })
    assert.are.same({ nil, '--n expects a whole number >= -3 and <= 3, got "0x1"' },
      { cli.try_parse({ "--cluster", "h:1", "--n", "0x1" }, spec) })
    assert.are.same({ nil, '--level expects a or b, got "c"' },
      { cli.try_parse({ "--cluster", "h:1", "--level", "c" }, spec) })
    assert.are.same({ nil, '--cluster expects HOST:PORT[,HOST:PORT...], got "h:0"' },
      { cli.try_parse({ "--cluster", "h:0" }, spec) })
    assert.are.same({ nil, "--cluster is required" }, { cli.try_parse({ "--n", "1" }, spec) })
  end)

  it("gives the client flags and copycat.client's options from them", function()
    local flags = cli.client_flags({ level = cli.string })
    local opts = assert(cli.try_parse({ "--cluster", "h:1", "--session-timeout", "900", "--level", "x" },
      { name = "t", usage = "", flags = flags }))
    assert.are.same({ cluster = { "h:1" }, timeout = 5000, session_timeout = 900 }, cli.client_options(opts))
    opts = assert(cli.try_parse({ "--cluster", "h:1", "--cluster-id", "blue", "--timeout", "7" },
      { name = "t", usage = "", flags = flags }))
    assert.are.same({ cluster = { "h:1" }, cluster_id = "blue", timeout = 7, session_timeout = 5000 },
      cli.client_options(opts))
  end)

  it("reports -h and --help", function()
    assert.is_true(select(3, cli.try_parse({ "--n", "1", "-h" }, spec)))
    assert.is_true(select(3, cli.try_parse({ "--help" }, spec)))
  end)
end)

describe("--cluster-id", function()
  after_each(proc.cleanup)

  -- Each example's state machine on a 1-node cluster started with
  -- --cluster blue; the client reaches it with --cluster-id blue only.
  local function one_node(machine)
    local c = cluster.new(1)
    cluster.start(c, 1, "bootstrap", c.members[1].address,
      { "--cluster", "blue", "--state-machine", machine })
    return c, c.members[1].address
  end

  local function until_ok(args, tries)
    local r
    for _ = 1, tries or 50 do
      r = proc.run(args, { timeout = 20 })
      if r.code == 0 then return r end
      os.execute("sleep 0.2")
    end
    return r
  end

  it("lets the kv and counter clients reach a cluster started with --cluster ID", function()
    local _, a = one_node("examples/counter/state_machine.lua")
    local r = until_ok({ "examples/counter/client.lua", "--cluster", a, "--cluster-id", "blue", "add", "c", "3" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("3\n", r.stdout)
    r = proc.run({ "examples/counter/client.lua", "--cluster", a, "--timeout", "300", "get", "c" })
    assert.are.equal(1, r.code)
    assert.matches("cluster", r.stderr)
    local _, b = one_node("examples/kv/state_machine.lua")
    r = until_ok({ "examples/kv/client.lua", "--cluster", b, "--cluster-id", "blue", "put", "k", "v" })
    assert.are.equal(0, r.code, r.stderr)
    r = proc.run({ "examples/kv/client.lua", "--cluster", b, "--cluster-id", "blue", "get", "k" })
    assert.are.equal("v\n", r.stdout, r.stderr)
  end)

  it("lets the lock and election clients reach a cluster started with --cluster ID", function()
    local _, a = one_node("examples/lock/state_machine.lua")
    local r = until_ok({ "examples/lock/client.lua", "--cluster", a, "--cluster-id", "blue", "L", "10" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^acquired L session=%d+\nreleased L\n$", r.stdout)
    local _, b = one_node("examples/election/state_machine.lua")
    local m = proc.start({ "examples/election/member.lua", "--cluster", b, "--cluster-id", "blue", "alpha" },
      { timeout = 60 })
    assert.is_true(m:wait_output("leader alpha epoch=1 (me)", 30), m:stdout() .. m:stderr())
  end)
end)
