-- supervisor.lua: keep a program running. When it exits it is started
-- again after a back-off: 0.1 s, doubled after each crash (an exit code
-- other than 0, or a signal) up to 5 s, and back to 0.1 s after a clean
-- exit or a run of 10 s or more. Ctrl-C or SIGTERM stops it cleanly: the
-- program gets SIGTERM and 2 s to exit (a second Ctrl-C: at once), then
-- SIGKILL; then the supervisor exits with status 0.
-- The program runs detached, in a process group of its own: a Ctrl-C at
-- the terminal reaches the supervisor only, which stops the program and
-- whatever it started (the whole group) in its own time.
-- Run: tide scripts/supervisor.lua [PROGRAM ARGS...]
--      (by default a shell that crashes now and then)
local argv = { ... }
if #argv == 0 then
  argv = { "sh", "-c", [[
    echo "worker $$ up"; sleep "0.$(( $$ % 9 + 1 ))"
    [ $(( $$ % 3 )) -eq 0 ] && { echo "worker $$ done"; exit 0; }
    echo "worker $$ crashes" >&2; exit 1]] }
end
argv.detached = true

local function log (fmt, ...)
  io.stderr:write("supervisor: ", fmt:format(...), "\n")
end

-- The program's whole group (a detached child leads one of its own).
local function signal (p, sig)
  tide.signal.kill(-p.pid, sig)
end

local stop = tide.Event()
local child                                -- the Process running now

-- The signals are ours, so the tide command's default (cancel the main
-- task) does not apply. Each one runs this in a task of its own.
local function onsignal (name)
  if stop:is_set() then                    -- the second one: no more waiting
    if child then signal(child, "SIGKILL") end
    return
  end
  log("%s, stopping", name)
  stop:set()
end
local int <close> = tide.signal.on("SIGINT", onsignal)
local term <close> = tide.signal.on("SIGTERM", onsignal)

-- Run the program to its end, or until asked to stop; its exit code and
-- signal, or nil and why it could not start.
local function runonce ()
  local p, err = tide.process.spawn(argv)
  if not p then return nil, err end
  child = p
  tide.race(function () p:wait() end, function () stop:wait() end)
  if stop:is_set() then
    signal(p, "SIGTERM")
    if tide.timeout(2, p.wait, p) == nil then signal(p, "SIGKILL") end
  end
  local code, sig = p:wait()
  child = nil
  signal(p, "SIGKILL")                     -- what it left behind, if anything
  log("pid %d exited with %d%s", p.pid, code, sig and " (" .. sig .. ")" or "")
  return code, sig
end

local backoff = 0.1
while not stop:is_set() do
  local started = tide.now()
  local code, why = runonce()
  if code == nil then log("cannot start %s: %s", argv[1], why) end
  if code == 0 or tide.now() - started >= 10 then
    backoff = 0.1
  end
  if stop:is_set() then break end
  log("restarting in %.1f s", backoff)
  if tide.timeout(backoff, stop.wait, stop) then break end   -- asked to stop
  if code ~= 0 then backoff = math.min(backoff * 2, 5) end
end
log("stopped")
