-- socket_oom_spec.lua: tide.socket (runtime/lua/socket.lua) when memory
-- runs out. The host of spec/embed/oom.c (built here as spec/oom.sh
-- builds it) runs spec/socket_oom.lua with an allocator that fails a
-- sample of its allocations in turn, on tide's loop and on the host's.

describe("tide.socket with an allocator that fails", function ()
  it("ends each run in an error or the script's end, leaking nothing, the runtime usable again", function ()
    oomsweep("socket", "spec/socket_oom.lua")
  end)
end)
