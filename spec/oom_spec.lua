-- oom_spec.lua: tide when memory runs out. spec/oom.sh builds
-- spec/embed/oom.c, a host whose allocator fails, and runs
-- spec/embed/oom.lua failing a sample of its allocations in turn (`make
-- oomtest` fails every one of them).

local sanitized = BUILD:match("asan") ~= nil

describe("a host whose allocator fails", function ()
  it("ends each run in an error or the script's end, leaking nothing, the runtime usable again", function ()
    local step = sanitized and 41 or 17
    local out, code = sh(("ASAN_OPTIONS=detect_leaks=1 sh spec/oom.sh %s %d")
      :format(BUILD, step))
    assert.equal(0, code, out)
    local tried, clean = out:match("in all, tried (%d+), ended cleanly (%d+)")
    assert.is_truthy(tried, out)
    assert.is_true(tonumber(tried) > 6 * 100, out)
    assert.equal(tried, clean, out)
  end)
end)
