--- The fault suite's checker (docs/faults.md). Reads the history a run's
--- workers wrote (history-*.txt, one operation per line, see worker.lua)
--- and checks:
---   registers (keys r*): every put, cas and get at linearizable or lease
---     level is linearizable per key (Wing and Gong's search, Lowe's form,
---     memoized on the set of operations done and the register's value);
---     sequential gets return a value some write put there, never go back
---     in time for one client, and a value has one revision everywhere;
---   lists (keys l*, append workload): no acknowledged append is lost, none
---     is applied twice, nothing appears that nobody appended, an append's
---     reported length is where its value is, and every read is a prefix of
---     the final list (lists only grow).
---
--- As a program: lua5.4 tests/faults/check.lua DIR  (exit 0: valid, 1:
--- anomalies, printed in plain words, the smallest first; 2: cannot check).
local M = {}

-- ---- history ----

--- Loads every history file of dir. Returns ops (sorted by t0), or nil, err.
function M.load(dir)
  local p = io.popen(("ls %s/history-*.txt 2>/dev/null"):format(dir))
  local files = {}
  for f in p:lines() do files[#files + 1] = f end
  p:close()
  if #files == 0 then return nil, "no history files in " .. dir end
  local ops = {}
  for _, f in ipairs(files) do
    local n = 0
    for line in io.lines(f) do
      n = n + 1
      local chunk = load("return " .. line, "=" .. f, "t", {})
      local ok, op = pcall(chunk or error)
      if not chunk or not ok or type(op) ~= "table" then
        -- A torn last line of a killed worker: the checker says so.
        return nil, ("%s:%d: not a history line: %s"):format(f, n, line)
      end
      ops[#ops + 1] = op
    end
  end
  table.sort(ops, function(a, b) return a.t0 < b.t0 end)
  for i, op in ipairs(ops) do op.id = i end
  return ops
end

local T0 = 0 -- the run's first invocation: times are printed from it
local function at(t) return t and ("%.3fs"):format((t - T0) / 1000) or "never" end

local function show(v)
  if v == nil then return "nothing" end
  if type(v) == "table" then
    if #v > 6 then return ("a list of %d ending %s,%s,%s"):format(#v, v[#v - 2], v[#v - 1], v[#v]) end
    local t = {}
    for i = 1, #v do t[i] = tostring(v[i]) end
    return "[" .. table.concat(t, ",") .. "]"
  end
  return tostring(v)
end

--- One operation in plain words.
function M.describe(op)
  local what
  if op.f == "put" then what = ("put %s = %s"):format(op.k, show(op.v))
  elseif op.f == "cas" then what = ("cas %s from %s to %s"):format(op.k, show(op.e), show(op.v))
  elseif op.f == "append" then what = ("append %s to %s"):format(show(op.v), op.k)
  else what = ("%s %s (%s)"):format(op.f == "read" and "read" or "get", op.k, op.lvl or "?") end
  local result
  if op.type == "ok" then
    if op.f == "put" then result = "ok, previous value " .. show(op.r)
    elseif op.f == "cas" then result = op.r and "ok, swapped" or "ok, not swapped"
    elseif op.f == "append" then result = "ok, length " .. show(op.r)
    else result = "returned " .. show(op.r) .. (op.rev and (" (revision %s)"):format(op.rev) or "") end
  elseif op.type == "info" then result = "outcome unknown (" .. tostring(op.err) .. ")"
  else result = "failed (" .. tostring(op.err) .. ")" end
  return ("client %s %s from %s to %s: %s"):format(op.p, what, at(op.t0), at(op.t1), result)
end

-- ---- linearizability of one register ----

-- The register's model: step(state, op) -> ok, new state. States are
-- values (nil is the missing key); an indeterminate op may take effect.
local NIL = {}
local function norm(v) if v == nil then return NIL end return v end

local function step(state, op)
  if op.f == "put" then
    if op.type == "ok" and norm(op.r) ~= state then return false end
    return true, norm(op.v)
  elseif op.f == "cas" then
    local matches = state == norm(op.e)
    if op.type == "info" then
      if matches then return true, norm(op.v) end
      return false -- not taking effect is the same as staying pending
    end
    if op.r == true then
      if matches then return true, norm(op.v) end
      return false
    end
    if matches then return false end
    return true, state
  else -- get
    if norm(op.r) == state then return true, state end
    return false
  end
end

local mask = (1 << 62) - 1
local function rnd64(seed)
  -- splitmix64, for the Zobrist hashes of the operation sets
  local z = seed + 0x9E3779B97F4A7C15
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end

--- Checks ops of one register (completed and indeterminate writes,
--- completed reads). Returns true, or false and the index of the operation
--- whose return could not be explained. budget bounds the search steps
--- (returns nil, "unknown" when exceeded).
function M.linearizable(ops, budget)
  -- Events: a call per op, a return per op that completed.
  local events = {}
  for _, op in ipairs(ops) do
    events[#events + 1] = { op = op, t = op.t0, call = true }
    if op.type == "ok" then events[#events + 1] = { op = op, t = op.t1, call = false } end
  end
  -- At equal times calls come first: the operations are taken as concurrent.
  table.sort(events, function(a, b)
    if a.t ~= b.t then return a.t < b.t end
    if a.call ~= b.call then return a.call end
    return a.op.id < b.op.id
  end)
  local head = { }
  local prev = head
  local returns = 0
  for i, ev in ipairs(events) do
    ev.prev = prev
    prev.next = ev
    prev = ev
    if ev.call then ev.op.call_ev = ev else ev.op.ret_ev = ev; returns = returns + 1 end
    ev.h1, ev.h2 = rnd64(i * 2 + 1) & mask, rnd64(i * 2 + 7919) & mask
  end
  local function lift(ev)
    ev.prev.next = ev.next
    if ev.next then ev.next.prev = ev.prev end
  end
  local function unlift(ev)
    ev.prev.next = ev
    if ev.next then ev.next.prev = ev end
  end
  local state = NIL
  local h1, h2 = 0, 0
  local cache = {}
  local stack = {}
  local ev = head.next
  local steps = 0
  local furthest, furthest_op = 0, nil
  while returns > 0 do
    steps = steps + 1
    if budget and steps > budget then return nil, "unknown" end
    if ev == nil then return false, furthest_op end
    if ev.call then
      local op = ev.op
      local ok, new = step(state, op)
      if ok then
        local n1, n2 = h1 ~ op.call_ev.h1, h2 ~ op.call_ev.h2
        local key = ("%x:%x:%s"):format(n1, n2, tostring(new))
        if not cache[key] then
          cache[key] = true
          stack[#stack + 1] = { op = op, state = state }
          state, h1, h2 = new, n1, n2
          lift(op.call_ev)
          if op.ret_ev then lift(op.ret_ev); returns = returns - 1 end
          if #stack > furthest then furthest = #stack end
          ev = head.next
        else
          ev = ev.next
        end
      else
        ev = ev.next
      end
    else
      -- A return whose operation cannot be placed: backtrack.
      if not furthest_op or ev.op.t1 > furthest_op.t1 then furthest_op = ev.op end
      local top = table.remove(stack)
      if not top then return false, furthest_op end
      local op = top.op
      state = top.state
      h1, h2 = h1 ~ op.call_ev.h1, h2 ~ op.call_ev.h2
      if op.ret_ev then unlift(op.ret_ev); returns = returns + 1 end
      unlift(op.call_ev)
      ev = op.call_ev.next
    end
  end
  return true
end

-- The shortest prefix of a key's history (ops invoked before a time, those
-- still running then taken as indeterminate) that is not linearizable:
-- the smallest evidence. Returns the ops of that prefix.
local function smallest_prefix(ops, budget)
  local times = {}
  for _, op in ipairs(ops) do if op.t1 then times[#times + 1] = op.t1 end end
  table.sort(times)
  local function prefix(t)
    local sub = {}
    for _, op in ipairs(ops) do
      if op.t0 <= t then
        if op.t1 and op.t1 <= t then sub[#sub + 1] = op
        elseif op.f ~= "get" then
          sub[#sub + 1] = setmetatable({ type = "info", t1 = false }, { __index = op })
        end
      end
    end
    for i, op in ipairs(sub) do op.id = i end
    return sub
  end
  local lo, hi = 1, #times
  while lo < hi do
    local mid = (lo + hi) // 2
    local sub = prefix(times[mid])
    local ok = M.linearizable(sub, budget)
    if ok == false then hi = mid else lo = mid + 1 end
  end
  local sub = prefix(times[lo])
  for _, op in ipairs(sub) do
    local o = getmetatable(op)
    if o then op.t1 = o.__index.t1; op.type = o.__index.type end
  end
  return sub, times[lo]
end

-- ---- the checks ----

local function add(anomalies, t, text)
  anomalies[#anomalies + 1] = { t = t or math.huge, text = text }
end

local function check_registers(by_key, anomalies, stats, budget)
  for k, ops in pairs(by_key) do
    local lin = {}
    for _, op in ipairs(ops) do
      if (op.f == "put" or op.f == "cas") and op.type ~= "fail" then lin[#lin + 1] = op
      elseif op.f == "get" and op.type == "ok" and op.lvl ~= "sequential" then lin[#lin + 1] = op end
    end
    for i, op in ipairs(lin) do op.id = i end
    local ok, bad = M.linearizable(lin, budget)
    stats.keys = stats.keys + 1
    if ok == nil then
      stats.unknown = stats.unknown + 1
      add(anomalies, math.huge, ("register %s: the search gave up after %d steps (%d operations): not proven"):format(
        k, budget, #lin))
    elseif not ok then
      local sub, t = smallest_prefix(lin, budget)
      local lines = { ("register %s is not linearizable: no order of its operations up to %s explains what " ..
        "the clients saw. The last operation that cannot be placed:"):format(k, at(t)) }
      local last
      for _, op in ipairs(sub) do if op.t1 == t then last = op end end
      lines[#lines + 1] = "  " .. M.describe(last or bad)
      lines[#lines + 1] = "  and the writes and reads just before it:"
      local shown = 0
      for idx = #sub, 1, -1 do
        local op = sub[idx]
        if op ~= last and shown < 8 then
          lines[#lines + 1] = "  " .. M.describe(op)
          shown = shown + 1
        end
      end
      add(anomalies, t, table.concat(lines, "\n"))
    end
    -- Sequential reads.
    local written, rev_of, last_rev = {}, {}, {}
    for _, op in ipairs(ops) do
      if op.f == "put" or op.f == "cas" then written[op.v] = op end
    end
    for _, op in ipairs(ops) do
      if op.f == "get" and op.type == "ok" and op.r ~= nil then
        local w = written[op.r]
        if not w or w.t0 > op.t1 then
          add(anomalies, op.t1, ("register %s: a read returned %s, which no client wrote there before it:\n  %s")
            :format(k, show(op.r), M.describe(op)))
        end
        if op.rev then
          local seen = rev_of[op.r]
          if seen and seen.rev ~= op.rev then
            add(anomalies, op.t1, ("register %s: the value %s was read at two revisions (replicas disagree):" ..
              "\n  %s\n  %s"):format(k, show(op.r), M.describe(seen), M.describe(op)))
          end
          rev_of[op.r] = rev_of[op.r] or op
        end
      end
      if op.f == "get" and op.type == "ok" and op.rev and op.lvl == "sequential" then
        local before = last_rev[op.p]
        if before and before.rev > op.rev then
          add(anomalies, op.t1, ("register %s: a sequential read went back in time for client %s:\n  %s\n  %s")
            :format(k, op.p, M.describe(before), M.describe(op)))
        end
      end
      if op.f == "get" and op.type == "ok" and op.rev then
        if not last_rev[op.p] or last_rev[op.p].rev < op.rev then last_rev[op.p] = op end
      end
    end
  end
end

local function check_lists(by_key, anomalies, stats)
  for k, ops in pairs(by_key) do
    local final
    for _, op in ipairs(ops) do
      if op.final and op.type == "ok" then final = op end
    end
    stats.lists = stats.lists + 1
    if not final then
      add(anomalies, math.huge, ("list %s: the final read never succeeded, nothing can be said of it"):format(k))
    else
      local list = type(final.r) == "table" and final.r or {}
      local pos = {}
      for i, v in ipairs(list) do
        if pos[v] then
          add(anomalies, final.t1, ("list %s: %s appears twice, at %d and %d: an append was applied twice")
            :format(k, show(v), pos[v], i))
        end
        pos[v] = pos[v] or i
      end
      local appended = {}
      for _, op in ipairs(ops) do
        if op.f == "append" then appended[op.v] = op end
      end
      for v, i in pairs(pos) do
        if not appended[v] then
          add(anomalies, final.t1, ("list %s: %s is in the list at %d, but nobody appended it"):format(k, show(v), i))
        end
      end
      for _, op in ipairs(ops) do
        if op.f == "append" and op.type == "ok" then
          stats.appends = stats.appends + 1
          if not pos[op.v] then
            add(anomalies, op.t1, ("list %s: an acknowledged append is lost (the final list has %d values):\n  %s")
              :format(k, #list, M.describe(op)))
          elseif op.r ~= pos[op.v] then
            add(anomalies, op.t1, ("list %s: an append reported length %s but its value is at %d:\n  %s")
              :format(k, show(op.r), pos[op.v], M.describe(op)))
          end
        elseif op.f == "read" and op.type == "ok" and not op.final then
          local r = type(op.r) == "table" and op.r or {}
          for i, v in ipairs(r) do
            if list[i] ~= v then
              add(anomalies, op.t1, ("list %s: a read is not a prefix of the final list (value %d is %s, " ..
                "the final list has %s there):\n  %s"):format(k, i, show(v), show(list[i]), M.describe(op)))
              break
            end
          end
          if op.lvl ~= "sequential" then
            -- Every append acknowledged before this read began is in it.
            for _, w in ipairs(ops) do
              if w.f == "append" and w.type == "ok" and w.t1 < op.t0 and pos[w.v] and pos[w.v] > #r then
                add(anomalies, op.t1, ("list %s: a %s read missed an append acknowledged before it began:\n  %s\n  %s")
                  :format(k, op.lvl, M.describe(w), M.describe(op)))
                break
              end
            end
          end
        end
      end
    end
  end
end

--- Checks ops; returns a report { valid = bool, anomalies = {text...},
--- counts = {ok=, info=, fail=, total=}, ... }.
function M.check(ops, opts)
  opts = opts or {}
  T0 = ops[1] and ops[1].t0 or 0
  if opts.t0 then T0 = opts.t0 end
  local regs, lists = {}, {}
  local counts = { ok = 0, info = 0, fail = 0, total = 0 }
  for _, op in ipairs(ops) do
    if not op.final and op.k ~= "barrier" then
      counts.total = counts.total + 1
      counts[op.type] = (counts[op.type] or 0) + 1
    end
    if op.k ~= "barrier" then
      local by = op.k:sub(1, 1) == "l" and lists or regs
      by[op.k] = by[op.k] or {}
      table.insert(by[op.k], op)
    end
  end
  local anomalies = {}
  local stats = { keys = 0, unknown = 0, lists = 0, appends = 0 }
  check_registers(regs, anomalies, stats, opts.budget or 2000000)
  check_lists(lists, anomalies, stats)
  table.sort(anomalies, function(a, b)
    if a.t ~= b.t then return a.t < b.t end
    return #a.text < #b.text
  end)
  local texts = {}
  for i, a in ipairs(anomalies) do texts[i] = a.text end
  return { valid = #texts == 0, anomalies = texts, counts = counts, stats = stats }
end

if arg and arg[0] and arg[0]:match("check%.lua$") and not package.loaded["faults.check"] then
  local dir = arg[1]
  if not dir then
    io.stderr:write("usage: lua5.4 tests/faults/check.lua RUN_DIR\n")
    os.exit(2)
  end
  local ops, err = M.load(dir)
  if not ops then
    io.stderr:write("check: ", err, "\n")
    os.exit(2)
  end
  local report = M.check(ops)
  local c = report.counts
  print(("%d operations: %d ok, %d indeterminate, %d failed; %d registers, %d lists"):format(c.total, c.ok,
    c.info, c.fail, report.stats.keys, report.stats.lists))
  if report.valid then
    print("valid: no anomaly")
    os.exit(0)
  end
  print(("INVALID: %d anomalies; the first:"):format(#report.anomalies))
  for i, text in ipairs(report.anomalies) do
    if i > 5 then print(("... and %d more"):format(#report.anomalies - 5)) break end
    print(text)
  end
  os.exit(1)
end

return M
