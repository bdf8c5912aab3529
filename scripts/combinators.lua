-- combinators.lua: gather, race and timeout.
-- Run: tide scripts/combinators.lua
local function fetch (name, seconds)
  tide.sleep(seconds)                -- stands for a network call
  return name .. " (" .. seconds .. " s)"
end

local start = tide.now()
local function elapsed () return ("%.2f s"):format(tide.now() - start) end

-- gather: run all at once, results in argument order.
local a, b, c = tide.gather(
  function () return fetch("a", 0.3) end,
  function () return fetch("b", 0.1) end,
  function () return fetch("c", 0.2) end)
print("gather:", a, b, c, "after", elapsed())   -- 0.3 s, not 0.6 s

-- race: the first to finish wins; the others are cancelled.
start = tide.now()
print("race:", tide.race(
  function () return fetch("slow mirror", 0.5) end,
  function () return fetch("fast mirror", 0.1) end), "after", elapsed())

-- timeout: the work's results, or nil, "timeout" (and the work cancelled).
start = tide.now()
print("timeout 0.2, work of 0.1 s:", tide.timeout(0.2, fetch, "quick", 0.1))
print("timeout 0.2, work of 1 s:", tide.timeout(0.2, fetch, "too slow", 1))
print("both after", elapsed())       -- 0.3 s: the slow work was cancelled

-- an error in gather cancels the others and is raised.
local ok, err = pcall(tide.gather,
  function () return fetch("fine", 0.1) end,
  function () tide.sleep(0.05) error("backend down", 0) end)
print("gather with a failure:", ok, err)
