-- two_coroutines.lua: two tasks run side by side with tide.gather: each
-- prints a line, sleeps, prints again; their lines interleave, and the
-- whole takes as long as the slower one (2 s), not the sum (3 s).
-- Run: tide scripts/two_coroutines.lua [SECONDS_PER_UNIT]   (default 1)
local unit = tonumber(arg and arg[1]) or 1
local start = tide.now()
local function at () return ("%4.1f s"):format((tide.now() - start) / unit) end

local function worker (name, units)
  print(at(), name, "starts, sleeps " .. units)
  tide.sleep(units * unit)           -- only this task waits
  print(at(), name, "ends")
  return name .. " done"
end

local a, b = tide.gather(function () return worker("first", 1) end,
                         function () return worker("second", 2) end)
print(at(), a, b)
