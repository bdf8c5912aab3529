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

-- The pids of our children (zombies included). Children start from the
-- loop's thread, the main one.
local function children ()
  local pid = mypid()
  local f = assert(io.open(("/proc/%d/task/%d/children"):format(pid, pid)))
  local list = {}
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

local function countfds ()
  local f = assert(io.popen("ls /proc/" .. mypid() .. "/fd"))
  local n = 0
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n
end

-- Open fds, once every child has been reaped, what earlier tests dropped
-- has been collected, and the handles it held have been closed (libuv
-- closes them on a later turn of the loop): the count no longer moves.
-- With want, waits up to 2 s for the count to come back to it.
local function fdcount (want)
  nozombies()
  collectgarbage()
  collectgarbage()
  local n, last = countfds(), nil
  for _ = 1, 200 do
    if n == want or (want == nil and n == last) then break end
    tide.sleep(0.01)
    last, n = n, countfds()
  end
  return n
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

  it("looks the program up on the PATH of the environment it is given", async(function ()
    local dir = tmpname()
    assert(tide.fs.mkdir(dir))
    local f = assert(io.open(dir .. "/tide-hello", "w"))
    f:write("#!/bin/sh\necho hello from $0\n")
    f:close()
    local noexec = assert(io.open(dir .. "/tide-noexec", "w"))
    noexec:close()
    os.execute("chmod +x " .. dir .. "/tide-hello")
    local out = P.exec({ "tide-hello" }, { env = { PATH = "/nonexistent:" .. dir } })
    assert.equal("hello from " .. dir .. "/tide-hello\n", out)
    out = P.exec({ "tide-hello" }, { env = { PATH = dir .. ":" .. os.getenv("PATH") },
                                     env_extend = true })
    assert.equal("hello from " .. dir .. "/tide-hello\n", out)
    assert.equal("hello from tide-hello\n",      -- an empty entry is the cwd
                 (P.exec({ "tide-hello" }, { env = { PATH = "/nonexistent:" }, cwd = dir })))
    assert.same({ nil, "tide-hello: no such file or directory", "ENOENT" },
                { P.spawn { "tide-hello" } })                    -- not on ours
    assert.same({ nil, "sh: no such file or directory", "ENOENT" },
                { P.spawn { "sh", env = { PATH = dir } } })
    assert.same({ nil, "tide-noexec: permission denied", "EACCES" },
                { P.spawn { "tide-noexec", env = { PATH = dir .. ":/bin" } } })
    assert.equal("ok\n", (P.exec({ "sh", "-c", "echo ok" }, { env = { A = "1" } })))  -- no PATH: /bin:/usr/bin
    os.remove(dir .. "/tide-hello")
    os.remove(dir .. "/tide-noexec")
    os.remove(dir)
  end))

  it("returns nil, msg, ENOENT for a missing program and leaves no zombie", async(function ()
    local fds = fdcount()
    local p, err, code = P.spawn { "no-such-program-tide", stdout = "pipe" }
    assert.is_nil(p)
    assert.equal("ENOENT", code)
    assert.equal("no-such-program-tide: no such file or directory", err)
    assert.equal(0, nozombies())
    assert.equal(fds, fdcount(fds))
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

  it("lets several tasks wait for the same child", async(function ()
    local p <close> = assert(P.spawn { "sh", "-c", "sleep 0.05; exit 4" })
    local a, b = tide.spawn(p.wait, p), tide.spawn(p.wait, p)
    assert.same({ 4, 4, 4 }, { a:await(), b:await(), p:wait() })
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
    assert.has_error(function () P.spawn { "ls", stdout = {} } end,
      "bad argument #1 to 'spawn' ('stdout': \"pipe\", \"inherit\", \"null\", a path, " ..
      "a stream, a file or an fd expected, got table)")
    assert.has_error(function () P.spawn { "ls", env = { 1 } } end,
      "bad argument #1 to 'spawn' ('env': names must be strings without '=' or zero bytes)")
    assert.has_error(function () P.spawn { "ls", env = { A = "b\0c" } } end,
      "bad argument #1 to 'spawn' ('env': zero byte in the value of A)")
    assert.has_error(function () P.spawn { "ls", "a\0b" } end,
      "bad argument #1 to 'spawn' (zero byte in the string at [2])")
    assert.has_error(function () P.spawn { "" } end,
      "bad argument #1 to 'spawn' (program name expected, got an empty string)")
    assert.has_error(function () P.spawn { "ls", cwd = "/tmp\0x" } end,
      "bad argument #1 to 'spawn' ('cwd': zero byte in path)")
    assert.has_error(function () P.spawn { "ls", stdout = "/tmp/x\0y" } end,
      "bad argument #1 to 'spawn' ('stdout': zero byte in path)")
    assert.has_error(function () P.spawn { "ls", stdin = "stdout" } end,
      "bad argument #1 to 'spawn' ('stdin': \"stdout\" is for stderr only " ..
      "(a file named so: \"./stdout\"))")
    assert.has_error(function () P.spawn { "ls", stdout = 1000 } end,
      "bad argument #1 to 'spawn' ('stdout': file descriptor 1000 is not open)")
    assert.has_error(function () P.spawn { "ls", stdout = -1 } end,
      "bad argument #1 to 'spawn' ('stdout': file descriptor expected)")
    local f = io.tmpfile()
    f:close()
    assert.has_error(function () P.spawn { "ls", stdout = f } end,
      "bad argument #1 to 'spawn' ('stdout': closed file)")
    local dead = assert(P.spawn { "cat", stdout = "pipe" })
    dead.stdout:close()
    assert.has_error(function () P.spawn { "ls", stdin = dead.stdout } end,
      "bad argument #1 to 'spawn' ('stdin': closed stream)")
    dead:close()
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

  it("keeps the program running for a child, unless it is detached", async(function ()
    local t0 = tide.now()
    local out, err, code = P.exec { TIDE, "-e",
      "print(tide.process.spawn{ 'sleep', '10', detached = true, stdout = 'null', stderr = 'null' }.pid)" }
    assert.equal(0, code, err)
    assert.is_true(tide.now() - t0 < 5)
    local pid = assert(tonumber(out))
    assert.is_true(alive(pid))
    assert.is_true(tide.signal.kill(pid, "SIGKILL"))
    t0 = tide.now()
    assert.equal(0, select(3, P.exec { TIDE, "-e", "tide.process.spawn{ 'sleep', '0.3' }" }))
    assert.is_true(tide.now() - t0 >= 0.3)
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
    assert.equal(before, fdcount(before))
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

  it("gives the code and name of a signal that killed the child", async(function ()
    local out, err, code, signal = P.exec("echo before; kill -TERM $$")
    assert.same({ "before\n", "", 143, "SIGTERM" }, { out, err, code, signal })
  end))

  it("sends stderr to /dev/null or the parent's with \"null\" or \"inherit\"", async(function ()
    assert.same({ "o\n", "", 0 }, { P.exec("echo e >&2; echo o", { stderr = "null" }) })
    local path = tmpname()
    local f = assert(io.open(path, "w"))
    assert.same({ "o\n", "", 0 }, { P.exec("echo e >&2; echo o", { stderr = f }) })
    f:close()
    f = assert(io.open(path))
    assert.equal("e\n", f:read("a"))
    f:close()
    os.remove(path)
  end))

  it("kills and reaps a pipeline on timeout, with the output so far", async(function ()
    local out, err, stdout = P.exec({ { "sh", "-c", "echo x; exec sleep 10" }, { "cat" } },
                                    { timeout = 0.2 })
    assert.is_nil(out)
    assert.equal("timeout", err)
    assert.equal("x\n", stdout)
    assert.equal(0, nozombies())
  end))

  it("kills and reaps the child when the task feeding it input is cancelled", async(function ()
    local t = tide.spawn(P.exec, { "sleep", "10" }, { input = ("x"):rep(8 * 1024 * 1024) })
    local pid
    for _ = 1, 200 do
      tide.sleep(0.01)
      pid = children()[1]
      if pid then break end
    end
    assert.is_truthy(pid)
    tide.sleep(0.02)                             -- the input fills the pipe
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
    assert.is_true(gone(pid))
    assert.equal(0, nozombies())
  end))

  it("raises outside a task, before starting anything", function ()
    local out = sh("LD_PRELOAD='" .. (os.getenv("TIDE_PRELOAD") or "") .. "' LUA_CPATH='" ..
                   BUILD .. "/?.so;;' lua5.4 -e " ..
                   "\"print(pcall(require('tide').process.exec, 'touch /tmp/tide-exec-ran'))\"")
    assert.equal("false\t'tide.process.exec' must be called inside a task (use tide.run or tide.spawn)\n", out)
    assert.is_nil(io.open("/tmp/tide-exec-ran"))
  end)

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
    assert.has_error(function () P.exec("true\0rm -rf /") end,
      "bad argument #1 to 'exec' (zero byte in the command)")
    assert.has_error(function () P.exec("true", { max_output = 1.5 }) end,
      "bad argument #2 to 'exec' ('max_output': non-negative integer expected)")
    assert.has_error(function () P.exec("true", { stdout = "pipe" }) end,
      "bad argument #2 to 'exec' ('stdout': not an option of exec (input = gives stdin; " ..
      "for more, use spawn))")
    -- what spawn checks is reported as exec's, at the caller's line
    assert.has_error(function () P.exec { "ls", {} } end,
      "bad argument #1 to 'exec' (string expected at [2], got table)")
    assert.has_error(function () P.exec("ls", { env = { A = {} } }) end,
      "bad argument #2 to 'exec' ('env': values must be strings, numbers or false)")
    assert.has_error(function () P.exec({ { "ls" }, { "sort", false } }) end,
      "bad argument #1 to 'exec' (string expected at [2][2], got boolean)")
    assert.has_error(function () P.exec({ { "ls" }, "sort" }) end,
      "bad argument #1 to 'exec' (command (a table) expected at [2])")
    local ok, err = pcall(function () P.exec("ls", { cwd = 1 }) end)
    assert.is_false(ok)
    assert.matches("^spec/process_spec.lua:%d+: bad argument #2 to 'exec' %('cwd': string expected%)$", err)
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

  it("shares one stderr file among its children", async(function ()
    local path = tmpname()
    local pl <close> = assert(P.pipeline({ { "sh", "-c", "echo one >&2" },
                                           { "sh", "-c", "cat; sleep 0.05; echo two >&2" } },
                                         { stderr = path, stdout = "null" }))
    pl:wait()
    local f = assert(io.open(path))
    assert.equal("one\ntwo\n", f:read("a"))
    f:close()
    os.remove(path)
  end))

  it("merges each child's stderr into its stdout with stderr = \"stdout\"", async(function ()
    local out, _, code = P.exec({ { "sh", "-c", "echo a; echo b >&2" }, { "sort", "-r" } },
                                { stderr = "stdout", env = NOPRELOAD, env_extend = true })
    assert.equal("b\na\n", out)
    assert.equal(0, code)
  end))

  it("can cancel a task waiting for it; <close> kills and reaps every child", async(function ()
    local pids = {}
    local t = tide.spawn(function ()
      local pl <close> = assert(P.pipeline { { "sleep", "10" }, { "cat" } })
      for i, p in ipairs(pl.processes) do pids[i] = p.pid end
      pl:wait()
    end)
    tide.sleep(0.02)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(gone(pids[1]) and gone(pids[2]))
    assert.equal(0, nozombies())
  end))

  it("returns nil, msg, code when the shared stderr file cannot be opened", async(function ()
    local fds = fdcount()
    local pl, err, code = P.pipeline({ { "true" }, { "true" } }, { stderr = "/nonexistent/dir/e" })
    assert.is_nil(pl)
    assert.equal("ENOENT", code)
    assert.equal("/nonexistent/dir/e: no such file or directory", err)
    assert.equal(0, nozombies())
    assert.equal(fds, fdcount(fds))
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
    assert.equal(fds, fdcount(fds))
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
    assert.has_error(function () P.pipeline { { "ls" }, {} } end,
      "bad argument #1 to 'pipeline' (program name expected at [2])")
    assert.has_error(function () P.pipeline({ { "ls" } }, { stdin = 1.5 }) end,
      "bad argument #2 to 'pipeline' ('stdin': file descriptor expected)")
    assert.has_error(function () P.pipeline({ { "ls" } }, "pipe") end,
      "bad argument #2 to 'pipeline' (table expected, got string)")
  end))
end)

describe("scripts/commands.lua and scripts/pargrep.lua", function ()
  it("commands.lua runs ten commands at once and prints them in order", async(function ()
    local t0 = tide.now()
    local out, err, code = P.exec { TIDE, "scripts/commands.lua" }
    assert.equal(0, code, err)
    assert.is_true(tide.now() - t0 < 3)          -- 1 s (a timeout), not the sum
    local n = 0
    for i in out:gmatch("%[(%d+)%]") do
      n = n + 1
      assert.equal(n, tonumber(i))
    end
    assert.equal(10, n)
    assert.matches("[9] echo nine; exec sleep 10  (timeout)\nnine\n", out, 1, true)
    assert.matches("[8] printf 'eight\\n'; exit 3  (exit 3)\neight\n", out, 1, true)
    assert.matches("[7] echo seven >&2  (exit 0)\nstderr: seven\n", out, 1, true)
    assert.matches("(exit 127)", out, 1, true)
  end))

  it("pargrep.lua greps files in parallel, at most JOBS at once", async(function ()
    local dir = tmpname()
    assert(tide.fs.mkdir(dir))
    local files = {}
    for i = 1, 12 do
      files[i] = dir .. "/f" .. i
      local f = assert(io.open(files[i], "w"))
      f:write("a line\n", i % 3 == 0 and "needle here\n" or "nothing\n")
      f:close()
    end
    local out, err, code = P.exec { TIDE, "scripts/pargrep.lua", "-j", "3", "needle", table.unpack(files) }
    assert.equal(0, code, err)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    table.sort(lines)
    assert.same({ dir .. "/f12:2:needle here", dir .. "/f3:2:needle here",
                  dir .. "/f6:2:needle here", dir .. "/f9:2:needle here" }, lines)
    assert.equal("4 of 12 files match; at most 3 greps ran at once\n", err)
    local _, _, nomatch = P.exec { TIDE, "scripts/pargrep.lua", "zzz", files[1] }
    assert.equal(1, nomatch)
    local _, err2, code2 = P.exec { TIDE, "scripts/pargrep.lua", "x", dir .. "/missing" }
    assert.equal(2, code2)
    assert.matches("No such file", err2, 1, true)
    for _, f in ipairs(files) do os.remove(f) end
    os.remove(dir)
  end))
end)

describe("a Stream handed to a child that has read ahead", function ()
  -- Start sh -c script with stdout = "pipe" and read its first line, "H\n"
  -- (the read-ahead may take more); the Process.
  local function header (script, ...)
    local p = assert(P.spawn { "sh", "-c", script, "sh", ..., stdout = "pipe" })
    assert.equal("H\n", p.stdout:read_until("\n"))
    return p
  end

  -- Is the socket the child's fd 0 names (its readlink) one of ours?
  local function ours (link)
    local f = assert(io.popen("ls -l /proc/" .. mypid() .. "/fd"))
    local list = f:read("a")
    f:close()
    return list:find(link, 1, true) ~= nil
  end

  -- Bytes written so far by process pid (/proc/pid/io).
  local function written (pid)
    local f = assert(io.open("/proc/" .. pid .. "/io"))
    local n = tonumber(f:read("a"):match("wchar: (%d+)"))
    f:close()
    return n
  end

  it("gives the child what the stream had read ahead, then the rest", async(function ()
    local p1 <close> = header("echo H; echo body")
    local p2 <close> = assert(P.spawn { "cat", stdin = p1.stdout, stdout = "pipe" })
    assert.equal("body\n", readall(p2.stdout))
    assert.equal(0, p2:wait())
    assert.equal(0, p1:wait())
  end))

  it("passes 300,000 bytes after a header exactly, through a pipe of the child's own", async(function ()
    local t = {}
    for i = 1, 300000 do t[i] = string.char((i * 7919 + i // 256) % 256) end
    local payload = table.concat(t)
    local path = tmpfile(payload)
    local p1 <close> = header('echo H; cat "$1"', path)
    tide.sleep(0.05)                             -- the read-ahead fills up
    local p2 <close> = assert(P.spawn { "sh", "-c", "readlink /proc/self/fd/0; exec cat",
                                        stdin = p1.stdout, stdout = "pipe" })
    local link = p2.stdout:read_until("\n")
    assert.matches("^socket:", link)
    assert.is_false(ours(link))                  -- a relay's pipe, not our socket
    local got = readall(p2.stdout)
    assert.equal(#payload, #got)
    assert.is_true(got == payload, "the bytes differ")
    assert.equal(0, p2:wait())
    os.remove(path)
  end))

  it("gives what a stream that has ended had read, then EOF", async(function ()
    local p1 <close> = header("echo H; printf 'last\\n'")
    assert.equal(0, p1:wait())
    tide.sleep(0.05)                             -- the read-ahead has seen EOF
    local p2 <close> = assert(P.spawn { "cat", stdin = p1.stdout, stdout = "pipe" })
    assert.equal("last\n", readall(p2.stdout))
    assert.equal(0, p2:wait())
  end))

  it("leaves the bytes in the stream when the child cannot start", async(function ()
    local p1 <close> = header("echo H; echo body")
    tide.sleep(0.05)
    local p, _, code = P.spawn { "no-such-program-tide", stdin = p1.stdout }
    assert.is_nil(p)
    assert.equal("ENOENT", code)
    local pl, _, code2 = P.pipeline({ { "cat" }, { "no-such-program-tide" } },
                                    { stdin = p1.stdout })
    assert.is_nil(pl)
    assert.equal("ENOENT", code2)
    assert.equal("body\n", readall(p1.stdout))
    assert.equal(0, nozombies())
  end))

  it("keeps the fd hand-off direct when nothing is buffered, and stops reading ahead", async(function ()
    local p1 <close> = header("echo H; sleep 0.3; echo body")
    local p2 <close> = assert(P.spawn { "sh", "-c", "readlink /proc/self/fd/0; exec cat",
                                        stdin = p1.stdout, stdout = "pipe" })
    local link = p2.stdout:read_until("\n")
    assert.is_true(ours(link))                   -- the very socket of p1.stdout
    assert.equal("body\n", readall(p2.stdout))   -- tide read none of it
    assert.equal(0, p2:wait())
  end))

  it("reads no further than a slow child takes (backpressure)", async(function ()
    local size = 64 * 1024 * 1024
    local p1 <close> = header("echo H; exec head -c $1 /dev/zero", size)
    tide.sleep(0.05)
    local p2 <close> = assert(P.spawn { "sh", "-c", "sleep 0.5; exec wc -c",
                                        stdin = p1.stdout, stdout = "pipe" })
    tide.sleep(0.3)
    assert.is_true(alive(p1.pid))                -- still blocked writing
    local w = written(p1.pid)
    assert.is_true(w < 8 * 1024 * 1024, ("the source wrote %d bytes"):format(w))
    assert.equal(size, tonumber(readall(p2.stdout)))
    assert.equal(0, p2:wait())
    assert.equal(0, p1:wait())
  end))

  it("ends quietly when the child exits early, closing its copy of the stream", async(function ()
    local fds = fdcount()
    do
      local p1 <close> = header("echo H; exec head -c 10000000 /dev/zero 2>/dev/null")
      tide.sleep(0.05)
      local p2 <close> = assert(P.spawn { "head", "-c", "10", stdin = p1.stdout,
                                          stdout = "pipe" })
      assert.equal(("\0"):rep(10), readall(p2.stdout))
      assert.equal(0, p2:wait())
      -- the last copy: the writer fails (EPIPE, or ECONNRESET as unread
      -- data was dropped) and ends; with a copy left, it would block
      p1.stdout:close()
      local code = tide.timeout(5, p1.wait, p1)
      assert.is_true(code == 1 or code == 141, "the writer did not end")
    end
    assert.equal(fds, fdcount(fds))
  end))

  it("goes on when the task that spawned the child is cancelled", async(function ()
    local p1 <close> = header("echo H; exec head -c 1000000 /dev/zero")
    tide.sleep(0.05)
    local p2
    local t = tide.spawn(function ()
      p2 = assert(P.spawn { "sh", "-c", "sleep 0.1; exec wc -c", stdin = p1.stdout,
                            stdout = "pipe" })
      tide.sleep(10)
    end)
    tide.sleep(0.01)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.equal(1000000, tonumber(readall(p2.stdout)))
    assert.equal(0, p2:wait())
    p2:close()
  end))

  it("gives a pipeline's first child what the stream had read ahead", async(function ()
    local p1 <close> = header("echo H; printf 'b\\nc\\na\\n'")
    tide.sleep(0.05)
    local pl <close> = assert(P.pipeline({ { "cat" }, { "sort" } }, { stdin = p1.stdout,
      stdout = "pipe", env = NOPRELOAD, env_extend = true }))
    assert.equal("a\nb\nc\n", readall(pl.stdout))
    assert.equal(0, pl:wait())
  end))

  it("does not keep the program running once the child has exited", async(function ()
    local t0 = tide.now()
    local out, err, code = P.exec { TIDE, "-e", [[
      local p1 = tide.process.spawn { "sh", "-c", "printf 'H\\nabc'; exec sleep 5",
                                      stdout = "pipe", stderr = "null", detached = true }
      p1.stdout:read_until("\n")
      local p2 = tide.process.spawn { "head", "-c", "2", stdin = p1.stdout, stdout = "pipe" }
      io.write(p2.stdout:read(), " ", p1.pid)
    ]] }
    assert.equal(0, code, err)
    assert.is_true(tide.now() - t0 < 3)
    local data, pid = out:match("^(%S+) (%d+)$")
    assert.equal("ab", data)
    assert.is_true(tide.signal.kill(tonumber(pid), "SIGKILL"))
  end))

  it("refuses a closed stream, one a task is reading, and queued writes for stdout", async(function ()
    local dead = assert(P.spawn { "cat", stdout = "pipe" })
    dead.stdout:close()
    assert.has_error(function () P.spawn { "cat", stdin = dead.stdout } end,
      "bad argument #1 to 'spawn' ('stdin': closed stream)")
    assert.has_error(function () P.spawn { "cat", stdout = dead.stdout } end,
      "bad argument #1 to 'spawn' ('stdout': closed stream)")
    assert.has_error(function () P.pipeline({ { "cat" } }, { stdin = dead.stdout }) end,
      "bad argument #2 to 'pipeline' ('stdin': closed stream)")
    dead:close()

    local p <close> = assert(P.spawn { "sh", "-c", "sleep 0.3; echo late", stdout = "pipe" })
    local reader = tide.spawn(function () return p.stdout:read() end)
    tide.sleep(0.01)
    assert.has_error(function () P.spawn { "cat", stdin = p.stdout } end,
      "bad argument #1 to 'spawn' ('stdin': a task is reading the stream)")
    assert.equal("late\n", reader:await())       -- the reader lost nothing

    local sink <close> = assert(P.spawn { "sh", "-c", "sleep 0.2; exec cat > /dev/null",
                                          stdin = "pipe" })
    assert(sink.stdin:write(("x"):rep(4 * 1024 * 1024)))
    assert.has_error(function () P.spawn { "true", stdout = sink.stdin } end,
      "bad argument #1 to 'spawn' ('stdout': writes are still queued on the stream (drain it first))")
    assert.has_error(function () P.spawn { "true", stderr = sink.stdin } end,
      "bad argument #1 to 'spawn' ('stderr': writes are still queued on the stream (drain it first))")
    assert.is_true(sink.stdin:drain())
    local q <close> = assert(P.spawn { "printf", "after", stdout = sink.stdin })
    assert.equal(0, q:wait())
  end))
end)
