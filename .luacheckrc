-- luacheck configuration; `make lint` runs it.
std = "lua54"
max_line_length = 120
codes = true
exclude_files = { "build", "build-asan", "build-lint" }

files["spec"] = { std = "+busted" }
files["spec/support"] = { std = "+busted" }
