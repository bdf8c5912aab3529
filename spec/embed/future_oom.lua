-- future_oom.lua: what spec/embed/oom.c runs for spec/future_spec.lua's
-- out-of-memory sweep: futures set, failed, cancelled (by hand and through
-- a cancelled awaiter), observed by on_done, wait, as_completed and the
-- combinators, and a failed one nobody observes; each part ending quickly
-- whatever allocation fails.
local tide = tide

local f = tide.Future()
local waiter = tide.spawn(function () return f:await() end)
f:on_done(function () end)
tide.call_soon(function () f:set_result("set", 2) end)
assert(waiter:await() == "set")
assert(select(3, f:result()) == 2)
local e = tide.Future()
e:set_error("failed")
assert(not pcall(e.await, e) and not e:result())
local c = tide.Future()
local cw = tide.spawn(function () return c:await() end)
tide.yield()
cw:cancel()
assert(not pcall(cw.await, cw) and c:cancelled())
local m = tide.Future()
m:cancel("with a message")
assert(tostring(select(2, m:result())) == "cancelled: with a message")
local a, b = tide.Future(), tide.Future()
tide.call_soon(function () a:set_result(1) end)
local done, pending = tide.wait({ a, b }, { return_when = "first" })
assert(done[a] and pending[b])
b:set_result(2)
local n = 0
for _ in tide.as_completed({ a, b, tide.spawn(tide.yield) }) do n = n + 1 end
assert(n == 3)
assert(tide.gather(a, function () return 3 end) == 1)
assert(tide.race(tide.Future(), b) == 2)
assert(select(2, tide.timeout(0.001, tide.Future())) == "timeout")
assert(tide.shield(b) == 2)
tide.Future():set_error("nobody looks")
tide.yield()
return "done"
