-- process.lua: tide.process.pipeline (children connected stdout to stdin by
-- their fds, never through Lua) and tide.process.exec (run to the end,
-- collecting the output, with input, timeout and max_output), on top of
-- bindings/process.c's _spawn and _pipeline.
local tide = ...

local process = tide.process
local c_spawn, c_pipeline = process._spawn, process._pipeline
process._spawn, process._pipeline = nil, nil

local error, ipairs, pcall, setmetatable, tostring, type =
      error, ipairs, pcall, setmetatable, tostring, type
local concat = table.concat
local current = tide.current

-- Raise a wrong-use error of fname at the line of the code calling it:
-- level, counted as error() counts from argerror's caller (2 from fname's
-- own body, 3 from a helper it calls).
local function argerror (i, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(i, fname, msg), level + 1)
end

-- Call c_spawn or c_pipeline for fname. Their wrong-use errors name fname
-- and come without a position: raise them again at level (counted from
-- the caller of this function, as error() counts).
local function cstart (level, f, ...)
  local ok, a, b, c = pcall(f, ...)
  if not ok then error(a, level + 1) end
  return a, b, c
end

-- ---- Pipelines ---------------------------------------------------------------

-- What tide.process.pipeline returns: the processes, the first one's stdin,
-- the last one's stdout, and the stderr they share.
local Pipeline = {}
Pipeline.__index = Pipeline

