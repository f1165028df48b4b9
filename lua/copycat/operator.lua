--- copycat.operator: the operator API, seen by admin scripts as the global
--- `cluster` (docs/operators.md is the reference).
---
--- It is built per script run, on the server that runs the script:
---   local api = operator.new(host, run)
--- host = { raw = <copycat.core server>, opts = <the server's options>,
--- status = function() -> the server's status, with `sessions` when the
--- server counts them (optional; raw:status() otherwise), reload_certs =
--- function() (optional), tls = function() -> the server's TLS context or
--- nil (optional: requests and probes then use the member's certificate) };
--- run = { deadline = ms (copycat.now() based), check = function() that
--- raises once the script's time is up, print = function(line) for
--- progress lines (optional) }.
---
--- Reads (status, members, leader) are this server's view. Changes go
--- through the client protocol to any member, which forwards them to the
--- leader, and return only when they are committed and in effect here:
--- a call that cannot complete raises an error that says why.
local runtime = require("copycat.runtime")
local client = require("copycat.client")

local operator = {}

local TYPES = { active = true, passive = true, reserve = true }
local POLL_MS = 20
local PROBE_MS = 5000     -- how long add waits for a new server to answer
local PROGRESS_MS = 1000  -- catch-up progress lines at most this often

-- 12345678 -> "12,345,678"
local function thousands(n)
  local s = tostring(math.floor(n))
  local sign, digits = s:match("^(-?)(%d+)$")
  return sign .. digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
end

-- 125829120 -> "120.0 MiB"
local function mib(bytes)
  return ("%.1f MiB"):format(bytes / (1024 * 1024))
end

--- The progress line of member `name` receiving a snapshot: `got` bytes of
--- `size` so far, and `rate` bytes/s when known, e.g.
--- "n2 receiving snapshot: 120.0 MiB of 256.0 MiB, 40.0 MiB/s".
---@param name string
---@param got integer
---@param size integer
---@param rate? number
---@return string
function operator.snapshot_line(name, got, size, rate)
  local line = ("%s receiving snapshot: %s of %s"):format(name, mib(got), mib(size))
  if rate then line = line .. (", %s/s"):format(mib(rate)) end
  return line
end

local function find(members, name)
  for _, m in ipairs(members) do
    if m.name == name then return m end
  end
end

-- Error codes (docs/protocol.md) that retrying cannot fix; others, and
-- failures without a code (no answer, no member reachable), are retried.
local PERMANENT = {
  no_such_member = true, malformed = true, unknown_request = true, too_large = true, denied = true,
}

---@param host {raw: userdata, opts: table, status: fun(): table|nil}
---@param run {deadline: number, check: fun()}
---@return table api
function operator.new(host, run)
  local raw, opts = host.raw, host.opts
  local api = {}

  -- Sleeps ms (bounded by the script's time), then enforces the limit.
  local function sleep(ms)
    local left = run.deadline - runtime.now()
    runtime.sleep(math.max(0, math.min(ms, left)))
    run.check()
  end

  -- Polls pred() until it holds or timeout_ms passes; true if it held.
  local function poll(pred, timeout_ms)
    local deadline = math.min(run.deadline, runtime.now() + (timeout_ms or math.huge))
    while true do
      if pred() then return true end
      if runtime.now() >= deadline then
        run.check()
        return false
      end
      sleep(POLL_MS)
    end
  end

  local function committed(st)
    return st.commit_index >= (st.config_index or 0)
  end

  --- This server's status: role, term, leader, indexes, log size, members
  --- with their progress (on the leader), sessions.
  function api.status()
    local st, pr = host.status and host.status() or raw:status(), raw:progress()
    local out = {
      name = opts.name, address = opts.address, role = st.role, term = st.term,
      leader = st.leader, leader_address = st.leader_address,
      commit_index = st.commit_index, applied_index = st.applied_index,
      first_index = pr.first_index, last_index = st.last_index,
      snapshot_index = st.snapshot_index, config_index = st.config_index,
      config_committed = committed(st), leader_ready = pr.leader_ready,
      log_entries = math.max(0, st.last_index - pr.first_index + 1),
      sessions = st.sessions, -- open client sessions, when the server counts them
      diverged = st.diverged, -- {index, hash, majority_hash, majority} once found diverged
      members = {},
    }
    for i, m in ipairs(st.members) do
      local p = pr.peers and pr.peers[m.name]
      local seen = pr.contact and pr.contact[m.name]
      local e = {
        name = m.name, address = m.address, type = m.type,
        leader = m.name == st.leader, self = m.name == opts.name,
        match_index = p and p.match, next_index = p and p.next,
        lag = p and math.max(0, st.last_index - p.match),
        -- Contact, known only for the members this server expects to hear
        -- from (the leader: all but RESERVE ones; a follower: its leader):
        -- unreachable once silent for an election timeout; last_contact_ms
        -- since its last message (nil if it never sent one); silent_ms
        -- since then or, if never, since it was expected to answer.
        unreachable = seen and seen.unreachable,
        last_contact_ms = seen and seen.heard and seen.silent_ms or nil,
        silent_ms = seen and seen.silent_ms,
      }
      -- A follower does not hear from the other followers: their role is
      -- known only to the leader.
      if e.self then
        e.role = st.role
      elseif e.unreachable then
        e.role = "unreachable"
      elseif e.leader then
        e.role = "leader"
      elseif m.type == "reserve" then
        e.role = "reserve" -- sent nothing, so neither following nor silent
      elseif st.role == "leader" then
        e.role = "follower"
      else
        e.role = "unknown"
      end
      out.members[i] = e
    end
    out.election_ms = pr.election_ms
    return out
  end

  --- The members in this server's configuration, with progress when this
  --- server leads: {name, address, type, leader, self, match_index, lag}.
  function api.members()
    return api.status().members
  end

  --- The leader's name and address, or nil when none is known.
  function api.leader()
    local st = raw:status()
    if not st.leader then return nil end
    return st.leader, st.leader_address
  end

  --- This server's name.
  function api.name()
    return opts.name
  end

  --- Sleeps ms milliseconds (within the script's time limit).
  function api.sleep(ms)
    if type(ms) ~= "number" or ms < 0 then error("sleep: give milliseconds (a number >= 0)", 2) end
    sleep(ms)
  end

  --- Waits until pred(status) is true (a function) or until this server
  --- has committed and applied index n (a number). Returns true, or false
  --- and a reason after timeout_ms (default: the script's remaining time).
  function api.wait_for(target, timeout_ms)
    local pred
    if type(target) == "number" then
      pred = function()
        local st = raw:status()
        return st.commit_index >= target and st.applied_index >= target
      end
    elseif type(target) == "function" then
      pred = function() return target(api.status()) end
    else
      error("wait_for: give a commit index (number) or a function(status) -> boolean", 2)
    end
    if poll(pred, timeout_ms) then return true end
    return false, "wait_for: timed out"
  end

  -- A progress line to the script's output (a failure to print, e.g. the
  -- output limit, must not fail the change).
  local function progress(line)
    if run.print then pcall(run.print, line) end
  end

  -- Sends one membership request through the client protocol (any member
  -- forwards it to the leader), retrying what may succeed later, until
  -- the script's time is up; on_retry(err) hears each refusal retried.
  local function request(what, send, on_retry)
    local addresses = {}
    for _, m in ipairs(raw:status().members) do addresses[#addresses + 1] = m.address end
    if #addresses == 0 then addresses[1] = opts.address end
    -- A client request retries for three times its timeout: keep that
    -- within the script's time.
    local left = run.deadline - runtime.now()
    local c = client.new({ cluster = addresses, cluster_id = opts.cluster,
      timeout = math.max(50, math.min(2000, left // 4)), tls_context = host.tls and host.tls() })
    c.on_retry = on_retry -- the refusals the client retries by itself
    local ok, err, code
    -- The client is closed even when the script's time runs out here.
    local done, stopped = pcall(function()
      while true do
        ok, err, code = send(c)
        if ok or PERMANENT[code] then break end
        if on_retry then on_retry(err) end
        if runtime.now() + 200 >= run.deadline then
          err = tostring(err) .. " (gave up: the script's time limit is near)"
          break
        end
        sleep(200)
      end
    end)
    c:close()
    if not done then error(stopped, 0) end
    if not ok then error(("%s: %s"):format(what, tostring(err)), 0) end
  end

  local function member(name, what)
    if type(name) ~= "string" or name == "" then error(what .. ": give a member name", 3) end
    local m = find(raw:status().members, name)
    if not m then error(("%s: no member named '%s' in the configuration"):format(what, name), 3) end
    return m
  end

  -- Waits until this server's configuration satisfies pred, committed
  -- and applied here.
  local function await_config(what, pred)
    local ok = poll(function()
      local st = raw:status()
      return committed(st) and st.applied_index >= (st.config_index or 0) and pred(st.members)
    end)
    if not ok then error(what .. ": the change did not commit here in time", 0) end
  end

  -- An on_retry for a promotion: the leader refuses it while the member
  -- is behind, saying how many entries it holds of how many, and while it
  -- sends the member its snapshot, how many bytes of it the member has;
  -- this prints "NAME catching up: N entries behind, R entries/s" or
  -- "NAME receiving snapshot: B MiB of T MiB, R MiB/s" at most once per
  -- PROGRESS_MS (the rate from the second line of a kind on).
  local function catch_up_reporter(name)
    local last_t, last_held, last_got
    return function(err)
      local msg = tostring(err)
      local held, total = msg:match("holds (%d+) of (%d+) entries")
      if not held then return end
      local now = runtime.now()
      if last_t and now - last_t < PROGRESS_MS then return end
      local got, size = msg:match("receiving a snapshot: (%d+) of (%d+) bytes")
      local line
      if got then
        got = tonumber(got)
        local rate = last_got and math.max(0, got - last_got) * 1000 / (now - last_t)
        line = operator.snapshot_line(name, got, tonumber(size), rate)
        last_held, last_got = nil, got
      else
        held, total = tonumber(held), tonumber(total)
        line = ("%s catching up: %s entries behind"):format(name, thousands(math.max(0, total - held)))
        if last_held then
          local rate = math.max(0, held - last_held) * 1000 / (now - last_t)
          line = line .. (", %s entries/s"):format(thousands(rate))
        end
        last_held, last_got = held, nil
      end
      progress(line)
      last_t = now
    end
  end

  -- Sets member name's type and waits until it is committed here.
  local function set_type(what, name, address, type_)
    local on_retry = type_ == "active" and catch_up_reporter(name) or nil
    request(what, function(c)
      -- Already so here: an earlier send was accepted, though its answer
      -- did not arrive in time (the leader then refuses the same change).
      local m = find(raw:status().members, name)
      if m and m.type == type_ then return true end
      return c:change(name, address, type_)
    end, on_retry)
    await_config(what, function(ms)
      local m = find(ms, name)
      return m and m.type == type_
    end)
  end

  -- Asks the server at address its name (a client hello) until it
  -- answers or probe_ms pass; raises when it does not answer, belongs to
  -- another cluster, or has another name. The asking runs in a task of
  -- its own so that a connect that hangs (an address that drops packets)
  -- cannot hold up the script past probe_ms.
  local function probe(name, address, probe_ms)
    local answer
    local deadline = runtime.now() + probe_ms
    runtime.spawn(function()
      while not answer and runtime.now() < deadline do
        local ok, who, err = pcall(client.whois, address, opts.cluster, 1000, host.tls and host.tls())
        if ok and who then
          answer = { who = who }
        elseif ok and tostring(err):find("cluster", 1, true) then
          answer = { err = tostring(err) }
        else
          runtime.sleep(200)
        end
      end
    end)
    poll(function() return answer ~= nil end, probe_ms)
    if not answer then
      error(("add: no answer from %s after %s s: is the server running? Start it first, empty " ..
        "(e.g. examples/kv/server.lua --name %s --address %s --data DIR --empty), then add it again")
        :format(address, (("%.1f"):format(probe_ms / 1000)):gsub("%.0$", ""), name, address), 0)
    end
    if answer.err then error(("add: the server at %s refused us: %s"):format(address, answer.err), 0) end
    if answer.who ~= name then
      error(("add: the server at %s is named '%s', not '%s': give the name it was started with")
        :format(address, answer.who, name), 0)
    end
  end

  --- Adds member `name` at `address` as `type_` ("active" by default;
  --- "passive" or "reserve"). The server must be running (started empty,
  --- e.g. `examples/kv/server.lua --empty`) and answer under that name
  --- within probe_ms (default 5000, at most half the script's remaining
  --- time), else this raises "no answer from ..." before changing
  --- anything. An ACTIVE member first catches up as PASSIVE (printing
  --- "NAME catching up: N entries behind, R entries/s", or "NAME receiving
  --- snapshot: B MiB of T MiB, R MiB/s" while it receives the leader's
  --- snapshot, about once a second while it does), then becomes a voter. Returns true once the
  --- configuration with it has committed.
  function api.add(name, address, type_, probe_ms)
    type_ = type_ or "active"
    if type(name) ~= "string" or name == "" then error("add: give the new member's name", 2) end
    if type(address) ~= "string" or not address:match("^.+:%d+$") then
      error("add: give the new member's address as host:port", 2)
    end
    if not TYPES[type_] then error("add: type must be active, passive or reserve", 2) end
    if probe_ms ~= nil and (type(probe_ms) ~= "number" or probe_ms <= 0) then
      error("add: probe_ms must be a positive number of milliseconds", 2)
    end
    local m = find(raw:status().members, name)
    if m and m.type == type_ then return true end
    if not m then
      probe(name, address, math.min(probe_ms or PROBE_MS, (run.deadline - runtime.now()) // 2))
    end
    if type_ == "active" and not (m and m.type == "passive") then
      set_type("add", name, address, "passive")
    end
    set_type("add", name, address, type_)
    return true
  end

  --- Makes member `name` ACTIVE (a voter); returns once that is committed.
  --- A RESERVE member, which has no log, catches up as PASSIVE first;
  --- progress lines are printed while it catches up, as for add.
  function api.promote(name)
    local m = member(name, "promote")
    if m.type == "reserve" then set_type("promote", name, m.address, "passive") end
    if m.type ~= "active" then set_type("promote", name, m.address, "active") end
    return true
  end

  --- Makes member `name` PASSIVE (receives the log, does not vote);
  --- returns once that is committed.
  function api.demote(name)
    local m = member(name, "demote")
    if m.type ~= "passive" then set_type("demote", name, m.address, "passive") end
    return true
  end

  --- Removes member `name`; returns once the removal has committed.
  function api.remove(name)
    member(name, "remove")
    request("remove", function(c) return c:remove(name) end)
    -- A removed server may never hear that its removal committed: the
    -- leader's answer is the proof then.
    if name ~= opts.name then
      await_config("remove", function(ms) return find(ms, name) == nil end)
    end
    return true
  end

  -- Whether this server sees `name` leading and serving: it leads a
  -- term in which an entry has committed.
  local function serving(name)
    local st = raw:status()
    if st.leader ~= name then return false end
    local pr = raw:progress()
    if name == opts.name then return pr.leader_ready end
    return pr.commit_term == st.term
  end

  --- Transfers leadership to member `name` (ACTIVE); returns once this
  --- server sees `name` leading and serving (an entry of its term has
  --- committed). timeout_ms defaults to the script's remaining time.
  function api.transfer(name, timeout_ms)
    local m = member(name, "transfer")
    if m.type ~= "active" then error(("transfer: %s is %s; only an ACTIVE member can lead"):format(name, m.type), 2) end
    local deadline = math.min(run.deadline, runtime.now() + (timeout_ms or math.huge))
    while not serving(name) do
      if runtime.now() >= deadline then
        run.check()
        error(("transfer: %s did not take over in time"):format(name), 2)
      end
      if raw:status().leader ~= name then
        request("transfer", function(c) return c:transfer(name) end)
      end
      -- An attempt lasts about an election timeout; then ask again.
      poll(function() return serving(name) end,
        math.max(0, math.min(3000, deadline - runtime.now())))
    end
    return true
  end

  --- Takes a snapshot of this server's state machine now; returns its
  --- index (the previous snapshot's when nothing new has been applied).
  --- While a snapshot the server started itself is still being written,
  --- waits for it to finish (within the script's time), then takes one.
  function api.snapshot()
    -- In a child process (the server goes on serving while a large state
    -- is written); raw:snapshot_begin says which index it covers.
    local target, err = raw:snapshot_begin()
    while not target and tostring(err):find("try again", 1, true) and runtime.now() + 100 < run.deadline do
      sleep(100)
      target, err = raw:snapshot_begin()
    end
    if not target then error("snapshot: " .. tostring(err), 2) end
    local st
    poll(function()
      st = raw:status()
      return st.snapshot_index >= target or st.snapshot_failed_index >= target
    end)
    if st.snapshot_index < target then
      error(st.snapshot_failed_index >= target and "snapshot: the snapshot failed (see the server's log)"
        or ("snapshot: time limit reached while snapshot %d was written"):format(target), 2)
    end
    return st.snapshot_index
  end

  --- Reads this server's TLS certificate, key and CA files again (`ctl
  --- reload-certs`, SIGHUP): new connections use them; returns true.
  function api.reload_certs()
    if not host.reload_certs then error("reload_certs: not available on this server", 2) end
    local ok, err = host.reload_certs()
    if not ok then error(tostring(err), 2) end
    return true
  end

  return api
end

return operator
