-- misuse_spec.lua: wrong use of the whole API, at random but reproducibly.
-- Every function of the tide table and every method of the objects made
-- from it gets wrong arguments (nil, odd numbers, strings with zero bytes
-- or huge, tables, functions, userdata of other types, coroutines) and
-- wrong selves, called from tasks, nested coroutines, __close, __gc and
-- on_done callbacks. Each call must return or raise a string or a
-- tide.Cancelled (and, but for metamethods, no internal error such as
-- "net:50: attempt to index a number value"), the process must survive,
-- and no task may be left behind.
--
-- MISUSE_SEED and MISUSE_N vary the run: a seed makes the same calls in
-- every run (what they meet may differ where timing decides it), and a
-- failure names the seed and the call; MISUSE_VERBOSE=1 writes each call
-- and its outcome on stderr. Nothing leaves the machine or a temporary
-- directory: paths are confined to it, hosts are local, ports are ours or
-- refused, programs are `true` and the like, and the only signals sent are
-- 0 and SIGURG, to this process.

local SEED = math.tointeger(tonumber(os.getenv("MISUSE_SEED"))) or 1
local N = math.tointeger(tonumber(os.getenv("MISUSE_N"))) or 4000
local TMO = 0.02                   -- what a call may wait
local REFRESH = 100                -- calls between new sets of objects
local VERBOSE = os.getenv("MISUSE_VERBOSE")  -- each call on stderr

-- xorshift64: the same sequence for a seed, in tide and in lua5.4.
local state = SEED ~= 0 and SEED or 1
local function rand (n)
  state = state ~ (state << 13)
  state = state ~ (state >> 7)
  state = state ~ (state << 17)
  return state % n + 1
