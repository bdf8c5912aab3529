-- Switch floor: two bare coroutines in stock lua5.4 resumed in turn by a
-- plain loop for ROUNDS rounds (two switches a round), with no scheduler.
-- Usage: lua5.4 switch_floor.lua ROUNDS. Prints switches per second.
local rounds = assert(tonumber(arg[1]), "usage: switch_floor.lua ROUNDS")

local function player()
  for _ = 1, rounds do
    coroutine.yield()
  end
end

local resume = coroutine.resume
local t0 = os.clock()  -- CPU time: the program never waits, so it is the wall time
local a, b = coroutine.create(player), coroutine.create(player)
for _ = 1, rounds + 1 do
  resume(a)
  resume(b)
end
assert(coroutine.status(a) == "dead" and coroutine.status(b) == "dead")
local s = os.clock() - t0
print(string.format("switch_per_s\t%.0f", 2 * rounds / s))
