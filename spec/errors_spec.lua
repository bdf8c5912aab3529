-- errors_spec.lua: wrong use raises as Lua's own library does: the message
-- names the function called (in full when it is called through pcall, which
-- gives no name) and points at the caller's line, however deep inside tide
-- the error is found (runtime/where.c).

local function noop () end

-- err must be want raised on the first line of f (each case below is a
-- function written on one line), as "<this file>:<line>: want".
local function check (want, f, err)
  err = tostring(err)
  local src, line, msg = err:match("^(.-):(%d+): (.*)$")
  assert.equal(want, msg or err)
  assert.matches("errors_spec%.lua$", src)
  assert.equal(debug.getinfo(f, "S").linedefined, tonumber(line))
end

-- f() raises want on its line.
local function at (want, f)
  local ok, err = pcall(f)
  assert.is_false(ok, want)
  check(want, f, err)
end

-- pcall(f, ...) raises want, without a position (pcall is the caller, a C
-- function, as with pcall(string.rep)).
local function bare (want, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, want)
  assert.equal(want, err)
end

-- Run each case { want, f } outside any task (in an on_done callback),
-- then check what it raised.
local function outside (cases)
  local t = tide.spawn(noop)
  t:await()
  local errs = {}
  t:on_done(function ()
    for i, c in ipairs(cases) do errs[i] = select(2, pcall(c[2])) end
  end)
  for i, c in ipairs(cases) do check(c[1], c[2], errs[i]) end
end

-- Every method of obj's class (the functions of methods whose names do not
-- start with "__") raises naming it in full when its self is wrong.
local function selfchecks (obj, class, methods)
  local n = 0
  for k, f in pairs(methods or getmetatable(obj).__index) do
    if type(f) == "function" and not k:match("^__") then
      bare(("bad argument #1 to '%s:%s' (tide.%s expected, got string)")
           :format(class, k, class), f, "x")
      n = n + 1
    end
  end
  assert.is_true(n > 0)
end

local OUTSIDE = "must be called inside a task (use tide.run or tide.spawn)"

describe("tide's functions", function ()
  it("name themselves and the caller's line", async(function ()
    at("bad argument #1 to 'gather' (function, task or future expected, got number)", function () tide.gather(1) end)
    at("bad argument #2 to 'settle' (function, task or future expected, got string)", function () tide.settle(noop, "x") end)
    at("bad argument #1 to 'race' (function, task or future expected, got no value)", function () tide.race() end)
    at("bad argument #1 to 'timeout' (number expected, got string)", function () tide.timeout("x", noop) end)
    at("bad argument #1 to 'timeout' (negative duration)", function () tide.timeout(-1, noop) end)
    at("bad argument #2 to 'timeout' (function, task or future expected, got nil)", function () tide.timeout(1) end)
    at("bad argument #1 to 'shield' (function, task or future expected, got tide.Queue)", function () tide.shield(tide.Queue()) end)
    at("bad argument #1 to 'group' (function expected, got number)", function () tide.group(1) end)
    at("bad argument #1 to 'spawn' (function expected, got number)", function () tide.group(function (g) g:spawn(1) end) end)
    at("bad argument #1 to 'call_later' (negative duration)", function () tide.call_later(-1, noop) end)
    at("tide.run: cannot run the loop inside a task", function () tide.run() end)
    at("bad argument #1 to 'sleep' (number expected, got string)", function () tide.sleep("x") end)
    local gather = tide.gather
    at("bad argument #1 to 'gather' (function, task or future expected, got boolean)", function () gather(true) end)
  end))

  it("name themselves in full through pcall, without a position", async(function ()
    bare("bad argument #1 to 'tide.gather' (function, task or future expected, got number)", tide.gather, 1)
    bare("bad argument #1 to 'tide.timeout' (negative duration)", tide.timeout, -1, noop)
    bare("bad argument #1 to 'tide.run' (function expected, got number)", tide.run, 1)
    bare("bad argument #1 to 'tide.sleep' (number expected, got string)", tide.sleep, "x")
    bare("bad argument #1 to 'tide.spawn' (function expected, got no value)", tide.spawn)
    local saved
    tide.group(function (g) saved = g end)
    at("Group:spawn: the group has ended", function () saved:spawn(noop) end)
    selfchecks(saved, "Group", getmetatable(saved))
  end))

  it("raise outside any task naming the call, at the caller's line", async(function ()
    outside {
      { "'tide.gather' " .. OUTSIDE, function () tide.gather(noop) end },
      { "'tide.settle' " .. OUTSIDE, function () tide.settle(noop) end },
      { "'tide.timeout' " .. OUTSIDE, function () tide.timeout(1, noop) end },
      { "'tide.group' " .. OUTSIDE, function () tide.group(noop) end },
      { "cannot drive the loop from inside a task or a callback", function () tide.run(noop) end },
    }
  end))

  it("take numbers in strings as numbers, as Lua does", async(function ()
    tide.sleep("0")
    assert.is_true(tide.call_later("0", function () return true end):await())
    assert.is_true(tide.timeout("1", function () return true end))
  end))
end)

