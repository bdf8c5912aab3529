-- run_forever.lua: the producer and the consumer of producer_consumer.lua
-- under stock Lua: tasks are spawned first, then tide.run() with no
-- function runs the loop until tide.stop() or Ctrl-C (asyncio's
-- run_forever); either way the tasks left are cancelled, and have ended,
-- before it returns (with "SIGINT" after a Ctrl-C).
-- Run: lua5.4 scripts/run_forever.lua [COUNT [SECONDS]]
--   (COUNT ticks, then tide.stop(); default: until Ctrl-C; SECONDS between
--   ticks, default 1; needs tide.so on LUA_CPATH, e.g. LUA_CPATH='build/?.so;;')
local tide = require "tide"
local count = tonumber(arg and arg[1]) or math.huge
local every = tonumber(arg and arg[2]) or 1
local q = tide.Queue(1)

tide.spawn(function ()                 -- the producer
  local n = 0
  while true do
    n = n + 1
    q:put("tick" .. n)
    tide.sleep(every)
  end
end)

tide.spawn(function ()                 -- the consumer
  local _ <close> = setmetatable({}, { __close = function ()
    print("consumer: cancelled, cleaning up")
  end })
  local got = 0
  for item in q:iter() do
    print("got " .. item)
    got = got + 1
    if got == count then tide.stop() end
  end
end)

local why = tide.run()
print("stopped" .. (why and " by " .. why or ""))
