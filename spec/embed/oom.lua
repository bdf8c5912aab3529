-- oom.lua: what spec/embed/oom.c runs while its allocator fails: a little
-- of every module of tide, each part ending quickly (no wait longer than a
-- few milliseconds), whatever part fails. ...: a directory of its own, and
-- the host's pid.
local dir, pid = ...
local tide = tide

local function tasks ()
  local a = tide.spawn(function (x) tide.yield() return x + 1 end, 1)
  assert(a:await() == 2)
  local x, y = tide.gather(function () return 1 end,
                           function () tide.sleep(0) return 2 end)
  assert(x == 1 and y == 2)
  assert(tide.race(function () tide.sleep(1) end, function () return "f" end) == "f")
  local s = tide.settle(function () error("settled") end, function () return 3 end)
  assert(not s[1].ok and s[2][1] == 3)
  assert(select(2, tide.timeout(0.001, tide.sleep, 1)) == "timeout")
  assert(tide.group(function (g)
    g:spawn(tide.yield)
    g:spawn(function () return 1 end)
    return "grouped"
  end) == "grouped")
  local t = tide.spawn(tide.sleep, 10)
  tide.yield()
  t:cancel("stop")
  assert(not pcall(t.await, t) and t:cancelled())
  local f = tide.spawn(error, { "a table" })
  assert(not pcall(f.await, f))
  tide.shield(function () tide.yield() end)
  local later = tide.call_later(0, function () return "later" end)
  local soon = tide.call_soon(function () return "soon" end)
  later:on_done(function () end)
  assert(later:await() == "later" and soon:await() == "soon")
  local gen = coroutine.wrap(function () tide.sleep(0) coroutine.yield(1) end)
  assert(gen() == 1)
  local ok = coroutine.resume(coroutine.create(function () tide.yield() end))
  assert(ok)
  local closed = tide.spawn(function ()
    local _ <close> = setmetatable({}, { __close = function () end })
    error("with a close")
  end)
  assert(not pcall(closed.await, closed))
end

local function futures ()
  local f = tide.Future()
  local waiter = tide.spawn(function () return f:await() end)
  f:on_done(function () end)
  tide.call_soon(function () f:set_result("set", 2) end)
  assert(waiter:await() == "set")
  assert(select(3, f:result()) == 2)
  local e = tide.Future()
  e:set_error("failed")
  assert(not pcall(e.await, e) and not e:result())
  local c = tide.Future()
  local cw = tide.spawn(function () return c:await() end)
  tide.yield()
  cw:cancel()
  assert(not pcall(cw.await, cw) and c:cancelled())
  local a, b = tide.Future(), tide.Future()
  tide.call_soon(function () a:set_result(1) end)
  local done, pending = tide.wait({ a, b }, { return_when = "first" })
  assert(done[a] and pending[b])
  b:set_result(2)
  local n = 0
  for _ in tide.as_completed({ a, b, tide.spawn(tide.yield) }) do n = n + 1 end
  assert(n == 3)
  assert(tide.gather(a, function () return 3 end) == 1)
  assert(select(2, tide.timeout(0.001, tide.Future())) == "timeout")
end

local function sync ()
  local q = tide.Queue(1)
  local prod = tide.spawn(function ()
    for i = 1, 3 do q:put(i) end
    q:close()
  end)
  local sum = 0
  for v in q:iter() do sum = sum + v end
  assert(sum == 6)
  prod:await()
  local l, inside = tide.Lock(), 0
  tide.gather(function ()
    local _ <close> = l:hold()
    inside = inside + 1
    tide.yield()
  end, function ()
    local _ <close> = l:hold()
    inside = inside + 1
  end)
  assert(inside == 2)
  local e = tide.Event()
  local w = tide.spawn(function () return e:wait() end)
  tide.yield()
  e:set()
  assert(w:await() == true)
  local c, ready = tide.Condition(), false
  local cw = tide.spawn(function ()
    local _ <close> = c:hold()
    return c:wait_for(function () return ready end)
  end)
  tide.yield()
  do
    local _ <close> = c:hold()
    ready = true
    c:notify_all()
  end
  assert(cw:await() == true)
  local sem = tide.Semaphore(1)
  do local _ <close> = sem:hold() end
  local pq = tide.PriorityQueue()
  pq:put("b", 2)
  pq:put("a", 1)
  assert(pq:get() == "a")
  local b = tide.Barrier(2)
  tide.gather(function () return b:wait() end, function () return b:wait() end)
end

-- A stream server that echoes one line, and a client of it.
local function echo (listen, connect, ...)
  local srv = assert(listen(...))
  local _ <close> = srv
  local args = table.pack(...)
  return tide.group(function (g)
    g:spawn(function ()
      local c <close> = assert(srv:accept())
      c:write(assert(c:read_until("\n")))
      c:shutdown()
    end)
    local c <close> = assert(connect(table.unpack(args, 1, args.n)))
    c:write("ping", "\n")
    assert(c:read_until("\n") == "ping\n")
    assert(c:read() == nil)
    return true
  end)
