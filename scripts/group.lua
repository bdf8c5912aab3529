-- group.lua: a task group where one child fails. The group waits for all
-- its children; the first error cancels the others (their <close>
-- variables and cleanup run) and is raised out of tide.group.
-- Run: tide scripts/group.lua
local function worker (name, seconds, fail)
  local _ <close> = setmetatable({}, { __close = function (_, err)
    print(("  %s: cleaning up%s"):format(name, tide.iscancelled(err) and " (cancelled)" or ""))
  end })
  tide.sleep(seconds)
  if fail then error(name .. " failed", 0) end
  print(("  %s: finished after %.1f s"):format(name, seconds))
end

local ok, err = pcall(tide.group, function (g)
  g:spawn(worker, "quick", 0.1)
  g:spawn(worker, "broken", 0.2, true)
  g:spawn(worker, "slow", 5)
end)
print("group ended:", ok, err)
