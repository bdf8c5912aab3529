-- transport_process_oom.lua: what spec/embed/oom.c runs for
-- spec/transport_process_spec.lua while its allocator fails: the
-- subprocess protocol (cat through its pipes, a child killed by close, a
-- callback that raises, a failing spawn), each ending quickly whatever
-- part fails.
local tide = tide

local function run ()
  local got, ended = {}, tide.Event()
  local t = assert(tide.process.create_subprocess(function ()
    return {
      pipe_data_received = function (_, fd, d) got[#got + 1] = d end,
      connection_lost = function () ended:set() end,
    }
  end, { "cat" }))
  local w = t:get_pipe_transport(0)
  w:writelines({ "hello", " ", "world" })
  w:write_eof()
  ended:wait()
  -- close() with the child running; a callback that raises
  local ended2 = tide.Event()
  local t2 = assert(tide.process.create_subprocess(function ()
    return { pipe_data_received = function () error("boom") end,
             connection_lost = function () ended2:set() end }
  end, "echo x; sleep 10"))
  local t3 = assert(tide.process.create_subprocess(function () return {} end,
                                                   { "sleep", "10" }))
  t3:close()
  ended2:wait()
  assert(t2:is_closing())
  assert(tide.process.create_subprocess(function () return {} end,
                                        { "/nonexistent" }) == nil)
  return true
end

local ok, err = pcall(tide.timeout, 3, run)
if not ok then error(err, 0) end
if err == nil then error("timeout", 0) end
return "done"
