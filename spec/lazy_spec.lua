-- lazy_spec.lua: the Lua-side library (runtime/lua) and some bindings run
-- on the first use of a name they define (runtime.c, embed.lua): indexing
-- the tide table gives every name at once, pairs lists them all, a name
-- set by hand stays, and a file that fails raises where it is used. Each
-- case runs in a fresh tide command and in a fresh stock lua5.4 that
-- requires tide.so.

local function q (s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local RUNNERS = {
  { "the tide command", function (code)
      return sh(TIDE .. " -e " .. q(code))
    end },
  { "stock lua5.4", function (code)
      return sh("LD_PRELOAD='" .. (os.getenv("TIDE_PRELOAD") or "") ..
                "' LUA_CPATH='" .. BUILD .. "/?.so;;' lua5.4 -e " ..
                q("tide = require 'tide' " .. code))
    end },
}

-- Code that prints each name of the tide table that pairs lists, with its
-- type and, for a table, its keys as pairs lists them: one line each.
local LIST = [[
local function keys (t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = tostring(k) end
  table.sort(list)
  return list
end
local function show (k)
  local v = tide[k]
  io.write(k, " ", type(v))
  if type(v) == "table" then io.write(" ", table.concat(keys(v), ",")) end
  io.write("\n")
end
]]

local function lines (s)
  local list = {}
  for line in s:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

for _, runner in ipairs(RUNNERS) do
  local name, run = runner[1], runner[2]

  describe("the tide table, in " .. name, function ()
    local function check (code)
      local out, status = run(code)
      assert.equal(0, status, out)
      return out
    end

    it("runs no library file until one of its names is used", function ()
      assert.equal("nil\tnil\tnil\tnil\n",
                   check("print(rawget(tide, 'run'), rawget(tide, 'Event'), " ..
                         "rawget(tide, 'fs'), rawget(tide, 'tcp'))"))
      assert.equal("function\tnil\tnil\n",
                   check("local _ = tide.Event print(type(rawget(tide, 'Event')), " ..
                         "rawget(tide, 'fs'), rawget(tide, 'process'))"))
    end)

    it("gives each name that pairs lists on its first use, whole", function ()
      local all = lines(check(LIST .. "for _, k in ipairs(keys(tide)) do show(k) end"))
      assert.is_true(#all > 30)
      local names = {}
      for i, line in ipairs(all) do names[i] = line:match("^%S+") end
      for _, k in ipairs { "run", "Queue", "Lock", "tcp", "udp", "pipe", "dns",
                           "process", "fs", "spawn", "sleep" } do
        assert.is_truthy(table.concat(names, " "):find("%f[%w]" .. k .. "%f[%W]"), k)
      end
      -- Used first, alone, each gives what pairs listed: a table with all
      -- of its keys (tide.fs with read_file, tide.tcp with connect).
      for i, k in ipairs(names) do
        assert.equal(all[i] .. "\n", check(LIST .. ("show(%q)"):format(k)))
      end
      -- And indexing every name first leaves the table as pairs lists it.
      local touch = {}
      for i, k in ipairs(names) do touch[i] = ("local _ = tide[%q]"):format(k) end
      local out = check(table.concat(touch, " ") .. "\n" .. LIST .. [[
local list = {}
for k in next, tide do list[#list + 1] = k end
table.sort(list)
for _, k in ipairs(list) do show(k) end]])
      assert.same(all, lines(out))
    end)

    it("has each table of the tide table in package.loaded from the start", function ()
      assert.equal("function\ttrue\ttrue\n",
                   check("local fs = require 'tide.fs' print(type(fs.read_file), " ..
                         "fs == tide.fs, package.loaded['tide.tcp'] == tide.tcp)"))
      assert.equal("connect create_connection create_server listen serve\n", check([[
local list = {}
for k in pairs(require "tide.tcp") do list[#list + 1] = k end
table.sort(list)
print(table.concat(list, " "))]]))
      assert.matches("bad argument #1 to 'tide.fs.stat' %(string expected, got table%)",
                     check("print(pcall(tide.fs.stat, {}))"))
    end)

    it("makes the standard streams on first use", function ()
      assert.equal("true\ttrue\n",
                   check("print(tide.stdout ~= nil, rawget(tide, 'stdout') ~= nil)"))
    end)

    it("keeps a name set before its file runs", function ()
      assert.equal("42\tfunction\n",
                   check("tide.Event = 42 local s = tide.Semaphore print(tide.Event, type(s))"))
      assert.equal("mine\n", check("tide.mine = 'mine' print(tide.mine)"))
    end)

    it("raises a file's error where its name is used, and runs it again on the next use", function ()
      local out = check([[
local reg = debug.getregistry()
reg["tide.Event"] = 5                 -- sync.lua's Event class cannot be made
print(pcall(function () return tide.Semaphore end))
print(rawget(tide, "Semaphore"), rawget(tide, "Event"))
reg["tide.Event"] = nil
print(type(tide.Semaphore), type(tide.Event()))]])
      local l = lines(out)
      assert.matches("^false\tsync:%d+: attempt to index a number value", l[1])
      assert.equal("nil\tnil", l[2])
      assert.equal("function\ttable", l[3])
    end)

    it("runs a file with the standard functions of tide_open, and sets no global", function ()
      assert.equal("1\n", check([[
local s, t, e = setmetatable, type, error
setmetatable, type, error = nil, nil, nil
local q = tide.Queue(1)
setmetatable, type, error = s, t, e
q:put_nowait(1)
print(q:get_nowait())]]))
      assert.equal("same\n", check([[
local before = {}
for k in pairs(_G) do before[#before + 1] = k end
for _ in pairs(tide) do end
local after = {}
for k in pairs(_G) do after[#after + 1] = k end
print(#before == #after and "same" or "changed")]]))
    end)

    it("raises for a metamethod called on another table, naming it", function ()
      assert.equal("false\tbad argument #1 to 'tide.__pairs' (the tide module expected, got table)\n" ..
                   "false\tbad argument #1 to 'tide.__newindex' (the tide module expected, got number)\n",
                   check("local mt = getmetatable(tide) print(pcall(mt.__pairs, {})) " ..
                         "print(pcall(mt.__newindex, 1, 'x', 2))"))
    end)
  end)
end
