-- exit_spec.lua: programs end once every task has ended, whatever a pool
-- thread still runs for a cancelled call and whatever handles are left
-- open (runtime/pool.c, bindings/work.c, server.c, stream.c), and on
-- SIGINT and SIGTERM (runtime/interrupt.c). Each program runs as a child
-- with a deadline: one that hangs is killed and fails its test.

local P = tide.process

local LIMIT = 20                   -- seconds a child may take

-- A new temporary directory, removed at the end of the test; with a FIFO
-- in it (d .. "/fifo") if asked.
local function tmpdir (fifo)
  local d = assert(tide.fs.mkdtemp())
  finally(function () os.execute("rm -rf '" .. d .. "'") end)
  if fifo then assert(os.execute("mkfifo '" .. d .. "/fifo'")) end
  return d
end

-- Run the tide command on a script (or argv after TIDE): out, err, code,
-- seconds taken. A child still running after LIMIT seconds is killed and
-- the test fails.
local function run (script, ...)
  local path = tmpfile(script)
  local t0 = tide.now()
  local out, err, code = P.exec({ TIDE, path, ... }, { timeout = LIMIT })
  os.remove(path)
  assert(out, "the program did not end within " .. LIMIT .. " s")
  return out, err, code, tide.now() - t0
end

-- The same under stock lua5.4 with tide.so.
local function runlua (script)
  local path = tmpfile("local tide = require 'tide'\n" .. script)
  local cmd = ("exec env LUA_CPATH='%s/?.so;;' LD_PRELOAD='%s' lua5.4 %s")
    :format(BUILD, os.getenv("TIDE_PRELOAD") or "", path)
  local t0 = tide.now()
  local out, err, code = P.exec(cmd, { timeout = LIMIT })
  os.remove(path)
  assert(out, "lua5.4 did not end within " .. LIMIT .. " s")
  return out, err, code, tide.now() - t0
end

-- Start `tide script`; wait for its first line, "ready". The Process.
local function start (script)
  return startready({ TIDE }, script, LIMIT)
end

