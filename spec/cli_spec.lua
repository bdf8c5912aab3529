-- cli_spec.lua: the `tide` command next to `lua5.4`: the same options, arg
-- table, messages and exit codes; and what tide adds: top-level waits,
-- waiting for every task, deadlock, famine and unawaited-error reports
-- (runtime/main.c).

local function q (s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Run cmd (which names the interpreter as %s) under both; return each
-- output with the program name replaced by PROG, and each exit code.
local function both (cmd)
  local r = {}
  for _, prog in ipairs({ "lua5.4", TIDE }) do
    local out, code = sh(cmd:gsub("%%s", prog))
    out = out:gsub(prog:gsub("%p", "%%%0"), "PROG")
    r[#r + 1] = { out = out, code = code }
  end
  return r[1], r[2]
end

-- The first line of each output and the exit codes must agree.
local function same_start (cmd)
  local lua, tide_ = both(cmd)
  assert.equal(lua.code, tide_.code)
  assert.equal(lua.out:match("^[^\n]*"), tide_.out:match("^[^\n]*"))
  return lua, tide_
end

-- The whole output and the exit code must agree.
local function same (cmd)
  local lua, tide_ = both(cmd)
  assert.equal(lua.code, tide_.code)
  assert.equal(lua.out, tide_.out)
  return lua, tide_
end

describe("the tide command, side by side with lua5.4", function ()
  it("runs -e statements in order", function ()
    same("%s -e 'print(1)' -e 'x = 2' -e 'print(x * 3)'")
  end)

  it("gives a script the same arg table", function ()
    local f = tmpfile("for i = -1, #arg do io.write(tostring(arg[i]), ' ') end print(#arg, ...)")
    same("%s " .. f .. " a 'b c' ''")
    same("%s -e 'y=1' " .. f .. " x")
    same("%s -- " .. f .. " -e")
    os.remove(f)
  end)

  it("loads -l mod and -l g=mod from package.path", function ()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir " .. dir)
    local f = assert(io.open(dir .. "/mymod.lua", "w"))
    f:write("return { x = 42 }")
    f:close()
    same("LUA_PATH='" .. dir .. "/?.lua' %s -l mymod -e 'print(mymod.x)'")
    same("LUA_PATH='" .. dir .. "/?.lua' %s -l g=mymod -e 'print(g.x, mymod)'")
    same_start("LUA_PATH='" .. dir .. "/?.lua' %s -l nosuchmod")
    os.execute("rm -r " .. dir)
  end)

  it("prints exactly lua5.4's banner for -v", function ()
    local lua = same("%s -v")
    assert.matches("^Lua 5%.4%.%d+  Copyright [^\n]*\n$", lua.out)
    same("%s -v -e 'print(\"hello\")'")
  end)

  it("honours LUA_INIT_5_4, LUA_INIT, @file and -E", function ()
    same("LUA_INIT_5_4='print(\"init54\")' LUA_INIT='print(\"init\")' %s -e 'print(1)'")
    same("LUA_INIT='print(\"init\")' %s -e 'print(1)'")
    local f = tmpfile("print('from file')")
    same("LUA_INIT='@" .. f .. "' %s -e 'print(1)'")
    same("LUA_INIT='print(\"init\")' %s -E -e 'print(1)'")
    os.remove(f)
    same_start("LUA_INIT='error(\"in init\")' %s -e 'print(1)'")
  end)

  it("turns warnings on with -W", function ()
    same("%s -W -e 'warn(\"careful\")'")
    same("%s -e 'warn(\"silent\")'")
  end)

  it("runs stdin for - and when there are no arguments", function ()
    same("echo 'print(\"in\", arg[0])' | %s -")
    same("echo 'print(\"in\")' | %s")
    same("echo 'print(...)' | %s - a b")
  end)

  it("reports errors as lua does, traceback and all, with exit code 1", function ()
    local lua, tide_ = same("%s -e 'error(\"boom\")'")
    assert.equal(1, lua.code)
    assert.matches("stack traceback:", tide_.out)
    same("%s -e 'error({})'")
    same("%s -e 'error(setmetatable({}, {__tostring = function () return \"obj\" end}))'")
    same_start("%s -e 'x ='")
    same_start("%s /nonexistent/script.lua")
    local f = tmpfile("local x = 1\nerror('at line two')")
    same("%s " .. f)
    os.remove(f)
  end)

  it("turns an error object into its message where it is raised", function ()
    -- __tostring runs in the message handler, on the stack of the error.
    local f = tmpfile([[
local m = setmetatable({}, { __tostring = function ()
  return "line " .. debug.getinfo(4).currentline
end })
local function f () error(m) end
f()
]])
    local lua = same("%s " .. f)
    assert.equal("PROG: line 4\n", lua.out)
    os.remove(f)
  end)

  it("keeps lua's exit code 0 after an error in a script read from stdin", function ()
    same_start("echo 'error(\"x\")' | %s")
  end)

  -- tide's usage lists --version and --workers too.
  local function usage_error (cmd)
    local lua, tide_ = both(cmd)
    assert.equal(1, lua.code)
    assert.equal(lua.code, tide_.code)
    local without, n = tide_.out:gsub("\n  %-%-version [^\n]*", "")
    assert.equal(1, n, tide_.out)
    without, n = without:gsub("\n  %-%-workers [^\n]*", "")
    assert.equal(1, n, tide_.out)
    assert.equal(lua.out, without)
  end

  it("reports a bad option with the usage and exit code 1", function ()
    usage_error("%s -z")
    usage_error("%s -e")
    usage_error("%s --versionx")
    usage_error("%s --foo")
  end)

  it("exits with os.exit's code", function ()
    same("%s -e 'os.exit(3)'")
    same("%s -e 'os.exit(false)'")
    same("%s -e 'os.exit(true, true)'")
  end)

  it("closes the main chunk's <close> variables on os.exit(code, true)", function ()
    local f = tmpfile([[
local x <close> = setmetatable({}, { __close = function (_, err)
  print("x closed", err)
end })
local y <close> = setmetatable({}, { __close = function () print("y closed") end })
os.exit(3, true)
]])
    local lua = same("%s " .. f)
    assert.equal("y closed\nx closed\tnil\n", lua.out)
    assert.equal(3, lua.code)
    os.remove(f)
  end)

  it("interrupts a busy loop on SIGINT with the error lua raises", function ()
    local cmd = "%s -e 'pcall(function () print(12) io.stdout:flush() " ..
                "while true do end end) print(42)' & pid=$!; sleep 0.5; " ..
                "kill -INT $pid; wait $pid; echo code $?"
    local lua = same(cmd)
    assert.equal("12\n42\ncode 0\n", lua.out)
    lua = same("%s -e 'print(1) io.stdout:flush() while true do end' 2>&1 & " ..
               "pid=$!; sleep 0.5; kill -INT $pid; wait $pid; echo code $?")
    assert.matches("^1\nPROG: interrupted!\n.*code 1\n$", lua.out)
  end)

  it("ends a busy loop on SIGTERM", function ()
    local lua = same("%s -e 'print(1) io.stdout:flush() while true do end' & " ..
                     "pid=$!; sleep 0.5; kill $pid; wait $pid; echo code $?")
    assert.equal("1\ncode 143\n", lua.out)
  end)

  it("reports an error of print at the prompt", function ()
    same("echo 10 | %s -e 'print = nil' -i 2>&1 >/dev/null")
  end)

  it("runs -i with a piped stdin like lua -i", function ()
    local lua, tide_ = both("printf 'x = 20\\nx + 1\\nprint(\"p\")\\nfor i=1,2 do\\nprint(i)\\nend\\nerror(\"e\")\\n' | %s -i")
    assert.equal(lua.code, tide_.code)
    assert.equal(lua.out:gsub("\n[^\n]*stack traceback:.*", ""),
                 tide_.out:gsub("\n[^\n]*stack traceback:.*", ""))
  end)

  it("loads C modules and libraries installed for lua5.4", function ()
    same("%s -e 'print(require(\"lfs\")._VERSION)'")
    same("%s -e 'print(require(\"pl.path\").basename(\"/a/b.lua\"))'")
  end)
end)

describe("the tide command's runtime", function ()
  it("prints tide's, libuv's and Lua's versions for --version, exit code 0", function ()
    local out, code = sh(TIDE .. " --version")
    assert.equal(0, code)
    assert.equal(sh("lua5.4 -v"), out:match("\n(.*)$"))
    assert.matches("^tide %d+%.%d+%.%d+ %(libuv %d+%.%d+%.%d+%)\n", out)
    local f = tmpfile("print('ran')")
    assert.equal(out, sh(TIDE .. " -v -e 'print(1)' --version " .. f))  -- nothing runs
    os.remove(f)
    out, code = sh(TIDE .. " --version -z")
    assert.equal(1, code)
    assert.matches("^[^\n]*: unrecognized option '%-z'\nusage:", out)
  end)

  it("sets the global tide, the same table require returns", function ()
    local out = sh(TIDE .. " -e 'print(tide == require(\"tide\"), type(tide.spawn))'")
    assert.equal("true\tfunction\n", out)
  end)

  it("runs the main chunk as a task: it may sleep at top level", function ()
    local out, code = sh(TIDE .. " -e 'tide.sleep(0.01) print(\"slept\")'")
    assert.equal("slept\n", out)
    assert.equal(0, code)
  end)

  it("exits only when every spawned task has ended", function ()
    local out = sh(TIDE .. " -e 'tide.spawn(function () tide.sleep(0.05) print(\"late\") end) print(\"main done\")'")
    assert.equal("main done\nlate\n", out)
  end)

  it("reports a deadlock with each stuck task's traceback, exit code 1", function ()
    local f = tmpfile([[
local a
local b = tide.spawn(function () tide.sleep(0) return a:await() end)
a = tide.spawn(function () return b:await() end)
a:await()
]])
    local out, code = sh(TIDE .. " " .. f)
    assert.equal(1, code)
    assert.matches("deadlock: 3 tasks waiting and nothing left that could wake them", out)
    assert.matches("in method 'await'", out)
    assert.matches(f:gsub("%p", "%%%0") .. ":2:", out)
    os.remove(f)
  end)

  it("names the cancellation when the main task is cancelled, exit code 1", function ()
    local out, code = sh(TIDE .. " -e 'tide.current():cancel(\"bye\") tide.sleep(1)'")
    assert.equal(1, code)
    assert.equal(TIDE .. ": cancelled: bye\n", out)
  end)

  it("reports a task stuck forever after the main chunk ended", function ()
    local out, code = sh(TIDE .. " -e 'tide.spawn(tide.sleep, math.huge)'")
    assert.equal(1, code)
    assert.matches("deadlock: 1 task waiting", out)
  end)

  it("reports an error nobody awaited, with its traceback", function ()
    local f = tmpfile("tide.spawn(function () error('lost error') end)\ntide.sleep(0.01)\nprint('main ok')")
    local out, code = sh(TIDE .. " " .. f)
    assert.equal(1, code)
    assert.matches("main ok", out)
    assert.matches("error in a task nobody awaited: [^\n]*:1: lost error\nstack traceback:", out)
    os.remove(f)
  end)

  it("does not report an error that was awaited or cancelled", function ()
    local f = tmpfile([[
local t = tide.spawn(function () error('seen') end)
print(pcall(t.await, t))
local c = tide.spawn(tide.sleep, 10)
tide.sleep(0) c:cancel()
]])
    local out, code = sh(TIDE .. " " .. f)
    assert.equal(0, code)
    assert.matches("^false\t[^\n]*seen\n$", out)
    os.remove(f)
  end)

  it("with TIDE_DEBUG=1 names a task that blocks the loop", function ()
    local f = tmpfile("tide.spawn(function ()\n  os.execute('sleep 0.3')\n  tide.sleep(0)\nend)")
    local out, code = sh("TIDE_DEBUG=1 " .. TIDE .. " " .. f)
    assert.equal(0, code)
    assert.matches("a task has run 0%.%d+ s without yielding", out)
    assert.matches("in function 'os.execute'", out)
    assert.matches(f:gsub("%p", "%%%0") .. ":2:", out)
    local quiet = sh(TIDE .. " " .. f)
    assert.equal("", quiet)
    os.remove(f)
  end)

  it("takes the famine threshold from tide.debug", function ()
    local out = sh(TIDE .. " -e 'tide.debug(true, 0.01) tide.sleep(0) local t = os.clock() while os.clock() - t < 0.05 do end tide.sleep(0)'")
    assert.matches("a task has run 0%.0%d+ s without yielding", out)
    assert.matches("%(command line%):1: in main chunk", out)
    out = sh(TIDE .. " -e 'tide.debug(true, 5) tide.sleep(0) local t = os.clock() while os.clock() - t < 0.05 do end tide.sleep(0)'")
    assert.equal("", out)
  end)
end)

describe("require 'tide' from stock lua5.4", function ()
  local function lua (code)
    return sh("LD_PRELOAD='" .. (os.getenv("TIDE_PRELOAD") or "") .. "' LUA_CPATH='" ..
              BUILD .. "/?.so;;' lua5.4 -e " .. q(code))
  end

  it("gives the same API and tide.run returns the main function's results", function ()
    local out, code = lua([[
local tide = require "tide"
print(tide.run(function (a) tide.sleep(0.01) return a, tide.gather(function () return 2 end) end, 1))]])
    assert.equal("1\t2\n", out)
    assert.equal(0, code)
  end)

  it("raises the main function's error from tide.run", function ()
    local out = lua([[
local tide = require "tide"
print(pcall(tide.run, function () tide.sleep(0) error("main failed", 0) end))]])
    assert.equal("false\tmain failed\n", out)
  end)

  it("cancels and reports the tasks left when the main function returns", function ()
    local out = lua([[
local tide = require "tide"
local t
tide.run(function () t = tide.spawn(tide.sleep, 10) end)
print(t:cancelled())]])
    assert.matches("1 task was still running at the end; cancelling", out)
    assert.matches("true\n$", out)
  end)

  it("raises outside any task, and can run again afterwards", function ()
    local out = lua([[
local tide = require "tide"
print(pcall(tide.sleep, 1))
print(tide.run(function () return "first" end), tide.run(function () return "second" end))]])
    assert.matches("false\t[^\n]*sleep' must be called inside a task", out)
    assert.matches("first\tsecond\n$", out)
  end)

  it("reports a deadlock in tide.run as an error", function ()
    local out = lua([[
local tide = require "tide"
print(pcall(tide.run, function () tide.sleep(math.huge) end))]])
    assert.matches("deadlock: 1 task waiting", out)
    assert.matches("false\tdeadlock", out)
  end)
end)
