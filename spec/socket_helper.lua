-- socket_helper.lua: peers for the tide.socket specs: redis-server on a
-- free port, Debian's lua-redis (it installs for Lua 5.1 to 5.3 only; its
-- redis.lua runs unchanged on 5.4), and a free port.
--   local H = dofile("spec/socket_helper.lua")
local H = {}

-- Debian's LuaSocket (lua-socket) and lua-redis, for require.
package.path = "/usr/share/lua/5.4/?.lua;/usr/share/lua/5.3/?.lua;" .. package.path
H.REDIS_LUA = "/usr/share/lua/5.3/redis.lua"

-- A port nothing listens on now (inside a task).
function H.freeport ()
  local srv = assert(tide.tcp.listen("127.0.0.1", 0))
  local _, port = srv:getsockname()
  srv:close()
  return port
end

local function exists (path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- Start redis-server on a free port (inside a task); returns the port and
-- a function that stops it. A missing redis-server or lua-redis fails.
function H.redis ()
  assert(os.execute("command -v redis-server >/dev/null"),
         "redis-server is missing (Debian: apt-get install redis-server)")
  assert(exists(H.REDIS_LUA), "lua-redis is missing (Debian: apt-get install lua-redis)")
  local port = H.freeport()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  assert(os.execute(("env -u LD_PRELOAD redis-server --port %d --bind 127.0.0.1 "
    .. "--save '' --appendonly no --dir %s --daemonize yes --pidfile %s/pid "
    .. "--logfile %s/log"):format(port, dir, dir, dir)))
  local start = tide.now()
  while true do
    local s = tide.tcp.connect("127.0.0.1", port)
    if s then
      s:write("PING\r\n")
      local pong = s:read_until("\r\n")
      s:close()
      if pong == "+PONG\r\n" then break end
    end
    assert(tide.now() - start < 10, "redis-server did not start")
    tide.sleep(0.02)
  end
  return port, function ()
    local f = io.open(dir .. "/pid")
    local pid = f and f:read("n")
    if f then f:close() end
    if pid then os.execute("kill " .. math.tointeger(pid)) end
    os.execute("rm -rf " .. dir)
  end
end

return H
