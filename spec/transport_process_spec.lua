-- transport_process_spec.lua: the subprocess protocol
-- (bindings/transport_process.c): tide.process.create_subprocess, the
-- SubprocessTransport and its pipe transports, the SubprocessProtocol's
-- callbacks in asyncio's order (Lib/asyncio/base_subprocess.py), with
-- cat, sh and head as children.

-- Wait (in a task) until cond() is true, at most secs seconds.
local function waitfor (cond, secs)
  local start = tide.now()
  while not cond() do
    assert(tide.now() - start < (secs or 10), "timed out waiting")
    tide.sleep(0.005)
  end
end

-- A factory of protocols that log their callbacks in log (stdout and
-- stderr data gathered in out[1] and out[2]); extra methods override.
local function recorder (log, out, extra)
  return function ()
    local p = {}
    function p:connection_made (t)
      self.t = t
      log[#log + 1] = "made"
    end
    function p:pipe_data_received (fd, d)
      if out then out[fd] = (out[fd] or "") .. d end
      if log[#log] ~= "data" .. fd then log[#log + 1] = "data" .. fd end
    end
    function p:pipe_connection_lost (fd, err)
      log[#log + 1] = "pipe_lost" .. fd .. ":" .. tostring(err)
    end
    function p:process_exited () log[#log + 1] = "exited" end
    function p:connection_lost (err) log[#log + 1] = "lost:" .. tostring(err) end
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end
end

local function last (log) return log[#log] end
local function ended (log)
  return function () return last(log) and last(log):match("^lost") end
end

local function index (log, v)
  for i, x in ipairs(log) do if x == v then return i end end
end

describe("tide.process.create_subprocess", function ()
  it("echoes through cat: stdin to stdout, write_eof, then the end in asyncio's order", async(function ()
    local log, out = {}, {}
    local t, p = tide.process.create_subprocess(recorder(log, out), { "cat" })
    assert.is_truthy(t, p)
    assert.equal("table", type(p))
    assert.equal(p, t:get_protocol())
    assert.equal(t, p.t)
    assert.equal("made", log[1])             -- before create_subprocess returns
    assert.is_true(t:get_pid() > 0)
    assert.is_nil(t:get_returncode())
    assert.is_false(t:is_closing())
    local w = t:get_pipe_transport(0)
    assert.equal("tide.Transport", getmetatable(w).__name)
    w:write("hello ")
    w:writelines({ "wor", "ld\n" })
    assert.equal(0, w:get_write_buffer_size())
    w:write_eof()
    waitfor(ended(log))
    assert.equal("hello world\n", out[1])
    assert.is_nil(out[2])
    assert.equal(0, t:get_returncode())
    -- each pipe lost once, process_exited once, connection_lost last
    for _, v in ipairs { "pipe_lost0:nil", "pipe_lost1:nil", "pipe_lost2:nil", "exited" } do
      local n = 0
      for _, x in ipairs(log) do if x == v then n = n + 1 end end
      assert.equal(1, n, v)
    end
    assert.is_true(index(log, "data1") < index(log, "pipe_lost1:nil"))
    assert.equal("lost:nil", last(log))
    assert.equal(#log, index(log, "lost:nil"))
  end))

  it("runs a string through /bin/sh -c, stdout and stderr apart, with the exit code", async(function ()
    local log, out = {}, {}
    local t = assert(tide.process.create_subprocess(recorder(log, out),
      "echo out; echo err >&2; echo more; exit 3", { stdin = "null" }))
    assert.is_nil(t:get_pipe_transport(0))   -- not a pipe
    assert.is_truthy(t:get_pipe_transport(1))
    assert.is_nil(t:get_pipe_transport(7))
    waitfor(ended(log))
    assert.equal("out\nmore\n", out[1])
    assert.equal("err\n", out[2])
    assert.equal(3, t:get_returncode())
    assert.is_nil(index(log, "pipe_lost0:nil"))
    assert.equal("lost:nil", last(log))
  end))

  it("takes spawn's options: cwd, env, stdout to a file", async(function ()
    local log, out = {}, {}
    local path = os.tmpname()
    local t = assert(tide.process.create_subprocess(recorder(log, out),
      { "sh", "-c", "pwd; echo $FOO; echo to-stderr >&2" },
      { cwd = "/tmp", env = { FOO = "bar", PATH = os.getenv("PATH") }, stdout = path }))
    assert.is_nil(t:get_pipe_transport(1))
    waitfor(ended(log))
    assert.equal("to-stderr\n", out[2])
    local f = assert(io.open(path))
    assert.equal("/tmp\nbar\n", f:read("a"))
    f:close()
    os.remove(path)
  end))

  it("terminate, kill and send_signal: the code is 128 + the signal, and its name", async(function ()
    for _, how in ipairs { "terminate", "kill", "send_signal" } do
      local log = {}
      local t = assert(tide.process.create_subprocess(recorder(log), { "sleep", "30" }))
      if how == "send_signal" then assert.is_true(t:send_signal("SIGINT"))
      else assert.is_true(t[how](t)) end
      waitfor(ended(log))
      local code, name = t:get_returncode()
      local want = ({ terminate = "SIGTERM", kill = "SIGKILL", send_signal = "SIGINT" })[how]
      assert.equal(want, name)
      assert.equal(128 + ({ SIGTERM = 15, SIGKILL = 9, SIGINT = 2 })[want], code)
      local ok, err, ecode = t:send_signal("SIGTERM")
      assert.is_nil(ok)
      assert.equal("process has exited", err)
      assert.equal("ESRCH", ecode)
      assert.equal("lost:nil", last(log))
    end
  end))

  it("close() kills a running child and closes its pipes", async(function ()
    local log = {}
    local t = assert(tide.process.create_subprocess(recorder(log), { "sleep", "30" }))
    t:get_pipe_transport(0):write(("x"):rep(1000000))   -- queued: dropped
    t:close()
    assert.is_true(t:is_closing())
    t:close()
    waitfor(ended(log))
    assert.equal(137, (t:get_returncode()))
    assert.truthy(index(log, "exited"))
    assert.truthy(index(log, "pipe_lost0:nil"))
    assert.equal("lost:nil", last(log))
  end))

  it("pause_reading holds a child that writes much, memory bounded; resume_reading drains it", async(function ()
    local log, n = {}, 0
    local total = 32 * 1024 * 1024
    local t = assert(tide.process.create_subprocess(recorder(log, nil, {
      pipe_data_received = function (_, _, d) n = n + #d end }),
      { "head", "-c", tostring(total), "/dev/zero" }))
    local r = t:get_pipe_transport(1)
    r:pause_reading()
    assert.is_false(r:is_reading())
    tide.sleep(0.3)
    assert.equal(0, n)
    assert.is_nil(t:get_returncode())        -- blocked on its full pipe
    r:resume_reading()
    waitfor(function () return n > 0 end)
    r:pause_reading()
    local seen = n
    tide.sleep(0.2)
    assert.is_true(n - seen <= 128 * 1024, n - seen)   -- no more than one read more
    collectgarbage()
    assert.is_true(collectgarbage("count") < 64 * 1024)
    r:resume_reading()
    waitfor(ended(log), 30)
    assert.equal(total, n)
    assert.equal(0, t:get_returncode())
  end))

  it("calls pause_writing and resume_writing as stdin's buffer fills and drains", async(function ()
    local log, out = {}, { [1] = "" }
    local big = ("y"):rep(4 * 1024 * 1024)
    local t = assert(tide.process.create_subprocess(recorder(log, nil, {
      pause_writing = function () log[#log + 1] = "pause" end,
      resume_writing = function () log[#log + 1] = "resume" end,
      pipe_data_received = function (_, fd, d) out[fd] = out[fd] .. #d .. "," end,
    }), "wc -c"))
    local w = t:get_pipe_transport(0)
    w:write(big)
    assert.equal("pause", last(log))
    assert.is_true(w:get_write_buffer_size() > 0)
    w:write_eof()
    waitfor(ended(log), 30)
    assert.truthy(index(log, "resume"))
    assert.equal(0, t:get_returncode())
  end))

  it("fails to start as tide.process.spawn does: nil, message, code, and no callback", async(function ()
    local log = {}
    local t, err, code = tide.process.create_subprocess(recorder(log), { "/nonexistent/prog" })
    assert.is_nil(t)
    assert.matches("/nonexistent/prog", err, 1, true)
    assert.equal("ENOENT", code)
    t, err, code = tide.process.create_subprocess(recorder(log), { "true" }, { cwd = "/nonexistent" })
    assert.is_nil(t)
    assert.matches("cwd /nonexistent", err, 1, true)
    assert.equal("ENOENT", code)
    tide.sleep(0.05)
    assert.same({}, log)
  end))

  it("raises on wrong use, and the factory's error", async(function ()
    assert.has_error(function () tide.process.create_subprocess(nil, { "true" }) end)
    local ok, err = pcall(tide.process.create_subprocess, recorder({}), 42)
    assert.is_false(ok)
    assert.matches("string or table expected, got number", err, 1, true)
    assert.has_error(function () tide.process.create_subprocess(recorder({}), {}) end)
    assert.has_error(function () tide.process.create_subprocess(recorder({}), { "true" }, 5) end)
    local ok0, e0 = pcall(tide.process.create_subprocess, recorder({}), { "true" }, { cwd = 5 })
    assert.is_false(ok0)
    assert.matches("bad argument #3 to 'tide.process.create_subprocess' ('cwd': string expected)", e0, 1, true)
    ok0, e0 = pcall(tide.process.create_subprocess, recorder({}), {})
    assert.is_false(ok0)
    assert.matches("bad argument #2 to 'tide.process.create_subprocess' (program name expected)", e0, 1, true)
    assert.has_error(function ()
      tide.process.create_subprocess(function () error("nope") end, { "true" })
    end, "nope")
    local ok, err = pcall(tide.process.create_subprocess, function () return 42 end, { "true" })
    assert.is_false(ok)
    assert.matches("returned number, not a protocol", err)
    local t = assert(tide.process.create_subprocess(recorder({}), { "true" }))
    assert.has_error(function () t.get_pid({}) end)
    assert.has_error(function () t:get_pipe_transport("x") end)
    local pp = t:get_pipe_transport(1):get_protocol()
    assert.has_error(function () pp.data_received({}, "x") end)
  end))

  it("reports an error in a callback and closes only that process's transport", async(function ()
    local log, other = {}, {}
    local good = assert(tide.process.create_subprocess(recorder(other), { "cat" }))
    local t = assert(tide.process.create_subprocess(recorder(log, nil, {
      pipe_data_received = function () error("exploded") end }),
      { "sh", "-c", "echo hi; sleep 30" }))
    waitfor(ended(log))
    assert.is_true(t:is_closing())
    assert.equal(137, (t:get_returncode()))  -- killed
    assert.matches("exploded", last(log))    -- connection_lost(err)
    assert.truthy(index(log, "exited"))
    assert.is_false(good:is_closing())
    local w = good:get_pipe_transport(0)
    w:write("still\n")
    w:write_eof()
    waitfor(ended(other))
    assert.equal(0, good:get_returncode())
  end))

  it("an error in connection_made closes it, and callbacks refuse to wait", async(function ()
    local log = {}
    local t = assert(tide.process.create_subprocess(recorder(log, nil, {
      connection_made = function () error("at once") end }), { "cat" }))
    assert.is_true(t:is_closing())
    waitfor(ended(log))
    assert.matches("at once", last(log))
    log = {}
    t = assert(tide.process.create_subprocess(recorder(log, nil, {
      process_exited = function () tide.sleep(0) end }), { "true" }))
    waitfor(ended(log))
    assert.matches("must be called inside a task", last(log))
  end))

  it("reports the error with its traceback on stderr", function ()
    local path = tmpfile([[
local done = false
local t = assert(tide.process.create_subprocess(function ()
  return { pipe_data_received = function () error("exploded here") end,
           connection_lost = function () done = true end }
end, "echo x"))
while not done do tide.sleep(0.01) end
print("went on")
]])
    local out, code = sh(TIDE .. " " .. path)
    os.remove(path)
    assert.equal(0, code, out)             -- reported; the exit status is the program's
    assert.matches("tide: error in a Protocol callback %(pipe_data_received%): [^\n]*exploded here", out)
    assert.matches("stack traceback", out)
    assert.matches("went on", out)
  end)

end)

describe("tide's subprocess protocol with an allocator that fails", function ()
  it("ends each run in an error or the script's end, leaking nothing", function ()
    oomsweep("transport_process", "spec/transport_process_oom.lua")
  end)
end)
