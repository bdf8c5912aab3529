-- require_spec.lua: require inside a task, where a module's main chunk can
-- wait (runtime/require.c): one load per module however many tasks ask,
-- and everything else exactly as Lua 5.4's require, side by side with
-- lua5.4.

local function q (s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- A temporary directory of modules: name -> source.
local function moddir (files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  for name, src in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name .. ".lua", "w"))
    f:write(src)
    f:close()
  end
  return dir
end

-- Run body with dir first in package.path; forget the modules after.
local function with_path (dir, body)
  local path = package.path
  package.path = dir .. "/?.lua;" .. path
  local ok, err = pcall(body)
  package.path = path
  for name in pairs(package.loaded) do
    if name:match("^rq_") then package.loaded[name] = nil end
  end
  _G.rq_loads, _G.rq_in, _G.rq_go = nil, nil, nil
  os.execute("rm -r " .. dir)
  if not ok then error(err, 0) end
end

local slow = [[
rq_loads = (rq_loads or 0) + 1
local M = { name = ..., data = select(2, ...) }
tide.sleep(0.03)
M.done = true
return M
]]

-- A module that says it is loading (rq_in) and waits until told (rq_go).
local gated = [[
rq_loads = (rq_loads or 0) + 1
local M = { name = ... }
rq_in:set()
rq_go:wait()
M.done = true
return M
]]

local function gates ()
  _G.rq_in, _G.rq_go = tide.Event(), tide.Event()
end

