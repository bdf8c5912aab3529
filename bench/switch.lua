-- Switch cost under tide: two tasks take turns through tide.yield for
-- ROUNDS rounds (one round = each task yields once, so two switches).
-- Usage: tide switch.lua ROUNDS. Prints switches per second.
local rounds = assert(tonumber(arg[1]), "usage: switch.lua ROUNDS")

local function player()
  for _ = 1, rounds do
    tide.yield()
  end
end

local t0 = tide.hrtime()
local a, b = tide.spawn(player), tide.spawn(player)
a:await()
b:await()
local s = (tide.hrtime() - t0) / 1e9
print(string.format("switch_per_s\t%.0f", 2 * rounds / s))
