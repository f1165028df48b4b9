-- wrk script for bench/http_compare.sh: POSTs to one path with a JSON body
-- made per request, and prints one parseable line when done.
--   wrk -s bench/http_load.lua ... URL -- MODE   (MODE: cc-put, cc-get, etcd-put, etcd-get)
-- Keys k<thread>-<n % 1000>; put values are 256 bytes.
-- luacheck: globals wrk setup init request done thread_id
local mode = "cc-put"
local counter = 0
thread_id = 0
local threads = {}
local value = string.rep("v", 256)

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end
local value64 = b64(value)

function setup(thread)
  thread:set("thread_id", #threads + 1)
  threads[#threads + 1] = thread
end

function init(args)
  mode = args[1] or mode
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local key = ("k%d-%d"):format(thread_id, counter % 1000)
  local body
  if mode == "cc-put" then
    body = ('{"key":"%s","value":"%s"}'):format(key, value)
  elseif mode == "cc-get" then
    body = ('{"key":"%s"}'):format(key)
  elseif mode == "etcd-put" then
    body = ('{"key":"%s","value":"%s"}'):format(b64(key), value64)
  else
    body = ('{"key":"%s"}'):format(b64(key))
  end
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency)
  local secs = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout
  io.write(("result ops/s %.0f p50_ms %.2f p99_ms %.2f requests %d errors %d\n"):format(
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, bad))
end
