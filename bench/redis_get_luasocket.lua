-- Redis GETs through Debian's lua-redis on stock lua5.4 with LuaSocket: one
-- connection, one GET after the other (LuaSocket blocks).
-- Usage: lua5.4 redis_get_luasocket.lua PORT [N]. Prints <metric>\t<value>.
local port = assert(tonumber(arg[1]), "usage: lua5.4 redis_get_luasocket.lua PORT [N]")
local N = math.tointeger(tonumber(arg[2])) or 100000
local socket = require "socket"
local redis = dofile("/usr/share/lua/5.3/redis.lua")

local c = redis.connect("127.0.0.1", port)
c:set("key", "xxx")
local t0 = socket.gettime()
for _ = 1, N do assert(c:get("key") == "xxx") end
local s = socket.gettime() - t0
c:quit()
print(("redis_get_per_s\t%.0f"):format(N / s))
