-- soak.lua: mixed load in one tide process for SOAK_S seconds (default 600):
-- connection churn, bulk transfers, `cat` round trips, timers, queues, and
-- cancellations at random points, against peers it starts on 127.0.0.1
-- (itself and tools/soak_peer.py). It samples RSS, the live Lua heap, open
-- fds, live tasks and libuv handles every few seconds, and exits 1 if any of
-- them grows past its warm-up level, if an operation loses or mangles data,
-- if the counts do not add up at the end, or if anything the load opened is
-- still open once it has stopped.
-- Run: build/tide tools/soak.lua   (make soak; SOAK_S=60 make soak)
-- Environment: SOAK_S (seconds), SOAK_SEED (random seed; printed),
-- SOAK_RSS_MARGIN (percent of growth allowed for RSS and the Lua heap,
-- default 10).

local S = tonumber(os.getenv("SOAK_S")) or 600
local SEED = tonumber(os.getenv("SOAK_SEED")) or os.time()
local RSS_MARGIN = tonumber(os.getenv("SOAK_RSS_MARGIN")) or 10
assert(S >= 10, "SOAK_S: at least 10 seconds")
local INTERVAL = math.max(1, math.min(5, S / 30))    -- between samples
local GRACE = 60                       -- s past the end to stop in, or fail
local HERE = arg[0]:match("^(.*)/[^/]*$") or "."
local PYTHON = os.getenv("PYTHON") or "python3"

-- Allowed growth of the last third's median over the warm-up maximum: for
-- RSS and the Lua heap (KiB), RSS_MARGIN percent but at least FLOOR. RSS
-- is the heap's high-water mark, in 2 MiB huge pages (runtime/heap.c):
-- a burst (the machine stalls the process, then work piles up) raises it
-- at any time by a few pages, and it stays there; a leak goes on growing.
-- The Lua heap holds the data in flight (writes of up to 1 MiB).
local FLOOR = { rss = 16384, lua = 2048 }
local SLACK = { fds = 16, tasks = 40, handles = 16 }

-- The load. Rates are targets: a busy machine gets less done.
local CHURN_RATE, CHURN_WORKERS = 650, 16      -- tide to tide, per second
local PY_IN_RATE, PY_IN_CONC = 300, 8          -- python3 to tide
local PY_OUT_RATE, PY_OUT_WORKERS = 100, 4     -- tide to python3
local BULK_WORKERS, BULK_MAX = 2, 4 * 1048576  -- each a transfer at a time
local CAT_WORKERS, CAT_MAX = 2, 262144
local TIMER_TASKS = 20
local QUEUE_ITEMS = 600                        -- per producer and round

math.randomseed(SEED)
local random, now, sleep = math.random, tide.now, tide.sleep
local concat, fmt = table.concat, string.format

local deadline                          -- the load stops at this tide.now()
local function running () return now() < deadline end

-- ---- Counts and failures ----------------------------------------------------

local ops = setmetatable({}, { __index = function () return 0 end })
local function count (k, n) ops[k] = ops[k] + (n or 1) end

-- An operation cut by tide.timeout (or a cancel) before it completed.
local CUTS = { "connection", "write", "read", "spawn", "sleep", "call_later",
               "put", "get" }
local function cut (what)
  count("cut")
  count("cut_" .. what)
end

