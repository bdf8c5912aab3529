-- Switch cost under tide through tide.sleep(0) instead of tide.yield: two
-- tasks take turns for ROUNDS rounds (two switches a round).
-- Usage: tide switch_sleep0.lua ROUNDS. Prints switches per second.
local rounds = assert(tonumber(arg[1]), "usage: switch_sleep0.lua ROUNDS")

local function player()
  for _ = 1, rounds do
    tide.sleep(0)
  end
end

local t0 = tide.hrtime()
local a, b = tide.spawn(player), tide.spawn(player)
a:await()
b:await()
local s = (tide.hrtime() - t0) / 1e9
print(string.format("switch_per_s\t%.0f", 2 * rounds / s))
