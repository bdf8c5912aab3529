-- wrongself_spec.lua: every method and metamethod of every tide type, found
-- in the metatables themselves (the registry's "tide.*" entries and the
-- metatables of the tide modules in package.loaded), called with a wrong
-- self, with none, and on a closed object: each returns or raises a clear
-- error, never crashes, wherever the call is made (outside any task, in a
-- task, a coroutine, a __close handler, an on_done callback), and the
-- objects still work afterwards. A type added to tide without a way to
-- make it below fails this spec.

local reg = debug.getregistry()

-- ---- Making one object of each type ---------------------------------------

-- kinds[name]: how to make objects of the type whose metatable is
-- registry[name]. make(dir), in a task, returns a live object (or nil), a
-- closed one (or nil) and a function that checks, in a task, that the live
-- one still works, and ends it. A kind whose live object holds a running
-- task (task = true) cannot outlive tide.run: outside any task its live
-- object is made by outside() instead (or there is none). waiter names a
-- method that waits (until the object is closed, at least). reclose(c), if
-- given, closes c again after each call (a method may reopen it). A kind
-- with no make has no object Lua can get hold of: only wrong selfs are
-- tried.
local kinds = {}

kinds["tide.Runtime"] = {}          -- see "the runtime's own metatable" below
kinds["tide.WorkBuf"] = {}          -- tide.work's encoding buffers
kinds["tide.FdFlags"] = {}          -- stdin's flags, put back at the end
kinds["tide.Load"] = {}             -- a load in progress, on require's stack
kinds["tide.Workers"] = {}          -- a master's only (spec/workers_spec.lua)

kinds["tide.Task"] = { make = function ()
  local t = tide.spawn(function () return 42 end)
  t:await()
  local c = tide.spawn(tide.sleep, 10)
  c:cancel()
  pcall(c.await, c)
  return t, c, function ()
    assert.equal(42, t:await())
    assert.equal("done", t:state())
  end
end }

kinds["tide.Future"] = { waiter = "await", make = function ()
  local f = tide.Future()
  f:set_result(42)
  local c = tide.Future()
  c:cancel()
  return f, c, function ()
    assert.equal(42, f:await())
    assert.equal("done", f:state())
  end
end }

kinds["tide.Cancelled"] = { make = function ()
  local c = tide.spawn(tide.sleep, 10)
  c:cancel("enough")
  local _, e = pcall(c.await, c)
  return e, nil, function ()
    assert.equal("cancelled: enough", tostring(e))
    assert.is_true(tide.iscancelled(e))
  end
end }

kinds["tide.Server"] = { waiter = "accept", make = function ()
  local sv = assert(tide.tcp.listen("127.0.0.1", 0))
  local c = assert(tide.tcp.listen("127.0.0.1", 0))
  c:close()
  return sv, c, function ()
    local _, port = sv:getsockname()
    local s = assert(tide.tcp.connect("127.0.0.1", port))
    local peer = assert(sv:accept())
    s:close()
    peer:close()
    sv:close()
  end
end }

kinds["tide.Stream"] = { waiter = "read", make = function ()
  local sv = assert(tide.tcp.listen("127.0.0.1", 0))
  local _, port = sv:getsockname()
  local s = assert(tide.tcp.connect("127.0.0.1", port))
  local peer = assert(sv:accept())
  local c = assert(tide.tcp.connect("127.0.0.1", port))
  c:close()
  sv:close()
  return s, c, function ()
    assert.equal(s, s:write("ping"))
    assert.equal("ping", peer:read_exactly(4))
    s:close()
    peer:close()
  end
end }

-- The callback layer (transport.c): a transport made by create_connection
-- (the closed one aborted), a server made by create_server.
kinds["tide.Transport"] = { make = function ()
  local sv = assert(tide.tcp.listen("127.0.0.1", 0))
  local _, port = sv:getsockname()
  local function factory () return {} end
  local t = assert(tide.tcp.create_connection("127.0.0.1", port, factory))
  local peer = assert(sv:accept())
  local c = assert(tide.tcp.create_connection("127.0.0.1", port, factory))
  c:abort()
  assert(sv:accept()):close()
  sv:close()
  return t, c, function ()
    assert(not t:is_closing(), "closed")
    t:write("ping")
    assert.equal("ping", peer:read_exactly(4))
    t:close()
    peer:close()
  end
end }