describe("require in a task", function ()
  it("loads a module whose main chunk waits, with the loader data second", async(function ()
    local dir = moddir { rq_slow = slow }
    with_path(dir, function ()
      local m, data = require "rq_slow"
      assert.is_true(m.done)
      assert.equal("rq_slow", m.name)
      assert.equal(dir .. "/rq_slow.lua", data)
      assert.equal(m.data, data)
      assert.equal(m, package.loaded.rq_slow)
      assert.equal(1, select("#", require "rq_slow"))
    end)
  end))

  it("runs the chunk once when tasks require it at once; the others wait for all of it", async(function ()
    local dir = moddir { rq_slow = slow }
    with_path(dir, function ()
      local tasks = {}
      for i = 1, 5 do
        tasks[i] = tide.spawn(function ()
          local m = require "rq_slow"
          return m.done, m
        end)
      end
      local m = require "rq_slow"
      for i = 1, 5 do
        local done, mi = tasks[i]:await()
        assert.is_true(done)
        assert.equal(m, mi)
      end
      assert.equal(1, rq_loads)
    end)
  end))

  it("waits for a module that put itself in package.loaded before it waits", async(function ()
    local dir = moddir { rq_early = [[
      local M = {}
      package.loaded[...] = M
      rq_in:set()
      rq_go:wait()
      M.done = true
      return M
    ]] }
    with_path(dir, function ()
      gates()
      local a = tide.spawn(require, "rq_early")
      rq_in:wait()
      local b = tide.spawn(function () return require("rq_early").done end)
      tide.sleep(0.01)
      assert.is_false(b:done())
      rq_go:set()
      assert.is_true(b:await())
      assert.equal(package.loaded.rq_early, a:await())
    end)
  end))

  it("leaves package.loaded alone when the loader fails; a waiting task then loads it", async(function ()
    local dir = moddir { rq_flaky = [[
      rq_loads = (rq_loads or 0) + 1
      rq_in:set()
      rq_go:wait()
      if rq_loads == 1 then error("first load fails") end
      return { n = rq_loads }
    ]] }
    with_path(dir, function ()
      gates()
      local a = tide.spawn(require, "rq_flaky")
      local b = tide.spawn(require, "rq_flaky")
      local loaded = "?"
      a:on_done(function () loaded = rawget(package.loaded, "rq_flaky") end)
      rq_in:wait()
      rq_go:set()
      local ok, err = pcall(a.await, a)
      assert.is_false(ok)
      assert.matches("rq_flaky.lua:4: first load fails", err)
      assert.is_nil(loaded)
      assert.equal(2, b:await().n)
      assert.equal(2, rq_loads)
    end)
  end))

  it("leaves package.loaded alone when the loading task is cancelled", async(function ()
    local dir = moddir { rq_gated = gated }
    with_path(dir, function ()
      gates()
      local a = tide.spawn(require, "rq_gated")
      local b = tide.spawn(require, "rq_gated")
      rq_in:wait()
      a:cancel()
      assert.has_error(function () a:await() end)
      assert.is_true(a:cancelled())
      assert.is_nil(rawget(package.loaded, "rq_gated"))
      rq_go:set()
      assert.is_true(b:await().done)
      assert.equal(2, rq_loads)
    end)
  end))

  it("lets a task waiting for a load be cancelled while the load goes on", async(function ()
    local dir = moddir { rq_gated = gated }
    with_path(dir, function ()
      gates()
      local a = tide.spawn(require, "rq_gated")
      local b = tide.spawn(require, "rq_gated")
      local c = tide.spawn(require, "rq_gated")
      rq_in:wait()
      tide.sleep(0.01)
      b:cancel()
      assert.has_error(function () b:await() end)
      assert.is_true(b:cancelled())
      rq_go:set()
      assert.equal(a:await(), c:await())
      assert.equal(1, rq_loads)
    end)
  end))

  it("lets a module require itself as Lua's require does", async(function ()
    local dir = moddir { rq_self = [[
      local M = { n = 0 }
      package.loaded[...] = M
      tide.sleep(0.01)
      M.again = require(...)
      return M
    ]] }
    with_path(dir, function ()
      local m = require "rq_self"
      assert.equal(m, m.again)
    end)
  end))

  it("does not deadlock when two tasks load modules that require each other", async(function ()
    local dir = moddir {
      rq_a = [[local M = {} package.loaded[...] = M tide.sleep(0.02)
               M.b = require "rq_b" return M]],
      rq_b = [[local M = {} package.loaded[...] = M tide.sleep(0.02)
               M.a = require "rq_a" return M]],
    }
    with_path(dir, function ()
      local ta = tide.spawn(require, "rq_a")
      local tb = tide.spawn(require, "rq_b")
      local a, b = tide.timeout(5, function () return ta:await(), tb:await() end)
      assert.is_table(a)
      assert.equal(b, a.b)
      assert.equal(a, b.a)
    end)
  end))

  it("waits in a searcher added to package.searchers", async(function ()
    local searchers = package.searchers
    package.searchers = { table.unpack(searchers) }
    table.insert(package.searchers, 1, function (name)
      if name ~= "rq_remote" then return "no remote '" .. name .. "'" end
      tide.sleep(0.01)
      return function (n, d) tide.sleep(0.01) return { n = n, d = d } end, "remote data"
    end)
    local ok, m, d = pcall(require, "rq_remote")
    local ok2, err = pcall(require, "rq_nowhere")
    package.searchers = searchers
    package.loaded.rq_remote = nil
    assert.is_true(ok, m)
    assert.same({ n = "rq_remote", d = "remote data" }, m)
    assert.equal("remote data", d)
    assert.is_false(ok2)
    assert.matches("module 'rq_nowhere' not found:\n\tno remote 'rq_nowhere'\n\tno field package.preload%['rq_nowhere'%]", err)
  end))

  it("in a coroutine of the task, runs the loader as Lua's require does: it cannot wait", async(function ()
    local dir = moddir { rq_slow = slow }
    with_path(dir, function ()
      local ok, err = coroutine.wrap(function () return pcall(require, "rq_slow") end)()
      assert.is_false(ok)
      assert.matches("cannot wait inside a C call such as table.sort, string.gsub or require", err)
      assert.is_nil(rawget(package.loaded, "rq_slow"))
      assert.is_true(require("rq_slow").done)
    end)
  end))

  it("in a coroutine of the task, waits for another task's load of the module", async(function ()
    local dir = moddir { rq_gated = gated }
    with_path(dir, function ()
      gates()
      local a = tide.spawn(require, "rq_gated")
      rq_in:wait()
      local go = tide.spawn(function () tide.sleep(0.01) rq_go:set() end)
      local m = coroutine.wrap(function () return require "rq_gated" end)()
      go:await()
      assert.is_true(m.done)
      assert.equal(a:await(), m)
      assert.equal(1, rq_loads)
    end)
  end))

  it("raises outside a task for a module that a task is loading", async(function ()
    local dir = moddir { rq_gated = gated }
    with_path(dir, function ()
      gates()
      local a = tide.spawn(require, "rq_gated")
      rq_in:wait()
      local got
      local d = tide.spawn(tide.sleep, 0)
      d:on_done(function () got = table.pack(pcall(require, "rq_gated")) end)
      d:await()
      rq_go:set()
      a:await()
      assert.is_false(got[1])
      assert.equal("module 'rq_gated' is being loaded by a task; require it "
                   .. "from a task to wait for it", got[2])
    end)
  end))
end)

