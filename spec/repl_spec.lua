-- repl_spec.lua: the interactive prompt (runtime/repl.c, runtime/lua/repl.lua)
-- through a pipe, and through a real terminal: a tmux session whose keys
-- are sent and whose screen is read back.

local function repl (input, env)
  local f = tmpfile(input)
  local out, code = sh(("%s %s -i < %s"):format(env or "", TIDE, f))
  os.remove(f)
  return out, code
end

describe("the REPL through a pipe", function ()
  it("prints expression values, runs statements and continues lines", function ()
    local out, code = repl("x = 1 + 1\nx\n1, nil, 's'\nfunction f (a)\n  return a * 2\nend\nf(21)\n=x + 1\n")
    assert.equal(0, code, out)
    assert.matches("> x\n2\n", out, 1, true)
    assert.matches("1\tnil\ts\n", out, 1, true)
    assert.matches("> function f (a)\n>>   return a * 2\n>> end\n> f(21)\n42\n", out, 1, true)
    assert.matches("> =x + 1\n3\n", out, 1, true)
  end)

  it("awaits at the prompt and keeps background tasks running", function ()
    local out, code = repl("t = tide.spawn(function () tide.sleep(0.05) return 'bg' end)\n" ..
                           "tide.sleep(0.1) return 'slept'\nt:done(), t:await()\n")
    assert.equal(0, code, out)
    assert.matches("slept\n", out, 1, true)
    assert.matches("true\tbg\n", out, 1, true)
  end)

  it("reports an error with its traceback and goes on", function ()
    local out, code = repl("error('boom')\nprint('after')\nfor\n")
    assert.equal(0, code, out)
    assert.matches("stdin:1: boom\nstack traceback:", out, 1, true)
    assert.matches("stdin:1: <name> expected near", out, 1, true)
    assert.matches("after\n", out, 1, true)
  end)

  it("honours _PROMPT and _PROMPT2", function ()
    local out = repl("_PROMPT = 'tide$ ' _PROMPT2 = '...$ '\nif true then\nend\n")
    assert.matches("tide$ if true then\n...$ end\n", out, 1, true)
  end)

  it("lists running tasks and where they wait with :tasks", function ()
    local out = repl("t = tide.spawn(tide.sleep, 5)\n:tasks\n")
    assert.matches("tide.Task: 0x%x+ %(waiting%)\nstack traceback:\n%s+%[C%]: in function 'tide.sleep'", out)
  end)

  it("lists its commands and keys with :help, and names an unknown command", function ()
    local out, code = repl(":help\n  :help  \n:nope\n1 + 1\n")
    assert.equal(0, code, out)
    local _, n = out:gsub("\n:tasks +list the running tasks", "")
    assert.equal(2, n, out)
    for _, key in ipairs({ ":help", "Ctrl%-C", "Ctrl%-D", "Tab" }) do
      assert.matches("\n" .. key .. " +%S", out)
    end
    assert.matches("\n[^\n]*\"Lua API\" section of tide's README", out)
    assert.matches("unknown command :nope (:help lists them)\n", out, 1, true)
    assert.matches("> 1 + 1\n2\n", out, 1, true)
  end)
end)

-- A tide REPL in a tmux session with HOME set to home, on a tmux server of
-- its own (-S, its socket removed by close): with one server for all, a
-- session made just as another's last one closed found the server on its
-- way out (new-session failed).
local Term = {}
Term.__index = Term

local function term (home)
  local name = "tide" .. math.random(1e9)
  local self = setmetatable({ name = name, sock = os.tmpname() }, Term)
  os.remove(self.sock)
  local _, code = sh(("env -u LD_PRELOAD tmux -S %s new-session -d -s %s -x 120 -y 40 'HOME=%s %s'")
    :format(self.sock, name, home, TIDE))
  assert.equal(0, code)
  self:expect("\n>$")
  -- Keys typed before the line editor has the terminal can be lost (seen
  -- on a loaded machine): type a probe until it shows, then erase it.
  local shown
  for _ = 1, 20 do
    self:keys("x")
    shown = pcall(self.expect, self, "\n>%s?x+$", false, 20)
    if shown then break end
  end
  assert(shown, "the REPL never showed what was typed")
  self:keys("BSpace", "BSpace", "BSpace", "BSpace", "BSpace")
  self:expect("\n>$")
  return self
end

function Term:keys (...)
  local args = {}
  for i = 1, select("#", ...) do
    args[i] = "'" .. select(i, ...):gsub("'", "'\\''") .. "'"
  end
  sh(("tmux -S %s send-keys -t %s %s"):format(self.sock, self.name,
                                               table.concat(args, " ")))
end

function Term:screen ()
  local screen = sh(("tmux -S %s capture-pane -p -t %s"):format(self.sock,
                                                                self.name))
  return (screen:gsub("[ \t]+\n", "\n"):gsub("\n+$", ""))