kinds["tide.DatagramTransport"] = { make = function ()
  local function factory () return {} end
  local t = assert(tide.udp.create_datagram_endpoint("127.0.0.1", 0, factory))
  local c = assert(tide.udp.create_datagram_endpoint("127.0.0.1", 0, factory))
  c:abort()
  return t, c, function ()
    assert(not t:is_closing(), "closed")
    local s = assert(tide.udp.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    t:sendto("ping", "127.0.0.1", port)
    assert.equal("ping", (s:recv()))
    s:close()
    t:close()
  end
end }

kinds["tide.ProtocolServer"] = { waiter = "wait", make = function ()
  local function factory () return {} end
  local sv = assert(tide.tcp.create_server("127.0.0.1", 0, factory))
  local c = assert(tide.tcp.create_server("127.0.0.1", 0, factory))
  c:close()
  return sv, c, function ()
    local _, port = sv:getsockname()
    assert(tide.tcp.connect("127.0.0.1", port)):close()
    sv:close()
  end
end }

-- The subprocess protocol (transport_process.c): cat, and one closed.
kinds["tide.SubprocessTransport"] = { make = function ()
  local out, done = {}, false
  local t = assert(tide.process.create_subprocess(function ()
    return { pipe_data_received = function (_, _, d) out[#out + 1] = d end,
             connection_lost = function () done = true end }
  end, { "cat" }))
  local c = assert(tide.process.create_subprocess(function () return {} end, { "cat" }))
  c:close()
  return t, c, function ()
    assert(not t:is_closing(), "closed")
    local w = t:get_pipe_transport(0)
    w:write("ping")
    w:write_eof()
    while not done do tide.sleep(0.005) end
    assert.equal("ping", table.concat(out))
    assert.equal(0, t:get_returncode())
  end
end }

-- tide.http: two responses (the second closed) from a server of its own,
-- which ends before they are returned.
local function responses ()
  local sv = assert(tide.tcp.listen("127.0.0.1", 0))
  local _, port = sv:getsockname()
  local server = tide.spawn(function ()
    for _ = 1, 2 do
      local s = assert(sv:accept())
      s:read_until("\r\n\r\n")
      s:write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\npong")
      s:close()
    end
  end)
  local url = ("http://127.0.0.1:%d/"):format(port)
  local live = assert(tide.http.get(url))
  local closed = assert(tide.http.get(url))
  closed:close()
  server:await()
  sv:close()
  return live, closed
end

kinds["tide.http.Response"] = { make = function ()
  local live, closed = responses()
  return live, closed, function ()
    assert.equal(200, live.status)
    assert.equal("pong", live:body())
    live:close()
  end
end }

kinds["tide.HttpTransfer"] = { make = function ()
  local live, closed = responses()
  return live._t, closed._t, function ()
    assert.equal(200, (live._t:_info()))
    live:close()
  end
end }

-- tide.http.serve: a Serving, and a request and its response from one of
-- its handlers (finished: they are the closed ones).
local function http_serve ()
  local sv = assert(tide.http.serve("127.0.0.1", 0, function (req, res)
    return 200, nil, req.method
  end))
  return sv, function ()
    local _, port = sv:getsockname()
    local r = assert(tide.http.get(("http://127.0.0.1:%d/"):format(port)))
    assert.equal("GET", r:body())
    sv:close()
  end
end

kinds["tide.http.Serving"] = {
  task = true,
  make = function ()
    local sv, check = http_serve()
    local c = http_serve()
    c:close()
    return sv, c, check
  end,
  outside = http_serve,
}

local function http_exchange ()
  local got
  local sv = assert(tide.http.serve("127.0.0.1", 0, function (req, res)
    got = { req, res }
    return 200, nil, "ok"
  end))
  local _, port = sv:getsockname()
  assert(tide.http.get(("http://127.0.0.1:%d/"):format(port)))
  sv:close()
  return got[1], got[2]
end

kinds["tide.http.Request"] = { make = function ()
  local req = http_exchange()
  return nil, req, nil
end }

kinds["tide.http.ServerResponse"] = { make = function ()
  local _, res = http_exchange()
  return nil, res, nil
end }

kinds["tide.HttpParser"] = {}      -- a connection's, inside tide.http.serve

kinds["tide.UdpSocket"] = { waiter = "recv", make = function ()
  local u = assert(tide.udp.bind("127.0.0.1", 0))
  local c = assert(tide.udp.bind("127.0.0.1", 0))
  c:close()
  return u, c, function ()
    local host, port = u:getsockname()
    assert.is_true(u:send("ping", host, port))
    assert.equal("ping", (u:recv()))
    u:close()
  end
end }

kinds["tide.SignalHandler"] = { make = function ()
  local h = tide.signal.on("SIGUSR2", function () end)
  local c = tide.signal.on("SIGUSR2", function () end)
  c:close()
  return h, c, function ()
    assert.matches("SIGUSR2", tostring(h))
    h:close()
    assert.matches("closed", tostring(h))
  end
end }

kinds["tide.Process"] = { waiter = "wait", make = function ()
  local p = assert(tide.process.spawn{ "sleep", "30" })
  local c = assert(tide.process.spawn{ "true" })
  c:wait()
  c:close()
  return p, c, function ()
    assert.is_true(p:kill())
    assert.same({ 143, "SIGTERM" }, { p:wait() })
    p:close()
  end
end }

kinds["tide.Pipeline"] = { make = function ()
  local pl = assert(tide.process.pipeline({ { "sleep", "30" }, { "cat" } }))
  local c = assert(tide.process.pipeline({ { "true" } }))
  c:wait()
  c:close()
  return pl, c, function ()
    assert.is_true(pl:kill("SIGKILL"))
    pl:wait()
    pl:close()
  end
end }

kinds["tide.File"] = { make = function (dir)
  local f = assert(tide.fs.open(dir .. "/file", "w+"))
  local c = assert(tide.fs.open(dir .. "/file", "r"))
  c:close()
  return f, c, function ()
    assert.equal(f, f:write("ping"))
    assert.equal("ping", f:read(4, 0))
    f:close()
  end
end }

kinds["tide.Dir"] = { make = function (dir)
  local _, _, _, d = tide.fs.readdir(dir)
  local _, _, _, c = tide.fs.readdir(dir)
  c:close()
  return d, c, function ()
    assert.is_table(d:read())
    d:close()
  end
end }

kinds["tide.Watcher"] = { waiter = "read", make = function (dir)
  local w = assert(tide.fs.watch(dir))
  local c = assert(tide.fs.watch(dir))
  c:close()
  return w, c, function ()
    assert.matches(dir, tostring(w), 1, true)
    w:close()
    local name, msg = w:read()
    while name do name, msg = w:read() end   -- the events it queued
    assert.equal("watcher closed", msg)
  end
end }

-- A Serving (it needs no task to start), and the check of it.
local function serve ()
  local sv = assert(tide.tcp.serve("127.0.0.1", 0, function (s)
    s:write("hi")
  end))
  return sv, function ()
    local _, port = sv:getsockname()
    local s = assert(tide.tcp.connect("127.0.0.1", port))
    assert.equal("hi", s:read_exactly(2))
    s:close()
    sv:close()
  end
end

-- A self-signed certificate for the TLS kinds, made once in dir.
local function tlscert (dir)
  local cert, key = dir .. "/tls.pem", dir .. "/tls.key"
  if not io.open(cert) then
    assert(os.execute(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 " ..
      "-nodes -keyout %s -out %s -days 1 -subj /CN=localhost 2>/dev/null"):format(key, cert)))
  end
  return { cert = cert, key = key }
end

kinds["tide.TlsContext"] = { make = function (dir)
  local ctx = assert(tide.tls.context(tlscert(dir)))
  return ctx, nil, function ()
    assert(tide.tls.context { servernames = { ["x.test"] = ctx } })
  end
end }

kinds["tide.TlsServer"] = { waiter = "accept", make = function (dir)
  local sv = assert(tide.tls.listen("127.0.0.1", 0, tlscert(dir)))
  local c = assert(tide.tls.listen("127.0.0.1", 0, tlscert(dir)))
  c:close()
  return sv, c, function ()
    local _, port = sv:getsockname()
    local t = tide.spawn(function ()
      return assert(tide.tls.connect("127.0.0.1", port, { verify = false }))
    end)
    local peer = assert(sv:accept())
    t:await():close()
    peer:close()
    sv:close()
  end
end }

kinds["tide.Serving"] = {
  task = true,
  make = function ()
    local sv, check = serve()
    local c = serve()
    c:close()
    return sv, c, check
  end,
  outside = serve,
}

-- A watch on tasks (runtime/watch.c) is internal: a serving's handlers
-- are one.
kinds["tide.Watch"] = {
  task = true,
  make = function ()
    local sv, check = serve()
    local c = serve()
    c:close()
    return sv.handlers, c.handlers, check
  end,
}

kinds["tide.Group"] = {
  task = true,
  make = function ()
    local g, c
    local ev = tide.Event()
    local holder = tide.spawn(tide.group, function (x) g = x ev:wait() end)
    while not g do tide.sleep(0) end
    tide.group(function (x) c = x end)
    return g, c, function ()
      assert.equal(7, g:spawn(function () return 7 end):await())
      ev:set()
      holder:await()
    end
  end,
}

-- The queues: q:close() closes one.
for _, name in ipairs { "Queue", "LifoQueue", "PriorityQueue" } do
  kinds["tide." .. name] = { make = function ()
    local q, c = tide[name](), tide[name]()
    c:close()
    return q, c, function ()
      q:put(5)
      assert.equal(5, q:get())
    end
  end }
end

kinds["tide.Lock"] = { make = function ()
  local l = tide.Lock()
  return l, nil, function ()
    assert.is_true(l:acquire())
    l:release()
  end
end }

kinds["tide.Event"] = { make = function ()
  local e = tide.Event()
  return e, nil, function ()
    e:set()
    assert.is_true(e:wait())
  end
end }

kinds["tide.Condition"] = { make = function ()
  local c = tide.Condition()
  return c, nil, function ()
    c:acquire()
    assert.equal(0, c:notify())
    c:release()
  end
end }

for _, name in ipairs { "Semaphore", "BoundedSemaphore" } do
  kinds["tide." .. name] = { make = function ()
    local s = tide[name](1)
    return s, nil, function ()
      assert.is_true(s:acquire())
      s:release()
      assert.equal(1, s:value())
    end
  end }
end

kinds["tide.Barrier"] = {
  make = function ()
    local b, c = tide.Barrier(1), tide.Barrier(2)
    c:abort()
    return b, c, function () assert.equal(1, b:wait()) end
  end,
  reclose = function (c) c:abort() end,      -- after c:reset()
}

-- What lock:hold() and sem:hold() return: its __close releases.
kinds["tide.Guard"] = { make = function ()
  local s = tide.Semaphore(1)
  local g = s:hold()
  return g, nil, function ()
    getmetatable(g).__close(g)
    assert.equal(1, s:value())
  end
end }

-- ---- The metatables -------------------------------------------------------

-- The runtime, the one object of type tide.Runtime (in the registry).
local function runtime ()
  for _, v in pairs(reg) do
    if getmetatable(v) == reg["tide.Runtime"] then return v end
  end
end

-- Every metatable tide keeps in the registry, by name, and those of the
-- tide modules (by module name, "tide" for tide itself).
local function metatables ()
  if not reg["tide.WorkBuf"] then      -- made on the first tide.work
    tide.run(function () tide.work(function () return 1 end) end)
  end
  local types, modules = {}, {}
  for k, v in pairs(reg) do
    if type(k) == "string" and k:match("^tide%.") and type(v) == "table" and
       v.__name == k then
      types[k] = v
    end
  end
  for k, v in pairs(package.loaded) do
    if type(k) == "string" and (k == "tide" or k:match("^tide%.")) and
       type(v) == "table" and type(getmetatable(v)) == "table" then
      modules[k] = getmetatable(v)
    end
  end
  return types, modules
end

-- The functions of a type (its methods and metamethods) or of a module's
-- metatable, each as { f, names, keys }: names are those where.c may give
-- it ("Stream:read", "Stream.__gc", "tide.__index"), keys those it has.
local function functions (name, mt, module)
  local prefix = module and name or name:gsub("^tide%.", "")
  local list, byf = {}, {}
  local function add (f, k, sep)
    if type(f) ~= "function" then return end
    local e = byf[f]
    if not e then
      e = { f, {}, {} }
      byf[f], list[#list + 1] = e, e
    end
    e[2][#e[2] + 1] = prefix .. sep .. k
    e[3][k] = true
  end
  local index = mt.__index
  if not module and type(index) == "function" then  -- methods in upvalue 1
    index = select(2, debug.getupvalue(index, 1))
  end
  if not module and type(index) == "table" then
    for k, f in pairs(index) do
      if not k:match("^__") then add(f, k, ":") end
    end
  end
  for k, f in pairs(mt) do
    add(f, k, (module or k:match("^__")) and "." or ":")
  end
  return list
end

-- ---- The calls ------------------------------------------------------------

-- Values that are nobody's self.
local function strangers ()
  local light = debug.upvalueid(strangers, 1)  -- (an id: a light userdata)
  return {
    { "nil", nil }, { "a number", 42 }, { "a string", "x" },
    { "a table", {} }, { "a boolean", true }, { "a function", print },
    { "a coroutine", coroutine.create(print) },
    { "a Lua file", io.stdout }, { "a light userdata", light },
  }
end

-- Whether err is an error tide raises on purpose, not one Lua raised for
-- it in the middle of its work ("attempt to index a nil value").
local function clean (err)
  if tide.iscancelled(err) then return true end
  if type(err) ~= "string" then return false end
  for _, what in ipairs { "index", "call", "perform", "concatenate",
                          "compare", "get length" } do
    if err:find("attempt to " .. what, 1, true) then return false end
  end
  return not err:find("'?'", 1, true)
end

-- A record of calls: r.n of them, r.problems what went wrong.
local function record ()
  return { n = 0, problems = {} }
end

local function bad (r, fmt, ...)
  r.problems[#r.problems + 1] = fmt:format(...)
end

-- Call the function of e (of the type name) with ...; what says how its
-- self is wrong, or is "closed" (the self is a closed object of its type:
-- the call may return). A wrong self must raise a clean error naming the
-- function.
local function try (r, name, e, what, ...)
  local f, names = e[1], e[2]
  local k = names[1]
  r.n = r.n + 1
  local ok, err = pcall(f, ...)
  if what == "closed" then
    if not ok and not clean(err) then
      bad(r, "%s (%s) on a closed object: %s", k, name, tostring(err))
    end
  elseif ok then
    bad(r, "%s (%s) with %s: returned", k, name, what)
  elseif type(err) ~= "string" or not clean(err) then
    bad(r, "%s (%s) with %s: %s", k, name, what, tostring(err))
  else
    for _, n in ipairs(names) do
      if err:find("'" .. n .. "'", 1, true) then return end
    end
    bad(r, "%s (%s) with %s: %q does not name %s", k, name, what, err,
        table.concat(names, " or "))
  end
end

-- try with the self v; a __close also as Lua calls it, with an error.
local function tryall (r, name, e, what, v)
  try(r, name, e, what, v)
  if e[3].__close then try(r, name, e, what, v, "boom") end
end

-- Call each function of each type with each wrong self (no argument, the
-- strangers, the objects of the other types) and with the closed object of
-- its own type; return the list of what went wrong (empty if nothing did)
-- and the count of calls.
local function abuse (objs)
  local r = record()
  local selves = strangers()
  selves[#selves + 1] = { "the runtime", runtime() }
  for name, o in pairs(objs) do
    if o.live ~= nil then
      selves[#selves + 1] = { "a live " .. name, o.live }
    end
    if o.closed ~= nil then
      selves[#selves + 1] = { "a closed " .. name, o.closed }
    end
  end
  for name, o in pairs(objs) do
    for _, e in ipairs(o.functions) do
      try(r, name, e, "no argument")
      for _, s in ipairs(selves) do
        local v = s[2]
        if o.closed ~= nil and rawequal(v, o.closed) then
          tryall(r, name, e, "closed", v)
          if o.reclose then o.reclose(v) end
        elseif not rawequal(v, o.live) and not rawequal(v, o.self) then
          tryall(r, name, e, s[1], v)
        end
      end
    end
  end
  return r.problems, r.n
end

-- The same functions set as metamethods of a table and reached through Lua
-- itself (tostring, indexing, calling, a <close> variable, the collector):
-- they raise, and Lua passes the error on. Returns the problems, the count
-- of calls and the least count expected.
local function borrow (objs)
  local ops = {
    __tostring = function (t) return tostring(t) end,
    __index = function (t) return t.pid end,
    __call = function (t) return t() end,
    __len = function (t) return #t end,
    __close = function (t) local _ <close> = t end,
    __gc = function () end,
  }
  local r = record()
  for name, o in pairs(objs) do
    for _, e in ipairs(o.functions) do
      for k in pairs(e[3]) do
        if ops[k] then
          r.n = r.n + 1
          local ok, err = pcall(ops[k], setmetatable({}, { [k] = e[1] }))
          if k ~= "__gc" and (ok or not clean(err)) then
            bad(r, "%s of %s through Lua: %s", k, name,
                ok and "returned" or tostring(err))
          end
        end
      end
    end
  end
  collectgarbage()                 -- the borrowed __gc raise: Lua warns
  return r.problems, r.n, 40
end

-- ---- Setting up, checking, ending -----------------------------------------

-- One object of each kind (live and closed), and the functions of every
-- metatable. intask: made in the running task; else (outside any task)
-- through a tide.run of its own.
local function setup (intask)
  local types, modules = metatables()
  local objs, dir = {}, nil
  local function make ()
    dir = assert(tide.fs.mkdtemp())
    for name in pairs(types) do
      local k = kinds[name]
      if k and k.make then
        local live, closed, check = k.make(dir)
        if not intask and k.task then      -- it cannot outlive the run
          check()
          live, check = nil, nil
        end
        objs[name] = { live = live, closed = closed, check = check,
                       reclose = k.reclose }
      end
    end
  end
  if intask then make() else tide.run(make) end
  for name, mt in pairs(types) do
    local o = objs[name] or {}
    objs[name] = o
    if not intask and kinds[name] and kinds[name].outside then
      o.live, o.check = kinds[name].outside()
    end
    o.functions = functions(name, mt, false)
  end
  objs["tide.Runtime"].self = runtime()
  for name, mt in pairs(modules) do
    objs[name] = { functions = functions(name, mt, true),
                   self = package.loaded[name] }
  end
  return objs, dir
end

-- Check that the live objects still work, and end them.
local function finish (objs, dir)
  for name, o in pairs(objs) do
    if o.check then
      local ok, err = pcall(o.check)
      assert(ok, name .. " after the calls: " .. tostring(err))
    end
  end
  os.remove(dir .. "/file")
  os.remove(dir .. "/tls.pem")
  os.remove(dir .. "/tls.key")
  assert(os.remove(dir))
end

local function assert_none (problems, calls, least)
  assert.is_true(calls >= (least or 5000), "only " .. calls .. " calls")
  assert(#problems == 0, #problems .. " of " .. calls .. " calls went wrong:\n"
         .. table.concat(problems, "\n", 1, math.min(#problems, 40)))
end

-- ---- The specs ------------------------------------------------------------

describe("a wrong self", function ()
  it("is tried on every type in the registry (each has a way to be made)",
     function ()
    local types, modules = metatables()
    local missing = {}
    for name in pairs(types) do
      if not kinds[name] then missing[#missing + 1] = name end
    end
    table.sort(missing)
    assert(#missing == 0, "no way to make a " .. table.concat(missing, ", ")
           .. ": add it to kinds in spec/wrongself_spec.lua")
    assert.is_table(modules.tide)
    -- a metatable in a module (tide.Cancelled) is one of the registry's
    for mod, t in pairs(package.loaded) do
      if type(mod) == "string" and mod:match("^tide") and
         type(t) == "table" then
        for k, v in pairs(t) do
          if type(v) == "table" and type(rawget(v, "__name")) == "string" then
            assert(reg[v.__name] == v,
                   mod .. "." .. k .. " is not in the registry")
          end
        end
      end
    end
  end)

  it("raises naming the function, outside any task", function ()
    local objs, dir = setup(false)
    assert_none(abuse(objs))
    assert_none(borrow(objs))
    tide.run(function () finish(objs, dir) end)
  end)

  it("raises naming the function, in a task", async(function ()
    local objs, dir = setup(true)
    assert_none(abuse(objs))
    assert_none(borrow(objs))
    finish(objs, dir)
  end))

  it("raises naming the function, in a coroutine inside a task",
     async(function ()
    local objs, dir = setup(true)
    local problems, calls = coroutine.wrap(function ()
      return abuse(objs)
    end)()
    assert_none(problems, calls)
    finish(objs, dir)
  end))

  it("raises naming the function, in a __close handler", async(function ()
    local objs, dir = setup(true)
    local problems, calls
    do
      local _ <close> = setmetatable({}, { __close = function ()
        problems, calls = abuse(objs)
      end })
    end
    assert_none(problems, calls)
    finish(objs, dir)
  end))

  it("raises naming the function, in on_done callbacks", async(function ()
    local objs, dir = setup(true)
    local problems, calls
    local t = tide.spawn(function () end)
    t:on_done(function () problems, calls = abuse(objs) end)
    t:await()
    assert_none(problems, calls)
    t:on_done(function () problems, calls = abuse(objs) end)  -- at once
    assert_none(problems, calls)
    finish(objs, dir)
  end))
end)

describe("the runtime's own metatable", function ()
  it("refuses a __gc by hand, and tide goes on", function ()
    local rt = runtime()
    assert.is_userdata(rt)
    local ok, err = pcall(reg["tide.Runtime"].__gc, rt)
    assert.is_false(ok)
    assert.matches("Runtime.__gc", err, 1, true)
    assert.equal(3, tide.run(function ()
      return tide.spawn(function () tide.sleep(0) return 3 end):await()
    end))
  end)
end)

describe("a __gc called by hand", function ()
  it("closes the object: its methods work or raise, its waiters wake",
     async(function ()
    local types = metatables()
    local dir = assert(tide.fs.mkdtemp())
    local r, n = record(), 0
    for name, mt in pairs(types) do
      local k = kinds[name]
      if type(mt.__gc) == "function" and k and k.make then
        local fns = functions(name, mt, false)
        local live, _, check = k.make(dir)
        local t = k.waiter and tide.spawn(live[k.waiter], live)
        while t and t:state() ~= "waiting" do tide.sleep(0) end
        for _, e in ipairs(fns) do
          if e[3].__gc then tryall(r, name, e, "closed", live) end
        end
        if t then
          local ok, x, err = pcall(tide.timeout, 5, t)
          assert(not ok or x ~= nil or err ~= "timeout",
                 name .. ":" .. k.waiter .. " still waits after __gc")
        end
        for _, e in ipairs(fns) do tryall(r, name, e, "closed", live) end
        pcall(check)             -- ends what make started; the live one fails
        n = n + 1
      end
    end
    collectgarbage()             -- the collector's __gc, after those by hand
    assert.is_true(n >= 8, n .. " types")
    assert_none(r.problems, r.n, 60)
    os.remove(dir .. "/file")
    os.remove(dir .. "/tls.pem")
    os.remove(dir .. "/tls.key")
    assert(os.remove(dir))
  end))
end)
