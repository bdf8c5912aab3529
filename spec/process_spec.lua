-- process_spec.lua: child processes (bindings/process.c,
-- runtime/lua/process.lua): spawn, exec and pipelines, with real programs
-- (sh, cat, sort, sleep, printf, env, pwd, tide itself).

local P = tide.process

-- sort leaks what LeakSanitizer reports: run it without the sanitizer
-- runtimes the suite may preload under `make asan`.
local NOPRELOAD = { LD_PRELOAD = false }

-- This process's pid.
local function mypid ()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

-- The pids of our children (zombies included).
local function children ()
  local pid = mypid()
  local f = io.open(("/proc/%d/task/%d/children"):format(pid, pid))
  local list = {}
  if not f then return list end
  for c in f:read("a"):gmatch("%d+") do list[#list + 1] = tonumber(c) end
  f:close()
  return list
end

-- Wait (up to 5 s) until every child of ours has ended and been reaped
-- (no zombie, nothing left running); the count of children left.
local function nozombies ()
  local list = children()
  for _ = 1, 500 do
    if #list == 0 then return 0 end
    tide.sleep(0.01)
    list = children()
  end
  return #list
end

-- Is pid alive (and not a zombie of ours)?
local function alive (pid)
  local s = io.open("/proc/" .. pid .. "/stat")
  if not s then return false end
  local state = s:read("a"):match("%) (%a)")
  s:close()
  return state ~= nil and state ~= "Z"
end

-- Wait (up to 5 s) until pid is gone.
local function gone (pid)
  for _ = 1, 500 do
    if not alive(pid) then return true end
    tide.sleep(0.01)
  end
  return false
end

-- Open fds, once every child has been reaped and what earlier tests
-- dropped has been collected.
local function fdcount ()
  nozombies()
  collectgarbage()
  collectgarbage()
  local f = assert(io.popen("ls /proc/" .. mypid() .. "/fd"))
  local n = 0
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n
end

local function readall (stream)
  local parts = {}
  while true do
    local data = stream:read()
    if not data then break end
    parts[#parts + 1] = data
  end
  return table.concat(parts)
end

local function tmpname ()
  local p = os.tmpname()
  os.remove(p)
  return p
end

describe("tide.process.spawn", function ()
  it("starts a program found on PATH and waits for its exit code", async(function ()
    local p <close> = assert(P.spawn { "sh", "-c", "exit 7" })
    assert.is_true(math.type(p.pid) == "integer" and p.pid > 0)
    local code, signal = p:wait()
    assert.equal(7, code)
    assert.is_nil(signal)
    assert.equal(7, p:wait())                    -- again, at once
    assert.matches("exited 7", tostring(p))
  end))

  it("reads stdout and stderr through pipes", async(function ()
    local p <close> = assert(P.spawn { "sh", "-c", "printf 'one\\ntwo\\n'; echo oops >&2",
                                       stdout = "pipe", stderr = "pipe" })
    assert.is_nil(p.stdin)
    local lines = {}
    for line in p.stdout:lines() do lines[#lines + 1] = line end
    assert.same({ "one", "two" }, lines)
    assert.equal("oops\n", readall(p.stderr))
    assert.equal(0, p:wait())
  end))

  it("writes to stdin; shutdown gives the child EOF", async(function ()
    local p <close> = assert(P.spawn { "sort", stdin = "pipe", stdout = "pipe",
                                       env = NOPRELOAD, env_extend = true })
    p.stdin:write("pear\n", "apple\n", "fig\n")
    assert.is_true(p.stdin:shutdown())
    assert.equal("apple\nfig\npear\n", readall(p.stdout))
    assert.equal(0, p:wait())
  end))

  it("merges stderr into stdout with stderr = \"stdout\"", async(function ()
    local p <close> = assert(P.spawn { "sh", "-c", "echo out; echo err >&2",
                                       stdout = "pipe", stderr = "stdout" })
    assert.is_nil(p.stderr)
    assert.equal("out\nerr\n", readall(p.stdout))
    p:wait()
  end))

  it("gives the child /dev/null with \"null\"", async(function ()
    local p <close> = assert(P.spawn { "cat", stdin = "null", stdout = "pipe" })
    assert.equal("", readall(p.stdout))
    assert.equal(0, p:wait())
  end))

  it("reads stdin from a file path and writes stdout to another", async(function ()
    local src, dst = tmpfile("from a file\n"), tmpname()
    local p <close> = assert(P.spawn { "cat", stdin = src, stdout = dst })
    assert.equal(0, p:wait())
    local f = assert(io.open(dst))
    assert.equal("from a file\n", f:read("a"))
    f:close()
    os.remove(src)
    os.remove(dst)
  end))

  it("accepts a Lua file, an fd number and another process's pipe", async(function ()
    local path = tmpname()
    local f = assert(io.open(path, "w"))
    f:write("before\n")                          -- flushed before the child writes
    local a <close> = assert(P.spawn { "printf", "a\\nb\\n", stdout = "pipe" })
    local b <close> = assert(P.spawn { "sort", "-r", stdin = a.stdout, stdout = f,
                                       env = NOPRELOAD, env_extend = true })
    assert.equal(0, b:wait())
    f:close()
    f = assert(io.open(path))
    assert.equal("before\nb\na\n", f:read("a"))
    f:close()
    os.remove(path)
    local c <close> = assert(P.spawn { "true", stdin = 0, stdout = 1, stderr = 2 })
    assert.equal(0, c:wait())
  end))

  it("runs in cwd", async(function ()
    local p <close> = assert(P.spawn { "pwd", cwd = "/tmp", stdout = "pipe" })
    assert.equal("/tmp\n", readall(p.stdout))
  end))

  it("replaces the environment with env", async(function ()
    local p <close> = assert(P.spawn { "/usr/bin/env", env = { FOO = "bar", N = 42 },
                                       stdout = "pipe" })
    local out = readall(p.stdout)
    assert.matches("FOO=bar\n", out, 1, true)
    assert.matches("N=42\n", out, 1, true)
    assert.is_nil(out:find("HOME=", 1, true))
  end))

  it("extends the environment with env_extend; false removes a name", async(function ()
    local p <close> = assert(P.spawn { "env", env = { TIDE_X = "1", HOME = false },
                                       env_extend = true, stdout = "pipe" })
    local out = readall(p.stdout)
    assert.matches("TIDE_X=1\n", out, 1, true)
    assert.matches("PATH=", out, 1, true)
    assert.is_nil(out:find("\nHOME=", 1, true))
  end))

  it("returns nil, msg, ENOENT for a missing program and leaves no zombie", async(function ()
    local fds = fdcount()
    local p, err, code = P.spawn { "no-such-program-tide", stdout = "pipe" }
    assert.is_nil(p)
    assert.equal("ENOENT", code)
    assert.equal("no-such-program-tide: no such file or directory", err)
    assert.equal(0, nozombies())
    assert.equal(fds, fdcount())
  end))

  it("returns ENOENT naming the cwd when it does not exist", async(function ()
    local p, err, code = P.spawn { "pwd", cwd = "/nonexistent/dir" }
    assert.is_nil(p)
    assert.equal("ENOENT", code)
    assert.equal("cwd /nonexistent/dir: no such file or directory", err)
  end))

  it("returns EACCES for a file that is not executable", async(function ()
    local path = tmpfile("echo hi\n")
    local p, err, code = P.spawn { path }
    os.remove(path)
    assert.is_nil(p)
    assert.equal("EACCES", code)
    assert.matches("permission denied", err, 1, true)
    assert.equal(0, nozombies())
  end))

  it("returns nil, msg, code when a stdio file cannot be opened", async(function ()
    local p, err, code = P.spawn { "true", stdout = "/nonexistent/dir/out" }
    assert.is_nil(p)
    assert.equal("ENOENT", code)
    assert.matches("/nonexistent/dir/out", err, 1, true)
  end))

  it("kills with a signal by name or number; wait gives 128 + n and its name", async(function ()
    local p <close> = assert(P.spawn { "sleep", "10" })
    assert.is_true(p:kill())                     -- SIGTERM
    assert.same({ 143, "SIGTERM" }, { p:wait() })
    local q <close> = assert(P.spawn { "sleep", "10" })
    assert.is_true(q:kill(9))
    assert.same({ 137, "SIGKILL" }, { q:wait() })
    local r <close> = assert(P.spawn { "sleep", "10" })
    assert.is_true(r:kill("INT"))
    assert.same({ 130, "SIGINT" }, { r:wait() })
    assert.matches("SIGINT", tostring(r))
  end))

  it("returns nil, ESRCH when killing a process that has exited", async(function ()
    local p <close> = assert(P.spawn { "true" })
    p:wait()
    local ok, err, code = p:kill()
    assert.is_nil(ok)
    assert.equal("process has exited", err)
    assert.equal("ESRCH", code)
  end))

  it("raises on bad arguments", async(function ()
    assert.has_error(function () P.spawn("ls") end,
      "bad argument #1 to 'spawn' (table expected, got string)")
    assert.has_error(function () P.spawn {} end,
      "bad argument #1 to 'spawn' (program name expected)")
    assert.has_error(function () P.spawn { "ls", {} } end,
      "bad argument #1 to 'spawn' (string expected at [2], got table)")
    assert.has_error(function () P.spawn { "ls", stdout = {} } end)
    assert.has_error(function () P.spawn { "ls", env = { 1 } } end,
      "bad argument #1 to 'spawn' ('env': names must be strings without '=')")
    assert.has_error(function () P.spawn { "ls", cwd = 1 } end,
      "bad argument #1 to 'spawn' ('cwd': string expected)")
    local p <close> = assert(P.spawn { "true" })
    assert.has_error(function () p:kill("SIGNOPE") end,
      "bad argument #1 to 'kill' (unknown signal 'SIGNOPE')")
    p:wait()
  end))

  it("kills a running child at the end of a <close> scope; it is reaped", async(function ()
    local pid
    do
      local p <close> = assert(P.spawn { "sleep", "10", stdout = "pipe" })
      pid = p.pid
    end
    assert.is_true(gone(pid))
    assert.equal(0, nozombies())
  end))

  it("kills and reaps the child of a Process that is collected", async(function ()
    local pid = assert(P.spawn { "sleep", "10" }).pid
    collectgarbage()
    collectgarbage()
    assert.is_true(gone(pid))
    assert.equal(0, nozombies())
  end))

  it("reaps the child when the task waiting in wait() is cancelled", async(function ()
    local pid
    local t = tide.spawn(function ()
      local p <close> = assert(P.spawn { "sleep", "10" })
      pid = p.pid
      p:wait()
    end)
    tide.sleep(0.02)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
    assert.is_true(gone(pid))
    assert.equal(0, nozombies())
  end))

  it("leaves the child running when a wait() is cancelled without <close>", async(function ()
    local p = assert(P.spawn { "sleep", "10" })
    local t = tide.spawn(p.wait, p)
    tide.sleep(0.02)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(alive(p.pid))
    p:kill()
    assert.equal(143, p:wait())
  end))

  it("can cancel a task reading a pipe; the pipe goes on working", async(function ()
    local p <close> = assert(P.spawn { "cat", stdin = "pipe", stdout = "pipe" })
    local r = tide.spawn(p.stdout.read, p.stdout)
    tide.sleep(0.02)
    r:cancel()
    assert.has_error(function () r:await() end)
    p.stdin:write("after\n")
    assert.equal("after\n", p.stdout:read())
    p.stdin:close()
    assert.equal(0, p:wait())
  end))

  it("closes the pipes when the Process closes", async(function ()
    local p = assert(P.spawn { "cat", stdin = "pipe", stdout = "pipe" })
    local out = p.stdout
    p:close()
    assert.equal("tide.Stream (closed)", tostring(out))
    assert.same({ 137, "SIGKILL" }, { p:wait() })
  end))

  it("starts a detached child in its own session; close leaves it running", async(function ()
    local p = assert(P.spawn { "sleep", "10", detached = true })
    local f = assert(io.open("/proc/" .. p.pid .. "/stat"))
    local sid = f:read("a"):match("%) %a %d+ %d+ (%d+)")
    f:close()
    assert.equal(p.pid, tonumber(sid))
    p:close()
    tide.sleep(0.02)
    assert.is_true(alive(p.pid))
    assert.is_true(tide.signal.kill(p.pid, "SIGKILL"))
    assert.same({ 137, "SIGKILL" }, { p:wait() })
  end))

  it("passes 100 MiB through cat while writing and reading at once", async(function ()
    local p <close> = assert(P.spawn { "cat", stdin = "pipe", stdout = "pipe" })
    local chunk = ("0123456789abcdef"):rep(4096)    -- 64 KiB
    local n = 100 * 1024 * 1024 // #chunk
    local writer = tide.spawn(function ()
      for _ = 1, n do assert(p.stdin:write(chunk)) end
      p.stdin:close()
    end)
    local got, bad = 0, false
    while true do
      local data = p.stdout:read()
      if not data then break end
      if data:sub(1, 16) ~= chunk:sub(got % 16 + 1, got % 16 + 16) then bad = true end
      got = got + #data
    end
    writer:await()
    assert.is_false(bad)
    assert.equal(n * #chunk, got)
    assert.equal(0, p:wait())
  end))

  it("leaks no fd and leaves no zombie over 1,000 spawns", async(function ()
    local before = fdcount()
    local function one (i)
      if i % 10 == 0 then
        assert.is_nil(P.spawn { "no-such-program-tide", stdout = "pipe" })
        return
      end
      local p <close> = assert(P.spawn { "true", stdin = "pipe", stdout = "pipe",
                                         stderr = "pipe", env = NOPRELOAD,
                                         env_extend = true })
      assert.is_nil(p.stdout:read())
      assert.equal(0, p:wait())
    end
    local jobs = {}
    for w = 1, 20 do
      jobs[w] = function ()
        for i = w, 1000, 20 do one(i) end
      end
    end
    tide.gather(table.unpack(jobs))
    collectgarbage()
    assert.equal(0, nozombies())
    assert.equal(before, fdcount())
  end))

  it("works the same when children start with fork (TIDE_SPAWN=fork)", async(function ()
    local script = tmpfile [[
      local P = tide.process
      local p <close> = assert(P.spawn { "sh", "-c", "read x; echo got $x; exit 3",
                                         stdin = "pipe", stdout = "pipe" })
      p.stdin:write("it\n")
      print(p.stdout:read_until("\n"), p:wait())
      print(select(3, P.spawn { "no-such-program-tide" }))
      print(select(3, P.spawn { "pwd", cwd = "/nonexistent" }))
      print(select(2, P.exec("echo a; exec sleep 5", { timeout = 0.05 })))
      print(P.exec({ { "printf", "b\na\n" }, { "sort" } },
                   { env = { LD_PRELOAD = false }, env_extend = true }))
      local q = assert(P.spawn { "sleep", "5" })
      q:kill("SIGKILL")
      print(q:wait())
      local pid = assert(P.spawn { "sleep", "5" }).pid
      collectgarbage()
      collectgarbage()
      tide.sleep(0.1)
      print(io.open("/proc/" .. pid .. "/stat") == nil)
    ]]
    local out, err, code = P.exec({ TIDE, script },
                                  { env = { TIDE_SPAWN = "fork" }, env_extend = true })
    os.remove(script)
    assert.equal(0, code, err)
    assert.equal("got it\n\t3\nENOENT\nENOENT\ntimeout\ta\n\t\na\nb\n\t\t0\tnil\n" ..
                 "137\tSIGKILL\ntrue\n", out)
  end))

  it("runs tide itself as a child", async(function ()
    local p <close> = assert(P.spawn { TIDE, "-e",
      "tide.sleep(0.01) io.write((tide.process.exec{'printf', 'nested'}))",
      stdout = "pipe" })
    assert.equal("nested", readall(p.stdout))
    assert.equal(0, p:wait())
  end))
end)

describe("tide.process.exec", function ()
  it("runs a string through /bin/sh and collects stdout, stderr and the code", async(function ()
    local out, err, code, signal = P.exec("echo out; echo err >&2; exit 3")
    assert.same({ "out\n", "err\n", 3 }, { out, err, code })
    assert.is_nil(signal)
  end))

  it("runs a list directly, with no shell and no quoting traps", async(function ()
    local out, _, code = P.exec { "printf", "%s", "a b; $(rm x) 'q' \"d\"" }
    assert.equal("a b; $(rm x) 'q' \"d\"", out)
    assert.equal(0, code)
  end))

  it("feeds input to stdin", async(function ()
    local data = ("line %d\n"):rep(1):format(1) .. ("x"):rep(1024 * 1024)
    local out, _, code = P.exec({ "cat" }, { input = data })
    assert.equal(0, code)
    assert.equal(#data, #out)
    assert.equal(data, out)
  end))

  it("gives stdin /dev/null without input", async(function ()
    local out = P.exec { "cat" }
    assert.equal("", out)
  end))

  it("passes cwd, env and env_extend", async(function ()
    assert.equal("/tmp\n", (P.exec({ "pwd" }, { cwd = "/tmp" })))
    assert.equal("v\n", (P.exec("echo $TIDE_V", { env = { TIDE_V = "v" } })))
    assert.equal("v\n", (P.exec("echo $TIDE_V", { env = { TIDE_V = "v" }, env_extend = true })))
  end))

  it("merges stderr with stderr = \"stdout\"", async(function ()
    local out, err = P.exec("echo a; echo b >&2", { stderr = "stdout" })
    assert.equal("a\nb\n", out)
    assert.equal("", err)
  end))

  it("returns nil, msg, code when the program cannot start", async(function ()
    local out, err, code = P.exec { "no-such-program-tide" }
    assert.is_nil(out)
    assert.equal("ENOENT", code)
    assert.matches("no-such-program-tide", err, 1, true)
  end))

  it("kills the child on timeout and returns nil, \"timeout\" and the output so far", async(function ()
    local t0 = tide.now()
    local out, err, stdout, stderr = P.exec("echo started; echo e >&2; exec sleep 10",
                                            { timeout = 0.2 })
    assert.is_nil(out)
    assert.equal("timeout", err)
    assert.equal("started\n", stdout)
    assert.equal("e\n", stderr)
    assert.is_true(tide.now() - t0 < 2)
    assert.equal(0, nozombies())
  end))

  it("bounds the output with max_output", async(function ()
    local out, err, stdout = P.exec({ "sh", "-c", "while :; do echo yyyyyyyy; done" },
                                    { max_output = 100000 })
    assert.is_nil(out)
    assert.equal("output limit exceeded", err)
    assert.equal(100000, #stdout)
    assert.equal(0, nozombies())
  end))

  it("kills and reaps the child when the task inside exec is cancelled", async(function ()
    local t = tide.spawn(P.exec, "exec sleep 10")
    local pid
    for _ = 1, 200 do
      tide.sleep(0.01)
      pid = children()[1]
      if pid then break end
    end
    assert.is_truthy(pid)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(gone(pid))
    assert.equal(0, nozombies())
  end))

  it("runs a pipeline given a list of commands", async(function ()
    local out, _, code = P.exec({ { "printf", "b\\na\\nb\\n" }, { "sort" }, { "uniq", "-c" } },
                                  { env = NOPRELOAD, env_extend = true })
    assert.equal(0, code)
    assert.same({ "1 a", "2 b" }, { out:match("(%d+ a)\n%s*(%d+ b)") })
  end))

  it("raises on bad arguments", async(function ()
    assert.has_error(function () P.exec(42) end,
      "bad argument #1 to 'exec' (command string or list expected, got number)")
    assert.has_error(function () P.exec("true", { timeout = -1 }) end,
      "bad argument #2 to 'exec' ('timeout': non-negative number expected)")
    assert.has_error(function () P.exec("true", { input = 1 }) end,
      "bad argument #2 to 'exec' ('input': string expected)")
  end))
end)

describe("tide.process.pipeline", function ()
  it("connects each stdout to the next stdin without passing through Lua", async(function ()
    local pl <close> = assert(P.pipeline({ { "cat" }, { "sort" }, { "tr", "a-z", "A-Z" } },
                                         { stdin = "pipe", stdout = "pipe",
                                           env = NOPRELOAD, env_extend = true }))
    assert.equal(3, #pl.processes)
    assert.is_nil(pl.processes[1].stdout)        -- a pipe between children only
    pl.stdin:write("pear\napple\n")
    pl.stdin:close()
    assert.equal("APPLE\nPEAR\n", readall(pl.stdout))
    local code, signal, all = pl:wait()
    assert.equal(0, code)
    assert.is_nil(signal)
    assert.same({ { code = 0 }, { code = 0 }, { code = 0 } }, all)
  end))

  it("gives the last one's code and every child's", async(function ()
    local pl <close> = assert(P.pipeline { { "sh", "-c", "exit 3" }, { "sh", "-c", "cat; exit 5" } })
    local code, _, all = pl:wait()
    assert.equal(5, code)
    assert.same({ 3, 5 }, { all[1].code, all[2].code })
  end))

  it("shares one stderr pipe among its children", async(function ()
    local pl <close> = assert(P.pipeline({ { "sh", "-c", "echo one >&2" },
                                           { "sh", "-c", "cat >/dev/null; echo two >&2" } },
                                         { stderr = "pipe", stdout = "null" }))
    local err = readall(pl.stderr)
    assert.equal("one\ntwo\n", err)
    pl:wait()
  end))

  it("returns nil, msg, ENOENT when a command is missing, leaving no zombie", async(function ()
    local fds = fdcount()
    local pl, err, code = P.pipeline({ { "sleep", "10" }, { "no-such-program-tide" }, { "cat" } },
                                     { stdout = "pipe" })
    assert.is_nil(pl)
    assert.equal("ENOENT", code)
    assert.matches("no-such-program-tide", err, 1, true)
    assert.equal(0, nozombies())
    collectgarbage()
    assert.equal(fds, fdcount())
  end))

  it("kills every child at the end of a <close> scope", async(function ()
    local pids = {}
    do
      local pl <close> = assert(P.pipeline { { "sleep", "10" }, { "sleep", "10" } })
      for i, p in ipairs(pl.processes) do pids[i] = p.pid end
    end
    assert.is_true(gone(pids[1]) and gone(pids[2]))
    assert.equal(0, nozombies())
  end))

  it("raises on bad arguments", async(function ()
    assert.has_error(function () P.pipeline {} end,
      "bad argument #1 to 'pipeline' (a list of commands expected)")
    assert.has_error(function () P.pipeline { "ls" } end,
      "bad argument #1 to 'pipeline' (command (a table) expected at [1])")
  end))
end)