describe("tide.Queue and the other synchronisation types", function ()
  it("check their self as luaL_checkudata does", async(function ()
    local q = tide.Queue()
    at("bad argument #1 to 'put' (tide.Queue expected, got string)", function () q.put("x") end)
    at("bad argument #1 to 'get' (tide.Queue expected, got nil)", function () q.get() end)
    at("calling 'put' on bad self (tide.Queue expected, got table)", function () local t = { put = q.put } t:put(1) end)
    local e = tide.Event()
    at("bad argument #1 to 'wait' (tide.Event expected, got tide.Queue)", function () e.wait(q) end)
    for name, obj in pairs {
      Queue = q, LifoQueue = tide.LifoQueue(), PriorityQueue = tide.PriorityQueue(),
      Lock = tide.Lock(), Event = e, Condition = tide.Condition(),
      Semaphore = tide.Semaphore(), BoundedSemaphore = tide.BoundedSemaphore(),
      Barrier = tide.Barrier(2),
    } do
      selfchecks(obj, name, getmetatable(obj))
    end
  end))

  it("name the method, counting arguments as Lua does", async(function ()
    local q = tide.Queue()
    at("bad argument #1 to 'put' (value expected)", function () q:put(nil) end)
    at("bad argument #2 to 'put' (value expected)", function () q.put(q, nil) end)
    bare("bad argument #2 to 'Queue:put' (value expected)", q.put, q, nil)
    bare("bad argument #2 to 'LifoQueue:put_nowait' (value expected)", tide.LifoQueue().put_nowait, tide.LifoQueue())
    at("bad argument #1 to 'Queue' (non-negative integer expected)", function () tide.Queue(-1) end)
    bare("bad argument #1 to 'tide.Barrier' (positive integer expected)", tide.Barrier, 0)
    bare("bad argument #2 to 'tide.PriorityQueue' (function expected, got string)", tide.PriorityQueue, 1, "x")
    at("bad argument #1 to 'Condition' (tide.Lock expected, got tide.Queue)", function () tide.Condition(q) end)
    local c = tide.Condition()
    at("bad argument #1 to 'wait_for' (function expected, got number)", function () c:wait_for(1) end)
    at("bad argument #1 to 'notify' (non-negative integer expected)", function () c:notify(-1) end)
    bare("bad argument #2 to 'Condition:notify' (non-negative integer expected)", c.notify, c, "x")
  end))

  it("raise other wrong use naming the call, at the caller's line", async(function ()
    local q = tide.Queue()
    q:close()
    at("Queue:put: the queue is closed", function () q:put(1) end)
    bare("Queue:put_nowait: the queue is closed", q.put_nowait, q, 1)
    at("Queue:task_done: called more times than items were put", function () q:task_done() end)
    local lock = tide.Lock()
    at("Lock:release: lock not held", function () lock:release() end)
    lock:acquire()
    at("Lock:acquire: lock already held by this task", function () lock:acquire() end)
    at("Lock:hold: lock already held by this task", function () lock:hold() end)
    lock:release()
    local c = tide.Condition()
    at("Condition:wait: lock not held", function () c:wait() end)
    at("Condition:notify_all: lock not held", function () c:notify_all() end)
    c:acquire()
    at("Condition:acquire: lock already held by this task", function () c:acquire() end)
    c:release()
    local s = tide.BoundedSemaphore(1)
    at("BoundedSemaphore:release: released more times than acquired", function () s:release() end)
    local b = tide.Barrier(2)
    b:abort()
    at("Barrier:wait: the barrier is broken", function () b:wait() end)
    local g = tide.Queue()
    at("'Queue:get' cannot wait inside a C call such as table.sort, string.gsub or require, nor in a __close run by an error or a cancellation", function () table.sort({ 1, 2 }, function () g:get() end) end)
  end))

  it("raise outside any task naming the call, at the caller's line", async(function ()
    local q, lock, e, b = tide.Queue(), tide.Lock(), tide.Event(), tide.Barrier(2)
    local l2 = tide.LifoQueue(1)
    l2:put(1)
    outside {
      { "'Queue:get' " .. OUTSIDE, function () q:get() end },
      { "'LifoQueue:put' " .. OUTSIDE, function () l2:put(2) end },
      { "'Lock:acquire' " .. OUTSIDE, function () lock:acquire() end },
      { "'Event:wait' " .. OUTSIDE, function () e:wait() end },
      { "'Barrier:wait' " .. OUTSIDE, function () b:wait() end },
      { "bad argument #1 to 'Semaphore' (non-negative integer expected)", function () tide.Semaphore(-2) end },
    }
  end))

  it("take numbers in strings as numbers, as Lua does", async(function ()
    assert.equal(2, tide.Queue("2"):maxsize())
    assert.equal(3, tide.Semaphore("3"):value())
    assert.equal(2, tide.Barrier("2.0"):parties())
  end))
end)

