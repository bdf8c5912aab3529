-- http_server_oom_spec.lua: tide.http.serve when memory runs out. The
-- host of spec/embed/oom.c (built here as spec/oom.sh builds it) runs
-- spec/http_server_oom.lua with an allocator that fails a sample of its
-- allocations in turn (tide's own, Lua's, the parser's), on tide's loop
-- and on the host's.

describe("tide.http.serve with an allocator that fails", function ()
  it("ends each run in an error or the script's end, leaking nothing, the runtime usable again", function ()
    oomsweep("http_server", "spec/http_server_oom.lua")
  end)
end)
