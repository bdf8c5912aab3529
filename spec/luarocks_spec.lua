-- luarocks_spec.lua: tide as a rock (tide-*.rockspec), with Debian's
-- luarocks: `luarocks make` from this tree and `luarocks install` from a
-- source archive, each into a temporary tree, from which stock lua5.4
-- loads the module and runs a task, and the installed command runs.

local function q (s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- A shell command without the sanitizer runtimes that LD_PRELOAD holds for
-- lua5.4 under a sanitized build: the rock is a plain build.
local function run (cmd)
  return sh("env -u LD_PRELOAD sh -c " .. q(cmd))
end

local function rockspec ()
  local out = run("ls tide-*.rockspec")
  local name = out:match("^(tide%-[^\n]+%.rockspec)\n$")
  assert(name, "one tide-*.rockspec expected at the top of the tree: " .. out)
  return name
end

local function tempdir ()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  return dir
end

-- luarocks for Lua 5.4, two jobs for make; no sanitizer runtimes (the
-- rock is a plain build).
local function luarocks (args, cwd)
  local _, code = run("command -v luarocks")
  assert(code == 0, "luarocks is missing (Debian: apt-get install luarocks)")
  return run((cwd and "cd " .. q(cwd) .. " && " or "")
    .. "MAKEFLAGS=-j2 luarocks --lua-version=5.4 " .. args)
end

-- What the tree gives stock lua5.4 and the tree's tide command, through
-- the paths `luarocks path` prints.
local function check_tree (tree)
  local env = ("eval \"$(luarocks --lua-version=5.4 path --tree=%s)\" && ")
    :format(q(tree))
  local out, code = run(env .. "lua5.4 -e " .. q([[
    local tide = require "tide"
    print(package.searchpath("tide", package.cpath))
    print(tide.run(function () tide.sleep(0.01) return "task ran" end))]]))
  assert.equal(0, code, out)
  assert.equal(tree .. "/lib/lua/5.4/tide.so\ntask ran\n", out)
  out, code = run(env .. "command -v tide && tide -e "
    .. q("tide.sleep(0.01) print(tide._VERSION, _VERSION)"))
  assert.equal(0, code, out)
  assert.matches("^" .. tree:gsub("%p", "%%%0") .. "/bin/tide\ntide [%d.]+\tLua 5%.4\n$", out)
end

describe("the rock", function ()
  it("builds with luarocks make into a tree that lua5.4 loads tide from", function ()
    local tree = tempdir()
    -- in build/rock, its own, with LuaRocks' CFLAGS, even where build/ is
    -- already built (its make would have nothing to do)
    run("rm -rf build/rock")
    local out, code = luarocks("make --tree=" .. q(tree) .. " " .. rockspec()
      .. " CFLAGS='-O2 -fPIC -DTIDE_ROCK_FLAGS'")
    assert.equal(0, code, out)
    assert.matches("is now installed in", out)
    assert.matches("-DTIDE_ROCK_FLAGS", out, 1, true)
    assert.is_truthy(io.open("build/rock/tide.so"))
    check_tree(tree)
    os.execute("rm -r " .. q(tree))
  end)

  it("installs with luarocks install from the source archive its rockspec names", function ()
    local dir = tempdir()
    local spec = rockspec()
    local f = assert(io.open(spec))
    local text = f:read("a")
    f:close()
    local archive = text:match('\nsource = {.-\n%s*url = "([^"]+)"')
    local top = text:match('\nsource = {.-\n%s*dir = "([^"]+)"')
    assert(archive and top, "source.url and source.dir expected in " .. spec)
    local out, code = run(("git ls-files -co --exclude-standard | tar -czf %s "
      .. "--transform %s -T -"):format(q(dir .. "/" .. archive), q("s|^|" .. top .. "/|")))
    assert.equal(0, code, out)
    out, code = run(("cp %s %s/"):format(q(spec), q(dir)))
    assert.equal(0, code, out)
    out, code = luarocks(("install --tree=%s ./%s"):format(q(dir .. "/tree"), q(spec)), dir)
    assert.equal(0, code, out)
    assert.matches("is now installed in", out)
    check_tree(dir .. "/tree")
    os.execute("rm -r " .. q(dir))
  end)
end)