describe("tide.tcp, tide.pipe and tide.udp", function ()
  it("name the call and the caller's line", async(function ()
    at("bad argument #2 to 'connect' (number expected, got string)", function () tide.tcp.connect("127.0.0.1", "x") end)
    at("bad argument #1 to 'connect' (string expected, got number)", function () tide.tcp.connect(1, 80) end)
    at("bad argument #3 to 'connect' ('timeout': non-negative number expected)", function () tide.tcp.connect("127.0.0.1", 1, { timeout = -1 }) end)
    at("bad argument #2 to 'listen' (port out of range)", function () tide.tcp.listen("127.0.0.1", 70000) end)
    at("bad argument #3 to 'serve' (function expected, got nil)", function () tide.tcp.serve("127.0.0.1", 0) end)
    at("bad argument #1 to 'connect' (string expected, got number)", function () tide.pipe.connect(1) end)
    at("bad argument #2 to 'serve' (function expected, got number)", function () tide.pipe.serve("/tmp/x", 1) end)
    bare("bad argument #2 to 'tide.udp.bind' (number has no integer representation)", tide.udp.bind, "127.0.0.1", 1.5)
    bare("bad argument #1 to 'tide.dns.resolve' (string expected, got no value)", tide.dns.resolve)
  end))

  it("take options only in a table", async(function ()
    at("bad argument #3 to 'connect' (table expected, got number)", function () tide.tcp.connect("127.0.0.1", 1, 5) end)
    at("bad argument #3 to 'listen' (table expected, got string)", function () tide.tcp.listen("127.0.0.1", 0, "x") end)
    at("bad argument #4 to 'serve' (table expected, got boolean)", function () tide.tcp.serve("127.0.0.1", 0, noop, true) end)
    at("bad argument #2 to 'connect' (table expected, got number)", function () tide.pipe.connect("/nonexistent/x", 5) end)
    at("bad argument #2 to 'listen' (table expected, got number)", function () tide.pipe.listen("/nonexistent/x", 5) end)
    at("bad argument #3 to 'serve' (table expected, got number)", function () tide.pipe.serve("/nonexistent/x", noop, 5) end)
    at("bad argument #3 to 'bind' (table expected, got number)", function () tide.udp.bind("127.0.0.1", 0, 5) end)
  end))

  it("check the self and arguments of methods", async(function ()
    local serving = assert(tide.tcp.serve("127.0.0.1", "0", function (s) s:read() end))
    local _, port = serving:getsockname()
    local s = assert(tide.tcp.connect("127.0.0.1", tostring(port)))
    at("bad argument #1 to 'read' (number expected, got string)", function () s:read("x") end)
    at("bad argument #1 to 'read_until' (empty separator)", function () s:read_until("") end)
    at("bad argument #1 to 'setoption' (invalid option 'nope')", function () s:setoption("nope") end)
    at("bad argument #1 to 'write' (tide.Stream expected, got string)", function () s.write("x") end)
    bare("bad argument #2 to 'Stream:read' (number expected, got string)", s.read, s, "x")
    bare("bad argument #3 to 'Stream:setoption' (number expected, got table)", s.setoption, s, "sndbuf", {})
    selfchecks(s, "Stream")
    selfchecks(serving.server, "Server")
    selfchecks(serving, "Serving", getmetatable(serving))
    at("bad argument #1 to 'close' (number expected, got string)", function () serving:close("x") end)
    s:close()
    at("Stream:write: attempt to use a closed stream", function () s:write("x") end)
    bare("Stream:read: attempt to use a closed stream", s.read, s)
    serving:close()
    local u <close> = assert(tide.udp.bind("127.0.0.1", "0"))
    at("bad argument #3 to 'send' (port out of range)", function () u:send("x", "127.0.0.1", 70000) end)
    at("bad argument #2 to 'send' (address expected (the socket is not connected))", function () u:send("x") end)
    at("bad argument #2 to 'connect' (number expected, got nil)", function () u:connect("127.0.0.1") end)
    bare("bad argument #3 to 'UdpSocket:setoption' (number expected, got string)", u.setoption, u, "ttl", "x")
    selfchecks(u, "UdpSocket")
  end))

  it("raise outside any task naming the call, at the caller's line", async(function ()
    outside {
      { "'tide.tcp.connect' " .. OUTSIDE, function () tide.tcp.connect("127.0.0.1", 1) end },
      { "'tide.pipe.connect' " .. OUTSIDE, function () tide.pipe.connect("/nonexistent") end },
      { "bad argument #1 to 'bind' (string expected, got nil)", function () tide.udp.bind() end },
    }
  end))
end)

