-- Switch cost under cqueues (lua5.4 + lua-cqueues): two coroutines in one
-- controller take turns through cqueues.sleep(0), ROUNDS rounds (two
-- switches each). Usage: lua5.4 switch_cqueues.lua ROUNDS
local cqueues = require "cqueues"
local rounds = assert(tonumber(arg[1]), "usage: switch_cqueues.lua ROUNDS")

local function player()
  for _ = 1, rounds do
    cqueues.sleep(0)
  end
end

local t0 = cqueues.monotime()
local cq = cqueues.new()
cq:wrap(player)
cq:wrap(player)
assert(cq:loop())
local s = cqueues.monotime() - t0
print(string.format("switch_per_s\t%.0f", 2 * rounds / s))
