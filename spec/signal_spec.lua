-- signal_spec.lua: tide.signal (bindings/signal.c) and what the tide
-- command does on SIGINT and SIGTERM (runtime/main.c), with tide itself as
-- the child that gets the signals.

local P = tide.process

local function mypid ()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

-- Start `tide script` with stdout (and stderr) on a pipe and stdin on
-- another; wait for its first line, "ready". Returns the Process.
local function start (script)
  local path = tmpfile(script)
  local p = assert(P.spawn { TIDE, path, stdin = "pipe", stdout = "pipe",
                             stderr = "stdout" })
  assert.equal("ready", p.stdout:read_until("\n"):sub(1, -2))
  os.remove(path)
  return p
end

local function rest (p) return readall(p.stdout) end

describe("tide.signal", function ()
  it("wait returns the signal's name once it arrives", async(function ()
    local t = tide.spawn(tide.signal.wait, "SIGUSR1")
    tide.sleep(0.01)
    assert.equal("waiting", t:state())
    assert.is_true(tide.signal.kill(mypid(), "SIGUSR1"))
    assert.equal("SIGUSR1", t:await())
  end))

  it("takes names without SIG, and numbers", async(function ()
    local a = tide.spawn(tide.signal.wait, "USR2")
    local b = tide.spawn(tide.signal.wait, 12)     -- SIGUSR2 on Linux
    tide.sleep(0.01)
    tide.signal.kill(mypid(), 12)
    assert.same({ "SIGUSR2", "SIGUSR2" }, { a:await(), b:await() })
  end))

  it("can be cancelled while waiting", async(function ()
    local t = tide.spawn(tide.signal.wait, "SIGUSR1")
    tide.sleep(0.01)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
    local again = tide.spawn(tide.signal.wait, "SIGUSR1")  -- still works
    tide.sleep(0.01)
    tide.signal.kill(mypid(), "SIGUSR1")
    assert.equal("SIGUSR1", again:await())
  end))

  it("on runs the handler in a new task each time, until closed", async(function ()
    local got, tasks = {}, {}
    local h <close> = tide.signal.on("SIGUSR1", function (name)
      got[#got + 1] = name
      tasks[tide.current()] = true
    end)
    assert.matches("tide.SignalHandler %(SIGUSR1%)", tostring(h))
    for _ = 1, 2 do
      tide.signal.kill(mypid(), "SIGUSR1")
      for _ = 1, 100 do
        tide.sleep(0.005)
        if #got == _ then break end
      end
    end
    assert.same({ "SIGUSR1", "SIGUSR1" }, got)
    local n = 0
    for _ in pairs(tasks) do n = n + 1 end
    assert.equal(2, n)
    h:close()
    h:close()                                    -- harmless
    assert.equal("tide.SignalHandler (closed)", tostring(h))
  end))

  it("gives the signal to both waiting tasks and handlers", async(function ()
    local handled = false
    local h <close> = tide.signal.on("SIGUSR2", function () handled = true end)
    local t = tide.spawn(tide.signal.wait, "SIGUSR2")
    tide.sleep(0.01)
    tide.signal.kill(mypid(), "SIGUSR2")
    assert.equal("SIGUSR2", t:await())
    tide.sleep(0.01)
    assert.is_true(handled)
  end))

  it("raises on an unknown signal and one that cannot be caught", async(function ()
    assert.has_error(function () tide.signal.wait("SIGNOPE") end,
      "bad argument #1 to 'wait' (unknown signal 'SIGNOPE')")
    assert.has_error(function () tide.signal.on("SIGUSR1") end,
      "bad argument #2 to 'on' (function expected, got no value)")
    local ok, err = pcall(tide.signal.on, "SIGKILL", print)
    assert.is_false(ok)
    assert.matches("cannot watch SIGKILL: invalid argument", err, 1, true)
    assert.has_error(function () tide.signal.kill(0, "SIGTERM") end,
      "bad argument #1 to 'kill' (process id expected)")
  end))

  it("kill returns nil, ESRCH for a process that does not exist", async(function ()
    local ok, _, code = tide.signal.kill(2 ^ 22 + 12345, 0)
    assert.is_nil(ok)
    assert.equal("ESRCH", code)
  end))

  it("gives the signal its default back once the handler closes", async(function ()
    local p <close> = start [[
      local h = tide.signal.on("SIGUSR1", function () print("handled") end)
      print("ready") io.stdout:flush()
      tide.signal.wait("SIGUSR2")
      h:close()
      print("closed") io.stdout:flush()
      tide.sleep(10)
    ]]
    p:kill("SIGUSR1")
    assert.equal("handled\n", p.stdout:read_until("\n"))
    p:kill("SIGUSR2")
    assert.equal("closed\n", p.stdout:read_until("\n"))
    p:kill("SIGUSR1")
    assert.same({ 138, "SIGUSR1" }, { p:wait() })
  end))

  it("keeps a handler the program dropped", async(function ()
    local p <close> = start [[
      tide.signal.on("SIGUSR1", function (name) print("got " .. name) io.stdout:flush() end)
      collectgarbage()
      collectgarbage()
      print("ready") io.stdout:flush()
      tide.sleep(0.3)
    ]]
    p:kill("SIGUSR1")
    assert.equal("got SIGUSR1\n", rest(p))
    assert.equal(0, p:wait())
  end))

  it("a handler does not keep the program running; a waiting task does", async(function ()
    local out, _, code = P.exec { TIDE, "-e", "tide.signal.on('SIGHUP', print) print('done')" }
    assert.equal("done\n", out)
    assert.equal(0, code)
    local p <close> = start [[
      local t = tide.spawn(function () print("got " .. tide.signal.wait("SIGHUP")) end)
      while t:state() ~= "waiting" do tide.yield() end
      print("ready") io.stdout:flush()
    ]]
    tide.sleep(0.05)                             -- the main chunk has ended
    p:kill("SIGHUP")
    assert.equal("got SIGHUP\n", rest(p))
    assert.equal(0, p:wait())
  end))
end)

describe("the tide command on SIGINT and SIGTERM", function ()
  local script = [[
    local x <close> = setmetatable({}, { __close = function ()
      print("cleanup") io.stdout:flush()
    end })
    print("ready") io.stdout:flush()
    tide.sleep(30)
    print("not reached")
  ]]

  it("cancels the main task on SIGINT: <close> runs, exit status 130", async(function ()
    local p <close> = start(script)
    p:kill("SIGINT")
    assert.equal("cleanup\n", rest(p))
    assert.same({ 130 }, { p:wait() })
  end))

  it("exits with 143 on SIGTERM, after the cleanup", async(function ()
    local p <close> = start(script)
    p:kill("SIGTERM")
    assert.equal("cleanup\n", rest(p))
    assert.same({ 143 }, { p:wait() })
  end))

  it("cancels the other tasks once the main chunk has ended", async(function ()
    local p <close> = start [[
      local main = tide.current()
      tide.spawn(function ()
        local x <close> = setmetatable({}, { __close = function () print("bye") end })
        while not main:done() do tide.yield() end
        print("ready") io.stdout:flush()
        tide.sleep(30)
      end)
    ]]
    p:kill("SIGINT")
    assert.equal("bye\n", rest(p))
    assert.same({ 130 }, { p:wait() })
  end))

  it("exits at once on a second signal while the cleanup blocks", async(function ()
    local p <close> = start [[
      local x <close> = setmetatable({}, { __close = function ()
        print("closing") io.stdout:flush()
        io.read()                 -- blocks the whole program
      end })
      print("ready") io.stdout:flush()
      tide.sleep(30)
    ]]
    p:kill("SIGINT")
    assert.equal("closing\n", p.stdout:read_until("\n"))
    tide.sleep(0.05)
    p:kill("SIGINT")
    assert.same({ 130 }, { p:wait() })
  end))

  it("leaves SIGINT to a script that waits for it", async(function ()
    local p <close> = start [[
      local t = tide.spawn(tide.signal.wait, "SIGINT")
      while t:state() ~= "waiting" do tide.yield() end
      print("ready") io.stdout:flush()
      print("got " .. t:await())
      tide.sleep(0.01)
      print("still here")
    ]]
    p:kill("SIGINT")
    assert.equal("got SIGINT\nstill here\n", rest(p))
    assert.equal(0, p:wait())
  end))

  it("leaves SIGTERM to a script's handler", async(function ()
    local p <close> = start [[
      local stop = false
      tide.signal.on("SIGTERM", function () print("term") stop = true end)
      print("ready") io.stdout:flush()
      while not stop do tide.sleep(0.005) end
    ]]
    p:kill("SIGTERM")
    assert.equal("term\n", rest(p))
    assert.equal(0, p:wait())
  end))

  it("does not keep the program running nor hide a deadlock", async(function ()
    local t0 = tide.now()
    local out, _, code = P.exec({ TIDE, "-e", "print('quick')" })
    assert.equal("quick\n", out)
    assert.equal(0, code)
    assert.is_true(tide.now() - t0 < 5)
    local _, err, dcode = P.exec { TIDE, "-e",
      "tide.spawn(function () tide.sleep(math.huge) end):await()" }
    assert.equal(1, dcode)
    assert.matches("deadlock", err, 1, true)
  end))

  it("kills and reaps the children left running when interrupted", async(function ()
    local p <close> = start [[
      local child = tide.process.spawn { "sleep", "30" }
      print("ready") print(child.pid) io.stdout:flush()
      child:wait()
    ]]
    local pid = tonumber(p.stdout:read_until("\n"))
    p:kill("SIGTERM")
    assert.same({ 143 }, { p:wait() })
    assert.is_nil(io.open("/proc/" .. pid .. "/stat"))
  end))
end)

describe("scripts/supervisor.lua", function ()
  -- Start the supervisor on a program; its Process, stdout and stderr.
  local function supervise (...)
    local argv = { TIDE, "scripts/supervisor.lua", ... }
    argv.stdout, argv.stderr = "pipe", "pipe"
    return assert(P.spawn(argv))
  end

  local function alive (pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return false end
    local state = f:read("a"):match("%) (%a)")
    f:close()
    return state ~= "Z"
  end

  it("restarts a crashing program with a growing back-off", async(function ()
    local p <close> = supervise("sh", "-c", "echo up; exit 1")
    local got = {}
    for _ = 1, 4 do got[#got + 1] = p.stdout:read_until("\n") end
    p:kill("SIGTERM")
    assert.same({ 0 }, { p:wait() })
    local log = rest({ stdout = p.stderr })
    assert.same({ "up\n", "up\n", "up\n", "up\n" }, got)
    assert.matches("restarting in 0.1 s\n.*restarting in 0.2 s\n.*restarting in 0.4 s\n", log)
    assert.matches("supervisor: SIGTERM, stopping\n.*supervisor: stopped\n$", log)
  end))

  it("stops cleanly on SIGINT: the program gets SIGTERM and is reaped", async(function ()
    local p <close> = supervise("sh", "-c", "echo $$; exec sleep 30")
    local pid = tonumber(p.stdout:read_until("\n"))
    assert.is_true(alive(pid))
    p:kill("SIGINT")
    assert.same({ 0 }, { p:wait() })
    local log = rest({ stdout = p.stderr })
    assert.equal("supervisor: SIGINT, stopping\nsupervisor: pid " .. pid ..
                 " exited with 143 (SIGTERM)\nsupervisor: stopped\n", log)
    assert.is_false(alive(pid))
  end))

  it("kills a program that ignores SIGTERM, and what it started, on a second SIGINT",
     async(function ()
    local p <close> = supervise("sh", "-c", "trap '' TERM; sleep 30 & echo $$ $!; wait")
    local pid, sleeper = p.stdout:read_until("\n"):match("(%d+) (%d+)")
    p:kill("SIGINT")
    tide.sleep(0.2)
    assert.is_true(alive(pid))                 -- it has 2 s to go
    p:kill("SIGINT")
    assert.same({ 0 }, { p:wait() })
    assert.matches("exited with 137 (SIGKILL)", rest({ stdout = p.stderr }), 1, true)
    assert.is_false(alive(pid))
    assert.is_false(alive(sleeper))
  end))
end)

describe("tide.run in stock Lua on SIGINT and SIGTERM", function ()
  -- Start the script under lua5.4 with tide.so, as start() does for tide.
  local function startlua (script)
    local path = tmpfile("local tide = require 'tide'\n" .. script)
    local cmd = ("exec env LUA_CPATH='%s/?.so;;' LD_PRELOAD='%s' lua5.4 %s")
      :format(BUILD, os.getenv("TIDE_PRELOAD") or "", path)
    local p = assert(P.spawn { "sh", "-c", cmd, stdin = "pipe", stdout = "pipe",
                               stderr = "stdout" })
    assert.equal("ready", p.stdout:read_until("\n"):sub(1, -2))
    os.remove(path)
    return p
  end

  local script = [[
    local ok, err = pcall(tide.run, function ()
      local x <close> = setmetatable({}, { __close = function ()
        print("cleanup") io.stdout:flush()
      end })
      print("ready") io.stdout:flush()
      tide.sleep(30)
    end)
    print("tide.run:", ok, err)
  ]]

  it("cancels the main task on SIGINT and raises 'interrupted!'", async(function ()
    local p <close> = startlua(script)
    p:kill("SIGINT")
    assert.equal("cleanup\ntide.run:\tfalse\tinterrupted!\n", rest(p))
    assert.same({ 0 }, { p:wait() })
  end))

  it("interrupts a task that computes without waiting", async(function ()
    local p <close> = startlua [[
      print("ready") io.stdout:flush()
      print(pcall(tide.run, function () while true do end end))
    ]]
    tide.sleep(0.05)
    p:kill("SIGINT")
    assert.matches("^false\t.*interrupted!\n$", rest(p))
    assert.same({ 0 }, { p:wait() })
  end))

  it("takes SIGINT again in a later tide.run, then gives it back to lua5.4", async(function ()
    local p <close> = startlua [[
      local function wait ()         -- ready once tide.run has the signals
        print("ready") io.stdout:flush()
        tide.sleep(30)
      end
      print(pcall(tide.run, wait))
      print(pcall(tide.run, wait))
      print("ready") io.stdout:flush()
      while true do end              -- lua5.4's own handler: "interrupted!"
    ]]
    p:kill("SIGINT")
    assert.equal("false\tinterrupted!\n", p.stdout:read_until("\n"))
    assert.equal("ready\n", p.stdout:read_until("\n"))
    p:kill("SIGINT")
    assert.equal("false\tinterrupted!\n", p.stdout:read_until("\n"))
    assert.equal("ready\n", p.stdout:read_until("\n"))
    tide.sleep(0.05)
    p:kill("SIGINT")
    assert.matches("interrupted!", rest(p))
    assert.same({ 1 }, { p:wait() })
  end))

  it("ends the process by SIGTERM after the cleanup", async(function ()
    local p <close> = startlua(script)
    p:kill("SIGTERM")
    assert.equal("cleanup\n", rest(p))
    assert.same({ 143, "SIGTERM" }, { p:wait() })
  end))
end)

describe("children's exit status", function ()
  it("is reported when tide was started with SIGCHLD ignored", async(function ()
    local prog = [[print((tide.process.spawn{"sh", "-c", "exit 3"}:wait()),
      (select(3, tide.process.exec("exit 4"))))]]
    for _, mode in ipairs({ "", "TIDE_SPAWN=fork " }) do
      local out = tide.process.exec(("trap '' CHLD; %s%s -e '%s'")
        :format(mode, TIDE, prog))
      assert.equal("3\t4\n", out, mode)
    end
  end))
end)
