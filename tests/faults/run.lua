--- One run of the fault suite (docs/faults.md): a cluster of kv servers in
--- network namespaces, load from long-lived worker processes, a nemesis
--- injecting faults, then healing, a final read of every key, and the
--- checker's verdict.
---
---   lua5.4 tests/faults/run.lua [--nemesis NAME] [--seed N] [--duration SECONDS]
---       [--nodes N] [--workers N] [--tasks N] [--readers N] [--keys N]
---       [--bin PATH] [--out DIR] [--bugs NAME,...] [--keep]
---
--- Prints one summary line (nemesis, seed, duration, operations,
--- ok/indeterminate/failed, verdict) and exits 0 for a valid history, 1
--- for anomalies (the history, server logs and data directories are kept
--- in the run's directory, and the smallest anomaly is printed), 2 when
--- the run itself could not be made. --bugs runs servers with deliberate
--- bugs switched on (COPYCAT_TEST_RAFT_BUGS; only a build with them, see
--- `make chaos-bugs`, honours it); --expect-invalid inverts the exit status,
--- for proving the checker.
package.path = "tests/faults/?.lua;" .. package.path
local system = require("system")
local net_m = require("net")
local cluster_m = require("cluster")
local nemesis = require("nemesis")
local check = require("check")

local function usage(msg)
  io.stderr:write("faults: ", msg, "\n",
    "usage: lua5.4 tests/faults/run.lua [--nemesis NAME] [--seed N] [--duration S] [--nodes N] ",
    "[--workers N] [--tasks N] [--readers N] [--keys N] [--bin PATH] [--out DIR] [--bugs LIST] ",
    "[--expect-invalid] [--keep]\n  nemeses: ", table.concat(nemesis.names, " "), "\n")
  os.exit(2)
end

local opts = { nemesis = "mix", seed = os.time() % 100000, duration = 30, nodes = 5, workers = 3, tasks = 4,
  readers = 2, keys = 12, bin = os.getenv("COPYCAT_BIN") or "build/copycat-lua" }
local numeric = { seed = true, duration = true, nodes = true, workers = true, tasks = true, readers = true,
  keys = true }
local i = 1
while i <= #arg do
  local a = arg[i]
  local name = a:match("^%-%-([%w-]+)$")
  if not name then usage("unexpected argument " .. a) end
  if name == "keep" or name == "expect-invalid" then
    opts[name] = true
  else
    local v = arg[i + 1]
    if v == nil then usage("--" .. name .. " needs a value") end
    if numeric[name] then
      v = tonumber(v)
      if not v or v < 0 then usage("--" .. name .. " takes a number") end
    elseif name ~= "nemesis" and name ~= "bin" and name ~= "out" and name ~= "bugs" then
      usage("unknown flag --" .. name)
    end
    opts[name] = v
    i = i + 1
  end
  i = i + 1
end
if not nemesis[opts.nemesis] then usage("unknown nemesis " .. opts.nemesis) end
if opts.nodes < 3 then usage("--nodes must be at least 3") end

local why = net_m.unavailable()
if why then
  io.stderr:write("faults: cannot run: ", why, "\n")
  os.exit(3)
end

local function now_ms() return system.monotime() * 1000 end
local function sh(cmd) return os.execute(cmd) == true end

local dir = opts.out or ("build/faults/%s-%d-%d"):format(opts.nemesis, opts.seed, os.time())
sh("rm -rf " .. dir)
sh("mkdir -p " .. dir .. "/data")
local logf = assert(io.open(dir .. "/nemesis.txt", "w"))
local t_start = now_ms()
local function log(line)
  logf:write(("%.3f %s\n"):format((now_ms() - t_start) / 1000, line))
  logf:flush()
  if os.getenv("FAULTS_VERBOSE") then io.stderr:write(line, "\n") end
end

-- Seeded choices of the nemesis (xorshift, as the workers).
local rs = opts.seed * 2654435761 + 1
local function rand(n)
  rs = rs ~ (rs << 13); rs = rs ~ (rs >> 7); rs = rs ~ (rs << 17)
  return (rs & 0x7fffffff) % n + 1
end

local net, cluster
local workers = {}
local function cleanup()
  if cluster then cluster:stop_all() end
  for _, w in ipairs(workers) do sh("kill -9 " .. w .. " 2>/dev/null") end
  if net then net:close() end
end

local function run()
  net = net_m.new(opts.nodes)
  log(("network: slot %d, bridge %s, servers %s..%s"):format(net.slot, net.gateway, net:ip(1), net:ip(opts.nodes)))
  cluster = cluster_m.new({ bin = opts.bin, dir = dir, net = net, nodes = opts.nodes, bugs = opts.bugs, log = log })
  for n = 1, opts.nodes do cluster:start(n, "bootstrap", cluster:all()) end
  local leader = cluster:wait_leader(30)
  if not leader then error("no leader within 30 s of the start (see " .. dir .. "/n*.log)", 0) end
  log(("leader n%d"):format(leader))

  -- The workers: long-lived processes, each with many client tasks.
  local dur_ms = math.floor(opts.duration * 1000)
  for w = 1, opts.workers do
    local cmd = ("%s tests/faults/worker.lua --cluster %s --tls-ca %s --id %d --out %s/history-%d.txt " ..
      "--seed %d --duration %d --tasks %d --readers %d --keys %d >%s/worker-%d.log 2>&1 & echo $!"):format(
      opts.bin, cluster:addresses(), cluster:ca(), w, dir, w, opts.seed, dur_ms, opts.tasks, opts.readers,
      opts.keys, dir, w)
    workers[w] = io.popen(cmd):read("l")
  end

  -- The nemesis: a fault for 2-4 s, then its undo and 1-2 s of calm.
  local ctx = { cluster = cluster, net = net, rand = rand, log = log, nodes = opts.nodes }
  local stop_at = now_ms() + dur_ms - 1500
  system.sleep(1.5)
  local faults = 0
  while now_ms() < stop_at do
    local undo = nemesis[opts.nemesis](ctx)
    faults = faults + 1
    system.sleep(math.min(2 + rand(20) / 10, math.max(0, (stop_at - now_ms()) / 1000)))
    undo()
    system.sleep(1 + rand(10) / 10)
  end
  net:heal()
  for n = 1, opts.nodes do
    if cluster.paused[n] then cluster:resume(n) end
    if not cluster.pids[n] then cluster:start(n) end
  end
  log(("healed after %d faults"):format(faults))

  -- Wait for the workers (each stops by itself at the deadline).
  for _, pid in ipairs(workers) do
    while sh("kill -0 " .. pid .. " 2>/dev/null") do system.sleep(0.1) end
  end
  -- The final reads: every key any worker used.
  local keys = {}
  local p = io.popen(("cat %s/history-*.txt 2>/dev/null | grep -o 'k=\"[^\"]*\"' | sort -u"):format(dir))
  for line in p:lines() do
    local k = line:match('k="([^"]*)"')
    if k and k ~= "barrier" then keys[#keys + 1] = k end
  end
  p:close()
  if cluster:wait_leader(30) == nil then log("no leader after healing") end
  local ok = sh(("%s tests/faults/worker.lua --cluster %s --tls-ca %s --id 0 --out %s/history-final.txt " ..
    "--final %s >%s/worker-final.log 2>&1"):format(opts.bin, cluster:addresses(), cluster:ca(), dir,
    table.concat(keys, ","), dir))
  if not ok then log("the final reader failed: see worker-final.log") end
  log("final reads done")
end

local ok, err = pcall(run)
cleanup()
local elapsed = (now_ms() - t_start) / 1000
if not ok then
  io.stderr:write(("faults: the run failed: %s\n  kept in %s\n"):format(tostring(err), dir))
  print(("nemesis=%s seed=%d duration=%ds verdict=error"):format(opts.nemesis, opts.seed, opts.duration))
  os.exit(2)
end

-- Workers that crashed leave holes: that is a harness error, not a pass.
for w = 1, opts.workers do
  local f = io.open(("%s/worker-%d.log"):format(dir, w))
  local text = f and f:read("a") or ""
  if f then f:close() end
  if text:find("copycat%-lua:") or text:find("traceback") then
    io.stderr:write(("faults: worker %d failed:\n%s\n"):format(w, text))
    print(("nemesis=%s seed=%d verdict=error"):format(opts.nemesis, opts.seed))
    os.exit(2)
  end
end

local ops, lerr = check.load(dir)
if not ops then
  io.stderr:write("faults: ", lerr, "\n")
  os.exit(2)
end
local report = check.check(ops)
local c = report.counts
local verdict = report.valid and "valid" or ("INVALID (%d anomalies)"):format(#report.anomalies)
print(("nemesis=%s seed=%d duration=%ds wall=%.0fs ops=%d ok=%d indeterminate=%d failed=%d appends=%d " ..
  "registers=%d verdict=%s"):format(opts.nemesis, opts.seed, opts.duration, elapsed, c.total, c.ok, c.info, c.fail,
  report.stats.appends, report.stats.keys, verdict))
local f = assert(io.open(dir .. "/verdict.txt", "w"))
f:write(verdict, "\n", table.concat(report.anomalies, "\n\n"), "\n")
f:close()
if not report.valid then
  print(("the smallest anomaly (all of them in %s/verdict.txt; history, logs and data kept in %s):"):format(dir, dir))
  print(report.anomalies[1])
end
if report.valid and not opts.keep and not opts["expect-invalid"] then sh("rm -rf " .. dir) end
if opts["expect-invalid"] then os.exit(report.valid and 1 or 0) end
os.exit(report.valid and 0 or 1)