end

local function sockets ()
  local srv = assert(tide.tcp.listen("127.0.0.1", 0))
  local _, port = srv:getsockname()
  srv:close()
  local function listen () return tide.tcp.listen("127.0.0.1", 0) end
  local s0 = assert(listen())
  port = select(2, s0:getsockname())
  s0:close()
  assert(echo(function () return tide.tcp.listen("127.0.0.1", port) end,
              function () return tide.tcp.connect("127.0.0.1", port) end))
  assert(echo(tide.pipe.listen, tide.pipe.connect, dir .. "/sock"))
  local serving <close> = assert(tide.tcp.serve("127.0.0.1", 0, function (s)
    s:write(s:read_until("\n"))
  end))
  local c <close> = assert(tide.tcp.connect("127.0.0.1", select(2, serving:getsockname())))
  c:write("served\n")
  -- within a time: a serve whose accept loop could not even start (no
  -- memory for its first call) never answers
  assert(tide.timeout(0.5, c.read_until, c, "\n") == "served\n")
  serving:close()
  local a <close> = assert(tide.udp.bind("127.0.0.1", 0))
  local b <close> = assert(tide.udp.bind("127.0.0.1", 0))
  local bport = select(2, b:getsockname())
  local r = tide.spawn(function () return b:recv() end)
  assert(a:send("datagram", "127.0.0.1", bport))
  assert(r:await() == "datagram")
  assert(#assert(tide.dns.resolve("localhost")) > 0)
  assert(tide.dns.reverse("127.0.0.1"))
end

-- TLS (a certificate that spec/oom.sh makes in TIDE_OOM_TLS): the echo
-- over tide.tls; OpenSSL's own memory is not the host's.
local function tls ()
  local certs = os.getenv("TIDE_OOM_TLS")
  if not certs then return end
  local opts = { cert = certs .. "/cert.pem", key = certs .. "/key.pem" }
  local s0 = assert(tide.tcp.listen("127.0.0.1", 0))
  local port = select(2, s0:getsockname())
  s0:close()
  assert(echo(function () return tide.tls.listen("127.0.0.1", port, opts) end,
              function () return tide.tls.connect("127.0.0.1", port,
                                                  { cafile = opts.cert }) end))
end

local function processes ()
  local out, _, code = tide.process.exec({ "echo", "hi" })
  assert(out == "hi\n" and code == 0)
  local p <close> = assert(tide.process.spawn{ "cat", stdin = "pipe", stdout = "pipe" })
  p.stdin:write("cat\n")
  p.stdin:close()
  assert(p.stdout:read_until("\n") == "cat\n")
  assert(p:wait() == 0)
  local h <close> = tide.signal.on("SIGWINCH", function () end)
  local got = tide.spawn(tide.signal.wait, "SIGWINCH")
  tide.yield()
  assert(tide.signal.kill(pid, "SIGWINCH"))
  assert(got:await() == "SIGWINCH")
end

local function files ()
  local path = dir .. "/file"
  assert(tide.fs.write_file(path, "one\ntwo\n"))
  assert(tide.fs.read_file(path) == "one\ntwo\n")
  local f <close> = assert(tide.fs.open(path, "r+"))
  assert(f:read(3) == "one")
  f:seek("end")
  f:write("three\n")
  assert(f:stat().size == 14)
  local n = 0
  f:seek("set")
  for _ in f:lines() do n = n + 1 end
  assert(n == 3)
  f:seek("set")
  local parts = {}
  for i = 1, 8 do parts[i] = f:read(2) end         -- reads ahead from the third
  assert(table.concat(parts) == "one\ntwo\nthree\n")
  f:close()
  assert(tide.fs.mkdir(dir .. "/sub/deeper", { parents = true }))
  assert(tide.fs.rename(path, dir .. "/sub/file"))
  for name in tide.fs.scandir(dir .. "/sub") do assert(name) end
  for name in tide.fs.readdir(dir .. "/sub") do assert(name) end
  assert(tide.fs.exists(dir .. "/sub/file"))
  assert(tide.fs.stat(dir).type == "directory")
  local w <close> = assert(tide.fs.watch(dir))
  assert(tide.fs.write_file(dir .. "/watched", "x"))
  assert(tide.timeout(0.05, w.read, w))
  assert(tide.work(function (a, b) return a + b, { a } end, 1, 2) == 3)
  tide.stdout:write("")
  tide.stderr:write("")
  assert(tide.stdin:read() == nil)
end

tasks()
futures()
sync()
sockets()
tls()
processes()
files()
return "done"
