-- future.lua: tide.Future, the bridge from callback code to tasks. A
-- callback (here a timer's on_done, as a C library's callback would be)
-- sets the future; tasks await it; tide.wait and tide.as_completed take
-- futures beside tasks.
-- Run: tide scripts/future.lua
local answer = tide.Future()
tide.call_later(0.2, function () end):on_done(function ()
  answer:set_result(42)               -- outside any task: it cannot wait
end)

local readers = {}
for i = 1, 3 do
  readers[i] = tide.spawn(function () return ("reader %d got %d"):format(i, answer:await()) end)
end
for t in tide.as_completed(readers) do print(t:await()) end

local never = tide.Future()
local done, pending = tide.wait({ answer, never }, { timeout = 0.1 })
print(#done .. " done, " .. #pending .. " pending after 0.1 s")
never:cancel()
print("never:", never:state())
