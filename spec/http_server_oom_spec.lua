-- http_server_oom_spec.lua: tide.http.serve when memory runs out. The
-- host of spec/embed/oom.c (built here as spec/oom.sh builds it) runs
-- spec/http_server_oom.lua with an allocator that fails a sample of its
-- allocations in turn (tide's own, Lua's, the parser's), on tide's loop
-- and on the host's.

local sanitized = BUILD:match("asan") ~= nil

describe("tide.http.serve with an allocator that fails", function ()
  it("ends each run in an error or the script's end, leaking nothing, the runtime usable again", function ()
    local exe = BUILD .. "/oomhost_http_server"
    local san = sanitized and "-fsanitize=address,undefined -fno-omit-frame-pointer" or ""
    local out, code = sh(("env -u LD_PRELOAD cc -Wall -Wextra -Werror -O1 -g %s -Iruntime "
      .. "$(pkg-config --cflags lua5.4 libuv) -o %s spec/embed/oom.c %s/libtide.a "
      .. "$(pkg-config --libs lua5.4 libuv) -lm"):format(san, exe, BUILD))
    assert.equal(0, code, out)
    out, code = sh(("env -u LD_PRELOAD %s count spec/http_server_oom.lua"):format(exe))
    assert.equal(0, code, out)
    local count = tonumber(out:match("%d+"))
    local to, step = count + count // 20, sanitized and 29 or 11
    local tried, clean = 0, 0
    for _, loop in ipairs { "", "-l" } do
      for _, mode in ipairs { "once", "twice", "from", "end" } do
        out, code = sh(("ASAN_OPTIONS=detect_leaks=1 env -u LD_PRELOAD %s %s sweep %s 1 %d %d "
          .. "spec/http_server_oom.lua"):format(exe, loop, mode, to, step))
        assert.equal(0, code, out)
        local t, c = out:match("tried (%d+), ended cleanly (%d+)")
        assert.is_truthy(t, out)
        assert.equal(t, c, out)
        tried, clean = tried + tonumber(t), clean + tonumber(c)
      end
    end
    assert.is_true(tried >= 8 * (count // step), tried .. " runs")
    assert.equal(tried, clean)
  end)
end)
