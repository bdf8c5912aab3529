-- luasocket.lua: tide.luasocket, the switch that makes require "socket",
-- "socket.core" and "ssl" give tide.socket and tide.ssl, so that LuaSocket's
-- own Lua modules (socket.lua, socket/http.lua, smtp, ltn12, mime) and the
-- libraries written on them load on top of tide. require "tide.luasocket"
-- (or tide -l tide.luasocket) installs it.
local tide = ...

local L = {}
tide.luasocket = L

local RELOADED = { "socket", "socket.http", "socket.tp", "socket.smtp",
                   "socket.ftp", "socket.mbox", "ssl", "ssl.https" }

-- Install: socket.core and ssl are tide's; socket is LuaSocket's socket.lua
-- loaded on top of tide.socket where it is installed, tide.socket alone
-- where it is not.
function L.install ()
  local loaded, socket = package.loaded, tide.socket
  if loaded["socket.core"] ~= socket then
    -- LuaSocket's own, loaded before: its Lua modules load again on tide's
    for _, name in ipairs(RELOADED) do loaded[name] = nil end
    loaded["socket.core"] = socket
  end
  loaded.ssl = tide.ssl
  if loaded.socket == nil and package.searchpath("socket", package.path) == nil
  then
    loaded.socket = socket
  end
  L.installed = true
  return L
end

return L
