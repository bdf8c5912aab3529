-- Tasks under luv (lua5.4 + lua-luv): N coroutines, each sleeping 100 ms on
-- its own uv timer, then the loop runs until all have ended.
-- Usage: lua5.4 tasks_luv.lua N
local uv = require "luv"
local N = assert(tonumber(arg[1]), "usage: tasks_luv.lua N")

local function sleep(ms)
  local co = coroutine.running()
  local timer = uv.new_timer()
  timer:start(ms, 0, function ()
    timer:close()
    assert(coroutine.resume(co))
  end)
  coroutine.yield()
end

local done = 0
local function body()
  sleep(100)
  done = done + 1
end

local t0 = uv.hrtime()
for _ = 1, N do
  assert(coroutine.resume(coroutine.create(body)))
end
uv.run()
assert(done == N)
print(string.format("tasks_wall_s\t%.4f", (uv.hrtime() - t0) / 1e9))