end
local function pick (list) return list[rand(#list)] end

local function mypid ()
  local f = assert(io.open("/proc/self/stat"))
  local pid = math.tointeger(tonumber(f:read("a"):match("^%d+")))
  f:close()
  return pid
end

-- ---- The values -----------------------------------------------------------

local HUGE = ("x"):rep(1 << 20)
local NUMBERS = {
  0, 1, 2, 3, -1, -7, 0.5, -0.0, 0 / 0, math.huge, -math.huge,
  math.maxinteger, math.mininteger, 1e300, -1e300, 2 ^ 53, 2 ^ 63, 1e-300,
  65536, 4294967296,
}
local STRINGS = {
  "", "x", "a\0b", "\0", HUGE, ("\0"):rep(4096), "-1", "nan", "inf", "0x10",
  "r", "w", "a+", "inet", "SIGWINCH", "__index", "%s%d", "\255\254",
}
local upvalue = {}
local FUNCTIONS = {
  function () end,
  function (...) return ... end,
  function () error("misuse: an error of the pool") end,
  function () error("misuse: an error with level 0", 0) end,
  function () tide.sleep(0.002) return 1 end,
  function () tide.yield() return true end,
  function () coroutine.yield() end,
  function () return upvalue end,  -- an upvalue: tide.work refuses it
  function () tide.sleep(0.05) end,
  type, tostring, math.floor, select,
}

-- Objects of every kind, made anew every REFRESH calls (P.*).
local P = {}
local made = {}                    -- what the calls made: closed at refresh
local DIR, MAIN                    -- the temporary directory, the test's task

local function anyvalue ()
  local k = rand(10)
  if k == 1 then return nil
  elseif k == 2 then return rand(2) == 1
  elseif k == 3 then return pick(NUMBERS)
  elseif k == 4 then return pick(STRINGS)
  elseif k == 5 then
    return pick({ {}, { 1, 2, 3 }, { {} }, { n = -1 }, { [0] = "zero" },
                  setmetatable({}, { __index = function () error("misuse: index") end }),
                  { pick(NUMBERS), pick(STRINGS) }, { timeout = pick(NUMBERS) } })
  elseif k == 6 then return pick(FUNCTIONS)
  elseif k == 7 then
    return pick({ coroutine.create(function () end), P.deadco or coroutine.running(),
                  coroutine.running() })
  else                             -- userdata and objects of other types
    local objs = P.list
    return objs[rand(#objs)]
  end
end

-- ---- Shaping what could harm ------------------------------------------------

local HOSTS = { "127.0.0.1", "::1", "localhost", "", "a\0b", "127.0.0.1\0" }
local SIGS = { "SIGUSR1", "USR2", "SIGWINCH", "SIGHUP", "SIGINT", "SIGKILL",
               "SIGSTOP", "NOPE", "", "SIGUSR1\0", 10, 12, 0, -1, 65, 1.5,
               0 / 0, math.huge }

local function confine (v)          -- a path inside DIR
  if type(v) == "string" then return DIR .. "/" .. (v:gsub("[/%.]", "_")) end
  if type(v) == "number" then return DIR .. "/" .. tostring(v):gsub("[/%.]", "_") end
  return v
end

-- These draw as many random numbers whatever v is (see likely below).
local function host (v)
  local h = pick(HOSTS)
  if type(v) == "string" or type(v) == "number" then return h end
  return v
end

local function port (v)
  local p = pick({ 0, P.port, P.udpport, 1, -1, 65536, 0 / 0, 1.5, 1e300, "0",
                   "x", math.maxinteger })
  if type(v) == "string" or type(v) == "number" then return p end
  return v
end

local function stdio (v)
  local s, fd = pick({ "null", "pipe", "inherit", "stdout", confine(v) }),
                pick({ 1, 2, -1, 9999, 0.5 })
  if type(v) == "string" then return s end
  if type(v) == "number" then return fd end
  return v
end

-- A command for spawn or pipeline: a harmless program, odd arguments and
-- options of every kind, with odd values.
local function command ()
  local c = { pick({ "true", "false", "/bin/true", "no-such-program-misuse", "" }) }
  for i = 2, rand(4) do c[i] = rand(3) == 1 and anyvalue() or pick(STRINGS) end
  for _ = 1, rand(3) - 1 do
    local opt = pick({ "env", "env_extend", "cwd", "stdin", "stdout", "stderr",
                       "detached", "timeout", "input", "max_output" })
    local v = anyvalue()
    if opt == "cwd" then v = confine(v)
    elseif opt == "stdin" or opt == "stdout" or opt == "stderr" then v = stdio(v)
    elseif opt == "input" and v == HUGE then v = "in"
    end
    c[opt] = v
  end
  if rand(8) == 1 then            -- no program but these runs
    local v = anyvalue()
    c[1] = type(v) == "string" and pick({ "", "a\0b", HUGE, "no-such-program" }) or v
  end
  return c
end

local function options ()
  local o = command()
  for i = #o, 1, -1 do o[i] = nil end
  return o
end

-- Values that got past the checks of argument i of a function: good[name][i]
-- (self is argument 1 of a method). Half the arguments come from there, so
-- that calls get past their first argument; as many random numbers are
-- drawn either way, so that the sequence of calls depends on the seed only.
local good = {}
local NIL = {}

local function learn (name, full, n, r)
  local upto = n
  if not r[1] then
    local e = r[2]
    if type(e) ~= "string" or e:match("on bad self") then return end
    upto = (tonumber(e:match("^bad argument #(%d+)")) or n + 1) - 1
  end
  local g = good[name] or {}
  good[name] = g
  for i = 1, math.min(upto, 8) do
    local l = g[i] or {}
    g[i] = l
    local v = full[i]
    if v == nil then v = NIL end
    if #l < 8 then l[#l + 1] = v else l[(i * 7 + #name) % 8 + 1] = v end
  end
end

local function likely (name, i, v)
  local l = good[name] and good[name][i]
  local coin, k = rand(2), rand(8)
  if coin == 1 and l and #l > 0 then
    v = l[(k - 1) % #l + 1]
    if v == NIL then v = nil end
  end
  return v
end

-- Arguments for the function called name (but self: off is 1 for a
-- method).
local function arguments (name, off)
  local args, n = {}, rand(5) - 1
  if rand(40) == 1 then n = 200 end
  for i = 1, n do args[i] = likely(name, i + off, anyvalue()) end
  if name:match("^tide%.fs%.") or name:match("^tide%.pipe%.") then
    args[1] = confine(args[1])
    if not name:match("^tide%.pipe%.") then args[2] = confine(args[2]) end
    if name == "tide.fs.mkdtemp" and args[1] == nil then args[1] = DIR .. "/t-" end
    local handler = pick(FUNCTIONS)
    if name == "tide.pipe.serve" and type(args[2]) ~= "function" then
      args[2] = handler
    end
    n = math.max(n, 2)
  elseif name:match("^tide%.tcp%.") or name == "tide.udp.bind"
      or name == "tide.socket.connect" or name == "tide.socket.bind" then
    args[1], args[2] = host(args[1]), port(args[2])
    n = math.max(n, 2)
  elseif name:match("^tide%.dns%.") or name:match("^tide%.socket%.dns%.")
      or name == "UdpSocket:join" or name == "UdpSocket:leave" then
    args[1], args[2] = host(args[1]), host(args[2])
  elseif name == "UdpSocket:send" then
    args[2], args[3] = host(args[2]), port(args[3])
    if args[2] == nil then args[3] = nil end   -- to the peer, which is ours
    n = math.max(n, 3)
  elseif name == "UdpSocket:connect" then
    args[1], args[2] = host(args[1]), port(args[2])
    n = math.max(n, 2)
  elseif name == "tide.process.spawn" then
    args[1] = command()
  elseif name == "tide.process.exec" then
    args[1] = pick({ "true", "exit 3", "kill -9 $$", "sleep 0.001", "", "\0" })
    if rand(3) == 1 then args[1] = command() end
    if rand(3) == 1 then args[1] = { command(), command() } end
    if rand(2) == 1 then
      local o = options()
      o.stdin, o.stdout, o.cwd = nil, nil, confine(o.cwd)
      if o.stderr ~= nil then o.stderr = stdio(o.stderr) end
      args[2] = o
    elseif type(args[2]) == "table" then
      args[2] = {}                 -- no odd stdin, stdout or cwd
    end
  elseif name == "tide.process.pipeline" then
    args[1] = { command(), command() }
    if rand(4) == 1 then args[1] = { command() } end
    if rand(8) == 1 then args[1] = anyvalue() end
    args[2] = options()
  elseif name == "tide.signal.kill" then
    local pid = pick({ P.pid, P.pid, 0, -1, "x", 0 / 0, 1.5, math.huge, {} })
    args = { pid, pid == P.pid and pick({ 0, "SIGURG", "URG", "NOPE", -5, 1e9,
                                          0 / 0, 1.5, {}, "SIGURG\0" }) or 0 }
    n = 2
  elseif name == "tide.signal.on" or name == "tide.signal.wait" then
    local sig = pick(SIGS)
    if args[1] == nil or type(args[1]) == "string" or type(args[1]) == "number" then
      args[1] = sig
    end
  elseif name == "tide.debug" then
    args[1] = rand(2) == 1 and false or nil
  elseif name == "tide.run" then
    args[1] = pick(FUNCTIONS)
  end
  return args, n
end

-- ---- The objects ----------------------------------------------------------

local function track (v)
  if type(v) == "userdata" or type(v) == "table" then
    made[#made + 1] = v
    local mt = getmetatable(v)
    if mt and mt.__name == "tide.Task" and v ~= MAIN then  -- its error is observed
      v:on_done(function (t) t:result() end)
    end
    if mt and mt.__name == "tide.Future" then   -- the same
      v:on_done(function (f) f:result() end)
    end
  end
end

local function close (o)
  local mt = getmetatable(o)
  local name = type(mt) == "table" and mt.__name
  if name == "tide.Task" then
    if o == MAIN or o == tide.current() then return end
    o:cancel()
    tide.timeout(1, function () pcall(o.await, o) end)
    pcall(o.result, o)
  elseif name and name:match("^tide%.") then
    local c = o.close
    if type(c) == "function" then
      tide.timeout(1, function () pcall(c, o) end)
    end
  end
end

local function refresh ()
  for _, o in ipairs(P.list or {}) do close(o) end
  for _, o in ipairs(made) do close(o) end
  made = {}
  P = { pid = mypid() }
  local l = {}
  local function add (o) if o ~= nil then l[#l + 1] = o end return o end
  local server = add(tide.tcp.listen("127.0.0.1", 0))
  P.port = select(2, server:getsockname())
  add(tide.tcp.connect("127.0.0.1", P.port))
  add(server:accept())
  local udp = add(tide.udp.bind("127.0.0.1", 0))
  P.udpport = select(2, udp:getsockname())
  udp:connect("127.0.0.1", P.udpport)
  add(tide.pipe.listen(DIR .. "/sock"))
  add(tide.tcp.serve("127.0.0.1", 0, function () end))
  add(tide.fs.open(DIR .. "/file", "w+"))
  add(tide.fs.watch(DIR))
  local proc = add(tide.process.spawn{ "sleep", "1", stdin = "pipe", stdout = "pipe" })
  add(proc.stdin)
  add(proc.stdout)
  add(tide.process.pipeline({ { "sleep", "1" }, { "true" } }, { stdout = "pipe" }))
  add(tide.signal.on("SIGUSR2", function () end))
  add(tide.spawn(function () end))
  local failed = add(tide.spawn(function () error("misuse: failed task") end))
  add(tide.spawn(function () tide.sleep(0.05) end))
  local cancelled = add(tide.spawn(function () tide.sleep(1) end))
  tide.yield()
  pcall(failed.await, failed)
  cancelled:cancel()
  pcall(cancelled.await, cancelled)
  add(tide.Queue(1))
  add(tide.LifoQueue())
  add(tide.PriorityQueue())
  local lock = add(tide.Lock())
  add(tide.Event())
  add(tide.Condition(lock))
  add(tide.Semaphore(1))
  add(tide.BoundedSemaphore(2))
  add(tide.Barrier(2))
  add(tide.Future())
  add(tide.Future()):set_result(1)
  add(select(2, pcall(error, setmetatable({}, tide.Cancelled))))
  tide.group(function (g) P.group = g end)
  add(P.group)
  add(io.stdout)
  add(io.tmpfile())
  P.deadco = coroutine.create(function () end)
  coroutine.resume(P.deadco)
  for _, o in ipairs(l) do
    local mt = getmetatable(o)
    if mt and mt.__name == "tide.Task" then o:on_done(function (t) t:result() end) end
    if mt and mt.__name == "tide.Future" then o:on_done(function (f) f:result() end) end
  end
  P.list = l
end

-- ---- The targets: functions of the tide table and methods ----------------------

local function sortedkeys (t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end

local PROCESS_METHODS = { "wait", "kill", "close" }

local LUASOCKET = { smtp = true, http = true, ftp = true, tp = true,
                    headers = true, url = true, mbox = true,
                    try = true }   -- socket.lua's socket.newtry(): raises
                                   -- a table by design, for socket.protect

-- { name, fn, class } for every function reachable; class: the
-- metatable name a method's self belongs to.
local function targets ()
  local list = {}
  local function walk (t, prefix)
    for _, k in ipairs(sortedkeys(t)) do
      local v = t[k]
      if prefix .. k == "tide.stop" then  -- it ends the run: cancels every task
      elseif prefix == "tide.socket." and LUASOCKET[k] then
        -- LuaSocket's own Lua modules, which set themselves in the socket
        -- table when a program (an earlier spec file) loads them on top of
        -- tide.socket: theirs, with their conventions, not tide's
      elseif type(v) == "function" then list[#list + 1] = { prefix .. k, v }
      elseif type(v) == "table" and k:match("^%l") then walk(v, prefix .. k .. ".") end
    end
  end
  walk(tide, "tide.")
  local seen = {}
  for _, o in ipairs(P.list) do
    local mt = getmetatable(o)
    local cname = type(mt) == "table" and type(mt.__name) == "string" and mt.__name
    if cname and cname:match("^tide%.") and not seen[cname] then
      seen[cname] = true
      local short = cname:gsub("^tide%.", "")
      local methods = {}
      for _, k in ipairs(sortedkeys(mt)) do
        if type(mt[k]) == "function" then methods[k] = mt[k] end
      end
      if type(mt.__index) == "table" then
        for _, k in ipairs(sortedkeys(mt.__index)) do
          if type(mt.__index[k]) == "function" then methods[k] = mt.__index[k] end
        end
      elseif type(mt.__index) == "function" then
        for _, k in ipairs(PROCESS_METHODS) do
          local ok, f = pcall(function () return o[k] end)
          if ok and type(f) == "function" then methods[k] = f end
        end
      end
      for _, k in ipairs(sortedkeys(methods)) do
        list[#list + 1] = { short .. ":" .. k, methods[k], cname }
      end
    end
  end
  return list
end

-- ---- The calls ----------------------------------------------------------------

local function describe_value (v)
  if type(v) == "string" then
    if #v > 160 then return ("<string of %d bytes>"):format(#v) end
    return (("%q"):format(v):gsub("\n", "n"))
  end
  local ok, s = pcall(tostring, v)
  return ok and type(s) == "string" and s or type(v)
end

local function describe_call (name, args, n)
  local parts = {}
  for i = 1, math.min(n, 8) do parts[i] = describe_value(args[i]) end
  if n > 8 then parts[#parts + 1] = ("... (%d arguments)"):format(n) end
  return name .. "(" .. table.concat(parts, ", ") .. ")"
end

-- An error of tide's own code rather than a wrong-use error: a Lua error
-- inside the Lua-side library, or one the C API raised for a binding.
-- Comparing the items of a PriorityQueue is the items' error, and a task
-- body that yields is Lua's (both documented).
local LIBRARY = { tide = true, sync = true, net = true, process = true, fs = true }

local function internal (e)
  local chunk, msg = e:match("^(%w+):%d+: (.*)$")
  if not LIBRARY[chunk] then msg = e end
  return msg:match("^attempt to ") and not msg:match("^attempt to compare")
         and msg ~= "attempt to yield from outside a coroutine"
end

-- Whether a pcall's outcome is one the API may give: any results, or a
-- string or a tide.Cancelled raised. Metamethods called with a wrong
-- self may raise what Lua raises for it.
local SETERROR = setmetatable({}, { __mode = "k" })  -- set_error's values

local function acceptable (r, name)
  if r[1] then return true end
  local e = r[2]
  if tide.iscancelled(e) then return true end
  if e ~= nil and SETERROR[e] then return true end   -- a failed future's
  if type(e) ~= "string" then return false end
  if name == "tide.socket.select" and e:match("attempt to index an? %w+ value$")
  then                             -- LuaSocket's own words for a list item
    return true                    -- without getfd (it indexes the item)
  end
  return name:match(":__") or not internal(e)
end

local CONTEXTS = { "task", "task", "task", "coroutine", "close", "gc", "on_done" }

-- Call f(...) in a context; the table.pack of its pcall, or nil if it
-- did not end within TMO (it was cancelled).
local function run_in (ctx, f, ...)
  local args = table.pack(...)
  local function call () return table.pack(pcall(f, table.unpack(args, 1, args.n))) end
  if ctx == "task" then
    local r = table.pack(pcall(tide.timeout, TMO, call))
    if not r[1] then return r end  -- tide.timeout itself raised
    return r[2]                    -- nil: it timed out
  elseif ctx == "coroutine" then   -- two coroutines deep, inside a task
    local r = tide.timeout(TMO, function ()
      return coroutine.wrap(function ()
        return coroutine.wrap(call)()
      end)()
    end)
    return r
  elseif ctx == "close" then
    local r = tide.timeout(TMO, function ()
      local out
      do
        local _ <close> = setmetatable({}, { __close = function () out = call() end })
      end
      return out
    end)
    return r
  elseif ctx == "gc" then
    local out
    setmetatable({}, { __gc = function () out = call() end })
    collectgarbage()
    collectgarbage()
    return out or { true, n = 1 }  -- not finalized yet: nothing to check
  else                             -- on_done: outside any task
    local out
    local t = tide.spawn(function () end)
    t:on_done(function () out = call() end)
    t:await()
    return out
  end
end

describe("wrong use of the tide API", function ()
  it(("returns or raises an error value for each of %d random calls (MISUSE_SEED=%d)")
      :format(N, SEED), async(function ()
    DIR = assert(tide.fs.mkdtemp())
    MAIN = tide.current()
    finally(function () os.execute("rm -rf '" .. DIR .. "'") end)
    local before = {}
    for _, t in ipairs(tide.tasks()) do before[t] = true end
    local list
    if VERBOSE then
      for k, f in ipairs(FUNCTIONS) do
        io.stderr:write(("misuse function %d: %s\n"):format(k, tostring(f)))
      end
    end
    for i = 1, N do
      if (i - 1) % REFRESH == 0 then
        refresh()
        list = targets()
      end
      local target = list[rand(#list)]
      local name, fn, class = target[1], target[2], target[3]
      local args, n = arguments(name, class and 1 or 0)
      local ctx = pick(CONTEXTS)
      if class then                -- a method: its own object, or another value
        local self
        if rand(4) > 1 then
          for _, o in ipairs(P.list) do
            local mt = getmetatable(o)
            if mt and mt.__name == class then self = o break end
          end
        else
          self = anyvalue()
        end
        args = { likely(name, 1, self), table.unpack(args, 1, n) }
        n = n + 1
      end
      if VERBOSE then
        io.stderr:write(("misuse %d %s: %s\n"):format(i, ctx,
          describe_call(name, args, n)))
      end
      if name == "Future:set_error" and args[2] ~= nil then
        SETERROR[args[2]] = true     -- awaiting it raises this, any type
      end
      local r = run_in(ctx, fn, table.unpack(args, 1, n))
      if VERBOSE then
        io.stderr:write(("misuse %d -> %s\n"):format(i, r == nil and "waited"
          or r[1] and "returned" or "raised: " .. describe_value(r[2])))
      end
      if r then
        if not acceptable(r, name) then
          error(("call %d (MISUSE_SEED=%d, in %s): %s raised a %s: %s"):format(
            i, SEED, ctx, describe_call(name, args, n), type(r[2]),
            describe_value(r[2])), 0)
        end
        learn(name, args, n, r)
        for k = 2, r.n do track(r[k]) end
      end
    end
    for _, o in ipairs(P.list) do close(o) end
    for _, o in ipairs(made) do close(o) end
    tide.sleep(0.1)                -- shielded and background work ends
    local left = {}
    for _, t in ipairs(tide.tasks()) do
      if not before[t] and t ~= tide.current() then left[#left + 1] = tostring(t) end
    end
    assert.equal(0, #left, "tasks left behind: " .. table.concat(left, ", "))
  end))
end)
