-- debug_spec.lua: famine detection (tide.debug, TIDE_DEBUG; runtime/debug.c):
-- a task that blocks the loop is named while it is still stuck, by a
-- watchdog thread that runs only in debug mode; and tide.handles, the count
-- of open handles.

local function q (s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function pat (s) return (s:gsub("%p", "%%%0")) end

-- The number of threads of the process, here and in the scripts run.
local THREADS = [[
local function threads ()
  local f = assert(io.open("/proc/self/status"))
  local n = tonumber(f:read("a"):match("\nThreads:%s*(%d+)"))
  f:close()
  return n
end
]]
local threads = load(THREADS .. "return threads")()

-- The children run without LD_PRELOAD (it is for lua5.4 under the
-- sanitizers), so that sh and sleep do not load the sanitizers.
local DEBUGENV = { TIDE_DEBUG = "1", LD_PRELOAD = false }

-- Run script (a string) with build/tide; return its output (stdout and
-- stderr) and exit code. debug: TIDE_DEBUG's value, or nil for none.
local function run (script, debug)
  local f = tmpfile(script)
  local env = debug and "env -u LD_PRELOAD TIDE_DEBUG=" .. debug
                     or "env -u LD_PRELOAD -u TIDE_DEBUG"
  local out, code = sh(env .. " " .. TIDE .. " " .. f)
  os.remove(f)
  return out, code
end

local function count (s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

describe("famine detection", function ()
  it("names a task stuck in os.execute while the call still runs", async(function ()
    local f = tmpfile("tide.spawn(function ()\n  os.execute('sleep 1')\nend)\n")
    local start = tide.now()
    local p <close> = assert(tide.process.spawn {
      TIDE, f, stdout = "null", stderr = "pipe",
      env = DEBUGENV, env_extend = true })
    local first = assert(tide.timeout(10, p.stderr.read_until, p.stderr, "\n"))
    local seen = tide.now() - start
    local rest = readall(p.stderr)
    assert.equal(0, p:wait())
    local ended = tide.now() - start
    os.remove(f)
    assert.matches("^tide: a task %(tide%.Task: 0x%x+%) has run 0%.%d+ s without "
                   .. "yielding %(still running%), blocking every other task; last seen at "
                   .. pat(f) .. ":2 %(in a call to os%.execute%)\n$", first)
    assert.is_true(ended >= 1, "the child ended after " .. ended .. " s")
    assert.is_true(seen < 0.8, "the first report came after " .. seen .. " s")
    assert.is_true(ended - seen > 0.2, "the first report came " .. ended - seen
                   .. " s before the end")
    -- then one full report, when the call has returned
    assert.matches("^tide: a task has run 1%.%d+ s without yielding, blocking every "
                   .. "other task, at:\nstack traceback:\n\t%[C%]: in function 'os%.execute'\n\t"
                   .. pat(f) .. ":2:", rest)
    assert.equal(1, count(rest, "without yielding"))
  end))

  it("names a task blocked for good in io.read on a silent pipe", async(function ()
    local f = tmpfile("tide.spawn(function ()\n  local line = io.read()\nend)\n")
    local p <close> = assert(tide.process.spawn {
      TIDE, f, stdin = "pipe", stdout = "null", stderr = "pipe",
      env = DEBUGENV, env_extend = true })
    local first = tide.timeout(10, p.stderr.read_until, p.stderr, "\n")
    assert(p:kill("SIGKILL"))
    assert.equal(137, p:wait())
    os.remove(f)
    assert.is_string(first, "no report within 10 s")
    assert.matches("has run 0%.%d+ s without yielding %(still running%)", first)
    assert.matches("last seen at " .. pat(f) .. ":2 %(in a call to io%.read%)\n$", first)
  end))

  it("names the main task and a C function the task runs as", function ()
    local out = run("tide.spawn(os.execute, 'sleep 0.3')\nos.execute('sleep 0.3')\n", "1")
    assert.matches("the main task has run 0%.%d+ s without yielding %(still running%), "
                   .. "blocking every other task; last seen at [^\n]*:2 %(in a call to "
                   .. "os%.execute%)\n", out)
    assert.matches("tide%.Task: 0x%x+%) has run 0%.%d+ s without yielding %(still "
                   .. "running%), blocking every other task; last seen in a call to "
                   .. "os%.execute\n", out)
  end)

  it("reports a computing task in the act, with its traceback", function ()
    local out = run([[
local function spin (s) local t = os.clock() while os.clock() - t < s do end end
tide.sleep(0)
spin(0.3)
tide.sleep(0)
]], "1")
    -- the hook runs: the watchdog leaves the report to it (unless this
    -- thread stalls at that moment, when it says "still running" first)
    assert.is_true(count(out, "%(still running%)") <= 1)
    assert.equal(1, count(out, "without yielding, blocking every other task, at:\n"))
    assert.matches("tide: a task has run 0%.%d+ s without yielding, blocking every other "
                   .. "task, at:\nstack traceback:\n", out)
    assert.matches(":3: in main chunk", out)
  end)

  it("starts no thread and reports nothing without TIDE_DEBUG", function ()
    local script = THREADS .. [[
print(threads())
tide.spawn(function () os.execute("sleep 0.3") end):await()
print(threads())
]]
    local quiet, code = run(script, nil)
    assert.equal(0, code)
    local n = quiet:match("^(%d+)\n")
    assert.equal(n .. "\n" .. n .. "\n", quiet)
    assert.equal(quiet, (run(script, "0")))
    local loud = run(script, "1")
    assert.equal(tostring(n + 1), loud:match("^(%d+)\n"))
    assert.matches("has run 0%.%d+ s without yielding %(still running%)", loud)
  end)

  it("tide.debug(false) stops the reports and the thread", function ()
    local out, code = run(THREADS .. [[
local on = threads()
tide.debug(false)
local off = threads()
tide.spawn(function () os.execute("sleep 0.3") end):await()
tide.spawn(function ()
  tide.debug(true)
  tide.sleep(0)                -- this resume is timed
  tide.debug(false)
  os.execute("sleep 0.3")
end):await()
print(on - off, threads() - off, (tide.debug()))
]], "1")
    assert.equal(0, code)
    assert.equal("1\t0\tfalse\n", out)
  end)

  it("takes the watchdog's threshold from tide.debug", function ()
    local out = run([[
tide.debug(true, 0.5)
tide.spawn(function () os.execute("sleep 0.3") end):await()
tide.debug(true, 0.05)
tide.spawn(function () os.execute("sleep 0.3") end):await()
]], nil)
    assert.equal(1, count(out, "%(still running%)"))
    assert.matches("^tide: a task %(tide%.Task: 0x%x+%) has run 0%.0%d+ s", out)
  end)

  it("runs the watchdog in this process only while debug mode is on", function ()
    local was, limit = tide.debug()
    finally(function () tide.debug(was, limit) end)
    tide.debug(false)
    local base = threads()
    tide.debug(true)
    assert.equal(base + 1, threads())
    tide.debug(true)
    assert.equal(base + 1, threads())
    tide.debug(false)
    assert.equal(base, threads())
  end)

  it("reports from stock lua5.4 with the tide module", function ()
    local out = sh("TIDE_DEBUG=1 LD_PRELOAD='" .. (os.getenv("TIDE_PRELOAD") or "")
                   .. "' LUA_CPATH='" .. BUILD .. "/?.so;;' lua5.4 -e " .. q([[
local tide = require "tide"
tide.run(function ()
  tide.sleep(0)
  os.execute("sleep 0.3")
end)]]))
    assert.matches("^tide: the main task has run 0%.%d+ s without yielding %(still "
                   .. "running%), blocking every other task; last seen at %(command "
                   .. "line%):4 %(in a call to os%.execute%)\ntide: a task has run 0%.%d+ s", out)
  end)
end)

describe("tide.handles", function ()
  it("counts a server while it is open, and in the loop until its close has run", async(function ()
    local listen = tide.tcp.listen     -- (tide.tcp's own handles made)
    tide.sleep(0.01)                   -- closes of earlier specs have run
    local open, all = tide.handles()
    local s = assert(listen("127.0.0.1", 0))
    assert.same({ open + 1, all + 1 }, { tide.handles() })
    s:close()
    assert.same({ open, all + 1 }, { tide.handles() })
    tide.sleep(0.01)
    assert.same({ open, all }, { tide.handles() })
  end))
end)
