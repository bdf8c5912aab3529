-- hello.lua: two tasks that each print in three steps, started together.
-- The whole run takes as long as the slowest task, not the sum of both.
-- Run: tide scripts/hello.lua
local function worker (name, pause)
  for step = 1, 3 do
    tide.sleep(pause)
    print(("%-5s step %d at %.1f s"):format(name, step, tide.now() - START))
  end
end

START = tide.now()
local a = tide.spawn(worker, "slow", 0.3)
local b = tide.spawn(worker, "fast", 0.2)
a:await()
b:await()
print(("both done in %.1f s (the sum of the sleeps is 1.5 s)"):format(tide.now() - START))
