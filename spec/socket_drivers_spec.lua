-- socket_drivers_spec.lua: libraries written for LuaSocket, unchanged, on
-- tide.socket through require "tide.luasocket": Debian's lua-redis against
-- redis-server, socket.http against tide.http.serve and python3's
-- http.server, socket.smtp against a small python3 SMTP server; many
-- tasks each holding a connection at once, and the same scripts outside
-- any task under stock lua5.4.
local H = dofile("spec/socket_helper.lua")
require "tide.luasocket"
local socket = require "socket"
local redis = dofile(H.REDIS_LUA)

describe("require 'tide.luasocket'", function ()
  it("makes socket, socket.core and ssl tide's, with LuaSocket's socket.lua on top", function ()
    assert.equal(require "tide.socket", require "socket.core")
    assert.equal(require "tide.socket", socket)
    assert.equal(require "tide.ssl", require "ssl")
    assert.equal("function", type(socket.sink))       -- from socket.lua
    assert.equal("function", type(require("ltn12").pump.all))
    assert.equal("function", type(require("mime").b64))
  end)
end)

describe("tide -l tide.luasocket", function ()
  it("installs the switch before the script runs", function ()
    local script = tmpfile([[
      print(require("socket") == require("tide.socket"),
            require("socket.core") == require("tide.socket"),
            require("ssl") == require("tide.ssl"),
            type(require("socket.http").request))
    ]])
    local out, code = sh(("LUA_PATH='/usr/share/lua/5.4/?.lua;;' %s -l tide.luasocket %s")
                         :format(TIDE, script))
    os.remove(script)
    assert.equal(0, code, out)
    assert.equal("true\ttrue\ttrue\tfunction\n", out)
  end)
end)

describe("lua-redis on tide.socket", function ()
  local port, stop
  setup(async(function () port, stop = H.redis() end))
  teardown(function () if stop then stop() end end)

  it("runs commands", async(function ()
    local c = redis.connect("127.0.0.1", port)
    assert.is_true(c:ping())
    assert.is_true(c:set("k", "v"))
    assert.equal("v", c:get("k"))
    assert.equal(3, c:rpush("list", "a", "b", "c"))
    assert.same({ "a", "b", "c" }, c:lrange("list", 0, -1))
    local big = ("x"):rep(300000)
    c:set("big", big)
    assert.equal(big, c:get("big"))
    assert.equal(1, c:del("big"))
    c:quit()
  end))

  it("holds many connections at once in many tasks, concurrently", async(function ()
    local n, wait = 20, 0.3
    local t0 = tide.now()
    local tasks = {}
    for i = 1, n do
      tasks[i] = tide.spawn(function ()
        local c = redis.connect("127.0.0.1", port)
        local r = c:blpop("nothing" .. i, wait)     -- the server waits
        c:quit()
        return r
      end)
    end
    for i = 1, n do assert.is_nil(tasks[i]:await()) end
    local took = tide.now() - t0
    -- one at a time would take n * wait = 6 s
    assert.is_true(took >= wait * 0.9, took)
    assert.is_true(took < n * wait / 3, took)
  end))

  it("times out with LuaSocket's error through redis.connect's timeout", async(function ()
    local c = redis.connect({ host = "127.0.0.1", port = port, timeout = 0.1 })
    local ok, err = pcall(c.blpop, c, "never", 2)
    assert.is_false(ok)
    assert.matches("timeout", tostring(err))
  end))

  it("cancels a task waiting in a command; the connection's other users go on", async(function ()
    local c = redis.connect("127.0.0.1", port)
    local t = tide.spawn(function () return c:blpop("cancelme", 5) end)
    tide.sleep(0.05)
    t:cancel()
    assert.is_true(tide.iscancelled(select(2, pcall(t.await, t))))
    local d = redis.connect("127.0.0.1", port)
    assert.is_true(d:ping())
    d:quit()
  end))
end)

describe("LuaSec's ssl.https (Debian's lua-sec) on tide.ssl", function ()
  it("gets over TLS, verifies with a cafile, and fails an untrusted peer", async(function ()
    assert(io.open("/usr/share/lua/5.4/ssl/https.lua"),
           "lua-sec is missing (Debian: apt-get install lua-sec)"):close()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local C = dofile("spec/tls_certs.lua")(dir)
    local sv = assert(tide.tls.serve("127.0.0.1", 0, function (s)
      while true do                       -- HTTP/1.0: the head, then close
        local l = s:read_until("\n")
        if not l or l == "\r\n" then break end
      end
      s:write("HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\nhello world")
      s:close()
    end, { cert = C.server.cert, key = C.server.key }))
    local _, port = sv:getsockname()
    local https = require "ssl.https"
    local url = ("https://localhost:%d/a.txt"):format(port)
    local ok, err = pcall(function ()
      local body, code = https.request(url)          -- verify = "none"
      assert.equal("hello world", body)
      assert.equal(200, code)
      local out = {}
      local one, code2 = https.request { url = url, verify = "peer", cafile = C.ca,
        sink = require("ltn12").sink.table(out) }
      assert.equal(1, one)
      assert.equal(200, code2)
      assert.equal("hello world", table.concat(out))
      assert.same({ nil, "certificate verify failed" },
                  { https.request { url = url, verify = "peer" } })
    end)
    sv:close()
    os.execute("rm -rf " .. dir)
    assert(ok, err)
  end))
end)

