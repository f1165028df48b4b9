-- A tour of the copycat-lua runtime: tasks, sleep, timers, shutdown hooks.
-- Run it with `make run` or `build/copycat-lua examples/runtime/tour.lua`.
local started = copycat.now()
local function say(fmt, ...)
  print(("[%6.1f ms] " .. fmt):format(copycat.now() - started, ...))
end

say("copycat-lua %s, script %s, %d argument(s)", copycat.version, arg[0], #arg)

-- Two tasks run side by side; each sleep suspends only its own task.
local slow = copycat.spawn(function()
  for i = 1, 3 do
    copycat.sleep(30)
    say("slow task, step %d", i)
  end
  return "slow finished"
end)
copycat.spawn(function()
  for i = 1, 3 do
    copycat.sleep(20)
    say("fast task, step %d", i)
  end
end)

-- A repeating timer, stopped after three ticks.
local ticks = 0
local ticker
ticker = copycat.every(25, function()
  ticks = ticks + 1
  say("tick %d", ticks)
  if ticks == 3 then ticker:stop() end
end)

-- Shutdown hooks run on Ctrl-C (SIGINT), SIGTERM or copycat.exit().
copycat.on_shutdown(function() say("shutdown hook ran") end)

say("main chunk waits for the slow task: %s", slow:wait())
say("the program ends when nothing is pending; Ctrl-C would end it sooner")
