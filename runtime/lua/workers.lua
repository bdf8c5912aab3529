-- workers.lua: tide.workers (a master that runs the script in n worker
-- processes and supervises them) and tide.worker (id, count, send, recv in
-- a worker), on top of bindings/workers.c. A worker's listens on an
-- address share the master's one socket (workers.c, tcp.c), or with
-- reuseport have their own; SIGTERM to a worker stops its servers with a
-- grace period. The master replaces dead workers (with a backoff when they
-- die at once), restarts them all on SIGHUP without refusing a connection,
-- and on SIGTERM or SIGINT stops them and exits with their status.
local tide, sched = ...

local _ = tide.tcp                 -- opens workers.c's opener as well
local W = sched.openworkers()
local argerror, typeerror, raise = sched.argerror, sched.typeerror,
                                   sched.error
local checkself, checkwait = sched.checkself, sched.checkwait
local classof, new = sched.classof, sched.new

local pairs, ipairs, pcall, tonumber, tostring, type =
      pairs, ipairs, pcall, tonumber, tostring, type
local spack, sunpack, format = string.pack, string.unpack, string.format
local stderr = io.stderr

local MAXMSG = 64 * 1024 * 1024    -- a message's largest size

-- A message (string or table of plain values) as a frame: its size, then
-- the value as tide.work copies it.
-- Wrong use raises at the line of the caller of fname's caller (level 3).
local function frame (fname, arg, msg)
  local t = type(msg)
  if t ~= "string" and t ~= "table" then
    error(("bad argument #%d to '%s' (string or table expected, got %s)")
          :format(arg, fname, t == "nil" and "no value" or t), 3)
  end
  local ok, data = pcall(W._encode, fname, msg)
  if not ok then
    error(("bad argument #%d to '%s' (%s)"):format(arg, fname,
          tostring(data):gsub("^[^:]*: ", ""):gsub(" %(argument #1%)", "")), 3)
  end
  if #data > MAXMSG then
    error(("bad argument #%d to '%s' (message too large)"):format(arg, fname), 3)
  end
  return spack(">I4", #data) .. data
end

-- The next message on a channel Stream, or nil at its end.
local function readmsg (chan)
  local head = chan:read_exactly(4)
  if not head then return nil end
  local n = sunpack(">I4", head)
  if n > MAXMSG then return nil end
  local data = n > 0 and chan:read_exactly(n) or ""
  if not data then return nil end
  return (W._decode(data))
end

-- ---- In a worker -------------------------------------------------------------

local id = tonumber(os.getenv("TIDE_WORKER_ID"))
local worker                       -- tide.worker: nil outside workers
local grace = tonumber(os.getenv("TIDE_WORKER_GRACE")) or 10

if id then
  local msgfd = tonumber(os.getenv("TIDE_WORKER_MSG_FD"))
  local chan, reading
  worker = { id = id, count = tonumber(os.getenv("TIDE_WORKER_COUNT")) }

  local function channel ()
    if not chan then
      local err
      chan, err = W._stream(msgfd)
      if not chan then
        raise("%s: no channel to the master: " .. err:gsub("%%", "%%%%"))
      end
      reading = tide.Lock()
    end
    return chan
  end

  -- tide.worker.send(msg) -> true | nil, msg, code: to the master
  function worker.send (msg)
    local f = frame("tide.worker.send", 1, msg)
    checkwait()
    local ok, err, code = channel():write(f)
    if ok then return true end
    return nil, err, code
  end

  -- tide.worker.recv() -> msg | nil (the master has gone): waits
  function worker.recv ()
    checkwait()
    local c = channel()
    reading:acquire()
    local ok, msg = pcall(readmsg, c)
    reading:release()
    if not ok then error(msg, 0) end
    return msg
  end

  -- SIGTERM (and SIGINT, which Ctrl-C sends to the master and its
  -- workers alike): stop accepting (a connection libuv took is served
  -- first), let the handlers finish for grace seconds, cancel those left,
  -- then every other task, so that the worker ends. The master kills a
  -- worker that is still there 5 s after the grace.
  -- A second SIGINT, or a second SIGTERM, cancels the handlers at once
  -- (Ctrl-C brings a SIGINT of the terminal's and the master's SIGTERM:
  -- one stop; a second Ctrl-C brings SIGINT twice).
  local stopping, got = false, {}
  local function stop (signame)
    local signum = signame == "SIGINT" and 2 or 15
    if got[signame] then           -- a second one: no more grace
      W._interrupt(signum)
      W._cancelall()
      return
    end
    got[signame] = true
    if stopping then return end
    stopping = true
    W._note("stop " .. signame .. "\n")   -- not to be restarted
    local closing = {}
    for s in pairs(sched.servings) do
      if not s.closed and s.server then
        for _ = 1, 1000 do
          if W._quiesce(s.server) then break end
          tide.sleep(0.001)          -- the accept loop takes it
        end
        closing[#closing + 1] = tide.spawn(s.close, s, grace)
      end
    end
    for _, t in ipairs(closing) do pcall(t.await, t) end
    -- The main task ends now if it waited on them; then, if tasks are
    -- left (a ticker), they are cancelled so that the worker ends.
    local until_ = tide.now() + 0.1
    while #tide.tasks() > 1 and tide.now() < until_ do tide.sleep(0.01) end
    if #tide.tasks() > 1 then
      -- as any tide program on these signals: the main task's
      -- cancellation is no error; the worker exits with 128 + signum
      W._interrupt(signum)
      W._cancelall()
    end
  end
  tide.signal.on("SIGTERM", function () stop("SIGTERM") end)
  tide.signal.on("SIGINT", function () stop("SIGINT") end)
end

tide.worker = worker

-- ---- The master ----------------------------------------------------------------

local Workers = sched.newclass("tide.Workers")
Workers.__index = Workers

local function report (fmt, ...)
  stderr:write("tide.workers: " .. format(fmt, ...) .. "\n")  -- one write
end

-- The command line that runs this script again: the program, then arg
-- from its lowest index, without --workers N.
local function command (opts)
  if opts.argv then return opts.argv end
  local arg = _G.arg
  if type(arg) ~= "table" then
    raise("%s: no 'arg' table to run the script again (give 'argv')")
  end
  local lo = 0
  while arg[lo - 1] ~= nil do lo = lo - 1 end
  local argv, i = { (W._exepath()) }, lo + 1
  while arg[i] ~= nil or i <= #arg do
    if arg[i] == "--workers" and i < 0 then i = i + 1
    elseif arg[i] ~= nil then argv[#argv + 1] = arg[i] end
    i = i + 1
  end
  return argv
end

-- The listen requests of worker w (see workers.c): share / own.
local function serve_listens (self, w)
  while true do
    local line = w.sync:read_until("\n")
    if not line then return end
    local kind, port, backlog, flags, ip =
      line:match("^(%a+) (%d+) (%d+) (%d+) (.-)\n$")
    local key = ip and ip .. " " .. port
    local signalled = line:match("^stop (%u+)\n$")
    local g = tonumber(line:match("^grace (%S+)\n$"))
    if signalled then              -- it got a stop signal itself
      w.signalled = signalled
    elseif g then                  -- the script's grace under --workers
      if g > self.grace then self.grace = g end
    elseif kind == "share" and self.stopping then
      W._reply(w.syncfd, "err -125\n")          -- ECANCELED
    elseif kind == "share" then
      local fd = self.sockets[key]
      local err, code, num
      if not fd then
        fd, err, code, num = W._bind(ip, tonumber(port), tonumber(backlog),
                                     tonumber(flags))
        if fd then self.sockets[key] = fd end
      end
      if fd then W._reply(w.syncfd, "ok\n", fd)
      else
        report("worker %d: cannot listen: %s", w.id, err)
        W._reply(w.syncfd, "err " .. tostring(num or -22) .. "\n")
      end
    elseif kind == "own" then
      W._reply(w.syncfd, "ok\n")
    elseif not signalled and not g then
      W._reply(w.syncfd, "err -71\n")            -- EPROTO
    end
    if kind then
      w.keys[key] = true
      self.known[key] = true
      w.listened:set()
    end
  end
end

-- The messages of worker w, into the master's queue.
local function read_messages (self, w)
  while true do
    local ok, msg = pcall(readmsg, w.msg)
    if not ok or msg == nil then return end
    if self.inbox:size() < 10000 then self.inbox:put_nowait({ w.id, msg }) end
  end
end

-- Start worker id: a process running the script with its channels.
local function start (self, id)
  local sm, sc = W._pair()
  if not sm then return nil, sc end
  local mm, mc = W._pair()
  if not mm then
    W._close(sm)
    W._close(sc)
    return nil, mc
  end
  local cmd = { env_extend = true, env = {
    TIDE_WORKER_ID = tostring(id), TIDE_WORKER_COUNT = tostring(self.n),
    TIDE_WORKER_FD = tostring(sc), TIDE_WORKER_MSG_FD = tostring(mc),
    TIDE_WORKER_GRACE = tostring(self.grace),
    TIDE_WORKER_MASTER = tostring(W._pid()),
  } }
  for i, a in ipairs(self.argv) do cmd[i] = a end
  local p, err = tide.process.spawn(cmd)
  W._close(sc)
  W._close(mc)
  if not p then
    W._close(sm)
    W._close(mm)
    return nil, err
  end
  local w = { id = id, proc = p, pid = p.pid, syncfd = sm, keys = {},
              listened = tide.Event(), started = tide.now() }
  w.sync = W._stream(sm)
  w.msg = W._stream(mm)
  self.live[w] = true
  w.tasks = { tide.spawn(serve_listens, self, w),
              tide.spawn(read_messages, self, w) }
  return w
end

local function dispose (self, w)
  self.live[w] = nil
  if w.sync then w.sync:close() end
  if w.msg then w.msg:close() end
end

-- How a process ended, in words; and the exit status it stands for.
local function ending (code, sig)
  if sig then
    return "was killed by " .. tostring(sig), (code and code ~= 0) and code or 1
  end
  return "exited with code " .. tostring(code), code or 1
end

-- Whether worker w ended as stopped by SIGINT or SIGTERM: killed by one,
-- or ended (0, or 128 + signum when it cancelled its tasks) after one.
local function stopped (w, code, sig)
  if sig == "SIGTERM" or sig == "SIGINT" then return sig end
  if code == 130 then return "SIGINT" end
  if code == 143 then return "SIGTERM" end
  if code == 0 and w.signalled then return w.signalled end
  return nil
end

-- When no slot has a worker left (each ended cleanly or was stopped by a
-- signal of its own), the master ends as on SIGTERM.
local function checkempty (self)
  if next(self.slots) == nil and not self.restarting and not self.stopping then
    report("no worker left; the master ends")
    tide.spawn(self.stop, self)
  end
end

-- Supervise worker w of slot id until it is retired; replace it when it
-- fails, with a backoff while it fails at once again and again. A worker
-- that exits with 0 or stops on a SIGINT or SIGTERM of its own (Ctrl-C
-- reaches the whole process group) is not replaced.
local function supervise (self, w)
  local fails = 0
  while true do
    local code, sig = w.proc:wait()
    -- the channel ends after the exit: a "stop" note is read by then
    pcall(tide.timeout, 0.5, w.tasks[1].await, w.tasks[1])
    dispose(self, w)
    local how, status = ending(code, sig)
    local bysig = stopped(w, code, sig)
    if bysig or code == 0 then status = 0 end
    if self.slots[w.id] == w then self.last[w.id] = status end
    if w.retired or self.stopping then
      if self.stopping and status > self.status then
        self.status = status
      end
      self.ended:set()
      return
    end
    local lived = tide.now() - w.started
    if bysig and not self.stopping then
      -- Ctrl-C: the master's own signal may be a moment behind
      tide.sleep(0.2)
    end
    if self.stopping then
      self.ended:set()
      return
    end
    if bysig or code == 0 then
      report("worker %d (pid %d) %s after %.2f s; not restarted (%s)", w.id,
             w.pid, bysig and "stopped by " .. bysig or how, lived,
             bysig and "it got the signal itself" or "a clean exit")
      if self.slots[w.id] == w then self.slots[w.id] = nil end
      self.ended:set()
      checkempty(self)
      return
    end
    if lived < self.quick then fails = fails + 1 else fails = 0 end
    local delay = 0
    if fails > 0 then
      delay = self.backoff * 2 ^ (fails - 1)
      if delay > self.max_backoff then delay = self.max_backoff end
    end
    report("worker %d (pid %d) %s after %.2f s; %s", w.id, w.pid, how, lived,
           delay > 0 and format("restarting in %.2f s (%d in a row ended within "
                                .. "%g s of starting)", delay, fails,
                                self.quick) or "restarting")
    while true do
      if delay > 0 then tide.sleep(delay) end
      if self.stopping or self.slots[w.id] ~= w then return end   -- replaced
      local err, dead = nil, w
      w, err = start(self, dead.id)
      if w then
        self.slots[w.id] = w
        break
      end
      report("worker %d cannot start: %s", dead.id, err)
      w = dead
      fails = fails + 1
      delay = self.max_backoff
    end
  end
end

-- Whether worker w listens on every address the workers share.
local function ready (self, w)
  for k in pairs(self.known) do
    if not w.keys[k] then return false end
  end
  return true
end

-- Wait until w listens where the others do (or has run for a moment when
-- nothing listens), or ends; whether it is ready.
local function await_ready (self, w)
  local deadline = tide.now() + self.ready_timeout
  if next(self.known) == nil then tide.sleep(0.2) end
  while not ready(self, w) do
    if not self.live[w] or tide.now() > deadline then return false end
    w.listened:clear()
    tide.timeout(0.05, w.listened.wait, w.listened)
  end
  tide.sleep(0.02)                 -- its accept loop starts
  return self.live[w] ~= nil
end

-- Rolling restart: for each slot, a new worker ready before the old one
-- stops accepting.
function Workers:restart ()
  if classof[self] ~= Workers then checkself(self, Workers) end
  checkwait()
  if self.restarting or self.stopping then return false end
  self.restarting = true
  local ok, replaced = true, 0
  for id = 1, self.n do
    if self.stopping then break end
    local w, err = start(self, id)
    if w and self.stopping then w.proc:kill("SIGTERM") end
    if w then                      -- not replaced if it dies while trying
      w.retired = true
      tide.spawn(supervise, self, w)
    end
    local next_ = id < self.n and format("; going on with worker %d", id + 1)
                  or ""
    if not w then
      report("restart: worker %d cannot start: %s; the old one stays%s", id,
             err, next_)
      ok = false
    elseif not await_ready(self, w) or self.stopping then
      if self.stopping then break end
      report("restart: new worker %d (pid %d) did not become ready; the "
             .. "old one stays%s", id, w.pid, next_)
      w.proc:kill("SIGKILL")
      ok = false
    else
      replaced = replaced + 1
      w.retired = false
      local old = self.slots[id]   -- perhaps a replacement started meanwhile
      self.slots[id] = w
      if old then
        old.retired = true
        old.proc:kill("SIGTERM")
      end
    end
  end
  self.restarting = false
  if not self.stopping then
    report("restart: %s: %d of %d workers replaced", ok and "done" or "failed",
           replaced, self.n)
    checkempty(self)
  end
  return ok
end

-- Stop: SIGTERM to every worker (each stops accepting and gives its
-- handlers the grace period), SIGKILL to those still running after it.
function Workers:stop ()
  if classof[self] ~= Workers then checkself(self, Workers) end
  checkwait()
  if self.stopping then return end
  self.stopping = true
  -- new connections are refused at once: the workers close their
  -- sockets as they stop, and the master its own now
  for k, fd in pairs(self.sockets) do
    W._close(fd)
    self.sockets[k] = nil
  end
  for w in pairs(self.live) do
    w.retired = true
    w.proc:kill("SIGTERM")
  end
  local deadline = tide.now() + self.grace + 5
  while next(self.live) ~= nil and tide.now() < deadline do
    if self.hurry and self.hurry < deadline then deadline = self.hurry end
    self.ended:clear()
    tide.timeout(0.1, self.ended.wait, self.ended)
  end
  for w in pairs(self.live) do
    report("worker %d (pid %d) still runs after the grace: killed", w.id,
           w.pid)
    w.proc:kill("SIGKILL")
  end
  while next(self.live) ~= nil do
    self.ended:clear()
    tide.timeout(0.1, self.ended.wait, self.ended)
  end
  for _, st in pairs(self.last) do      -- the last exit of each slot counts
    if st > self.status then self.status = st end
  end
  self.done:set()
end

-- ws:send(id, msg) -> true | nil, msg, code: to worker id
function Workers:send (i, msg)
  if classof[self] ~= Workers then checkself(self, Workers) end
  i = sched.checkinteger(2, i)
  if i < 1 or i > self.n then argerror(2, "no such worker") end
  local f = frame("Workers:send", 2, msg)
  checkwait()
  local w = self.slots[i]
  if not (w and self.live[w]) then return nil, "worker not running", "ESRCH" end
  local ok, err, code = w.msg:write(f)
  if ok then return true end
  return nil, err, code
end

-- ws:broadcast(msg) -> the number of workers it went to
function Workers:broadcast (msg)
  if classof[self] ~= Workers then checkself(self, Workers) end
  local f = frame("Workers:broadcast", 1, msg)
  checkwait()
  local n = 0
  for w in pairs(self.live) do
    if not w.retired and w.msg:write(f) then n = n + 1 end
  end
  return n
end

-- ws:recv() -> id, msg: waits for the next message of a worker
function Workers:recv ()
  if classof[self] ~= Workers then checkself(self, Workers) end
  local m = self.inbox:get()
  return m[1], m[2]
end

-- The options of tide.workers.
local OPTIONS = { n = true, main = true, grace = true, backoff = true,
                  max_backoff = true, quick = true, ready_timeout = true,
                  argv = true }

local function option (opts, k, default)
  local v = opts[k]
  if v == nil then return default end
  local n = tonumber(v)
  if not n or n < 0 then
    argerror(1, ("'%s': non-negative number expected"):format(k))
  end
  return n
end

-- tide.workers{ n = N | "auto", main = function(ws), grace = s, ... }: in
-- the master, run this script in n worker processes and supervise them;
-- main(ws) runs in a task of the master; returns only by exiting the
-- process with the workers' status. In a worker: returns at once (nothing).
function tide.workers (opts)
  if type(opts) ~= "table" then typeerror(1, "table", opts) end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      argerror(1, ("'%s': unknown option"):format(tostring(k)))
    end
  end
  local n = opts.n
  if n == "auto" then n = W._parallelism()
  else
    n = tonumber(n)
    if not n or n ~= math.floor(n) or n < 1 or n > 1024 then
      argerror(1, "'n': positive integer or \"auto\" expected")
    end
  end
  if opts.main ~= nil and type(opts.main) ~= "function" then
    argerror(1, "'main': function expected")
  end
  if opts.argv ~= nil and type(opts.argv) ~= "table" then
    argerror(1, "'argv': table expected")
  end
  local self = new(Workers, {
    n = n, count = n, grace = option(opts, "grace", 10),
    backoff = option(opts, "backoff", 0.1),
    max_backoff = option(opts, "max_backoff", 10),
    quick = option(opts, "quick", 1),
    ready_timeout = option(opts, "ready_timeout", 10),
    sockets = {}, known = {}, live = {}, slots = {}, last = {}, status = 0,
    inbox = tide.Queue(), ended = tide.Event(), done = tide.Event(),
  })
  if id then                       -- a worker goes on with the script
    if os.getenv("TIDE_WORKERS_CLI") then
      -- tide --workers N: the command line's master runs none of the
      -- script; its grace applies to this worker's stop all the same
      if opts.grace ~= nil then
        grace = self.grace
        W._note(format("grace %.17g\n", grace))
      end
      local unused = {}
      for k in pairs(opts) do
        if k ~= "grace" and k ~= "n" then unused[#unused + 1] = k end
      end
      table.sort(unused)
      if #unused > 0 and id == 1 then
        report("'--workers %s' given: tide.workers's %s not used (the "
               .. "command line's master runs none of the script)",
               os.getenv("TIDE_WORKER_COUNT"), table.concat(unused, ", "))
      end
    end
    return nil
  end
  if W._listened() then
    raise("%s: this process listens already: call tide.workers before "
          .. "listening (the workers listen, not the master)")
  end
  checkwait()
  self.argv = command(opts)
  for i = 1, n do
    local w, err = start(self, i)
    if not w then
      report("worker %d cannot start: %s", i, err)
      self.status = 1
      os.exit(1)
    end
    self.slots[i] = w
    tide.spawn(supervise, self, w)
  end
  -- A second SIGTERM or SIGINT: the workers cancel their handlers at
  -- once (they get it again), and the master waits 1 s at most for them.
  local function stop (sig)
    if self.stopping then
      if not self.hurry then
        self.hurry = tide.now() + 1
        report("stopping at once")
        for w in pairs(self.live) do w.proc:kill(sig) end
        self.ended:set()
      end
      return
    end
    self:stop()
  end
  tide.signal.on("SIGTERM", function () stop("SIGTERM") end)
  tide.signal.on("SIGINT", function () stop("SIGINT") end)
  tide.signal.on("SIGHUP", function () self:restart() end)
  if opts.main then
    tide.spawn(function ()
      local ok, err = pcall(opts.main, self)
      if not ok and not tide.iscancelled(err) then
        report("error in main: %s", tostring(err))
      end
    end)
  end
  self.done:wait()
  stderr:flush()
  io.stdout:flush()
  os.exit(self.status)
end
