-- Switch cost under luv (lua5.4 + lua-luv): two coroutines take turns, each
-- yielding by starting its own uv idle handle and suspending; the idle
-- callback stops the handle and resumes it. ROUNDS rounds, two switches each.
-- Usage: lua5.4 switch_luv.lua ROUNDS. Prints switches per second.
local uv = require "luv"
local rounds = assert(tonumber(arg[1]), "usage: switch_luv.lua ROUNDS")

local function player()
  local co = coroutine.running()
  local idle = uv.new_idle()
  local function wake()
    idle:stop()
    assert(coroutine.resume(co))
  end
  for _ = 1, rounds do
    idle:start(wake)
    coroutine.yield()
  end
  idle:close()
end

local t0 = uv.hrtime()
assert(coroutine.resume(coroutine.create(player)))
assert(coroutine.resume(coroutine.create(player)))
uv.run()
local s = (uv.hrtime() - t0) / 1e9
print(string.format("switch_per_s\t%.0f", 2 * rounds / s))
