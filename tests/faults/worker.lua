-- A load process of the fault suite (docs/faults.md): many client tasks,
-- each with its own copycat.client (its own session), running operations
-- one after the other until the deadline, and writing one history line per
-- operation.
--
--   copycat-lua tests/faults/worker.lua --cluster ADDR,... --tls-ca FILE --id N --out FILE
--       [--seed S] [--duration MS] [--tasks N] [--readers N] [--keys N] [--final KEYS]
--
-- A history line is a Lua table constructor (tests/faults/history.lua reads
-- them):
--   {p="3.2.1",f="put",k="r4",v=30017,t0=1234.5,t1=1240.1,type="ok",r=30002}
-- p: the client (worker.task.generation; a new generation is a new session),
-- f: put | cas | get | append | read, k: key, v: value written (cas: e is
-- the expected value), lvl: consistency of a read, t0/t1: invocation and
-- completion on the monotonic clock shared by every process (ms), type: ok
-- (it happened, r is its result), fail (it certainly did not happen) or
-- info (unknown: it may happen at any time after t0; t1 is absent).
--
-- Writer tasks mix register operations (put, cas, get) on keys r1..rK with
-- appends and reads of list keys; reader tasks only read (lease and
-- linearizable), so that a member that wrongly believes it still leads
-- keeps serving them. --final KEYS reads the given keys at the end of a run
-- instead (after a barrier write), retrying until each read succeeds.
local cli = copycat.cli
local spec = { name = "fault worker", usage = "see tests/faults/worker.lua", required = { "cluster", "id", "out" },
  flags = {
    cluster = cli.addresses, ["tls-ca"] = cli.string, id = cli.integer(0), out = cli.string,
    seed = cli.integer(0), duration = cli.integer(0), tasks = cli.integer(0), readers = cli.integer(0),
    keys = cli.integer(1), final = cli.string, ["session-timeout"] = cli.integer(200),
  } }
local opts = cli.parse(arg, spec)
local id = opts.id
local duration = opts.duration or 10000
local n_keys = opts.keys or 8
local out = assert(io.open(opts.out, "a"))
local rng_state = (opts.seed or 1) * 1000003 + id * 7919

-- A small seeded generator (xorshift), so that a seed replays the same mix.
local function rand(n)
  rng_state = rng_state ~ (rng_state << 13)
  rng_state = rng_state ~ (rng_state >> 7)
  rng_state = rng_state ~ (rng_state << 17)
  return (rng_state & 0x7fffffff) % n + 1
end

local function client()
  return copycat.client{ cluster = opts.cluster, tls = opts["tls-ca"] and { ca = opts["tls-ca"] } or nil,
    timeout = 2000, session_timeout = opts["session-timeout"] or 3000 }
end

-- ---- history lines ----

