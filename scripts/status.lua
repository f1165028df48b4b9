-- Prints the cluster as the server that runs this script sees it.
--
--   copycat-lua ctl --socket DATA_DIR run scripts/status.lua
--
-- (`copycat-lua ctl status` prints the same as a table, or JSON.)
local st = cluster.status()
print(("%s is %s in term %d; leader: %s"):format(st.name, st.role, st.term, st.leader or "unknown"))
print(("commit %d, applied %d, log %d..%d, snapshot %d"):format(
  st.commit_index, st.applied_index, st.first_index, st.last_index, st.snapshot_index))
for _, m in ipairs(st.members) do
  local progress = m.match_index and (" match %d"):format(m.match_index) or ""
  print(("  %-10s %-22s %-8s%s%s"):format(m.name, m.address, m.type, m.leader and " leader" or "", progress))
end