describe("a program with a cancelled tide.work that never ends", function ()
  it("exits once its tasks have ended: a Lua loop, cancelled by tide.timeout", async(function ()
    local out, err, code, took = run [[
      print(tide.timeout(0.1, tide.work, function () while true do end end))
    ]]
    assert.equal("nil\ttimeout\n", out)
    assert.equal("", err)
    assert.equal(0, code)
    assert.is_true(took < 10)
  end))

  it("exits once its tasks have ended: cancelled by task:cancel()", async(function ()
    local out, _, code = run [[
      local t = tide.spawn(tide.work, function () while true do end end)
      tide.sleep(0.05)
      t:cancel()
      print(pcall(t.await, t))
    ]]
    assert.equal("false\tcancelled\n", out)
    assert.equal(0, code)
  end))

  it("exits with a call blocked in a C function, which cannot be stopped", async(function ()
    local d = tmpdir(true)
    local out, err, code = run([[
      local fifo = ...
      print(tide.timeout(0.1, tide.work, function (path)
        io.open(path):close()              -- no writer ever comes
      end, fifo))
      print(tide.work(function () return "the pool goes on" end))
    ]], d .. "/fifo")
    assert.equal("nil\ttimeout\nthe pool goes on\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end))

  it("exits with a cancelled tide.fs call blocked on its thread", async(function ()
    local d = tmpdir(true)
    local out, _, code = run([[
      print(tide.timeout(0.1, tide.fs.open, (...)))
      print(tide.fs.stat((...)).type)
    ]], d .. "/fifo")
    assert.equal("nil\ttimeout\nfifo\n", out)
    assert.equal(0, code)
  end))

  it("exits on os.exit while a call runs", async(function ()
    local out, _, code = run [[
      tide.spawn(tide.work, function () while true do end end)
      tide.sleep(0.05)
      print("bye")
      os.exit(3)
    ]]
    assert.equal("bye\n", out)
    assert.equal(3, code)
  end))

  it("still reports a deadlock", async(function ()
    local d = tmpdir(true)
    local _, err, code = run([[
      tide.timeout(0.05, tide.work, function (path) io.open(path):close() end, ...)
      tide.Queue():get()
    ]], d .. "/fifo")
    assert.equal(1, code)
    assert.matches("deadlock", err, 1, true)
  end))

  it("lets stock lua5.4 end too, after tide.run", async(function ()
    local d = tmpdir(true)
    local out, _, code = runlua(([[
      print(tide.run(function ()
        return tide.timeout(0.1, tide.work, function (path)
          io.open(path):close()
        end, %q)
      end))
      print(tide.run(tide.timeout, 0.1, tide.work, function () while true do end end))
      print("end")
    ]]):format(d .. "/fifo"))
    assert.equal("nil\ttimeout\nnil\ttimeout\nend\n", out)
    assert.equal(0, code)
  end))

  it("ends when a cancelled call is stuck in a read of stdin, holding its lock", async(function ()
    local p <close> = start [[
      local t = tide.spawn(tide.work, function () return io.read() end)
      print("ready") io.stdout:flush()
      tide.sleep(0.1)
      t:cancel()
      print("end")
    ]]
    assert.same({ "end\n", 0 }, { finish(p, LIMIT) })   -- its stdin stays open
  end))

  for _, sig in ipairs({ "SIGINT", "SIGTERM" }) do
    local status = sig == "SIGINT" and 130 or 143
    for _, body in ipairs({ "while true do end", "io.open(path):close()" }) do
      it(("ends on %s while the main task waits on it (%s): cleanup runs, exit %d")
         :format(sig, body, status), async(function ()
        local d = tmpdir(true)
        local p <close> = start(([[
          local x <close> = setmetatable({}, { __close = function ()
            print("cleanup") io.stdout:flush()
          end })
          print("ready") io.stdout:flush()
          tide.work(function (path) %s end, %q)
        ]]):format(body, d .. "/fifo"))
        tide.sleep(0.1)
        p:kill(sig)
        assert.same({ "cleanup\n", status }, { finish(p, LIMIT) })
      end))
    end
  end
end)

describe("what keeps a program running", function ()
  local function exits (script)
    local out, err, code, took = run(script)
    assert.equal("", err)
    assert.equal(0, code)
    assert.is_true(took < 10)
    return out
  end

  it("not a listening TCP server nobody accepts on", async(function ()
    exits [[ local s = tide.tcp.listen("127.0.0.1", 0) ]]
    exits [[
      local s = tide.tcp.listen("127.0.0.1", 0)
      local t = tide.spawn(s.accept, s)
      tide.sleep(0.02)
      t:cancel()
    ]]
  end))

  it("not a listening Unix socket nobody accepts on", async(function ()
    local d = tmpdir()
    exits(("local s = tide.pipe.listen(%q)"):format(d .. "/sock"))
  end))

  it("but a task waiting in accept", async(function ()
    local p <close> = start [[
      local s = tide.tcp.listen("127.0.0.1", 0)
      print("ready") print(select(2, s:getsockname())) io.stdout:flush()
      local c = s:accept()
      print("accepted " .. c:read_until("\n"))
    ]]
    local port = tonumber(p.stdout:read_until("\n"))
    tide.sleep(0.1)
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port))
    c:write("hi\n")
    assert.same({ "accepted hi\n\n", 0 }, { finish(p, LIMIT) })
  end))

  it("not a UDP socket nobody receives on", async(function ()
    exits [[ local u = tide.udp.bind("127.0.0.1", 0) ]]
    exits [[
      local u = tide.udp.bind("127.0.0.1", 0)
      local t = tide.spawn(u.recv, u)
      tide.sleep(0.02)
      t:cancel()
    ]]
  end))

  it("not a stream read once and left open", async(function ()
    local out = exits [[
      local s = tide.tcp.listen("127.0.0.1", 0)
      local port = select(2, s:getsockname())
      local c = tide.tcp.connect("127.0.0.1", port)
      local a = s:accept()
      c:write("one\ntwo\n")
      a:write("back\n")
      print(a:read_until("\n"), c:read_until("\n"))
      -- both ends stay open, their read-ahead going on
    ]]
    assert.equal("one\n\tback\n\n", out)
  end))

  it("not stdin read once while its writer keeps it open", async(function ()
    local p <close> = start [[
      print("ready") io.stdout:flush()
      print(tide.stdin:read_until("\n"))
    ]]
    p.stdin:write("line\n")
    assert.same({ "line\n\n", 0 }, { finish(p, LIMIT) })
  end))

  it("but a task reading stdin", async(function ()
    local p <close> = start [[
      print("ready") io.stdout:flush()
      print(tide.stdin:read_until("\n"))
      print(tide.stdin:read_until("\n"))
    ]]
    p.stdin:write("one\n")
    tide.sleep(0.2)
    p.stdin:write("two\n")
    assert.same({ "one\n\ntwo\n\n", 0 }, { finish(p, LIMIT) })
  end))

  it("not a file system watcher nobody reads", async(function ()
    local d = tmpdir()
    exits(("local w = tide.fs.watch(%q)"):format(d))
    exits(([[
      local w = tide.fs.watch(%q)
      local t = tide.spawn(w.read, w)
      tide.sleep(0.02)
      t:cancel()
    ]]):format(d))
  end))

  it("not a signal handler", async(function ()
    exits [[ tide.signal.on("SIGUSR1", print) ]]
    exits [[
      local t = tide.spawn(tide.signal.wait, "SIGUSR1")
      tide.sleep(0.02)
      t:cancel()
    ]]
  end))
end)

describe("SIGINT and SIGTERM", function ()
  it("cancel a main task that spawns and awaits children, never interrupting it", async(function ()
    -- The 50 ms fallback is for a task that computes without waiting: a
    -- task caught between two waits, or blocked in a call, is cancelled.
    local bad = {}
    for i = 1, 20 do
      local p <close> = start [[
        print("ready") io.stdout:flush()
        while true do tide.process.spawn({ "true" }):wait() end
      ]]
      tide.sleep(math.random() * 0.1)
      p:kill("SIGINT")
      local out, code = finish(p, LIMIT)
      if code ~= 130 or out:find("interrupted!", 1, true) then
        bad[#bad + 1] = ("run %d: %s %q"):format(i, code, out)
      end
    end
    assert.same({}, bad)
  end))

  it("cancel a task blocked in a call or computing in one when they come, that then waits", async(function ()
    for _, call in ipairs({ [[io.popen("sleep 0.08"):close()]],
                            [[local s = string.rep("x", 1e8)]] }) do
      for _ = 1, 3 do
        local p <close> = start(([[
          print("ready") io.stdout:flush()
          while true do
            %s
            tide.sleep(0.001)
          end
        ]]):format(call))
        tide.sleep(0.1 + math.random() * 0.05)
        p:kill("SIGINT")
        assert.same({ "", 130 }, { finish(p, LIMIT) })
      end
    end
  end))

  it("interrupt a task that computes without waiting; a second SIGINT exits", async(function ()
    local p <close> = start [[
      print("ready") io.stdout:flush()
      print(pcall(function () while true do end end))
      io.stdout:flush()
      while true do end
    ]]
    tide.sleep(0.1)
    p:kill("SIGINT")
    assert.matches("^false\t.*interrupted!\n$", p.stdout:read_until("\n"))
    tide.sleep(0.1)
    p:kill("SIGINT")
    assert.same({ "", 130 }, { finish(p, LIMIT) })
  end))

  it("exit at once on a second SIGINT after one that was spent in a task that waits again", async(function ()
    local p <close> = start [[
      print("ready") io.stdout:flush()
      print(pcall(function () while true do end end))
      io.stdout:flush()
      tide.sleep(30)
    ]]
    tide.sleep(0.1)
    p:kill("SIGINT")
    assert.matches("^false\t.*interrupted!\n$", p.stdout:read_until("\n"))
    tide.sleep(0.1)
    p:kill("SIGINT")
    assert.same({ "", 130 }, { finish(p, LIMIT) })
  end))

  it("SIGTERM ends a task blocked in a C call", async(function ()
    local d = tmpdir(true)
    local p <close> = start(([[
      print("ready") io.stdout:flush()
      while true do io.open(%q) end        -- blocks (EINTR on a signal)
    ]]):format(d .. "/fifo"))
    tide.sleep(0.1)
    p:kill("SIGTERM")
    local _, code = finish(p, LIMIT)
    assert.equal(143, code)
  end))
end)
