-- transport_oom_spec.lua: the callback layer (bindings/transport.c,
-- transport_net.c) when memory runs out. The host of spec/embed/oom.c
-- (built here as spec/oom.sh builds it) runs spec/transport_oom.lua with
-- an allocator that fails a sample of its allocations in turn, on tide's
-- loop and on the host's.

describe("tide's Transport and Protocol with an allocator that fails", function ()
  it("ends each run in an error or the script's end, leaking nothing, the runtime usable again", function ()
    oomsweep("transport", "spec/transport_oom.lua")
  end)
end)
