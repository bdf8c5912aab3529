-- embed_spec.lua: C hosts embedding tide through runtime/tide.h, built
-- against the build's libtide.a (spec/embed/*.c). Memory is checked with
-- valgrind, or with LeakSanitizer when the build is sanitized.

local sanitized = BUILD:match("asan") ~= nil
local sanflags = sanitized and "-fsanitize=address,undefined " or ""

local function build (name)
  local exe = os.tmpname()
  local out, code = sh(("env -u LD_PRELOAD cc -Wall -Wextra -Werror %s-Iruntime $(pkg-config --cflags lua5.4 libuv) " ..
    "-o %s spec/embed/%s.c %s/libtide.a $(pkg-config --libs lua5.4 libuv) -lm")
    :format(sanflags, exe, name, BUILD))
  assert(code == 0, out)
  return exe
end

-- Run exe under the memory checker; return its output and exit code.
local function memcheck (exe)
  if sanitized then return sh("ASAN_OPTIONS=detect_leaks=1 " .. exe) end
  return sh("valgrind -q --leak-check=full --errors-for-leak-kinds=all --error-exitcode=9 " .. exe)
end

describe("embedding tide in a C host", function ()
  it("runs tasks on the host's loop, stepped with NOWAIT, and closes cleanly", function ()
    local exe = build("host")
    local out, code = sh(exe)
    assert.equal(0, code, out)
    assert.equal("ok\n", out)
    os.remove(exe)
  end)

  it("leaks nothing and touches no freed memory", function ()
    local exe = build("host")
    local out, code = memcheck(exe)
    assert.equal(0, code, out)
    assert.equal("ok\n", out)
    os.remove(exe)
  end)
end)
