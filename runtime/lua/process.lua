-- process.lua: tide.process.pipeline (children connected stdout to stdin by
-- their fds, never through Lua) and tide.process.exec (run to the end,
-- collecting the output, with input, timeout and max_output), on top of
-- bindings/process.c's _spawn and _pipeline.
local tide, sched = ...

local process = tide.process
local c_spawn, c_pipeline = process._spawn, process._pipeline
process._spawn, process._pipeline = nil, nil

local ipairs, tonumber, tostring, type = ipairs, tonumber, tostring, type
local concat = table.concat
local tointeger = math.tointeger

-- Wrong use (see tide.lua); c_spawn's and c_pipeline's errors name exec or
-- pipeline too, as the function the user called.
local argerror, typeerror = sched.argerror, sched.typeerror
local checkself, checkwait = sched.checkself, sched.checkwait
local classof, new = sched.classof, sched.new

-- ---- Pipelines ---------------------------------------------------------------

-- What tide.process.pipeline returns: the processes, the first one's stdin,
-- the last one's stdout, and the stderr they share.
local Pipeline = sched.newclass("tide.Pipeline")
Pipeline.__index = Pipeline

-- Wait for every child: the last one's code and signal (as a shell gives),
-- then a list of { code =, signal = } for each.
function Pipeline:wait ()
  if classof[self] ~= Pipeline then checkself(self, Pipeline) end
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
  if classof[self] ~= Pipeline then checkself(self, Pipeline) end
  local any = false
  for _, p in ipairs(self.processes) do
    if p:kill(sig) then any = true end
  end
  return any
end

-- Kill the children still running and close the pipes.
function Pipeline:close ()
  if classof[self] ~= Pipeline then checkself(self, Pipeline) end
  for _, p in ipairs(self.processes) do p:close() end
  if self.stderr then self.stderr:close() end
end

Pipeline.__close = Pipeline.close

function Pipeline:__tostring ()
  if classof[self] ~= Pipeline then checkself(self, Pipeline) end
  local pids = {}
  for i, p in ipairs(self.processes) do pids[i] = tostring(p.pid) end
  return "tide.Pipeline (pids " .. concat(pids, ", ") .. ")"
end

-- Check the list of commands (argument 1).
local function checkcommands (cmds)
  if type(cmds) ~= "table" or #cmds == 0 then
    argerror(1, "a list of commands expected")
  end
  for i = 1, #cmds do
    if type(cmds[i]) ~= "table" then
      argerror(1, ("command (a table) expected at [%d]"):format(i))
    end
  end
end

local function startpipeline (cmds, opts)
  local procs, stderr, code = c_pipeline(cmds, opts)
  if not procs then return nil, stderr, code end
  return new(Pipeline, {
    processes = procs,
    stdin = procs[1].stdin,
    stdout = procs[#procs].stdout,
    stderr = stderr or nil,
  })
end

-- tide.process.pipeline({ {prog, args...}, ... } [, opts]) -> Pipeline |
-- nil, msg, code. opts: those of spawn; stdin is the first child's, stdout
-- the last one's, stderr everyone's ("pipe": one pipe for all).
function process.pipeline (cmds, opts)
  checkcommands(cmds)
  if opts ~= nil and type(opts) ~= "table" then typeerror(2, "table", opts) end
  local pl, err, code = startpipeline(cmds, opts or {})
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

-- Start exec's command.
local function start (cmd, opts)
  if type(cmd) == "string" then
    return c_spawn(spawnopts({ "/bin/sh", "-c", cmd }, opts))
  elseif type(cmd[1]) == "table" then
    return startpipeline(cmd, spawnopts(nil, opts))
  end
  return c_spawn(spawnopts(cmd, opts))
end

-- The number in option field k of opts, if any: at least 0, an integer
-- if int (numbers in strings are numbers, as for arguments).
local function optcount (opts, k, int)
  local v = opts[k]
  if v == nil then return nil end
  local n = tonumber(v)
  if int then n = n and tointeger(n) end
  if not (n and n >= 0) then
    argerror(2, ("'%s': non-negative %s expected")
                :format(k, int and "integer" or "number"))
  end
  return n
end

-- Check exec's arguments; the options, their timeout and max_output.
local function checkexec (cmd, opts)
  local t = type(cmd)
  if t ~= "string" and (t ~= "table" or cmd[1] == nil) then
    argerror(1, "command string or list expected, got " .. t)
  end
  if t == "string" and cmd:find("\0", 1, true) then
    argerror(1, "zero byte in the command")
  end
  if opts ~= nil and type(opts) ~= "table" then typeerror(2, "table", opts) end
  if t == "table" and type(cmd[1]) == "table" then checkcommands(cmd) end
  opts = opts or {}
  if opts.stdin ~= nil or opts.stdout ~= nil then
    argerror(2, ("'%s': not an option of exec (input = gives stdin; for "
      .. "more, use spawn)"):format(opts.stdin ~= nil and "stdin" or "stdout"))
  end
  if opts.input ~= nil and type(opts.input) ~= "string" then
    argerror(2, "'input': string expected")
  end
  return opts, optcount(opts, "timeout"), optcount(opts, "max_output", true)
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
  local timeout, max
  opts, timeout, max = checkexec(cmd, opts)
  checkwait()
  local proc, err, code = start(cmd, opts)
  if not proc then return nil, err, code end
  local p <close> = proc
  max = max or math.huge
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
  if timeout then
    status, signal = tide.timeout(timeout, run)
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

