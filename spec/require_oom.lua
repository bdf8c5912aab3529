-- require_oom.lua: what spec/embed/oom.c runs for spec/require_spec.lua
-- while its allocator fails: modules whose loaders wait, required by
-- several tasks at once, one that fails, one whose loading task is
-- cancelled, each ending quickly whatever part fails.
local tide = tide
local dir = ...

local f = assert(io.open(dir .. "/rq_file.lua", "w"))
f:write("tide.sleep(0.001) return { n = 1 }")
f:close()
package.path = dir .. "/?.lua"
package.preload.rq_pre = function () tide.sleep(0.001) return { n = 2 } end
package.preload.rq_fail = function () tide.sleep(0.001) error("fails") end
package.preload.rq_cut = function () tide.sleep(0.001) return { n = 3 } end

local tasks = {}
for _, name in ipairs { "rq_file", "rq_pre", "rq_fail", "rq_cut" } do
  for _ = 1, 2 do tasks[#tasks + 1] = tide.spawn(require, name) end
end
tide.sleep(0)
tasks[#tasks - 1]:cancel()
for _, t in ipairs(tasks) do pcall(t.await, t) end
assert(not rawget(package.loaded, "rq_fail"))
assert(require("rq_file").n == 1 and require("rq_pre").n == 2)
assert(require("rq_cut").n == 3)
return "done"