-- Wait for every child: the last one's code and signal (as a shell gives),
-- then a list of { code =, signal = } for each.
function Pipeline:wait ()
  local all = {}
  for i, p in ipairs(self.processes) do
    local code, signal = p:wait()
    all[i] = { code = code, signal = signal }
  end
  local last = all[#all]
  return last.code, last.signal, all
end

-- Send sig to every child still running; true if any got it.
function Pipeline:kill (sig)
  local any = false
  for _, p in ipairs(self.processes) do
    if p:kill(sig) then any = true end
  end
  return any
end

-- Kill the children still running and close the pipes.
function Pipeline:close ()
  for _, p in ipairs(self.processes) do p:close() end
  if self.stderr then self.stderr:close() end
end

Pipeline.__close = Pipeline.close

function Pipeline:__tostring ()
  local pids = {}
  for i, p in ipairs(self.processes) do pids[i] = tostring(p.pid) end
  return "tide.Pipeline (pids " .. concat(pids, ", ") .. ")"
end

-- Check the list of commands given to fname (level: as argerror's).
local function checkcommands (fname, cmds, level)
  if type(cmds) ~= "table" or #cmds == 0 then
    argerror(1, fname, "a list of commands expected", level + 1)
  end
  for i = 1, #cmds do
    if type(cmds[i]) ~= "table" then
      argerror(1, fname, ("command (a table) expected at [%d]"):format(i),
               level + 1)
    end
  end
end

-- Start a pipeline for fname; level: that of fname's caller, seen from
-- here.
local function startpipeline (level, fname, cmds, opts)
  local procs, stderr, code = cstart(level + 1, c_pipeline, cmds, opts, fname)
  if not procs then return nil, stderr, code end
  return setmetatable({
    processes = procs,
    stdin = procs[1].stdin,
    stdout = procs[#procs].stdout,
    stderr = stderr or nil,
  }, Pipeline)
end

-- tide.process.pipeline({ {prog, args...}, ... } [, opts]) -> Pipeline |
-- nil, msg, code. opts: those of spawn; stdin is the first child's, stdout
-- the last one's, stderr everyone's ("pipe": one pipe for all).
function process.pipeline (cmds, opts)
  checkcommands("pipeline", cmds, 2)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(2, "pipeline", "table expected, got " .. type(opts), 2)
  end
  local pl, err, code = startpipeline(2, "pipeline", cmds, opts or {})
  return pl, err, code
end

-- ---- exec ------------------------------------------------------------------------

-- Read stream to its end into buf (a list with a byte count), up to max
-- bytes in all; over max, call over() and stop.
local function collect (stream, buf, max, over)
  while true do
    local data = stream:read()
    if not data then return end
    local room = max - buf.size
    if #data > room then
      buf[#buf + 1] = data:sub(1, room)
      buf.size = max
      return over()
    end
    buf[#buf + 1] = data
    buf.size = buf.size + #data
  end
end

-- Write input to the child's stdin and close it (a child that exits
-- without reading it is no error).
local function feed (stream, input)
  stream:write(input)
  stream:close()
end

local function spawnopts (argv, opts)
  local o = {
    env = opts.env, env_extend = opts.env_extend, cwd = opts.cwd,
    stdin = opts.input and "pipe" or "null",
    stdout = "pipe",
    stderr = opts.stderr or "pipe",
  }
  if argv then
    for i = 1, #argv do o[i] = argv[i] end
  end
  return o
end

-- Start exec's command; level: that of exec's caller, seen from here.
local function start (level, cmd, opts)
  local a, b, c
  if type(cmd) == "string" then
    a, b, c = cstart(level + 1, c_spawn, spawnopts({ "/bin/sh", "-c", cmd }, opts),
                     "exec")
  elseif type(cmd[1]) == "table" then
    a, b, c = startpipeline(level + 1, "exec", cmd, spawnopts(nil, opts))
  else
    a, b, c = cstart(level + 1, c_spawn, spawnopts(cmd, opts), "exec")
  end
  return a, b, c
end

local function checkexec (cmd, opts)
  local t = type(cmd)
  if t ~= "string" and (t ~= "table" or cmd[1] == nil) then
    argerror(1, "exec", "command string or list expected, got " .. t, 3)
  end
  if t == "string" and cmd:find("\0", 1, true) then
    argerror(1, "exec", "zero byte in the command", 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(2, "exec", "table expected, got " .. type(opts), 3)
  end
  if t == "table" and type(cmd[1]) == "table" then checkcommands("exec", cmd, 3) end
  opts = opts or {}
  if opts.stdin ~= nil or opts.stdout ~= nil then
    argerror(2, "exec", ("'%s': not an option of exec (input = gives stdin; "
      .. "for more, use spawn)"):format(opts.stdin ~= nil and "stdin" or "stdout"), 3)
  end
  if opts.input ~= nil and type(opts.input) ~= "string" then
    argerror(2, "exec", "'input': string expected", 3)
  end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or
                              not (opts.timeout >= 0)) then
    argerror(2, "exec", "'timeout': non-negative number expected", 3)
  end
  if opts.max_output ~= nil and (math.type(opts.max_output) ~= "integer" or
                                 opts.max_output < 0) then
    argerror(2, "exec", "'max_output': non-negative integer expected", 3)
  end
  return opts
end

-- tide.process.exec(cmd [, opts]) -> stdout, stderr, code, signal. cmd: a
-- string (run by /bin/sh -c), a list (the program and its arguments, run
-- directly), or a list of lists (a pipeline). opts: input (a string for
-- stdin; else stdin is /dev/null), timeout (s), max_output (bytes, each of
-- stdout and stderr), env, env_extend, cwd, stderr ("pipe", "stdout",
-- "inherit", "null"). A child that cannot start: nil, msg, code. On time-
-- out, or over max_output, the child is killed and reaped, and the result
-- is nil, "timeout" (or "output limit exceeded"), stdout, stderr so far.
function process.exec (cmd, opts)
  opts = checkexec(cmd, opts)
  if not current() then
    error("'exec' must be called inside a task (use tide.run or tide.spawn)", 2)
  end
  local proc, err, code = start(2, cmd, opts)
  if not proc then return nil, err, code end
  local p <close> = proc
  local max = opts.max_output or math.huge
  local out, errs = { size = 0 }, { size = 0 }
  local exceeded = false
  local function over ()
    exceeded = true
    p:kill("SIGKILL")
    p.stdout:close()
    if p.stderr then p.stderr:close() end
  end
  local function run ()
    local jobs = { function () collect(p.stdout, out, max, over) end }
    if p.stderr then
      jobs[#jobs + 1] = function () collect(p.stderr, errs, max, over) end
    end
    if opts.input then
      jobs[#jobs + 1] = function () feed(p.stdin, opts.input) end
    end
    tide.gather(table.unpack(jobs))
    return p:wait()
  end
  local status, signal
  if opts.timeout then
    status, signal = tide.timeout(opts.timeout, run)
    if status == nil then
      p:kill("SIGKILL")
      p:wait()
      return nil, "timeout", concat(out), concat(errs)
    end
  else
    status, signal = run()
  end
  if exceeded then
    return nil, "output limit exceeded", concat(out), concat(errs)
  end
  return concat(out), concat(errs), status, signal
end

