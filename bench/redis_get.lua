-- Redis GETs through Debian's lua-redis (redis.lua, unchanged) on
-- tide.socket: C tasks, each on its own connection, share N GETs, each
-- task's one after the other.
-- Usage: tide redis_get.lua PORT [N [C]]. Prints <metric>\t<value>.
local port = assert(tonumber(arg[1]), "usage: tide redis_get.lua PORT [N [C]]")
local N = math.tointeger(tonumber(arg[2])) or 100000
local C = math.tointeger(tonumber(arg[3])) or 50
require "tide.luasocket"
local redis = dofile("/usr/share/lua/5.3/redis.lua")

local clients = {}
for i = 1, C do clients[i] = redis.connect("127.0.0.1", port) end
clients[1]:set("key", "xxx")
local t0 = tide.hrtime()
local tasks = {}
for i = 1, C do
  local n = N // C + (i <= N % C and 1 or 0)
  tasks[i] = tide.spawn(function (c)
    for _ = 1, n do assert(c:get("key") == "xxx") end
  end, clients[i])
end
for i = 1, C do tasks[i]:await() end
local s = (tide.hrtime() - t0) / 1e9
for i = 1, C do clients[i]:quit() end
print(("redis_get_per_s\t%.0f"):format(N / s))
