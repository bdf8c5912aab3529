-- supervisor.lua: keep a program running. When it exits it is started
-- again, after a back-off that doubles on each quick crash (0.1 s up to
-- 5 s) and starts over once the program has run for 10 s. Ctrl-C (or
-- SIGTERM) stops it cleanly: the program gets SIGTERM, 2 s to exit, then
-- SIGKILL; the supervisor then exits.
-- Run: tide scripts/supervisor.lua [PROGRAM ARGS...]
--      (by default a shell that crashes now and then)
local argv = { ... }
if #argv == 0 then
  argv = { "sh", "-c", [[
    echo "worker $$ up"; sleep "0.$(( $$ % 9 + 1 ))"
    [ $(( $$ % 3 )) -eq 0 ] && { echo "worker $$ done"; exit 0; }
    echo "worker $$ crashes" >&2; exit 1]] }
end

local stop = tide.Event()
local child                                -- the Process running now

-- The signals are ours: the default (cancel the main task) does not apply.
-- Each runs this in a task of its own.
local function onsignal (name)
  if stop:is_set() then return end
  io.stderr:write("supervisor: ", name, ", stopping\n")
  stop:set()
  local p = child
  if p then
    p:kill("SIGTERM")
    if tide.timeout(2, p.wait, p) == nil then p:kill("SIGKILL") end
  end
end
local int <close> = tide.signal.on("SIGINT", onsignal)
local term <close> = tide.signal.on("SIGTERM", onsignal)

-- Wait s seconds, or less if asked to stop; true if asked to stop.
local function pause (s)
  return tide.timeout(s, stop.wait, stop) ~= nil
end

local backoff = 0.1
while not stop:is_set() do
  local started = tide.now()
  local p, err = tide.process.spawn(argv)
  if not p then
    io.stderr:write("supervisor: cannot start: ", err, "\n")
  else
    child = p
    local code, signal = p:wait()
    child = nil
    p:close()
    io.stderr:write(("supervisor: pid %d exited with %d%s after %.1f s\n")
      :format(p.pid, code, signal and " (" .. signal .. ")" or "",
              tide.now() - started))
  end
  if tide.now() - started > 10 then backoff = 0.1 end
  if not stop:is_set() then
    io.stderr:write(("supervisor: restarting in %.1f s\n"):format(backoff))
    if pause(backoff) then break end
    backoff = math.min(backoff * 2, 5)
  end
end
io.stderr:write("supervisor: stopped\n")
