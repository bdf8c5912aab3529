-- stdio_spec.lua: tide.stdin, tide.stdout and tide.stderr (bindings/tty.c,
-- runtime/lua/fs.lua) in child processes whose standard streams are pipes,
-- files, /dev/null or a terminal, under the tide command and stock lua5.4.

-- Write a child script to a temporary file (removed at the end of the test).
local function script (src)
  local path = tmpfile(src)
  finally(function () os.remove(path) end)
  return path
end

-- Run a script under the tide command inside a shell line: cmd is a format
-- whose %s is replaced by the command. Returns its output and status.
local function run (cmd, src)
  return sh("(" .. cmd:format(TIDE .. " " .. script(src)) .. ")")
end

-- The sanitizers' runtimes, which lua5.4 must preload to load a module
-- built with them (spec/run.sh sets TIDE_PRELOAD; this is for a lone run).
local function preload ()
  local p = os.getenv("TIDE_PRELOAD")
  if p then return p end
  if not os.execute("nm -D " .. BUILD .. "/tide.so 2>/dev/null | grep -q __asan_init") then
    return ""
  end
  return (sh("echo $(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"):gsub("\n", ""))
end

-- The same under stock lua5.4 with require "tide".
local function run_lua (cmd, src)
  local lua = ("LD_PRELOAD='%s' LUA_CPATH='%s/?.so;;' lua5.4 %s")
              :format(preload(), BUILD, script(src))
  return sh("(" .. cmd:format(lua) .. ")")
end

local function readfile (path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- What kind of object s is: "tide.File" or "tide.Stream (pipe)" etc.
local KIND = [[
local function kind (s)
  local t = tostring(s)
  return t:match("^tide%.File") or t:match("^tide%.Stream %(%a+%)") or t
end
]]

describe("tide.stdin", function ()
  it("is a Stream on a pipe, read line by line", function ()
    local out = run("printf 'one\\ntwo\\nthree' | %s", KIND .. [[
for l in tide.stdin:lines() do print("<" .. l .. ">") end
print(kind(tide.stdin))]])
    assert.equal("<one>\n<two>\n<three>\ntide.Stream (pipe)\n", out)
  end)

  it("waits for input without blocking other tasks", function ()
    local out, code = run("(sleep 0.4; echo late) | %s", [[
local ticks = 0
local ticker = tide.spawn(function ()
  while true do tide.sleep(0.02) ticks = ticks + 1 end
end)
local line = tide.stdin:read()
ticker:cancel()
print(line, ticks >= 5)]])
    assert.equal("late\n\ttrue\n", out)
    assert.equal(0, code)
  end)

  it("returns nil at the end of a pipe", function ()
    local out = run("printf 'x' | %s", [[
print(tide.stdin:read(), tide.stdin:read())]])
    assert.equal("x\tnil\n", out)
  end)

  it("is a File when redirected from a file, read in chunks or lines", function ()
    local path = tmpfile("a\nb\n")
    finally(function () os.remove(path) end)
    local out = run("%s < " .. path, KIND .. [[
print(kind(tide.stdin))
print(tide.stdin:read(2) == "a\n")
for l in tide.stdin:lines() do print(l) end
print(tide.stdin:read())]])
    assert.equal("tide.File\ntrue\nb\nnil\n", out)
  end)

  it("is an empty File on /dev/null", function ()
    local out = run("%s < /dev/null", KIND .. [[
print(kind(tide.stdin), tide.stdin:read())]])
    assert.equal("tide.File\tnil\n", out)
  end)

  it("runs with fds 0, 1 and 2 closed, /dev/null in their place", function ()
    local path = os.tmpname()
    finally(function () os.remove(path) end)
    local out = run("TIDE_OUT=" .. path .. " %s <&- >&- 2>&-; echo status $?", KIND .. [[
local f = assert(io.open(os.getenv("TIDE_OUT"), "w"))
f:write(kind(tide.stdin), " ", tostring(tide.stdin:read()), "\n")
f:close()
print("to /dev/null")]])
    assert.equal("status 0\n", out)
    assert.equal("tide.File nil\n", readfile(path))
  end)

  it("leaves stdin to io.read when untouched", function ()
    local out = run("printf 'abc' | %s", [[
print(io.read("a"))]])
    assert.equal("abc\n", out)
  end)

  it("works the same from stock lua5.4 with require 'tide'", function ()
    local out, code = run_lua("printf 'one\\ntwo\\n' | %s", KIND .. [[
local tide = require "tide"
tide.run(function ()
  for l in tide.stdin:lines() do print(l) end
  print(kind(tide.stdin))
  tide.stdout:write("done\n")
end)]])
    assert.equal("one\ntwo\ntide.Stream (pipe)\ndone\n", out)
    assert.equal(0, code)
  end)
end)

describe("tide.stdout and tide.stderr", function ()
  it("are Streams on pipes, in order with print and io.write", function ()
    local out = run("%s 2>&1 | cat", KIND .. [[
io.write(kind(tide.stdout), " ", kind(tide.stderr), "\n") io.stdout:flush()
print(1) io.stdout:flush()
tide.stdout:write("2\n")
io.write("3\n") io.stdout:flush()
tide.stderr:write("4\n")
print(5)]])
    assert.equal("tide.Stream (pipe) tide.Stream (pipe)\n1\n2\n3\n4\n5\n", out)
  end)

  it("are Files when redirected to files, written at the shared position", function ()
    local o, e = os.tmpname(), os.tmpname()
    finally(function () os.remove(o) os.remove(e) end)
    local out = run("%s > " .. o .. " 2> " .. e, KIND .. [[
io.write("a") io.stdout:flush()
tide.stdout:write("b")
print("c", kind(tide.stdout))
io.stderr:write("x")
tide.stderr:write("y\n")]])
    assert.equal("", out)
    assert.equal("abc\ttide.File\n", readfile(o))
    assert.equal("xy\n", readfile(e))
  end)

  it("append to a file opened for appending", function ()
    local o = tmpfile("before\n")
    finally(function () os.remove(o) end)
    run("%s >> " .. o, [[
print("print") io.stdout:flush()
tide.stdout:write("tide\n")]])
    assert.equal("before\nprint\ntide\n", readfile(o))
  end)

  it("leave fds 1 and 2 to print when closed", function ()
    local out = run("%s | cat", [[
tide.stdout:close()
print("still printed", tide.stdout)]])
    assert.equal("still printed\ttide.Stream (closed)\n", out)
  end)

  it("are Streams on a terminal", function ()
    if not os.execute("command -v script > /dev/null") then
      pending("no script(1) to make a terminal")
      return
    end
    local path = script(KIND .. [[
print(kind(tide.stdin), kind(tide.stdout), kind(tide.stderr))
tide.stdout:write("written\n")]])
    local out = sh(("env -u LD_PRELOAD script -qec '%s %s' /dev/null < /dev/null"):format(TIDE, path))
    out = out:gsub("\r", "")
    assert.equal("tide.Stream (tty)\ttide.Stream (tty)\ttide.Stream (tty)\nwritten\n", out)
  end)
end)
