-- producer_consumer.lua: a producer puts tick1, tick2, ... into a Queue(1)
-- once a second; a consumer prints each one as it gets it. Runs until
-- Ctrl-C, or for COUNT ticks if given.
-- Run: tide scripts/producer_consumer.lua [COUNT]
local count = tonumber(arg and arg[1]) or math.huge
local q = tide.Queue(1)
local start = tide.now()

local producer = tide.spawn(function ()
  local n = 0
  while n < count do
    n = n + 1
    q:put("tick" .. n)               -- waits while the consumer is behind
    tide.sleep(1)
  end
  q:close()                          -- the consumer's loop ends after the last
end)

local consumer = tide.spawn(function ()
  for item in q:iter() do
    print(("%5.1f s  got %s"):format(tide.now() - start, item))
  end
end)

producer:await()
consumer:await()