describe("tide.process", function ()
  it("names the call and the caller's line, from C too", async(function ()
    at("bad argument #1 to 'spawn' (table expected, got string)", function () tide.process.spawn("ls -l") end)
    bare("bad argument #1 to 'tide.process.spawn' (table expected, got string)", tide.process.spawn, "ls -l")
    at("bad argument #2 to 'exec' ('cwd': string expected)", function () tide.process.exec({ "true" }, { cwd = 1 }) end)
    at("bad argument #2 to 'exec' ('timeout': non-negative number expected)", function () tide.process.exec("true", { timeout = -1 }) end)
    at("bad argument #1 to 'exec' (program name expected, got an empty string)", function () tide.process.exec({ "" }) end)
    bare("bad argument #1 to 'tide.process.exec' (command string or list expected, got nil)", tide.process.exec)
    at("bad argument #2 to 'pipeline' ('stdin': file descriptor expected)", function () tide.process.pipeline({ { "true" } }, { stdin = 1.5 }) end)
    at("bad argument #1 to 'pipeline' (program name expected at [2])", function () tide.process.pipeline({ { "true" }, {} }) end)
  end))

  it("checks the self and arguments of methods", async(function ()
    local p = assert(tide.process.spawn { "sleep", "10" })
    at("bad argument #1 to 'kill' (unknown signal 'SIGNOPE')", function () p:kill("SIGNOPE") end)
    bare("bad argument #2 to 'Process:kill' (unknown signal 'SIGNOPE')", p.kill, p, "SIGNOPE")
    selfchecks(p, "Process", { wait = p.wait, kill = p.kill, close = p.close })
    p:close()
    local pl = assert(tide.process.pipeline { { "true" }, { "true" } })
    at("bad argument #1 to 'kill' (unknown signal 'SIGNOPE')", function () pl:kill("SIGNOPE") end)
    selfchecks(pl, "Pipeline", getmetatable(pl))
    pl:wait()
  end))

  it("takes numbers in strings as numbers, as Lua does", async(function ()
    assert.same({ "x\n", "", 0 }, { tide.process.exec("echo x", { timeout = "10", max_output = "2" }) })
  end))

  it("raises outside any task naming the call, at the caller's line", async(function ()
    outside {
      { "'tide.process.exec' " .. OUTSIDE, function () tide.process.exec("true") end },
      { "bad argument #2 to 'exec' (table expected, got string)", function () tide.process.exec("true", "x") end },
    }
  end))
end)

