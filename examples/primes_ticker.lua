-- primes_ticker.lua: compute.primes runs on the thread pool while a ticker
-- task keeps its rhythm; a second computation is cancelled by a timeout.
-- Run: tide examples/primes_ticker.lua (with compute.so on package.cpath)
local compute = require "compute"

local ticker = tide.spawn(function ()
  for i = 1, math.huge do
    tide.sleep(0.05)
    io.write("tick ", i, "\n")
  end
end)
print("primes below 3,000,000:", compute.primes(3000000))
print("the same within 0.01 s:", tide.timeout(0.01, compute.primes, 3000000))
ticker:cancel()
