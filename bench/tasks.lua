-- Tasks under tide: spawn N tasks that each sleep 100 ms, then await them all.
-- Usage: tide tasks.lua N. Prints the wall time from the first spawn to the
-- last await; run.sh takes the peak RSS from /usr/bin/time.
local N = assert(tonumber(arg[1]), "usage: tasks.lua N")

local t0 = tide.hrtime()
local tasks = {}
for i = 1, N do
  tasks[i] = tide.spawn(tide.sleep, 0.1)
end
for i = 1, N do
  tasks[i]:await()
end
print(string.format("tasks_wall_s\t%.4f", (tide.hrtime() - t0) / 1e9))