describe("tide.fs", function ()
  it("names the call and the caller's line", async(function ()
    at("bad argument #1 to 'read_file' (string expected, got number)", function () tide.fs.read_file(1) end)
    bare("bad argument #1 to 'tide.fs.read_file' (string expected, got number)", tide.fs.read_file, 1)
    at("bad argument #3 to 'write_file' (mode out of range)", function () tide.fs.write_file("/tmp/x", "", 0x8000) end)
    at("bad argument #1 to 'stat' (string expected, got no value)", function () tide.fs.stat() end)
    bare("bad argument #1 to 'tide.fs.stat' (string expected, got no value)", tide.fs.stat)
    bare("bad argument #2 to 'tide.fs.open' (invalid mode)", tide.fs.open, "/tmp/x", "q")
    at("bad argument #2 to 'watch' (table expected, got number)", function () tide.fs.watch("/tmp", 5) end)
  end))

  it("checks the self and arguments of methods", async(function ()
    local d = assert(tide.fs.mkdtemp())
    local f = assert(tide.fs.open(d .. "/f", "w+"))
    at("bad argument #1 to 'read' (number expected, got string)", function () f:read("x") end)
    at("bad argument #1 to 'seek' (invalid option 'nope')", function () f:seek("nope") end)
    bare("bad argument #2 to 'File:truncate' (non-negative size expected)", f.truncate, f, -1)
    selfchecks(f, "File")
    f:close()
    at("File:write: attempt to use a closed file", function () f:write("x") end)
    local _, _, _, dir = tide.fs.readdir(d)
    selfchecks(dir, "Dir")
    dir:close()
    local w = assert(tide.fs.watch(d))
    selfchecks(w, "Watcher")
    bare("bad argument #1 to 'Watcher.__call' (tide.Watcher expected, got table)", getmetatable(w).__call, { read = noop })
    w:close()
    assert(tide.fs.unlink(d .. "/f"))
    assert(tide.fs.rmdir(d))
  end))

  it("raises outside any task naming the call, at the caller's line", async(function ()
    outside {
      { "'tide.fs.read_file' " .. OUTSIDE, function () tide.fs.read_file("/etc/hostname") end },
      { "'tide.fs.mkdir' " .. OUTSIDE, function () tide.fs.mkdir("/tmp") end },
      { "bad argument #2 to 'mkdir' (mode out of range)", function () tide.fs.mkdir("/tmp", -1) end },
    }
  end))
end)

describe("tide.signal", function ()
  it("names the call and the caller's line", async(function ()
    at("bad argument #1 to 'wait' (unknown signal 'SIGNOPE')", function () tide.signal.wait("SIGNOPE") end)
    bare("bad argument #2 to 'tide.signal.on' (function expected, got nil)", tide.signal.on, "SIGUSR1", nil)
    at("bad argument #1 to 'kill' (process id expected)", function () tide.signal.kill(0) end)
    local h = tide.signal.on("SIGUSR1", noop)
    selfchecks(h, "SignalHandler")
    h:close()
  end))
end)

describe("tide.Task", function ()
  -- Needs sched.c to name its errors through where.c (tide__fname,
  -- tide__error, tide__checkudata).
  it("names its methods and the caller's line", async(function ()
    local t = tide.spawn(function () tide.sleep(0.01) end)
    at("Task:result: the task has not ended", function () t:result() end)
    bare("bad argument #2 to 'Task:on_done' (function expected, got number)", t.on_done, t, 1)
    selfchecks(t, "Task")
    outside {
      { "'Task:await' " .. OUTSIDE, function () t:await() end },
    }
    t:await()
  end))
end)
