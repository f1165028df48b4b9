--- The fault suite's network (docs/faults.md): one network namespace per
--- server, each joined to a bridge in the root namespace by a veth pair,
--- and links cut with nftables drop rules inside the namespaces. Real
--- packets are lost; nothing is simulated. Clients run in the root
--- namespace and reach every server through the bridge: the rules drop
--- only traffic between servers, so clients stay connected to every node.
---
--- Several runs may share the machine: each takes a slot (a directory
--- /run/copycat-faults/slot-N holding its pid), and slot N owns the subnet
--- 10.213.N.0/24, the bridge ccfN, the namespaces ccfN-1... and the veths
--- ccfN-v1... A slot whose owner died is cleaned up and reused.
---
--- Needs root, `ip` (iproute2) and `nft` (nftables).
local M = {}

local SLOTS = "/run/copycat-faults"

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  return ok == true, how, code
end

-- Runs nft in namespace ns with a script (through a file: no quoting).
local function nft(ns, script)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(script, "\n")
  f:close()
  local p = io.popen(("ip netns exec %s nft -f %s 2>&1"):format(ns, path))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  if not ok then error(("nft in %s failed: %s\n%s"):format(ns, out, script), 0) end
end

local function must(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  if not ok then error(("network setup failed: %s\n%s"):format(cmd, out), 0) end
  return out
end

--- Why this machine cannot run the network faults, or nil if it can.
function M.unavailable()
  local id = io.popen("id -u"):read("l")
  if id ~= "0" then return "the network faults need root (network namespaces, nftables)" end
  for _, tool in ipairs({ "ip", "nft" }) do
    if not sh("command -v " .. tool .. " >/dev/null 2>&1") then return "missing the command " .. tool end
  end
  local name = "ccfprobe" .. tostring(os.time() % 100000) .. tostring(math.random(1000))
  if not sh("ip netns add " .. name .. " >/dev/null 2>&1") then
    return "ip netns add failed: network namespaces are not allowed here"
  end
  local tables = sh(("ip netns exec %s nft add table inet probe >/dev/null 2>&1"):format(name))
  sh("ip netns del " .. name .. " >/dev/null 2>&1")
  if not tables then return "nft cannot add a table inside a network namespace" end
  return nil
end

local function alive(pid)
  return pid and pid:match("^%d+$") and sh("kill -0 " .. pid .. " 2>/dev/null")
end

local function teardown_slot(n, nodes)
  sh(("ip link del ccf%d >/dev/null 2>&1"):format(n))
  for i = 1, nodes or 9 do
    sh(("ip netns del ccf%d-%d >/dev/null 2>&1"):format(n, i))
    sh(("ip link del ccf%d-v%d >/dev/null 2>&1"):format(n, i))
  end
end

-- Takes a free slot (mkdir is atomic); reclaims those of dead runs.
local function take_slot()
  sh("mkdir -p " .. SLOTS)
  for n = 1, 250 do
    local dir = ("%s/slot-%d"):format(SLOTS, n)
    if sh("mkdir " .. dir .. " 2>/dev/null") then
      local f = assert(io.open(dir .. "/pid", "w"))
      f:write(tostring(M.self_pid()), "\n")
      f:close()
      return n, dir
    end
    local f = io.open(dir .. "/pid")
    local pid = f and f:read("l")
    if f then f:close() end
    if not alive(pid) and (pid or sh(("find %s -maxdepth 0 -mmin +5 | grep -q ."):format(dir))) then
      teardown_slot(n)
      sh("rm -rf " .. dir)
      if sh("mkdir " .. dir .. " 2>/dev/null") then
        f = assert(io.open(dir .. "/pid", "w"))
        f:write(tostring(M.self_pid()), "\n")
        f:close()
        return n, dir
      end
    end
  end
  error("no free network slot under " .. SLOTS, 0)
end

--- This Lua process's pid (the parent of the shell that asks).
function M.self_pid()
  if not M.pid then M.pid = io.popen("echo $PPID"):read("l") end
  return M.pid
end

---@class faults.Net
---@field slot integer
---@field nodes integer
---@field gateway string the bridge's address: where clients come from
local Net = {}
Net.__index = Net

--- Builds the bridge and one namespace per node (1..nodes).
function M.new(nodes)
  local n, dir = take_slot()
  local self = setmetatable({ slot = n, dir = dir, nodes = nodes, gateway = ("10.213.%d.1"):format(n) }, Net)
  local ok, err = pcall(function()
    teardown_slot(n, nodes)
    must(("ip link add ccf%d type bridge && ip link set ccf%d up && ip addr add %s/24 dev ccf%d"):format(
      n, n, self.gateway, n))
    for i = 1, nodes do
      local ns, veth = self:ns(i), ("ccf%d-v%d"):format(n, i)
      must(("ip netns add %s"):format(ns))
      must(("ip link add %s type veth peer name eth0 netns %s"):format(veth, ns))
      must(("ip link set %s master ccf%d up"):format(veth, n))
      must(("ip -n %s addr add %s/24 dev eth0 && ip -n %s link set eth0 up && ip -n %s link set lo up"):format(
        ns, self:ip(i), ns, ns))
      nft(ns, [[
table inet ccf {
  chain input { type filter hook input priority 0; policy accept; }
  chain output { type filter hook output priority 0; policy accept; }
}]])
    end
  end)
  if not ok then
    self:close()
    error(err, 0)
  end
  return self
end

function Net:ns(i) return ("ccf%d-%d"):format(self.slot, i) end
function Net:ip(i) return ("10.213.%d.%d"):format(self.slot, 10 + i) end

-- Replaces the rules of node i's namespace with `rules` (nft statements
-- for the input and output chains).
function Net:set_rules(i, input, output)
  local script = { "flush chain inet ccf input", "flush chain inet ccf output" }
  for _, r in ipairs(input or {}) do script[#script + 1] = "add rule inet ccf input " .. r end
  for _, r in ipairs(output or {}) do script[#script + 1] = "add rule inet ccf output " .. r end
  nft(self:ns(i), table.concat(script, "\n"))
end

--- Applies a set of faults at once, replacing any before:
---   drops = { {from, to}, ... }  packets from node `from` to node `to` are
---                                dropped (at `to`); a cut in both
---                                directions is two pairs
---   loss = { [i] = percent }     that share of node i's packets to and
---                                from other servers is dropped at random
function Net:apply(drops, loss)
  local input = {}
  for i = 1, self.nodes do input[i] = {} end
  for _, d in ipairs(drops or {}) do
    table.insert(input[d[2]], ("ip saddr %s drop"):format(self:ip(d[1])))
  end
  local subnet = ("10.213.%d.0/24"):format(self.slot)
  for i = 1, self.nodes do
    local output = {}
    local pct = loss and loss[i]
    if pct then
      local match = ("%%s %s %%s != %s numgen random mod 100 < %d drop"):format(subnet, self.gateway, pct)
      table.insert(input[i], (match:format("ip saddr", "ip saddr")))
      output[1] = match:format("ip daddr", "ip daddr")
    end
    self:set_rules(i, input[i], output)
  end
end

--- Removes every fault.
function Net:heal()
  for i = 1, self.nodes do self:set_rules(i, {}, {}) end
end

--- The rules now in force, one line per node (for the run's log).
function Net:describe()
  local lines = {}
  for i = 1, self.nodes do
    local p = io.popen(("ip netns exec %s nft list table inet ccf 2>&1"):format(self:ns(i)))
    local text = p:read("a")
    p:close()
    local rules = {}
    for line in text:gmatch("[^\n]+") do
      if line:find("drop") then rules[#rules + 1] = line:gsub("^%s+", "") end
    end
    lines[#lines + 1] = ("n%d: %s"):format(i, #rules > 0 and table.concat(rules, "; ") or "no rules")
  end
  return table.concat(lines, "\n")
end

--- Removes the namespaces, the bridge and the slot.
function Net:close()
  teardown_slot(self.slot, self.nodes)
  sh("rm -rf " .. self.dir)
end

return M
