--- The fault suite's cluster (docs/faults.md): kv servers
--- (examples/kv/server.lua), one per network namespace, over TLS with
--- certificates made by `copycat-lua ctl certs`; started, killed, paused,
--- resumed and restarted by pid; asked and changed through `copycat-lua
--- ctl` on each server's admin socket (a Unix socket in its data
--- directory, reachable from the root namespace).
local M = {}

local function sh(cmd)
  return os.execute(cmd) == true
end

local function read_cmd(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local function sleep(s) require("system").sleep(s) end

---@class faults.Cluster
local Cluster = {}
Cluster.__index = Cluster

--- opts: bin, dir (the run's directory), net (faults.Net), nodes,
--- bugs (COPYCAT_TEST_RAFT_BUGS for a build that has them), log (fn(line)).
function M.new(opts)
  local self = setmetatable({ bin = opts.bin, dir = opts.dir, net = opts.net, nodes = opts.nodes,
    bugs = opts.bugs, log = opts.log or print, pids = {}, paused = {}, port = 7000,
    election_ms = opts.election_ms or 500 }, Cluster)
  local names = {}
  for i = 1, self.nodes do names[i] = "n" .. i end
  local ok, out = read_cmd(("%s ctl certs %s/certs %s"):format(self.bin, self.dir, table.concat(names, " ")))
  if not ok then error("ctl certs failed: " .. out, 0) end
  return self
end

function Cluster:address(i) return ("%s:%d"):format(self.net:ip(i), self.port) end
function Cluster:data(i) return ("%s/data/n%d"):format(self.dir, i) end
function Cluster:ca() return self.dir .. "/certs/ca.crt" end

function Cluster:addresses(list)
  local out = {}
  for _, i in ipairs(list or self:all()) do out[#out + 1] = self:address(i) end
  return table.concat(out, ",")
end

function Cluster:all()
  local t = {}
  for i = 1, self.nodes do t[i] = i end
  return t
end

--- Starts server i: mode is "bootstrap" (the initial members `initial`),
--- or "empty" (waits to be added). A restart uses its stored configuration.
function Cluster:start(i, mode, initial)
  sh(("mkdir -p %s"):format(self:data(i)))
  local how = mode == "empty" and "--empty" or ("--bootstrap " .. self:addresses(initial))
  local certs = self.dir .. "/certs/n" .. i
  local env = self.bugs and ("COPYCAT_TEST_RAFT_BUGS=" .. self.bugs .. " ") or ""
  local cmd = ("%sip netns exec %s %s examples/kv/server.lua --name n%d --address %s --data %s %s " ..
    "--tls-ca %s --tls-cert %s.crt --tls-key %s.key --election-timeout %d --snapshot-threshold 2000 " ..
    ">>%s/n%d.log 2>&1 & echo $!"):format(env, self.net:ns(i), self.bin, i, self:address(i), self:data(i), how,
    self:ca(), certs, certs, self.election_ms, self.dir, i)
  local pid = io.popen(cmd):read("l")
  self.pids[i] = pid
  self.paused[i] = nil
  self.log(("start n%d (%s) pid %s"):format(i, mode or "restart", tostring(pid)))
end

function Cluster:running(i)
  return self.pids[i] ~= nil and sh("kill -0 " .. self.pids[i] .. " 2>/dev/null")
end

function Cluster:signal(i, sig)
  if self.pids[i] then sh(("kill -%s %s 2>/dev/null"):format(sig, self.pids[i])) end
end

--- SIGKILL, and wait until the process is gone.
function Cluster:kill(i)
  if not self.pids[i] then return end
  self:signal(i, "KILL")
  for _ = 1, 100 do
    if not self:running(i) then break end
    sleep(0.02)
  end
  -- Reap it if it is our child's orphan still listed.
  self.pids[i] = nil
  self.paused[i] = nil
end

function Cluster:pause(i)
  self:signal(i, "STOP")
  self.paused[i] = true
end

function Cluster:resume(i)
  self:signal(i, "CONT")
  self.paused[i] = nil
end

--- Runs a ctl command against server i; returns ok, output.
function Cluster:ctl(i, args, timeout_s)
  return read_cmd(("timeout %d %s ctl --socket %s --timeout %d %s"):format((timeout_s or 10) + 5, self.bin,
    self:data(i), timeout_s or 10, args))
end

--- Server i's status (decoded JSON) or nil, error.
function Cluster:status(i)
  if not self.pids[i] or self.paused[i] then return nil, "not running" end
  local ok, out = self:ctl(i, "status --json", 3)
  if not ok then return nil, out end
  local okj, st = pcall(require("cjson").decode, out)
  if not okj then return nil, out end
  return st
end

--- The leader's number as most running servers see it, or nil.
function Cluster:leader()
  local votes, best, best_n = {}, nil, 0
  for i = 1, self.nodes do
    local st = self:status(i)
    if st and st.role == "leader" then return i, st end
    local l = st and type(st.leader) == "string" and tonumber(st.leader:match("^n(%d+)$"))
    if l then
      votes[l] = (votes[l] or 0) + 1
      if votes[l] > best_n then best, best_n = l, votes[l] end
    end
  end
  return best
end

--- Waits until a leader serves (up to `seconds`); returns its number.
function Cluster:wait_leader(seconds)
  local deadline = os.time() + (seconds or 30)
  repeat
    for i = 1, self.nodes do
      local st = self:status(i)
      if st and st.role == "leader" and st.leader_ready ~= false then return i, st end
    end
    sleep(0.2)
  until os.time() > deadline
  return nil
end

--- Stops every server (SIGCONT first for paused ones), then SIGKILL.
function Cluster:stop_all()
  for i = 1, self.nodes do
    if self.pids[i] then
      self:signal(i, "CONT")
      self:signal(i, "TERM")
    end
  end
  for _ = 1, 50 do
    local any = false
    for i = 1, self.nodes do if self:running(i) then any = true end end
    if not any then break end
    sleep(0.1)
  end
  for i = 1, self.nodes do if self.pids[i] then self:kill(i) end end
end

return M
