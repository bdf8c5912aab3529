-- Echo server under tide with a Protocol (callbacks, no task per
-- connection): data_received writes each chunk back; reading pauses while
-- the transport says its write buffer is full, as bench/echo_server_protocol.py.
-- Usage: tide echo_server_protocol.lua; prints "port\t<n>" once listening.
local Echo = {}
Echo.__index = Echo

function Echo:connection_made (transport) self.transport = transport end
function Echo:data_received (data) self.transport:write(data) end
function Echo:pause_writing () self.transport:pause_reading() end
function Echo:resume_writing () self.transport:resume_reading() end

local server = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
  return setmetatable({}, Echo)
end))
local _, port = server:getsockname()
io.stdout:write(string.format("port\t%d\n", port))
io.stdout:flush()
server:wait()
