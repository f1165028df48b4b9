---@meta cluster
-- LuaLS definitions of the operator environment (docs/operators.md): what
-- a script run by `copycat-lua ctl run SCRIPT` sees besides the safe parts
-- of the standard library (string, table, math, utf8, os.time, os.clock,
-- os.date, pairs, pcall...). Calls that change the cluster return once the
-- change has committed and is in effect, and raise an error saying why when
-- they cannot.

---@alias copycat.op.Type "active"|"passive"|"reserve"

---@class copycat.op.Member
---@field name string
---@field address string
---@field type copycat.op.Type
---@field leader boolean
---@field self boolean
---@field match_index? integer when this server leads
---@field next_index? integer when this server leads
---@field lag? integer entries behind the leader's log, when this server leads

---@class copycat.op.Status
---@field name string
---@field address string
---@field role string
---@field term integer
---@field leader? string
---@field leader_address? string
---@field commit_index integer
---@field applied_index integer
---@field first_index integer
---@field last_index integer
---@field log_entries integer
---@field snapshot_index integer
---@field config_index integer
---@field config_committed boolean
---@field leader_ready boolean
---@field sessions? integer
---@field members copycat.op.Member[]

---@class copycat.op.Cluster
cluster = {}

--- The cluster as this server sees it.
---@return copycat.op.Status
function cluster.status() end

--- The configuration's members.
---@return copycat.op.Member[]
function cluster.members() end

--- The leader's name and address, or nil.
---@return string|nil name
---@return string|nil address
function cluster.leader() end

--- This server's name.
---@return string
function cluster.name() end

--- Adds a running server (e.g. started with --empty); true once committed.
---@param name string
---@param address string "host:port"
---@param type_? copycat.op.Type default "active"
---@return true
function cluster.add(name, address, type_) end

--- Makes the member ACTIVE (voting); true once committed.
---@param name string
---@return true
function cluster.promote(name) end

--- Makes the member PASSIVE (not voting); true once committed.
---@param name string
---@return true
function cluster.demote(name) end

--- Removes the member; true once committed.
---@param name string
---@return true
function cluster.remove(name) end

--- Hands leadership to an ACTIVE member; true once it leads and serves.
---@param name string
---@param timeout_ms? integer
---@return true
function cluster.transfer(name, timeout_ms) end

--- Snapshots this server's state machine now; returns the snapshot's index.
---@return integer
function cluster.snapshot() end

--- Reads this server's TLS CA, certificate and key files again; true.
---@return true
function cluster.reload_certs() end

--- Waits until this server has applied index n, or until
--- fn(cluster.status()) is true; true, or false and why on timeout.
---@param target integer|fun(status: copycat.op.Status): boolean
---@param timeout_ms? integer
---@return boolean
---@return string|nil
function cluster.wait_for(target, timeout_ms) end

--- Waits ms milliseconds (within the script's time limit).
---@param ms number
function cluster.sleep(ms) end