describe("socket.http on tide.socket", function ()
  local http = require "socket.http"
  local ltn12 = require "ltn12"

  it("gets and posts to a tide.http.serve server", async(function ()
    local sv = assert(tide.http.serve("127.0.0.1", 0, function (req, res)
      local body = req:body()
      return 200, { ["x-method"] = req.method }, req.method .. " " .. req.target .. " " .. body
    end))
    local _, port = sv:getsockname()
    local url = ("http://127.0.0.1:%d/path?q=1"):format(port)
    local body, code, headers = http.request(url)
    assert.equal(200, code)
    assert.equal("GET /path?q=1 ", body)
    assert.equal("GET", headers["x-method"])
    body, code = http.request(url, "a=b")
    assert.equal(200, code)
    assert.equal("POST /path?q=1 a=b", body)
    local out = {}
    local _, code2 = http.request {
      url = url, method = "PUT", sink = ltn12.sink.table(out),
      source = ltn12.source.string("put body"),
      headers = { ["content-length"] = 8 },
    }
    assert.equal(200, code2)
    assert.equal("PUT /path?q=1 put body", table.concat(out))
    sv:close()
  end))

  it("gets from python3's http.server", async(function ()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local f = io.open(dir .. "/hello.txt", "w")
    f:write(("hello from python\n"):rep(1000))
    f:close()
    local port, wait = python(([[
import http.server, functools, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=%q)
h.log_message = lambda *a: None
s = http.server.HTTPServer(("127.0.0.1", 0), h)
print(s.server_address[1], flush=True)
s.handle_request()
]]):format(dir))
    local body, code = http.request(("http://127.0.0.1:%d/hello.txt"):format(port))
    assert.equal(200, code)
    assert.equal(("hello from python\n"):rep(1000), body)
    wait()
    os.execute("rm -rf " .. dir)
  end))

  it("fails with LuaSocket's message when nothing listens", async(function ()
    local body, err = http.request(("http://127.0.0.1:%d/"):format(H.freeport()))
    assert.is_nil(body)
    assert.equal("connection refused", err)
  end))
end)

describe("socket.smtp on tide.socket", function ()
  it("sends a message to a python3 SMTP server", async(function ()
    local smtp = require "socket.smtp"
    local port, wait = python([[
import asyncio, sys
async def handle(r, w):
    def say(s): w.write((s + "\r\n").encode())
    say("220 test ESMTP")
    data, lines = False, []
    while True:
        l = await r.readline()
        if not l: break
        s = l.decode().rstrip("\r\n")
        if data:
            if s == ".":
                data = False
                say("250 queued")
            else:
                lines.append(s)
            continue
        cmd = s[:4].upper()
        if cmd in ("EHLO", "HELO"): say("250 hello")
        elif cmd in ("MAIL", "RCPT"): say("250 ok"); lines.append(s)
        elif cmd == "DATA": say("354 go on"); data = True
        elif cmd == "QUIT":
            say("221 bye"); await w.drain(); w.close()
            print("\n".join(lines), flush=True)
            srv.close()
            break
        else: say("500 what")
async def main():
    global srv
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    try:
        await srv.serve_forever()
    except asyncio.CancelledError:
        pass
asyncio.run(main())
]])
    local r, e = smtp.send {
      from = "<a@example.org>", rcpt = "<b@example.org>",
      server = "127.0.0.1", port = port,
      source = smtp.message {
        headers = { subject = "test", to = "b@example.org" },
        body = "hello over smtp",
      },
    }
    assert.equal(1, r, e)
    local seen = wait()
    assert.matches("MAIL FROM:<a@example.org>", seen, 1, true)
    assert.matches("RCPT TO:<b@example.org>", seen, 1, true)
    assert.matches("Subject: test", seen, 1, true)
    assert.matches("hello over smtp", seen, 1, true)
  end))
end)

describe("the same drivers outside any task", function ()
  it("block as under LuaSocket (stock lua5.4 with the C module)", async(function ()
    local port, stop = H.redis()
    local web = assert(tide.http.serve("127.0.0.1", 0, function ()
      return 200, {}, "web body"
    end))
    local _, wport = web:getsockname()
    local script = tmpfile(([[
      package.cpath = %q .. "/?.so;" .. package.cpath
      package.path = "/usr/share/lua/5.4/?.lua;" .. package.path
      require "tide"
      require "tide.luasocket"
      local redis = dofile(%q)
      local c = redis.connect("127.0.0.1", %d)
      c:set("outside", "yes")
      print(c:get("outside"))
      c:quit()
      print(require("socket.http").request("http://127.0.0.1:%d/"))
    ]]):format(BUILD, H.REDIS_LUA, port, wport))
    local done = background(("LD_PRELOAD=\"$TIDE_PRELOAD\" lua5.4 %s"):format(script))
    local out = done()
    os.remove(script)
    web:close()
    stop()
    assert.matches("^yes\nweb body\t200\t", out)
  end))

  it("runs the README's example with stock lua5.4: require \"tide.luasocket\" alone finds tide.so", async(function ()
    local port, stop = H.redis()
    local c = assert(tide.tcp.connect("127.0.0.1", port))
    for i = 1, 3 do c:write(("SET key%d v%d\r\n"):format(i, i)) c:read_until("\r\n") end
    c:close()
    local script = tmpfile(([[
      require "tide.luasocket"             -- first: nothing required before
      local tide = require "tide"
      local redis = require "redis"
      tide.run(function ()
        local tasks = {}
        for i = 1, 3 do
          tasks[i] = tide.spawn(function ()
            local c = redis.connect("127.0.0.1", %d)
            return c:get("key" .. i)
          end)
        end
        for i = 1, 3 do print(tasks[i]:await()) end
      end)
    ]]):format(port))
    local done = background(("LD_PRELOAD=\"$TIDE_PRELOAD\" LUA_CPATH=%q LUA_PATH=%q lua5.4 %s")
      :format(BUILD .. "/?.so;;", "/usr/share/lua/5.3/?.lua;;", script))
    local out = done()
    os.remove(script)
    stop()
    assert.equal("v1\nv2\nv3\n", out)
  end))
end)
