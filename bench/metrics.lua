-- What one scrape of the metrics page costs the server's loop: the time to
-- render the page (docs/metrics.md) of a leader that has served writes,
-- as the median of several rounds, and the page's size.
local ls = assert(copycat.net.listen("127.0.0.1:0", function() end))
local addr = ls:address()
ls:close()
local dir = os.tmpname()
os.remove(dir)
local s = copycat.server{ name = "b1", address = addr, data_dir = dir,
  state_machine = "examples/kv/state_machine.lua", log_level = "warn" }
assert(s:bootstrap{ addr })
local c = copycat.client{ cluster = { addr } }
for i = 1, 200 do
  local _, err = c:submit("put", { key = "k" .. i, value = i })
  assert(not err, err)
end
c:close()

local rounds, per_round = {}, 500
local page
for r = 1, 7 do
  local t0 = os.clock()
  for _ = 1, per_round do page = s:metrics() end
  rounds[r] = (os.clock() - t0) / per_round
end
table.sort(rounds)
print(("metrics_page_bytes %d"):format(#page))
print(("metrics_render_us %.1f (median of %d rounds of %d renders)"):format(rounds[4] * 1e6, #rounds, per_round))
s:stop()
os.execute("rm -rf '" .. dir .. "'")
