-- The cost of the session layer: kv puts applied straight to the state
-- machine (the baseline) and through copycat.sessions (sequence check,
-- result cache, acknowledgement), in the same run. Median of 5 runs.
-- Usage: copycat-lua bench/sessions.lua
local sessions = require("copycat.sessions")
local loader = require("copycat.state_machine")

local N = 100000

local function direct()
  local m = assert(loader.load("examples/kv/state_machine.lua"))
  local t0 = copycat.now()
  for i = 1, N do
    m:command("put", { key = "k" .. (i % 100), value = "v" }, { index = i, term = 1, time = i })
  end
  return N / (copycat.now() - t0) * 1000
end

local function layered()
  local l = sessions.new(assert(loader.load("examples/kv/state_machine.lua")))
  l:apply(1, 1, { 1, "o", 5000 })
  local t0 = copycat.now()
  for i = 1, N do
    l:apply(i + 1, 1, { i, "c", 1, i, i - 1, "put", { key = "k" .. (i % 100), value = "v" } })
  end
  return N / (copycat.now() - t0) * 1000
end

local a, b = {}, {}
for r = 1, 5 do
  a[r], b[r] = direct(), layered()
end
table.sort(a)
table.sort(b)
print(("sessions: kv put applied directly %.0f/s, through the session layer %.0f/s, ratio %.2f (medians of 5)")
  :format(a[3], b[3], b[3] / a[3]))
