-- repl.lua: the tide command's interactive prompt, run as a task. Each
-- input is compiled (as an expression first, as lua5.4 does), run as a task
-- of its own and its values or its error printed. Background tasks keep
-- running while the prompt waits, and what they print shows above the line
-- being typed. The line input (libedit, Ctrl-C, history) is repl.c.
local tide, input = ...

local me = tide.current()
local reading = false            -- the prompt shows: output must go above it

local function prompt (first)
  local p = rawget(_G, first and "_PROMPT" or "_PROMPT2")
  if p == nil then return first and "> " or ">> " end
  return tostring(p)
end

-- Output while the prompt shows: clear the edited line, write, redraw it.
local function guard (write)
  return function (...)
    if not reading then return write(...) end
    input.hide()
    local r = table.pack(write(...))
    io.stdout:flush()
    input.show()
    return table.unpack(r, 1, r.n)
  end
end

local function guard_output ()
  print = guard(print)
  io.write = guard(io.write)
  local methods = getmetatable(io.stdout).__index
  local write = methods.write
  local guarded = guard(write)
  methods.write = function (f, ...)
    if f == io.stdout then return guarded(f, ...) end
    return write(f, ...)
  end
end

local function readline (first)
  reading = true
  local line = input.readline(prompt(first))
  reading = false
  return line
end

-- code as a function: "return code" first (an expression), else as it is;
-- nil, "incomplete" when it needs more lines.
local function compile (code, first)
  if first then
    local f = load("return " .. code .. ";", "=stdin")
    if f then return f end
  end
  local f, err = load(code, "=stdin")
  if f then return f end
  if err:sub(-5) == "<eof>" then return nil, "incomplete" end
  return nil, err
end

local function others ()
  local list, running = {}, tide.current()
  for _, t in ipairs(tide.tasks()) do
    if t ~= me and t ~= running then list[#list + 1] = t end
  end
  return list
end

-- :tasks lists the running tasks and where each waits.
local function listtasks ()
  local list = others()
  if #list == 0 then print("no task running") end
  for _, t in ipairs(list) do
    print(tostring(t))
    print((t:traceback():gsub("\n", "\n  ")))
  end
end

local helptext = [[
:tasks    list the running tasks and where each waits
:help     this list
Ctrl-C    cancel the input that runs, or drop the line being typed
Ctrl-D    exit (on an empty line; twice while tasks run)
Tab       complete a global, or a field after '.' or ':'
The reference for tide.* is the "Lua API" section of tide's README.]]

local function help () print(helptext) end

-- The prompt's own commands: a line such as ":tasks" is never Lua.
local commands = { tasks = listtasks, help = help }

-- Read one input, over several lines while incomplete: a function, an
-- error message, nil at the end of input, false on Ctrl-C.
local function readchunk ()
  local line = readline(true)
  if not line then return line end
  local command = line:match("^%s*:(%a+)%s*$")
  if command then
    input.addhistory(line)
    return commands[command] or
      ("unknown command :%s (:help lists them)"):format(command)
  end
  if line:sub(1, 1) == "=" then line = "return " .. line:sub(2) end
  local code = line
  local f, err = compile(code, true)
  while err == "incomplete" do
    line = readline(false)
    if line == false then return false end
    if line == nil then
      f, err = load(code, "=stdin")            -- the syntax error, as it is
      break
    end
    code = code .. "\n" .. line
    f, err = compile(code, false)
  end
  input.addhistory(code)
  return f or err
end

local function msghandler (e)
  if type(e) == "string" then return debug.traceback(e, 2) end
  return e
end

-- Print values with the global print, whatever it is now.
local function show (...)
  local ok, err = pcall(_G.print, ...)
  if not ok then
    io.stderr:write(("error calling 'print' (%s)\n"):format(tostring(err)))
    io.stderr:flush()
  end
end

-- Run f as a task (Ctrl-C cancels it) and print its values or its error.
local function run (f)
  local t = tide.spawn(xpcall, f, msghandler)
  input.running(t)
  local r = table.pack(pcall(t.await, t))
  input.running(nil)
  if r[1] and r[2] then
    if r.n > 2 then show(table.unpack(r, 3, r.n)) end
    return
  end
  local err = r[1] and r[3] or r[2]
  if tide.iscancelled(err) then err = "cancelled" end
  io.stderr:write(tostring(err), "\n")
  io.stderr:flush()
end

if input.tty then guard_output() end
local warned = false
while true do
  local chunk = readchunk()
  if chunk == nil then                         -- Ctrl-D, or end of input
    local n = #others()
    if n == 0 or warned or not input.tty then break end
    print(("%d task%s still running; Ctrl-D again to exit")
          :format(n, n == 1 and "" or "s"))
    warned = true
  else
    warned = false
    if type(chunk) == "function" then run(chunk)
    elseif chunk then
      io.stderr:write(chunk, "\n")
      io.stderr:flush()
    end
  end
end
input.finish()
