-- Tasks under cqueues (lua5.4 + lua-cqueues): N coroutines wrapped in one
-- controller, each sleeping 100 ms, then the loop runs until all have ended.
-- Usage: lua5.4 tasks_cqueues.lua N
local cqueues = require "cqueues"
local N = assert(tonumber(arg[1]), "usage: tasks_cqueues.lua N")

local done = 0
local function body()
  cqueues.sleep(0.1)
  done = done + 1
end

local t0 = cqueues.monotime()
local cq = cqueues.new()
for _ = 1, N do
  cq:wrap(body)
end
assert(cq:loop())
assert(done == N)
print(string.format("tasks_wall_s\t%.4f", cqueues.monotime() - t0))
