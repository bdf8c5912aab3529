-- Tasks floor: N bare coroutines in stock lua5.4, no event loop and no timer.
-- Each is created and resumed once (it suspends, as a sleeping task would),
-- then all are resumed again to finish. The wall time does not include the
-- 100 ms the other programs sleep. Usage: lua5.4 tasks_floor.lua N
local N = assert(tonumber(arg[1]), "usage: tasks_floor.lua N")
local clock = os.clock  -- CPU time: the program never waits, so it is the wall time

local function body()
  coroutine.yield()
end

local t0 = clock()
local cos = {}
for i = 1, N do
  local co = coroutine.create(body)
  coroutine.resume(co)
  cos[i] = co
end
for i = 1, N do
  assert(coroutine.resume(cos[i]))
end
print(string.format("tasks_wall_s\t%.4f", clock() - t0))
