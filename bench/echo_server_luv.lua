-- Echo server under luv (lua5.4 + lua-luv), in luv's own callback style:
-- each chunk read is written back; reading stops while more than 256 KiB
-- waits to be written. Usage: lua5.4 echo_server_luv.lua; prints
-- "port\t<n>" once listening.
local uv = require "luv"

local HIGH_WATER = 256 * 1024

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))

local function serve(client)
  local reading = true
  local on_read
  local function on_write(err)
    if err then
      if not client:is_closing() then client:close() end
      return
    end
    if not reading and not client:is_closing()
        and client:get_write_queue_size() < HIGH_WATER then
      reading = true
      client:read_start(on_read)
    end
  end
  function on_read(err, data)
    if err or not data then
      client:close()
      return
    end
    client:write(data, on_write)
    if client:get_write_queue_size() >= HIGH_WATER then
      reading = false
      client:read_stop()
    end
  end
  client:read_start(on_read)
end

assert(server:listen(511, function (err)
  assert(not err, err)
  local client = uv.new_tcp()
  server:accept(client)
  serve(client)
end))
io.stdout:write(string.format("port\t%d\n", server:getsockname().port))
io.stdout:flush()
uv.run()
