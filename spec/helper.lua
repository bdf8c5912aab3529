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