end

-- Wait (up to 10 s, or tries × 0.05 s) until the screen matches pattern;
-- return the screen.
function Term:expect (pattern, plain, tries)
  local screen
  for _ = 1, tries or 200 do
    screen = self:screen()
    if screen:find(pattern, 1, plain) then return screen end
    os.execute("sleep 0.05")
  end
  error("screen never showed " .. pattern .. ":\n" .. screen, 2)
end

function Term:close ()
  sh(("tmux -S %s kill-session -t %s"):format(self.sock, self.name))
  os.remove(self.sock)
end

local function tempdir ()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir " .. d))
  return d
end

describe("the REPL on a terminal", function ()
  local home
  before_each(function () home = tempdir() end)
  after_each(function () sh("rm -rf " .. home) end)

  it("prints a background ticker above the line being typed", function ()
    local t = term(home)
    finally(function () t:close() end)
    t:keys("n = 0 tide.spawn(function () while true do tide.sleep(0.1) n = n + 1 print('tick ' .. n) end end)", "Enter")
    t:keys("half typed")
    t:expect("tick 3\n")
    local screen = t:expect("tick %d+\n> half typed$")  -- the line, redrawn
    assert.is_nil(screen:find("tick %d+>"))       -- never inside the line
    assert.is_nil(screen:find("typedtick"))
  end)

  it("cancels a running input with Ctrl-C, running its <close> variables", function ()
    local t = term(home)
    finally(function () t:close() end)
    t:keys("do local _ <close> = setmetatable({}, {__close = function () print('cleaned up') end}) tide.sleep(30) end", "Enter")
    os.execute("sleep 0.3")
    t:keys("C-c")
    t:expect("cleaned up\ncancelled\n>$")
    t:keys("1 + 1", "Enter")
    t:expect("\n2\n>$")
  end)

  it("interrupts an input that computes without waiting with Ctrl-C", function ()
    local t = term(home)
    finally(function () t:close() end)
    t:keys("while true do end", "Enter")
    os.execute("sleep 0.3")
    t:keys("C-c")
    t:expect("%^Cinterrupted!\nstack traceback:\n%s+stdin:1: in main chunk.*\n>$")
    t:keys("1 + 1", "Enter")
    t:expect("\n2\n>$")
  end)

  it("clears the line with Ctrl-C at the prompt and exits on Ctrl-D", function ()
    local t = term(home)
    finally(function () t:close() end)
    t:keys("never run")
    t:keys("C-c")
    t:expect("> never run%^C\n>$")
    t:keys("tide.spawn(tide.sleep, 30)", "Enter")
    t:keys("C-d")
    t:expect("1 task still running; Ctrl%-D again to exit\n>$")
    t:keys("C-d")
    for _ = 1, 100 do
      local _, code = sh(("tmux -S %s has-session -t %s"):format(t.sock, t.name))
      if code ~= 0 then return end                -- the program ended
      os.execute("sleep 0.05")
    end
    error("the REPL did not exit")
  end)

  it("completes globals and fields", function ()
    local t = term(home)
    finally(function () t:close() end)
    t:keys("tide.tc", "Tab")
    t:expect("> tide.tcp$")
    t:keys(".conn", "Tab")
    t:expect("> tide.tcp.connect$")
  end)

  it("completes the names of library files that have not run yet", function ()
    local t = term(home)
    finally(function () t:close() end)
    t:keys("tide.Que", "Tab")
    t:expect("> tide.Queue$")
    t:keys("C-u", "tide.fs.read_f", "Tab")
    t:expect("> tide.fs.read_file$")
  end)

  it("offers no metamethods after ':', and after '.' only for '__'", function ()
    local t = term(home)
    finally(function () t:close() end)
    t:keys("q = tide.Queue() t = {__x = 1, y = 2}", "Enter")
    t:keys("q:", "Tab", "Tab")
    local screen = t:expect("q:put_nowait.*\n> q:$")
    assert.is_nil(screen:find("q:__", 1, true), screen)
    t:keys("C-u", "t.", "Tab")
    t:expect("> t%.y$")                            -- the one match
    t:keys("C-u", "t.__", "Tab")
    t:expect("> t%.__x$")
  end)

  it("keeps history across runs in ~/.tide_history", function ()
    local t = term(home)
    t:keys("remembered = 42", "Enter")
    t:expect("> remembered = 42\n>$")
    t:keys("C-d")
    os.execute("sleep 0.3")
    t:close()
    local f = assert(io.open(home .. "/.tide_history"))
    assert.matches("remembered", f:read("a"), 1, true)
    f:close()
    local t2 = term(home)
    finally(function () t2:close() end)
    t2:keys("Up")
    t2:expect("> remembered = 42$")
  end)
end)