describe("require, side by side with lua5.4's", function ()
  local files = {
    rq_syntax = "local x = = 1\n",
    rq_raises = "local x = 1\nerror('boom from ' .. ...)\n",
    rq_raisestable = "error(setmetatable({}, { __tostring = function () return 'obj' end }))\n",
    rq_nil = "return nil\n",
    rq_false = "return false\n",
    rq_own = "package.loaded[...] = 'own value'\nreturn nil\n",
    rq_ownfalse = "package.loaded[...] = false\n",
    rq_data = "return select('#', ...), ...\n",
    rq_yields = "coroutine.yield(1)\nreturn 'after yield'\n",
    rq_cases = [[
local dir = ...
package.path = dir .. "/?.lua"
package.cpath = dir .. "/?.so"
local function show (...)
  local t = table.pack(...)
  for i = 1, t.n do
    t[i] = type(t[i]) == "table" and "<table>" or tostring(t[i])
  end
  print(table.concat(t, " | ", 1, t.n))
end
local function req (...) show(pcall(require, ...)) end
req "rq_missing"
req "rq_syntax"
req "rq_raises"
req "rq_raisestable"
req "rq_nil"; show(package.loaded.rq_nil)
req "rq_false"; show(package.loaded.rq_false)
req "rq_own"; show(package.loaded.rq_own)
req "rq_ownfalse"; show(package.loaded.rq_ownfalse)
req "rq_data"; req "rq_data"
req "rq_yields"
req(); req({}); req(42); req("rq_data", "extra")
package.preload.rq_pre = function (...) return { ... } end
req "rq_pre"; show(package.loaded.rq_pre[1], package.loaded.rq_pre[2])
package.preload.rq_prenil = function () end
req "rq_prenil"
table.insert(package.searchers, 2, function (name)
  if name == "rq_virtual" then
    return function (n, d) return n .. " loaded with " .. d end, "its data"
  end
  return "no virtual module '" .. name .. "'"
end)
req "rq_virtual"
req "rq_missing2"
table.insert(package.searchers, 1, function () return 42 end)
table.insert(package.searchers, 1, function () end)
table.insert(package.searchers, 1, function () return nil, "ignored" end)
req "rq_missing3"
table.insert(package.searchers, 1, function (n)
  if n == "rq_bad" then error("searcher failed") end
end)
req "rq_bad"
table.insert(package.searchers, 1, function (n)
  if n == "rq_notfunc" then return {}, "x" end
end)
req "rq_notfunc"
local searchers = package.searchers
package.searchers = nil; req "rq_x"
package.searchers = "no"; req "rq_x"
package.searchers = {}; req "rq_x"
package.searchers = searchers
local loaded = package.loaded
package.loaded = {}; req "rq_data"; package.loaded = loaded
package.path = 42; req "rq_y"
package.path = dir .. "/?.lua"
local pkg = package
package = nil; req "rq_virtual"; req "rq_z"; package = pkg
show(require == _G.require, debug.getinfo(require).what)
]]
  }
  local dir, preload

  setup(function ()
    dir = moddir(files)
    preload = os.getenv("TIDE_PRELOAD") or ""
  end)

  teardown(function ()
    os.execute("rm -r " .. dir)
  end)

  local function lua (cmd)
    return sh("env -u LD_PRELOAD lua5.4 " .. cmd)
  end

  local function stock_tide (cmd)
    return sh(("LD_PRELOAD=%s LUA_CPATH=%s lua5.4 %s")
      :format(q(preload), q(BUILD .. "/?.so;;"), cmd))
  end

  local function cmd_tide (cmd)
    return sh("env -u LD_PRELOAD " .. TIDE .. " " .. cmd)
  end

  it("gives the same results and messages in a task and outside", function ()
    local cases = dir .. "/rq_cases.lua"
    local want, code = lua(q(cases) .. " " .. q(dir))
    assert.equal(0, code, want)
    assert.matches("module 'rq_missing' not found:", want)
    assert.matches("rq_syntax.lua:1: unexpected symbol near '='", want)
    assert.matches("rq_raises.lua:2: boom from rq_raises", want)
    assert.matches("attempt to yield from outside a coroutine", want)
    -- under the tide command, the script is a task
    local got = cmd_tide(q(cases) .. " " .. q(dir))
    assert.equal(want, got)
    -- stock lua5.4: in a task run by tide.run, and outside any task
    got = stock_tide(("-e %s %s"):format(
      q("local tide = require 'tide' tide.run(function () assert(loadfile('"
        .. cases .. "'))('" .. dir .. "') end)"), ""))
    assert.equal(want, got)
    got = stock_tide(("-l tide %s %s"):format(q(cases), q(dir)))
    assert.equal(want, got)
  end)

  it("gives the same results in a coroutine and in a task inside it", function ()
    local cases = dir .. "/rq_cases.lua"
    local wrap = "coroutine.wrap(function () assert(loadfile('%s'))('%s') end)()"
    local want = lua("-e " .. q(wrap:format(cases, dir)))
    assert.matches("attempt to yield across a C%-call boundary", want)
    local got = cmd_tide("-e " .. q(wrap:format(cases, dir)))
    assert.equal(want, got)
    got = stock_tide("-l tide -e " .. q(wrap:format(cases, dir)))
    assert.equal(want, got)
  end)

  it("reports an error in a module with its traceback, as lua5.4 does", function ()
    local cmd = ("-e %s -e %s"):format(q("package.path = '" .. dir .. "/?.lua'"),
      q("require 'rq_raises'"))
    local want, code = lua(cmd)
    local got, tcode = cmd_tide(cmd)
    assert.equal(code, tcode)
    assert.equal(want:match("^[^\n]*"):gsub("^lua5.4", ""),
                 got:match("^[^\n]*"):gsub("^" .. TIDE:gsub("%p", "%%%0"), ""))
    assert.matches("rq_raises.lua:2: in main chunk\n\t%[C%]: in function 'require'", got)
  end)

  it("loads a waiting module with -l under the tide command", function ()
    local mods = moddir { rq_waits = "tide.sleep(0.01) return { x = 42 }" }
    local out, code = cmd_tide(("-e %s -l rq_waits -e %s"):format(
      q("package.path = '" .. mods .. "/?.lua;' .. package.path"),
      q("print(rq_waits.x)")))
    os.execute("rm -r " .. mods)
    assert.equal(0, code, out)
    assert.equal("42\n", out)
  end)

  it("loads a waiting module in stock lua5.4 once tide is loaded", function ()
    local mods = moddir { rq_waits = "local tide = require 'tide' tide.sleep(0.01) return { x = 42 }" }
    local out, code = stock_tide(("-e %s %s"):format(q(
      "package.path = '" .. mods .. "/?.lua;' .. package.path " ..
      "local tide = require 'tide' " ..
      "print(tide.run(function () return require('rq_waits').x end))"), ""))
    os.execute("rm -r " .. mods)
    assert.equal(0, code, out)
    assert.equal("42\n", out)
  end)

  it("loads a waiting module in a C host's task (tide_open)", function ()
    local mods = moddir { rq_waits = "tide.sleep(0.01) return { x = 42 }" }
    local exe = os.tmpname()
    local san = BUILD:match("asan") and "-fsanitize=address,undefined " or ""
    local out, code = sh(("env -u LD_PRELOAD cc -Wall -Wextra -Werror %s-Iruntime "
      .. "$(pkg-config --cflags lua5.4 libuv) -o %s examples/run_script.c %s/libtide.a "
      .. "$(pkg-config --libs lua5.4 libuv) -lm"):format(san, exe, BUILD))
    assert.equal(0, code, out)
    local script = tmpfile("package.path = '" .. mods .. "/?.lua;' .. package.path\n"
      .. "local m, data = require 'rq_waits'\n"
      .. "print(m.x, data == '" .. mods .. "/rq_waits.lua', require 'rq_waits' == m)")
    out, code = sh("env -u LD_PRELOAD " .. exe .. " " .. script)
    os.remove(exe)
    os.remove(script)
    os.execute("rm -r " .. mods)
    assert.equal(0, code, out)
    assert.equal("42\ttrue\ttrue\n", out)
  end)
end)

describe("require with an allocator that fails", function ()
  it("ends each run in an error or the script's end, leaking nothing, the runtime usable again", function ()
    oomsweep("require", "spec/require_oom.lua")
  end)
end)
