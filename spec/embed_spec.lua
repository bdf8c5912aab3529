-- embed_spec.lua: C hosts embedding tide through tide.h. spec/embed/host.c
-- is built against the build's libtide.a; the examples/ are built against
-- a copy installed with `make install` in a temporary prefix, found with
-- pkg-config only. Memory is checked with valgrind, or with LeakSanitizer
-- when the build is sanitized.

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

-- Run cmd under the memory checker; return its output and exit code.
local function memcheck (cmd, env)
  env = env or ""
  if sanitized then return sh(env .. " ASAN_OPTIONS=detect_leaks=1 " .. cmd) end
  return sh(env .. " valgrind -q --leak-check=full --errors-for-leak-kinds=all --error-exitcode=9 " .. cmd)
end

describe("embedding tide in a C host", function ()
  it("runs tasks on the host's loop, stepped with NOWAIT, and closes cleanly", function ()
    local exe = build("host")
    local out, code = sh(exe)
    assert.equal(0, code, out)
    assert.equal("ok\n", out)
    os.remove(exe)
  end)

  it("links against the build's libtide.so with an rpath to the build and starts", function ()
    local exe = os.tmpname()
    local out, code = sh(("env -u LD_PRELOAD cc -Wall -Wextra -Werror %s-Iruntime $(pkg-config --cflags lua5.4 libuv) " ..
      "-o %s examples/run_script.c -L%s -ltide -Wl,-rpath,%s $(pkg-config --libs lua5.4)")
      :format(sanflags, exe, BUILD, BUILD))
    assert(code == 0, out)
    local script = tmpfile("print('started')")
    out, code = sh(("env -u LD_LIBRARY_PATH %s %s"):format(exe, script))
    os.remove(script)
    os.remove(exe)
    assert.equal(0, code, out)
    assert.equal("started\n", out)
  end)

  it("leaks nothing and touches no freed memory", function ()
    local exe = build("host")
    local out, code = memcheck(exe)
    assert.equal(0, code, out)
    assert.equal("ok\n", out)
    os.remove(exe)
  end)
end)

describe("the examples, built against an installed tide", function ()
  local prefix, dir, env

  setup(function ()
    prefix = os.tmpname()
    os.remove(prefix)
    dir = prefix .. "/examples"
    local out, code = sh(("env -u LD_PRELOAD make -s install BUILD=%s PREFIX=%s && cp -r examples %s")
      :format(BUILD, prefix, dir))
    assert(code == 0, out)
    env = ("env -u LD_PRELOAD PKG_CONFIG_PATH=%s/lib/pkgconfig LD_LIBRARY_PATH=%s/lib")
      :format(prefix, prefix)
    out, code = sh(("%s make -s -C %s CFLAGS='-O1 -g %s'"):format(env, dir, sanflags))
    assert(code == 0, out)
  end)

  teardown(function ()
    sh("rm -rf " .. prefix)
  end)

  it("installs the command, the libraries, the header, tide.pc and the module", function ()
    for _, f in ipairs { "bin/tide", "lib/libtide.a", "lib/libtide.so",
                         "lib/libtide.so.0", "include/tide.h",
                         "lib/pkgconfig/tide.pc", "lib/lua/5.4/tide.so" } do
      assert.is_truthy(io.open(prefix .. "/" .. f), f)
    end
    local out = sh(("PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config --libs tide"):format(prefix))
    assert.matches("-ltide", out, 1, true)
    assert.matches("-Wl,-rpath," .. prefix .. "/lib", out, 1, true)
    local _, code = sh(("env -u LD_PRELOAD make -s uninstall BUILD=%s PREFIX=%s/other && make -s install BUILD=%s PREFIX=%s/other && make -s uninstall BUILD=%s PREFIX=%s/other")
      :format(BUILD, prefix, BUILD, prefix, BUILD, prefix))
    assert.equal(0, code)
    assert.equal("", (sh("find " .. prefix .. "/other -type f")))
  end)

  it("builds a host with pkg-config alone that starts without LD_LIBRARY_PATH", function ()
    local exe = prefix .. "/host_rpath"
    local out, code = sh(("env -u LD_PRELOAD PKG_CONFIG_PATH=%s/lib/pkgconfig sh -c " ..
      "'cc %s-o %s examples/run_script.c $(pkg-config --cflags --libs tide)'")
      :format(prefix, sanflags, exe))
    assert.equal(0, code, out)
    local script = tmpfile("print('started')")
    out, code = sh(("env -u LD_PRELOAD -u LD_LIBRARY_PATH %s %s"):format(exe, script))
    os.remove(script)
    assert.equal(0, code, out)
    assert.matches("started", out)
  end)

  it("runs a script from the smallest host", function ()
    local script = tmpfile("tide.sleep(0.01) print('ran', select('#', ...))")
    local out, code = memcheck(dir .. "/run_script " .. script, env)
    os.remove(script)
    assert.equal(0, code, out)
    assert.equal("ran\t0\n", out)
  end)

  it("interleaves the host's own timer with tasks on the host's loop", function ()
    local out, code = memcheck(dir .. "/own_loop", env)
    assert.equal(0, code, out)
    local c, l = 0, 0
    for line in out:gmatch("[^\n]+") do
      if line:match("^C tick") then c = c + 1 end
      if line:match("^lua tick") then l = l + 1 end
    end
    assert.same({ 3, 3 }, { c, l })
  end)

  it("steps tide once per frame with NOWAIT", function ()
    local out, code = memcheck(dir .. "/frame_loop", env)
    assert.equal(0, code, out)
    assert.matches("frame %d+: x = 5\ndone after %d+ frames\n$", out)
  end)

  it("runs two runtimes in two threads at once", function ()
    local out, code = memcheck(dir .. "/two_threads", env)
    assert.equal(0, code, out)
    assert.equal("runtime 1: 5050\nruntime 2: 10100\n", out)
  end)

  it("loads a C module with an awaitable, cancellable call on the thread pool", function ()
    local out, code = sh(("%s LUA_CPATH='%s/?.so' %s/bin/tide %s/primes_ticker.lua")
      :format(env, dir, prefix, dir))
    assert.equal(0, code, out)
    assert.matches("tick 1\n", out, 1, true)             -- the loop went on
    assert.matches("primes below 3,000,000:\t216816\n", out, 1, true)
    assert.matches("the same within 0.01 s:\tnil\ttimeout\n", out, 1, true)
  end)
end)

describe("a C host with tide_catchsignals", function ()
  for _, case in ipairs({ { "SIGINT", 2 }, { "SIGTERM", 15 } }) do
    it("cancels the main task on " .. case[1] .. " and tells which signal it was", async(function ()
      local exe = build("signals")
      local p <close> = assert(tide.process.spawn { "sh", "-c", "exec env -u LD_PRELOAD " .. exe,
                                                    stdout = "pipe" })
      assert.equal("ready\n", p.stdout:read_until("\n"))
      p:kill(case[1])
      assert.equal("cleanup\n", p.stdout:read_until("\n"))
      assert.equal(("status error, signal %d\n"):format(case[2]), p.stdout:read_until("\n"))
      assert.equal(128 + case[2], p:wait())
      os.remove(exe)
    end))
  end
end)
