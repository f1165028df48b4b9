-- luacheck configuration; `make lint` runs it.
std = "lua54"
max_line_length = 120
codes = true
exclude_files = { "build", "build-asan", "build-lint" }

files["spec"] = { std = "+busted" }
files["spec/support"] = { std = "+busted" }

-- Scripts run by copycat-lua see the library as the global `copycat`.
files["examples"] = { read_globals = { "copycat" } }
-- Operator scripts run in the operator environment, which provides `cluster`.
files["scripts"] = { read_globals = { "cluster" } }
files["bench"] = { read_globals = { "copycat" } }
files["tests/faults/worker.lua"] = { read_globals = { "copycat" } }
-- State machines run in the sandbox, which provides state_machine().
files["examples/*/state_machine.lua"] = { read_globals = { "state_machine" } }
-- LuaLS definition files (---@meta): declarations with empty bodies that
-- define the globals scripts see.
files["types"] = { allow_defined_top = true, globals = { "copycat", "cluster", "state_machine" },
  ignore = { "131", "212", "241" } }