local failures = {}
local function fail (...)
  local msg = fmt(...)
  failures[#failures + 1] = msg
  if #failures <= 20 then io.stderr:write("soak: FAIL: ", msg, "\n") end
end

-- A cancellation limit: 0 to 5 ms, so that it falls before, during or
-- after the operation it cuts.
local function limit () return random() * 0.005 end

-- Random bytes: the stream that repeats a pool of PERIOD random bytes.
-- The period is odd, so that it lines up with no chunk size, and small:
-- the collector lets garbage grow in proportion to what is live, and the
-- heap's high-water mark is what RSS shows. The pool holds the period and
-- then its first MiB again, so that a slice of up to 1 MiB at any offset is
-- one sub.
local PERIOD, MAXSLICE = 1048576 + 7, 1048576
local pool
do
  local f = assert(io.open("/dev/urandom", "rb"))
  local once = f:read(PERIOD)
  f:close()
  pool = once .. once:sub(1, MAXSLICE)
end

-- n bytes (at most MAXSLICE) from offset at of the stream (0-based).
local function slice (at, n)
  at = at % PERIOD
  return pool:sub(at + 1, at + n)
end

-- Whether d is the stream's bytes from offset at (no copy made).
local function matches (d, at)
  at = at % PERIOD
  return pool:find(d, at + 1, true) == at + 1
end

local function bytes (n)
  return slice(random(0, PERIOD - 1), n)
end

-- Where two strings first differ (1-based), for messages.
local function differ (a, b)
  local n = math.min(#a, #b)
  local lo = 1
  while lo <= n do
    local hi = math.min(n, lo + 4095)
    if a:sub(lo, hi) ~= b:sub(lo, hi) then
      for i = lo, hi do
        if a:byte(i) ~= b:byte(i) then return i end
      end
    end
    lo = hi + 1
  end
  return n + 1
end

-- A worker's pace: call it once an operation; it sleeps so that the calls
-- come rate times a second, without a burst to catch up after a stall.
local function pacer (rate)
  local gap, due = 1 / rate, now() + random() / rate
  return function ()
    local d = due - now()
    if d > 0 then sleep(d) elseif d < -1 then due = now() end
    due = due + gap
  end
end

-- ---- Samples ----------------------------------------------------------------

local function rss_kib ()
  local status = assert(tide.fs.read_file("/proc/self/status"))
  return tonumber(status:match("VmRSS:%s*(%d+)"))
end

local function fd_count ()
  local n = 0
  for _ in tide.fs.scandir("/proc/self/fd") do n = n + 1 end
  return n
end

-- A sample. The Lua heap is measured after a full collection: what is
-- live, not what awaits the collector.
local T0
local function sample ()
  local hopen, hall = tide.handles()
  collectgarbage()
  return {
    t = now() - T0, rss = rss_kib(), fds = fd_count(), tasks = #tide.tasks(),
    handles = hall, hopen = hopen, lua = collectgarbage("count"),
  }
end

local function mib (kib) return kib / 1024 end

local function show (s, what)
  print(fmt("soak: %6.1f s  rss %6.1f MiB  lua %6.1f MiB  fds %4d  tasks %4d  "
            .. "handles %4d (%d open)  %s", s.t, mib(s.rss), mib(s.lua), s.fds,
            s.tasks, s.handles, s.hopen, what))
  io.stdout:flush()
end

local function rates (prev, dt)
  local parts = {}
  for _, k in ipairs { "churn", "py_in", "py_out", "bulk", "cat", "queue",
                       "timer", "cut" } do
    parts[#parts + 1] = fmt("%s %d", k, math.floor((ops[k] - (prev[k] or 0))
                                                   / dt + 0.5))
  end
  return concat(parts, " ") .. " /s"
end

-- ---- Echo servers and connection churn --------------------------------------

-- The handler of tide's echo servers: echo until the end of the stream,
-- counting connections and bytes under key.
local function echo_handler (key)
  return function (s)
    local n = 0
    s:setoption("sndbuf", 65536)
    s:setoption("rcvbuf", 65536)
    while true do
      local data, err = s:read()
      if not data then
        if err then return end          -- reset: a client cut short
        break
      end
      n = n + #data
      if not s:write(data) then return end
    end
    count(key)
    count(key .. "_bytes", n)
  end
end

-- One connection: send n bytes, read them back, check, close. Returns true
-- when done (the stream closes on the way out, a cancellation included).
local function echo_once (port, n)
  local s <close>, err = tide.tcp.connect("127.0.0.1", port)
  if not s then
    fail("connect to %d: %s", port, err)
    return
  end
  local msg = bytes(n)
  local ok, werr = s:write(msg)
  if not ok then
    fail("write to %d: %s", port, werr)
    return
  end
  local back, rerr = s:read_exactly(n)
  if back ~= msg then
    fail("echo of %d bytes from %d: %s", n, port,
         back and "differs at byte " .. differ(back, msg) or rerr)
    return
  end
  return true
end

-- Connections to port at rate a second in all, workers at a time; one in
-- five is cut at a random point (tide.timeout).
local function churn (key, port, rate, workers)
  local function worker ()
    local pace = pacer(rate / workers)
    while running() do
      pace()
      local n = random(1, 2048)
      if random() < 0.2 then
        local ok, why = tide.timeout(limit() * 4, echo_once, port, n)
        if ok then count(key) elseif why == "timeout" then cut("connection") end
      elseif echo_once(port, n) then
        count(key)
      end
    end
  end
  tide.group(function (g)
    for _ = 1, workers do g:spawn(worker) end
  end)
end

-- ---- Bulk transfers ---------------------------------------------------------

-- Send n bytes of the stream from offset base through an echo server on
-- port, and check the echo byte for byte as it comes, with writes and reads
-- cut at random and retried: a cut write takes none of its data, a cut read
-- loses none. Small socket buffers here and in tide's echo server, and a
-- reader that starts late and pauses now and then, make writes (up to
-- 1 MiB) wait for room, so that cuts fall on them too.
local function transfer (port, base, n)
  local s <close>, err = tide.tcp.connect("127.0.0.1", port)
  if not s then
    fail("bulk: connect to %d: %s", port, err)
    return
  end
  s:setoption("sndbuf", 65536)
  s:setoption("rcvbuf", 65536)
  local broken, back = false, 0
  local function broke (...)            -- the other side must not wait on
    if not broken then fail(...) end
    broken = true
    s:close()
  end
  local function writer ()
    local sent = 0
    while sent < n do
      local len = math.min(n - sent, random(1, MAXSLICE))
      local chunk = slice(base + sent, len)
      local ok, why
      if random() < 0.3 then
        ok, why = tide.timeout(limit(), s.write, s, chunk)
      else
        ok, why = s:write(chunk)
      end
      if ok then
        sent = sent + len
      elseif why == "timeout" then
        cut("write")
      else
        return broke("bulk: write to %d: %s", port, why)
      end
    end
    s:shutdown()
  end
  local function reader ()
    sleep(random() * 0.05)
    while true do
      local d, why
      if random() < 0.3 then
        d, why = tide.timeout(limit(), s.read, s)
      else
        d, why = s:read()
      end
      if d then
        if not matches(d, base + back) then
          local want = slice(base + back, #d)
          return broke("bulk: the echo from %d differs at byte %d of %d",
                       port, back + differ(d, want), n)
        end
        back = back + #d
        if random() < 0.05 then sleep(random() * 0.01) end
      elseif why == "timeout" then
        cut("read")
      elseif why then
        return broke("bulk: read from %d: %s", port, why)
      else
        return                          -- the end of the echo
      end
    end
  end
  tide.gather(writer, reader)
  if broken then return end
  if back ~= n then
    return fail("bulk: %d bytes sent through %d, %d came back", n, port, back)
  end
  count("bulk")
  count("bulk_bytes", n)
end

local function bulk (ports)
  local function worker (i)
    while running() do
      local port = ports[(i + ops.bulk) % #ports + 1]
      local n = random(1048576, BULK_MAX)
      transfer(port, random(0, PERIOD - 1), n)
      sleep(random() * 0.5)
    end
  end
  tide.group(function (g)
    for i = 1, BULK_WORKERS do g:spawn(worker, i) end
  end)
end

-- ---- Subprocesses -----------------------------------------------------------

-- data through `cat` with pipes of our own; the child is killed and reaped
-- if this is cut.
local function cat_spawn (data)
  local p <close>, err = tide.process.spawn { "cat", stdin = "pipe",
                                             stdout = "pipe" }
  if not p then
    fail("spawn cat: %s", err)
    return
  end
  local got = {}
  tide.gather(function ()
    p.stdin:write(data)
    p.stdin:close()
  end, function ()
    for d in function () return p.stdout:read() end do got[#got + 1] = d end
  end)
  local code = p:wait()
  local back = concat(got)
  if code ~= 0 or back ~= data then
    fail("cat: %d bytes came back as %d (exit %s)", #data, #back, code)
    return
  end
  return true
end

-- The same through tide.process.exec.
local function cat_exec (data)
  local out, err, code = tide.process.exec({ "cat" }, { input = data })
  if out ~= data or code ~= 0 then
    fail("exec cat: %d bytes came back as %s (%s, exit %s)", #data,
         out and #out, err, code)
    return
  end
  return true
end

local function cats ()
  local function worker ()
    local pace = pacer(20)
    while running() do
      pace()
      local n = random() < 0.1 and 0 or random(1, CAT_MAX)
      local f = random() < 0.5 and cat_spawn or cat_exec
      if random() < 0.3 then
        local ok, why = tide.timeout(random() * 0.02, f, bytes(n))
        if ok then count("cat") elseif why == "timeout" then cut("spawn") end
      elseif f(bytes(n)) then
        count("cat")
      end
    end
  end
  tide.group(function (g)
    for _ = 1, CAT_WORKERS do g:spawn(worker) end
  end)
end

-- ---- Timers -----------------------------------------------------------------

local EPS = 0.0015                      -- the timers' resolution, and some

local function timer_once ()
  local d, t0 = random() * 0.05, now()
  local kind = random(3)
  if kind == 1 then                     -- a sleep lasts at least its time
    sleep(d)
    if now() - t0 < d - EPS then
      fail("sleep(%.4f) returned after %.4f s", d, now() - t0)
    end
  elseif kind == 2 then                 -- a sleep cut by a timeout
    local lim = random() * 0.05
    local ok, why = tide.timeout(lim, function () sleep(d) return true end)
    local took = now() - t0
    if ok then
      if took < d - EPS then
        fail("sleep(%.4f) under timeout took %.4f s", d, took)
      end
    elseif why == "timeout" then
      cut("sleep")
      if took < lim - EPS then
        fail("timeout(%.4f) fired at %.4f s", lim, took)
      end
    else
      fail("timeout(%.4f, sleep): %s", lim, why)
    end
  else                                  -- call_later, cancelled or not
    local ran = false
    local t = tide.call_later(d, function () ran = true end)
    if random() < 0.5 then
      sleep(random() * 0.05)
      t:cancel()
    end
    pcall(t.await, t)
    if (t:state() == "done") ~= ran then
      fail("call_later: the task is %s, its function %s", t:state(),
           ran and "ran" or "did not run")
    end
    if t:cancelled() then cut("call_later") end
  end
  count("timer")
end

local function timers ()
  tide.group(function (g)
    for _ = 1, TIMER_TASKS do
      g:spawn(function () while running() do timer_once() end end)
    end
  end)
end

-- ---- Queues -----------------------------------------------------------------

-- One round: producers put numbered items, consumers get them, both cut
-- at random; then the queue closes and the consumers drain it. Every item
-- whose put completed must come out exactly once, and no other.
local function queue_round ()
  local kinds = { tide.Queue, tide.LifoQueue, tide.PriorityQueue }
  local q = kinds[random(#kinds)](random(1, 32))
  local P, C = random(1, 4), random(1, 4)
  local put, got = {}, {}
  local function producer (p)
    for k = 1, QUEUE_ITEMS do
      local item = p * 1000000 + k
      if random() < 0.3 then
        local ok, why = tide.timeout(limit(), function ()
          q:put(item)
          put[item] = true
          return true
        end)
        if (ok == true) ~= (put[item] == true) then
          fail("queue: timeout returned %s, %s for a put that %s", ok, why,
               put[item] and "completed" or "did not complete")
        end
        if why == "timeout" then cut("put") end
      else
        q:put(item)
        put[item] = true
      end
      if random() < 0.05 then sleep(0.001) end
    end
  end
  local function consumer ()
    while true do
      local item, why
      if random() < 0.3 then
        item, why = tide.timeout(limit(), q.get, q)
      else
        item, why = q:get()
      end
      if item then
        got[item] = (got[item] or 0) + 1
        if random() < 0.05 then sleep(0.001) end
      elseif why == "timeout" then
        cut("get")
      elseif why == "closed" then
        return
      else
        fail("queue: get: %s", why)
        return
      end
    end
  end
  local consumers = {}
  for i = 1, C do consumers[i] = tide.spawn(consumer) end
  local producers = {}
  for p = 1, P do producers[p] = tide.spawn(producer, p) end
  for p = 1, P do producers[p]:await() end
  q:close()
  for i = 1, C do consumers[i]:await() end
  local n = 0
  for item in pairs(put) do
    n = n + 1
    if got[item] ~= 1 then
      fail("queue: item %d put, got %d times", item, got[item] or 0)
    end
  end
  for item in pairs(got) do
    if not put[item] then fail("queue: item %d got but never put", item) end
  end
  count("queue", n)
end

local function queues ()
  while running() do
    queue_round()
    sleep(random() * 0.05)
  end
end

-- ---- The python3 peer -------------------------------------------------------

-- Start tools/soak_peer.py churning connections to port; returns the
-- Process and the port of its echo server.
local function start_peer (port)
  local p, err = tide.process.spawn {
    PYTHON, HERE .. "/soak_peer.py", port, PY_IN_RATE, PY_IN_CONC,
    stdin = "pipe", stdout = "pipe",
  }
  if not p then error("soak: cannot start " .. PYTHON .. ": " .. err, 0) end
  local line = p.stdout:read_until("\n")
  local peer_port = line and tonumber(line:match("^port (%d+)"))
  if not peer_port then
    error("soak: soak_peer.py did not start: " .. tostring(line), 0)
  end
  return p, peer_port
end

-- Stop the peer; its counts.
local function stop_peer (p)
  p.stdin:write("stop\n")
  p.stdin:close()
  local line = tide.timeout(GRACE, p.stdout.read_until, p.stdout, "\n")
  local counts = {}
  for k, v in (line or ""):gmatch("(%w+)=(%d+)") do counts[k] = tonumber(v) end
  local code = p:wait()
  if not line or not line:match("^done") or code ~= 0 then
    fail("soak_peer.py ended with %s, exit %s", tostring(line), code)
  end
  p:close()
  return counts
end

-- ---- The run --------------------------------------------------------------

local function median (xs)
  table.sort(xs)
  local n = #xs
  if n % 2 == 1 then return xs[(n + 1) // 2] end
  return (xs[n // 2] + xs[n // 2 + 1]) / 2
end

-- Fail if a figure of the last third of the run grew past its warm-up
-- level (the maximum over the first 20 %).
local function check_growth (samples)
  local verdicts = {}
  for _, k in ipairs { "rss", "lua", "fds", "tasks", "handles" } do
    local warm, last = -math.huge, {}
    for _, s in ipairs(samples) do
      if s.t <= S * 0.2 then warm = math.max(warm, s[k]) end
      if s.t >= S * 2 / 3 then last[#last + 1] = s[k] end
    end
    if warm == -math.huge or #last == 0 then
      fail("too few samples to judge %s", k)
    else
      local med = median(last)
      local kib = k == "rss" or k == "lua"
      local allowed = kib and warm + math.max(warm * RSS_MARGIN / 100, FLOOR[k])
                      or warm + SLACK[k]
      local shown = kib and function (x) return fmt("%.1f MiB", mib(x)) end
                    or function (x) return fmt("%g", x) end
      verdicts[#verdicts + 1] = fmt(
        "soak: %-7s warm-up max %s, last third median %s (allowed %s)",
        k, shown(warm), shown(med), shown(allowed))
      if med > allowed then
        fail("%s grew: last third median %s over warm-up max %s (allowed %s)",
             k, shown(med), shown(warm), shown(allowed))
      end
    end
  end
  return verdicts
end

local function run ()
  -- libuv opens a spare fd (its reserve against EMFILE) with the loop's
  -- first stream, and tide the loop of the thread pool (a handle and its
  -- fds) with the first call on it: have both before the baseline.
  assert(tide.tcp.listen("127.0.0.1", 0)):close()
  assert(tide.fs.stat("."))
  T0 = now()
  collectgarbage()
  sleep(0.01)
  local start = sample()
  show(start, "start, before any load")
  deadline = T0 + S

  local opts = { backlog = 1024 }
  local a = assert(tide.tcp.serve("127.0.0.1", 0, echo_handler("a"), opts))
  local b = assert(tide.tcp.serve("127.0.0.1", 0, echo_handler("py_in"), opts))
  local port_a = select(2, a:getsockname())
  local port_b = select(2, b:getsockname())
  local peer, peer_port = start_peer(port_b)
  print(fmt("soak: %g s, seed %d; tide echo on %d, python3 echo on %d; "
            .. "python3 connects to %d", S, SEED, port_a, peer_port, port_b))

  local samples = {}
  local sampler = tide.spawn(function ()
    local prev, last = {}, now()
    while running() do
      sleep(math.min(INTERVAL, math.max(0, deadline - now())))
      local s = sample()
      local dt = now() - last
      samples[#samples + 1] = s
      show(s, rates(prev, dt))
      for k, v in pairs(ops) do prev[k] = v end
      last = now()
    end
  end)

  tide.gather(
    function () churn("churn", port_a, CHURN_RATE, CHURN_WORKERS) end,
    function () churn("py_out", peer_port, PY_OUT_RATE, PY_OUT_WORKERS) end,
    function () bulk { port_a, peer_port } end,
    cats, timers, queues)
  sampler:await()
  local verdicts = check_growth(samples)

  -- The handlers finish the connections under way (they end at EOF).
  local counts = stop_peer(peer)
  a:close(5)
  b:close(5)
  -- python3's clients and tide's server B must agree to the connection.
  if (counts.bad or 0) + (counts.errors or 0) > 0 then
    fail("python3's connections to tide: %d came back wrong, %d failed",
         counts.bad or 0, counts.errors or 0)
  end
  if counts.ok ~= ops.py_in or counts.sent ~= ops.py_in_bytes then
    fail("python3 completed %s connections (%s bytes), tide's server %d "
         .. "(%d bytes)",
         counts.ok, counts.sent, ops.py_in, ops.py_in_bytes)
  end
  if ops.a < ops.churn then
    fail("tide's server saw %d connections to their end, its clients %d",
         ops.a, ops.churn)
  end
  if (counts.accepted or 0) < ops.py_out then
    fail("python3's server accepted %s connections, tide completed %d to it",
         counts.accepted, ops.py_out)
  end

  -- Everything the load opened is closed once its close callbacks have run.
  collectgarbage()
  sleep(0.2)
  local final = sample()
  show(final, "end, the load stopped and its peers gone")
  for _, k in ipairs { "fds", "tasks", "handles" } do
    if final[k] > start[k] then
      fail("%d %s left at the end against %d at the start", final[k], k,
           start[k])
    end
  end

  local elapsed = final.t
  print(fmt("soak: done in %.1f s (load %.1f s):", elapsed, S))
  local lines = {
    { "churn", "tide-to-tide connections (echo checked)" },
    { "py_in", "python3-to-tide connections (echo checked)" },
    { "py_out", "tide-to-python3 connections (echo checked)" },
    { "bulk", "bulk transfers (compared byte for byte)" },
    { "cat", "cat round trips (spawn and exec)" },
    { "queue", "queue items (each got once)" },
    { "timer", "timer operations" },
    { "cut", "operations cut by tide.timeout or cancel" },
  }
  for _, l in ipairs(lines) do
    print(fmt("soak: %10d %s, %.0f/s", ops[l[1]], l[2], ops[l[1]] / S))
  end
  print(fmt("soak: %10.1f MiB in bulk transfers", ops.bulk_bytes / 1048576))
  local cuts = {}
  for _, k in ipairs(CUTS) do
    cuts[#cuts + 1] = fmt("%s %d", k, ops["cut_" .. k])
  end
  print("soak: cut: " .. concat(cuts, ", "))
  print(fmt("soak: start rss %.1f MiB, fds %d, tasks %d, handles %d; "
            .. "end (load on) rss %.1f MiB, fds %d, tasks %d, handles %d",
            mib(start.rss), start.fds, start.tasks, start.handles,
            mib(samples[#samples].rss), samples[#samples].fds,
            samples[#samples].tasks, samples[#samples].handles))
  for _, v in ipairs(verdicts) do print(v) end
end

-- The whole run, cut if it does not stop by itself in time.
tide.timeout(S + GRACE, function ()
  local ok, err = xpcall(run, debug.traceback)
  if ok then return end
  if tide.iscancelled(err) then
    fail("did not stop within %d s of the end", GRACE)
  else
    fail("%s", err)
  end
end)
if #failures > 0 then
  print(fmt("soak: FAILED, %d problem%s; the first: %s", #failures,
            #failures == 1 and "" or "s", failures[1]))
  os.exit(1)
end
print("soak: passed")