local function ser(v)
  local t = type(v)
  if t == "string" then return ("%q"):format(v) end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  if t == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = ser(v[i]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return ("%q"):format(tostring(v))
end

local FIELDS = { "p", "f", "k", "v", "e", "lvl", "t0", "t1", "type", "r", "rev", "err", "final" }
local function record(op)
  local parts = {}
  for _, name in ipairs(FIELDS) do
    if op[name] ~= nil then parts[#parts + 1] = name .. "=" .. ser(op[name]) end
  end
  out:write("{", table.concat(parts, ","), "}\n")
end

local inflight = {} -- op -> true: recorded as info if the process must stop first

local function begin(op)
  op.t0 = copycat.now()
  inflight[op] = true
  return op
end

local function finish(op, kind, result, extra)
  op.t1 = kind ~= "info" and copycat.now() or nil
  op.type = kind
  op.r = result
  if extra then for k, v in pairs(extra) do op[k] = v end end
  inflight[op] = nil
  record(op)
end

-- ---- operations ----

local counter = 0
local function unique()
  counter = counter + 1
  return id * 10000000 + counter
end

local LEVELS = { "linearizable", "lease", "sequential" }

-- A submit: ok with its result, fail when the command itself said no, info
-- when the session is gone with the command's fate unknown. Returns false
-- when the client must be replaced.
local function submit(c, op, name, args)
  begin(op)
  local r, err = c:submit(name, args)
  if err == nil then
    finish(op, "ok", r)
    return true
  end
  if err:find("^application error") then
    finish(op, "fail", nil, { err = err })
    return true
  end
  finish(op, "info", nil, { err = err })
  return false
end

-- A query has no effect: a failed one is a fail whatever the reason.
local function query(c, op, name, args)
  begin(op)
  local r, rev = c:query(name, args, { consistency = op.lvl })
  if r == nil and type(rev) == "string" then
    finish(op, "fail", nil, { err = rev })
    return
  end
  finish(op, "ok", r, { rev = rev })
  return r
end

local list_epoch_ms = 4000 -- a list key takes appends for this long
local start = copycat.now()

local function list_key()
  local epoch = math.floor((copycat.now() - start) / list_epoch_ms)
  return ("l%d-%d"):format(epoch, rand(4))
end

local function writer(task)
  local gen = 1
  local c = client()
  local p = ("%d.%d.%d"):format(id, task, gen)
  local last = {} -- key -> a value this client last saw there
  local deadline = start + duration
  while copycat.now() < deadline do
    local ok = true
    local roll = rand(100)
    if roll <= 60 then
      local k = "r" .. rand(n_keys)
      local what = rand(100)
      if what <= 30 then
        local v = unique()
        ok = submit(c, { p = p, f = "put", k = k, v = v }, "put", { key = k, value = v })
        last[k] = v
      elseif what <= 55 then
        local v, e = unique(), last[k]
        ok = submit(c, { p = p, f = "cas", k = k, v = v, e = e }, "cas", { key = k, expect = e, value = v })
      else
        local r = query(c, { p = p, f = "get", k = k, lvl = LEVELS[rand(3)] }, "get", { key = k })
        if r ~= nil then last[k] = r end
      end
    else
      local k = list_key()
      if rand(100) <= 60 then
        local v = unique()
        ok = submit(c, { p = p, f = "append", k = k, v = v }, "append", { key = k, value = v })
      else
        query(c, { p = p, f = "read", k = k, lvl = LEVELS[rand(3)] }, "get", { key = k })
      end
    end
    if not ok then -- the session is gone: a new client, a new process
      c:close()
      gen = gen + 1
      c = client()
      p = ("%d.%d.%d"):format(id, task, gen)
      last = {}
    end
  end
  c:close()
end

-- Readers: reads only, at one level each (lease or linearizable), staying
-- on the member that answers them.
local function reader(task)
  local c = client()
  local p = ("%d.%d.1"):format(id, task)
  local deadline = start + duration
  -- One level per reader, as a client application would have.
  local lvl = task % 2 == 1 and "lease" or "linearizable"
  while copycat.now() < deadline do
    if rand(100) <= 70 then
      local k = "r" .. rand(n_keys)
      query(c, { p = p, f = "get", k = k, lvl = lvl }, "get", { key = k })
    else
      local k = list_key()
      query(c, { p = p, f = "read", k = k, lvl = lvl }, "get", { key = k })
    end
  end
  c:close()
end

-- The end of a run: one barrier write so that every earlier entry is
-- committed or gone, then each key read until a read succeeds.
local function final(keys)
  local c = client()
  local p = ("%d.0.1"):format(id)
  local give_up = copycat.now() + 60000
  local ok = false
  while not ok and copycat.now() < give_up do
    ok = submit(c, { p = p, f = "put", k = "barrier", v = unique() }, "put", { key = "barrier", value = unique() })
    if not ok then c:close(); c = client() end
  end
  for k in keys:gmatch("[^,]+") do
    local f = k:sub(1, 1) == "l" and "read" or "get"
    repeat
      local op = { p = p, f = f, k = k, lvl = "linearizable", final = true }
      begin(op)
      local r, rev = c:query("get", { key = k }, { consistency = "linearizable" })
      local failed = r == nil and type(rev) == "string"
      finish(op, failed and "fail" or "ok", r, { rev = not failed and rev or nil, err = failed and rev or nil })
    until not failed or copycat.now() > give_up
  end
  c:close()
end

local tasks = {}
if opts.final then
  tasks[1] = copycat.spawn(final, opts.final)
else
  for t = 1, opts.tasks or 4 do tasks[#tasks + 1] = copycat.spawn(writer, t) end
  for t = 1, opts.readers or 0 do tasks[#tasks + 1] = copycat.spawn(reader, 100 + t) end
end
local flusher = copycat.every(1000, function() out:flush() end)
-- Wait for the tasks; an operation still waiting after the grace period is
-- recorded as indeterminate (its fate is unknown) and the process ends.
local grace = copycat.now() + duration + (opts.final and 70000 or 15000)
local function all_done()
  for _, t in ipairs(tasks) do if not t:finished() then return false end end
  return true
end
while not all_done() and copycat.now() < grace do copycat.sleep(50) end
for op in pairs(inflight) do
  op.type = "info"
  op.err = "still waiting when the worker stopped"
  record(op)
end
flusher:stop()
out:close()
os.exit(0)
