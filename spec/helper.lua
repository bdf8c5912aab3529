-- helper.lua: loaded before every spec file. async(fn) runs a test body as a
-- task (through tide.run) and fails the test if it leaves tasks running.
local tide = require "tide"
_G.tide = tide

local function tasknames (list)
  local names = {}
  for i, t in ipairs(list) do names[i] = tostring(t) end
  return table.concat(names, ", ")
end

function _G.async (fn)
  return function ()
    tide.run(function ()
      local before = {}
      for _, t in ipairs(tide.tasks()) do before[t] = true end
      fn()
      local left = {}
      for _, t in ipairs(tide.tasks()) do
        if not before[t] and t ~= tide.current() then
          left[#left + 1] = t
          t:cancel()
        end
      end
      if #left > 0 then
        error("the test left tasks running: " .. tasknames(left), 0)
      end
    end)
  end
end

-- The build directory under test, and how to run its programs.
local build = os.getenv("TIDE_BUILD") or "build"
_G.BUILD = build
_G.TIDE = build .. "/tide"

-- Run a shell command; return its output (stdout and stderr) and status.
function _G.sh (cmd)
  local f = assert(io.popen(cmd .. " 2>&1"))
  local out = f:read("a")
  local _, _, code = f:close()
  return out, code
end

-- Read a Stream to its end (inside a task); return what it gave.
function _G.readall (stream)
  local parts = {}
  while true do
    local data = stream:read()
    if not data then break end
    parts[#parts + 1] = data
  end
  return table.concat(parts)
end

-- Start argv (a list, the program first) with a new temporary file holding
-- script as its last argument, stdin and stdout piped, stderr into stdout;
-- wait up to limit seconds for its first line, "ready" (else it is killed
-- and the calling test fails). The Process. Inside a task.
function _G.startready (argv, script, limit)
  local path = tmpfile(script)
  argv[#argv + 1] = path
  argv.stdin, argv.stdout, argv.stderr = "pipe", "pipe", "stdout"
  local p = assert(tide.process.spawn(argv))
  local line = tide.timeout(limit, p.stdout.read_until, p.stdout, "\n")
  os.remove(path)
  if line ~= "ready\n" then
    p:kill("SIGKILL")
    p:wait()
    error(("the program's first line was %q, not \"ready\""):format(
      tostring(line)), 2)
  end
  return p
end

-- What the process p (spawned with stdout = "pipe") writes until it ends,
-- and how it ended (code, signal); killed, and the calling test failed, if
-- it takes more than limit seconds. Inside a task.
function _G.finish (p, limit)
  local function rest () return readall(p.stdout), p:wait() end
  local out, code, signal = tide.timeout(limit, rest)
  if out == nil then
    p:kill("SIGKILL")
    p:wait()
    error("the program did not end within " .. limit .. " s", 2)
  end
  return out, code, signal
end

-- Write s to a new temporary file; return its path.
function _G.tmpfile (s)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
  return path
end

-- Start a shell command in the background, without LD_PRELOAD (it is for
-- lua5.4 under the sanitizers) and within 30 s; the loop goes on meanwhile.
-- Returns a function that waits (inside a task) until the command has
-- ended and returns its output.
function _G.background (cmd)
  local out = os.tmpname()
  local quoted = "'" .. cmd:gsub("'", "'\\''") .. "'"
  os.execute(("(env -u LD_PRELOAD timeout 30 sh -c %s > %s 2>&1; touch %s.done) &")
    :format(quoted, out, out))
  return function ()
    while not io.open(out .. ".done") do tide.sleep(0.01) end
    os.remove(out .. ".done")
    local f = assert(io.open(out))
    local output = f:read("a")
    f:close()
    os.remove(out)
    return output
  end
end

-- The size of libuv's thread pool in this process.
_G.POOL = tonumber(os.getenv("UV_THREADPOOL_SIZE")) or 4

-- Hold every thread of the pool until the returned function is called:
-- each runs a tide.work that leaves a mark, then blocks opening a FIFO for
-- reading. Returns once all of them are there, so every call queued before
-- has ended, and every call queued after waits. finally is the calling
-- spec's (busted gives it to spec files, not to this helper).
function _G.holdpool (dir, finally)
  local fifo = dir .. "/gate"
  assert(os.execute("mkfifo '" .. fifo .. "'"))
  local holders = {}
  for i = 1, POOL do
    holders[i] = tide.spawn(tide.work, function (path, mark)
      io.open(mark, "w"):close()
      io.open(path, "r"):close()
      return true
    end, fifo, fifo .. "." .. i)
  end
  local waiting, start = 0, tide.now()
  while waiting < POOL do
    assert(tide.now() - start < 10, "the pool was not free within 10 s")
    tide.sleep(0.005)
    waiting = 0
    for i = 1, POOL do
      local m = io.open(fifo .. "." .. i)
      if m then m:close() waiting = waiting + 1 end
    end
  end
  local gate
  local function open_gate ()      -- a writer: each open for reading returns
    gate = gate or io.open(fifo, "r+")
  end
  finally(open_gate)               -- if the test failed before
  return function ()
    open_gate()
    for i = 1, POOL do holders[i]:await() end
    gate:close()
    for i = 1, POOL do os.remove(fifo .. "." .. i) end
  end
end

-- oomsweep(name, script): build the host of spec/embed/oom.c (as
-- spec/oom.sh builds it) as BUILD/oomhost_<name>, and run script under it
-- with an allocator that fails a sample of its allocations in turn, in
-- each mode, on tide's loop and on the host's; asserts that every run
-- ended cleanly (an error or the script's end, nothing leaked).
function _G.oomsweep (name, script)
  local assert = require "luassert"
  local sanitized = BUILD:match("asan") ~= nil
  local exe = BUILD .. "/oomhost_" .. name
  local san = sanitized and "-fsanitize=address,undefined -fno-omit-frame-pointer" or ""
  local out, code = sh(("env -u LD_PRELOAD cc -Wall -Wextra -Werror -O1 -g %s -Iruntime "
    .. "$(pkg-config --cflags lua5.4 libuv) -o %s spec/embed/oom.c %s/libtide.a "
    .. "$(pkg-config --libs lua5.4 libuv) -lm"):format(san, exe, BUILD))
  assert.equal(0, code, out)
  out, code = sh(("env -u LD_PRELOAD %s count %s"):format(exe, script))
  assert.equal(0, code, out)
  local count = tonumber(out:match("%d+"))
  local to, step = count + count // 20, sanitized and 29 or 11
  local tried, clean = 0, 0
  for _, loop in ipairs { "", "-l" } do
    for _, mode in ipairs { "once", "twice", "from", "end" } do
      out, code = sh(("ASAN_OPTIONS=detect_leaks=1 env -u LD_PRELOAD %s %s sweep %s 1 %d %d "
        .. "%s"):format(exe, loop, mode, to, step, script))
      assert.equal(0, code, out)
      local t, c = out:match("tried (%d+), ended cleanly (%d+)")
      assert.is_truthy(t, out)
      assert.equal(t, c, out)
      tried, clean = tried + tonumber(t), clean + tonumber(c)
    end
  end
  assert.is_true(tried >= 8 * (count // step), tried .. " runs")
  assert.equal(tried, clean)
end

-- Start a python3 program in the background; it prints its port first.
-- Returns the port and a function that waits for it to exit.
function _G.python (src)
  local path = tmpfile(src)
  -- Without LD_PRELOAD: the sanitizer runtimes are for lua5.4, not python3.
  local f = assert(io.popen("env -u LD_PRELOAD timeout 60 python3 -u "
    .. path .. " 2>&1", "r"))
  local first = f:read("l")
  local port = tonumber(first)
  if not port then
    error("python3 peer did not start: " .. tostring(first) .. (f:read("a") or ""))
  end
  return port, function ()
    local rest = f:read("a")
    f:close()
    os.remove(path)
    return rest
  end
end
