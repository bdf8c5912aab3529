-- pingpong_protocol.lua: ping-pong with asyncio's callback layer: a server
-- Protocol answers each "ping N" line with "pong N"; a client Protocol
-- sends the next ping when the pong comes, and closes after the last.
-- No task per connection: tide calls the protocols' methods as data comes.
-- Run: tide scripts/pingpong_protocol.lua [rounds]
local rounds = tonumber(arg and arg[1]) or 5

-- The server side: lines in, pongs out (data may come in pieces).
local Pong = {}
Pong.__index = Pong

function Pong:connection_made (transport)
  self.transport, self.buf = transport, ""
end

function Pong:data_received (data)
  self.buf = self.buf .. data
  for n in self.buf:gmatch("ping (%d+)\n") do
    self.transport:write("pong " .. n .. "\n")
  end
  self.buf = self.buf:match("[^\n]*$")
end

-- The client side: a ping, then one more for each pong, up to rounds.
local Ping = {}
Ping.__index = Ping

function Ping:connection_made (transport)
  self.transport, self.n, self.buf = transport, 1, ""
  print("ping 1")
  transport:write("ping 1\n")
end

function Ping:data_received (data)
  self.buf = self.buf .. data
  for n in self.buf:gmatch("pong (%d+)\n") do
    print("pong " .. n)
    if self.n == rounds then
      self.transport:close()
    else
      self.n = self.n + 1
      print("ping " .. self.n)
      self.transport:write("ping " .. self.n .. "\n")
    end
  end
  self.buf = self.buf:match("[^\n]*$")
end

function Ping:connection_lost (err)
  self.done:set()                    -- wakes the main task below
  if err then print("lost: " .. tostring(err)) end
end

local server <close> = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
  return setmetatable({}, Pong)
end))
local _, port = server:getsockname()

local done = tide.Event()
assert(tide.tcp.create_connection("127.0.0.1", port, function ()
  return setmetatable({ done = done }, Ping)
end))
done:wait()                          -- until the client's connection is lost
