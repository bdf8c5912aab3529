-- workers_spec.lua: tide --workers and tide.workers: worker ids, the shared
-- listening socket, supervision (SIGKILL, SIGHUP, SIGTERM, a worker that
-- fails at start), messages, reuseport, wrong use. A load client in this
-- process pushes connections through while the master's workers come and
-- go.

-- A free TCP port (for reuseport, where each worker binds its own).
local function freeport ()
  local s = assert(tide.tcp.listen("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- The master: TIDE with args; its stdout (the workers print there) read
-- line by line into m.lines; m.seen(pattern, n) waits for n lines matching.
local function master (args, script, env)
  local path = tmpfile(script)
  local argv = { TIDE, stdout = "pipe", stderr = "pipe", env = env,
                 env_extend = env and true }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv[#argv + 1] = path
  local p = assert(tide.process.spawn(argv))
  local m = { p = p, lines = {}, err = {}, path = path, event = tide.Event() }
  m.reader = tide.spawn(function ()
    for line in p.stdout:lines() do
      m.lines[#m.lines + 1] = line
      m.event:set()
    end
  end)
  m.ereader = tide.spawn(function ()
    for line in p.stderr:lines() do
      m.err[#m.err + 1] = line
      m.event:set()
    end
  end)
  -- The lines (of out or err) matching pattern, once there are n of them.
  function m.seen (pattern, n, which, timeout)
    local deadline = tide.now() + (timeout or 20)
    while true do
      local found = {}
      for _, l in ipairs(which or m.lines) do
        if l:match(pattern) then found[#found + 1] = l end
      end
      if #found >= (n or 1) then return found end
      if tide.now() > deadline then
        error(("waited for %d lines like %q; out:\n%s\nerr:\n%s"):format(
          n or 1, pattern, table.concat(m.lines, "\n"),
          table.concat(m.err, "\n")), 2)
      end
      m.event:clear()
      tide.timeout(0.1, m.event.wait, m.event)
    end
  end
  function m.finish ()
    local code, sig = p:wait()
    m.reader:await()
    m.ereader:await()
    os.remove(path)
    return code, sig
  end
  return m
end

-- The pid of this process (in a worker script).
local PID = [[
local function pid ()
  local f = io.open("/proc/self/stat")
  local n = f:read("n")
  f:close()
  return n
end
io.stdout:setvbuf("line")
]]

-- Load: conns tasks each connecting, writing "ping\n" and reading a line,
-- again and again until stop() is called; returns counts.
local function load (port, conns, request)
  local stats = { ok = 0, failed = 0, errors = {}, by = {} }
  local running = true
  local tasks = {}
  for i = 1, conns do
    tasks[i] = tide.spawn(function ()
      while running do
        local s, err, code = tide.tcp.connect("127.0.0.1", port)
        local line
        if s then
          s:write(request or "ping\n")
          line, err, code = s:read_until("\n")
          s:close()
        end
        if line then
          stats.ok = stats.ok + 1
          local id = line:match("worker (%d+)")
          if id then stats.by[id] = (stats.by[id] or 0) + 1 end
        else
          stats.failed = stats.failed + 1
          stats.errors[#stats.errors + 1] = tostring(err) .. " " ..
                                            tostring(code)
        end
      end
    end)
  end
  return function ()
    running = false
    for _, t in ipairs(tasks) do t:await() end
    return stats
  end
end

local ECHO = PID .. [[
local tide = require "tide"
local opts = { reuseport = os.getenv("REUSEPORT") == "1" or nil }
local port = tonumber(os.getenv("PORT") or 0)
local s = assert(tide.tcp.serve("127.0.0.1", port, function (c)
  local line = c:read_until("\n")
  if line == "slow\n" then tide.sleep(1) end
  if line == "busy\n" then                -- the loop is blocked meanwhile
    local t = os.clock() + 0.1
    while os.clock() < t do end
  end
  c:write("worker " .. tide.worker.id .. "\n")
end, opts))
local _, p = s:getsockname()
print("ready", tide.worker.id, tide.worker.count, pid(), p)
]]

local function readyline (m, n)
  local lines = m.seen("^ready", n)
  local id, count, pid, port = lines[#lines]:match(
    "^ready\t(%d+)\t(%d+)\t(%d+)\t(%d+)")
  return tonumber(port), lines
end

local function pids (lines)
  local t = {}
  for _, l in ipairs(lines) do
    local id, _, pid = l:match("^ready\t(%d+)\t(%d+)\t(%d+)")
    t[#t + 1] = { id = tonumber(id), pid = tonumber(pid) }
  end
  return t
end

local function stop (m)
  m.p:kill("SIGTERM")
  local code, sig = m.finish()
  if code ~= 0 then                        -- say why in the failure
    io.stderr:write("master's stderr:\n", table.concat(m.err, "\n"), "\n")
  end
  return code, sig
end

-- The two workers of m, ready on one port, both answer "busy\n"
-- connections (a worker computing accepts nothing: the other takes them),
-- none failing; then m stops cleanly.
local function bothserve (m)
  local port, lines = readyline(m, 2)
  for _, l in ipairs(lines) do
    assert.equal(tostring(port), l:match("(%d+)$"))
  end
  local finish = load(port, 8, "busy\n")
  tide.sleep(2.5)
  local st = finish()
  assert.equal(0, st.failed, table.concat(st.errors, "; "))
  assert.is_true((st.by["1"] or 0) > 0 and (st.by["2"] or 0) > 0,
                 ("worker 1: %d, worker 2: %d"):format(st.by["1"] or 0,
                                                     st.by["2"] or 0))
  assert.equal(0, stop(m))
end

describe("tide --workers", function ()
  it("runs the script in n workers, each with its id and the count",
     async(function ()
    local m = master({ "--workers", "2" }, ECHO)
    local _, lines = readyline(m, 2)
    local ids = {}
    for _, l in ipairs(lines) do
      local id, count = l:match("^ready\t(%d+)\t(%d+)")
      ids[tonumber(id)] = true
      assert.equal("2", count)
    end
    assert.same({ true, true }, ids)
    local code = stop(m)
    assert.equal(0, code)
  end))

  it("has no tide.worker without workers", function ()
    local out = sh(TIDE .. " -e 'print(tide.worker, require\"tide\".worker)'")
    assert.equal("nil\tnil\n", out)
  end)

  it("shares one socket: port 0 is one port for every worker, and both "
     .. "accept from it", async(function ()
    bothserve(master({ "--workers", "2" }, ECHO))
  end))

  it("replaces a worker killed with SIGKILL; no connection is refused",
     async(function ()
    local m = master({ "--workers", "2" }, ECHO)
    local port, lines = readyline(m, 2)
    local finish = load(port, 4)
    tide.sleep(0.3)
    local victim = pids(lines)[1]
    os.execute("kill -KILL " .. victim.pid)
    readyline(m, 3)                        -- it comes back
    tide.sleep(0.3)
    local st = finish()
    assert.is_true(st.ok > 0)
    for _, e in ipairs(st.errors) do
      assert.is_nil(e:find("ECONNREFUSED"), e)
    end
    -- the killed worker's own connection may be cut; no more than that
    assert.is_true(st.failed <= 4, table.concat(st.errors, "; "))
    m.seen("worker " .. victim.id .. " %(pid " .. victim.pid ..
           "%) was killed by SIGKILL", 1, m.err)
    assert.equal(0, stop(m))
  end))

  it("restarts every worker on SIGHUP without a failed request",
     async(function ()
    local m = master({ "--workers", "2" }, ECHO)
    local port, lines = readyline(m, 2)
    local old = pids(lines)
    local finish = load(port, 6)
    tide.sleep(0.3)
    m.p:kill("SIGHUP")
    local all = pids(m.seen("^ready", 4))
    m.seen("^tide.workers: restart: done: 2 of 2 workers replaced$", 1, m.err)
    tide.sleep(0.5)
    local st = finish()
    assert.equal(0, st.failed, table.concat(st.errors, "; "))
    assert.is_true(st.ok > 0)
    assert.are_not.equal(old[1].pid, all[3].pid)
    -- the old workers have ended
    for _, w in ipairs(old) do
      assert.is_false(os.execute("kill -0 " .. w.pid .. " 2>/dev/null") == true)
    end
    assert.equal(0, stop(m))
  end))

  it("keeps the old workers when the new ones fail on SIGHUP",
     async(function ()
    local flag = os.tmpname()
    os.remove(flag)
    local m = master({ "--workers", "2" },
      "if io.open(os.getenv('FLAG')) then error('bad new code') end\n" .. ECHO,
      { FLAG = flag })
    local port, lines = readyline(m, 2)
    local old = pids(lines)
    local finish = load(port, 4)
    assert(io.open(flag, "w")):close()
    m.p:kill("SIGHUP")
    m.seen("did not become ready; the old one stays; going on with worker 2",
           1, m.err)
    m.seen("did not become ready; the old one stays", 2, m.err)
    m.seen("restart: failed: 0 of 2 workers replaced", 1, m.err)
    local st = finish()
    os.remove(flag)
    assert.equal(0, st.failed, table.concat(st.errors, "; "))
    assert.is_true(st.ok > 0)
    for _, w in ipairs(old) do
      assert.equal(true, os.execute("kill -0 " .. w.pid))
    end
    assert.equal(0, stop(m))
  end))

  it("restarts tide.http.serve workers on SIGHUP without a failed request",
     async(function ()
    local m = master({ "--workers", "2" }, PID .. [[
local tide = require "tide"
local sv = assert(tide.http.serve("127.0.0.1", 0, function ()
  return 200, nil, "worker " .. tide.worker.id .. "\n"
end))
local _, p = sv:getsockname()
print("ready", tide.worker.id, tide.worker.count, pid(), p)
sv:wait()
]])
    local port = readyline(m, 2)
    local finish = load(port, 6, "GET / HTTP/1.1\r\nHost: x\r\n"
                                 .. "Connection: close\r\n\r\n")
    tide.sleep(0.3)
    m.p:kill("SIGHUP")
    m.seen("^ready", 4)
    tide.sleep(0.5)
    local st = finish()
    assert.equal(0, st.failed, table.concat(st.errors, "; "))
    assert.is_true(st.ok > 0)
    assert.equal(0, stop(m))
  end))

  it("shares the socket of tide.tls.serve", async(function ()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local C = dofile("spec/tls_certs.lua")(dir)
    local m = master({ "--workers", "2" }, PID .. ([[
local tide = require "tide"
local sv = assert(tide.tls.serve("127.0.0.1", 0, function (s)
  s:write("worker " .. tide.worker.id .. "\n")
end, { cert = %q, key = %q }))
local _, p = sv:getsockname()
print("ready", tide.worker.id, tide.worker.count, pid(), p)
]]):format(C.server.cert, C.server.key))
    local port, lines = readyline(m, 2)
    for _, l in ipairs(lines) do
      assert.equal(tostring(port), l:match("(%d+)$"))
    end
    for _ = 1, 4 do
      local s <close> = assert(tide.tls.connect("localhost", port,
                                                { cafile = C.ca }))
      assert.matches("^worker [12]\n$", s:read_until("\n"))
    end
    assert.equal(0, stop(m))
    os.execute("rm -rf " .. dir)
  end))

  it("shares the socket of tide.tcp.create_server, and with reuseport "
     .. "tells the master", async(function ()
    for _, reuse in ipairs({ false, true }) do
      local m = master({ "--workers", "2" }, PID .. ([[
local tide = require "tide"
local P = {}
P.__index = P
function P:connection_made (t) self.t = t end
function P:data_received (data)
  if data == "busy\n" then                 -- the loop is blocked meanwhile
    local t = os.clock() + 0.1
    while os.clock() < t do end
  end
  self.t:write("worker " .. tide.worker.id .. "\n")
  self.t:close()
end
local port = tonumber(os.getenv("PORT") or 0)
local sv = assert(tide.tcp.create_server("127.0.0.1", port, function ()
  return setmetatable({}, P)
end, { reuseport = %s }))
local _, p = sv:getsockname()
print("ready", tide.worker.id, tide.worker.count, pid(), p)
sv:wait()
]]):format(tostring(reuse)), reuse and { PORT = tostring(freeport()) } or nil)
      bothserve(m)
    end
  end))

  it("lets running handlers finish within the grace on SIGTERM",
     async(function ()
    local m = master({ "--workers", "2" }, ECHO)
    local port = readyline(m, 2)
    local replies = {}
    local ts = {}
    for i = 1, 4 do
      ts[i] = tide.spawn(function ()
        local s = assert(tide.tcp.connect("127.0.0.1", port))
        s:write("slow\n")
        replies[i] = s:read_until("\n")
        s:close()
      end)
    end
    tide.sleep(0.3)
    local t0 = tide.now()
    m.p:kill("SIGTERM")
    for _, t in ipairs(ts) do t:await() end
    local code = m.finish()
    assert.equal(0, code)
    assert.is_true(tide.now() - t0 < 5)
    for i = 1, 4 do assert.matches("^worker %d\n$", replies[i]) end
    -- and nothing listens any more
    local s, _, ecode = tide.tcp.connect("127.0.0.1", port)
    if s then s:close() end
    assert.equal("ECONNREFUSED", ecode)
  end))

  it("stops the workers whose master is killed with SIGKILL",
     async(function ()
    local m = master({ "--workers", "2" }, ECHO)
    local _, lines = readyline(m, 2)
    m.p:kill("SIGKILL")
    m.finish()
    local deadline = tide.now() + 10
    for _, w in ipairs(pids(lines)) do
      while os.execute("kill -0 " .. w.pid .. " 2>/dev/null") == true do
        assert(tide.now() < deadline, "worker " .. w.pid .. " still runs")
        tide.sleep(0.05)
      end
    end
  end))

  it("backs off a worker that fails at start, stays up and says why",
     async(function ()
    local m = master({ "--workers", "1" }, [[error("no config file")]])
    local lines = m.seen("restarting in", 3, m.err)
    local d1 = tonumber(lines[1]:match("restarting in ([%d.]+)"))
    local d3 = tonumber(lines[3]:match("restarting in ([%d.]+)"))
    assert.is_true(d3 > d1)
    m.seen("no config file", 1, m.err)
    assert.equal(true, os.execute("kill -0 " .. m.p.pid))
    m.p:kill("SIGTERM")                    -- its workers were failing
    assert.equal(1, (m.finish()))
  end))
end)

describe("tide.workers", function ()
  it("passes messages both ways and broadcasts", async(function ()
    local m = master({}, PID .. [[
local tide = require "tide"
tide.workers{ n = 2, main = function (ws)
  local got = {}
  for _ = 1, 2 do
    local id, msg = ws:recv()
    got[#got + 1] = id .. "=" .. msg.hello
  end
  table.sort(got)
  print("master got", table.concat(got, " "))
  assert(ws:broadcast({ text = "to all", list = { 1, 2.5, true } }) == 2)
  assert(ws:send(2, "only 2"))
end }
local w = tide.worker
assert(w.send({ hello = "from " .. w.id }))
local msg = w.recv()
print("worker", w.id, msg.text, msg.list[1], msg.list[2], msg.list[3])
if w.id == 2 then print("worker 2 also", w.recv()) end
]])
    m.seen("^master got\t1=from 1 2=from 2$")
    m.seen("^worker\t%d\tto all\t1\t2.5\ttrue$", 2)
    m.seen("^worker 2 also\tonly 2$")
    stop(m)
  end))

  it("gives each worker its own socket with reuseport", async(function ()
    local port = freeport()
    local m = master({ "--workers", "2" }, ECHO,
                     { REUSEPORT = "1", PORT = tostring(port) })
    readyline(m, 2)
    local finish = load(port, 8, "slow\n")
    tide.sleep(2.5)
    local st = finish()
    assert.equal(0, st.failed)
    assert.is_true(st.ok > 0)
    m.p:kill("SIGHUP")
    m.seen("^ready", 4)
    assert.equal(0, stop(m))
  end))

  it("raises on wrong use", async(function ()
    assert.error_matches(function () tide.workers("x") end,
      "bad argument #1 to 'workers' %(table expected, got string%)")
    assert.error_matches(function () tide.workers{ n = 0 } end,
      "'n': positive integer")
    assert.error_matches(function () tide.workers{ n = 1, main = 1 } end,
      "'main': function expected")
    local m = master({ "--workers", "1" }, [[
local ok, err = pcall(tide.worker.send, print)
print("send", ok, err)
ok, err = pcall(tide.worker.send, { f = print })
print("nested", ok, err)
]])
    m.seen("^send\tfalse\tbad argument #1 to 'tide.worker.send' %(string "
           .. "or table expected, got function%)$")
    m.seen("^nested\tfalse\tbad argument #1 to 'tide.worker.send' %(cannot "
           .. "copy a function: only nil")
    stop(m)
    local out, code = sh(TIDE .. " --workers")
    assert.matches("'%-%-workers' needs argument", out)
    assert.is_not.equal(0, code)
    out, code = sh(TIDE .. " --workers 0 x.lua")
    assert.matches("%-%-workers: a number from 1 to 1024 or 'auto' expected", out)
    assert.is_not.equal(0, code)
    out, code = sh(TIDE .. " --workers 2")
    assert.matches("%-%-workers needs a script", out)
    assert.is_not.equal(0, code)
  end))
end)

-- A worker script that sleeps in its handler, on PORT.
local SLOW = PID .. [[
local tide = require "tide"
local s = assert(tide.tcp.serve("127.0.0.1", tonumber(os.getenv("PORT")),
  function (c)
    c:read_until("\n")
    tide.sleep(tonumber(os.getenv("NAP") or 3))
    c:write("late\n")
  end))
print("ready", tide.worker.id, tide.worker.count, pid())
]]

describe("tide.workers ending", function ()
  it("exits non-zero on SIGTERM when a worker could not listen, and names "
     .. "the address once", async(function ()
    local busy = assert(tide.tcp.listen("127.0.0.1", 0))
    local _, port = busy:getsockname()
    local m = master({ "--workers", "1" }, ECHO, { PORT = tostring(port) })
    local l = m.seen("cannot listen", 1, m.err)[1]
    assert.equal(("tide.workers: worker 1: cannot listen: 127.0.0.1:%d: "
                  .. "address already in use"):format(port), l)
    m.seen("restarting in", 2, m.err)
    m.p:kill("SIGTERM")
    assert.equal(1, (m.finish()))
    busy:close()
  end))

  it("refuses new connections at once during a full stop", async(function ()
    local port = freeport()
    local m = master({ "--workers", "2" }, SLOW, { PORT = tostring(port) })
    m.seen("^ready", 2)
    local c = assert(tide.tcp.connect("127.0.0.1", port))
    c:write("x\n")
    tide.sleep(0.2)
    m.p:kill("SIGTERM")
    local deadline = tide.now() + 2
    local code
    repeat                          -- the workers close theirs as they stop
      tide.sleep(0.05)
      local s, _, e = tide.tcp.connect("127.0.0.1", port)
      if s then s:close() end
      code = e
    until code == "ECONNREFUSED" or tide.now() > deadline
    assert.equal("ECONNREFUSED", code)
    -- while the handler still runs in its grace
    assert.equal(true, os.execute("kill -0 " .. m.p.pid))
    assert.equal("late\n", c:read_until("\n"))
    c:close()
    assert.equal(0, (m.finish()))
  end))

  it("stops a worker that never listened cleanly, in both forms",
     async(function ()
    local body = [[
io.stdout:setvbuf("line")
print("up", tide.worker.id)
if tide.worker.id == 1 then
  while tide.worker.recv() do end
else
  tide.sleep(100)
end
]]
    for _, form in ipairs({ "cli", "script" }) do
      local m = form == "cli" and master({ "--workers", "2" }, body)
                or master({}, "tide.workers{ n = 2 }\n" .. body)
      m.seen("^up", 2)
      tide.sleep(0.2)
      m.p:kill("SIGTERM")
      local code = m.finish()
      assert.equal(0, code, form .. ": " .. table.concat(m.err, "\n"))
      assert.equal(0, #m.err, form .. ": " .. table.concat(m.err, "\n"))
    end
  end))

  it("does not restart a worker stopped by a SIGINT of its own",
     async(function ()
    local m = master({ "--workers", "2" }, ECHO)
    local _, lines = readyline(m, 2)
    local victim = pids(lines)[1]
    os.execute("kill -INT " .. victim.pid)
    m.seen(("worker %d %%(pid %d%%) stopped by SIGINT after [%%d.]+ s; not "
            .. "restarted"):format(victim.id, victim.pid), 1, m.err)
    tide.sleep(0.5)
    assert.equal(2, #m.seen("^ready", 2))
    assert.equal(0, stop(m))
  end))

  it("does not restart a worker that exits with 0; the master ends when "
     .. "none is left", async(function ()
    local m = master({ "--workers", "2" }, [[
io.stdout:setvbuf("line")
print("done", tide.worker.id)
]])
    m.seen("^done", 2)
    m.seen("exited with code 0 after [%d.]+ s; not restarted %(a clean "
           .. "exit%)", 2, m.err)
    m.seen("no worker left; the master ends", 1, m.err)
    assert.equal(0, (m.finish()))
    assert.equal(2, #m.lines)
  end))

  it("stops at once on a second SIGTERM", async(function ()
    local port = freeport()
    local m = master({ "--workers", "1" }, SLOW,
                     { PORT = tostring(port), NAP = "60" })
    m.seen("^ready", 1)
    local c = assert(tide.tcp.connect("127.0.0.1", port))
    c:write("x\n")
    tide.sleep(0.2)
    local t0 = tide.now()
    m.p:kill("SIGTERM")
    tide.sleep(0.3)
    m.p:kill("SIGTERM")
    assert.equal(0, (m.finish()))
    assert.is_true(tide.now() - t0 < 5)
    assert.is_nil(c:read_until("\n"))
    c:close()
  end))

  it("returns true from send", async(function ()
    local m = master({}, [[
io.stdout:setvbuf("line")
tide.workers{ n = 1, main = function (ws)
  local _, msg = ws:recv()
  print("master", msg, ws:send(1, "back"))
end }
print("worker", tide.worker.send("hi"), tide.worker.recv())
]])
    m.seen("^master\thi\ttrue$")
    m.seen("^worker\ttrue\tback$")
    stop(m)
  end))

  it("refuses what cannot work", async(function ()
    assert.error_matches(function () tide.workers{ n = 1, gracee = 2 } end,
      "bad argument #1 to 'workers' %('gracee': unknown option%)")
    local out, code = sh(TIDE .. " --workers -1 x.lua")
    assert.matches("%-%-workers: a number from 1 to 1024 or 'auto' expected", out)
    assert.is_not.equal(0, code)
    out, code = sh("echo 'print(1)' | " .. TIDE .. " --workers 2 -")
    assert.matches("%-%-workers needs a script file, not stdin", out)
    assert.is_not.equal(0, code)
    out, code = sh(TIDE .. " --workers 2 -i x.lua < /dev/null")
    assert.matches("%-%-workers cannot be used with %-i", out)
    assert.is_not.equal(0, code)
    local path = tmpfile([[
local s = assert(tide.tcp.listen("127.0.0.1", 0))
tide.workers{ n = 1 }
]])
    out, code = sh(TIDE .. " " .. path)
    os.remove(path)
    assert.matches("tide.workers: this process listens already: call "
                   .. "tide.workers before listening", out)
    assert.is_not.equal(0, code)
  end))

  it("says which of the script's options --workers leaves unused",
     async(function ()
    local m = master({ "--workers", "1" }, [[
io.stdout:setvbuf("line")
tide.workers{ n = 4, grace = 1, main = function () end, backoff = 1 }
print("count", tide.worker.count)
]])
    m.seen("^count\t1$")
    m.seen("'%-%-workers 1' given: tide.workers's backoff, main not used", 1,
           m.err)
    m.finish()
  end))

  it("counts the CPUs it may run on for auto", async(function ()
    local path = tmpfile([[
io.stdout:setvbuf("line")
print("worker", tide.worker.id, tide.worker.count)
]])
    local out = sh("taskset -c 0 " .. TIDE .. " --workers auto " .. path
                   .. " 2>&1")
    os.remove(path)
    assert.matches("worker\t1\t1\n", out)
  end))
end)
