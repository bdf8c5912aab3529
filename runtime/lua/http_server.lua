-- http_server.lua: tide.http.serve, an HTTP/1.1 server: a task per
-- connection (as tide.tcp.serve), its requests parsed by http-parser
-- (bindings/http_server_parser.c) straight from what the connection reads,
-- handled one after the other (pipelined ones in order), and responses
-- built in C (bindings/http_server.c), most in one write.
-- The requests and responses: http_server_message.lua.
local tide, sched = ...

local http = tide.http                  -- runs http_server_message.lua first
local S = sched.http_server
local Headers, Request, Response = S.Headers, S.Request, S.Response
local OUTMAX, OUTSMALL = S.OUTMAX, S.OUTSMALL
local crlf, drain, flush, send, start = S.crlf, S.drain, S.flush, S.send,
                                        S.start
local finish = S.finish
local newparser, respond, quick = S.newparser, S.respond, S.quick

local getmetatable, next, pairs, pcall, rawget, setmetatable, tonumber,
      tostring, type, xpcall =
      getmetatable, next, pairs, pcall, rawget, setmetatable, tonumber,
      tostring, type, xpcall
local concat, lower, char, unpack =
      table.concat, string.lower, string.char, table.unpack
local huge, tointeger = math.huge, math.tointeger
local now, sleep, spawn = tide.now, tide.sleep, tide.spawn
local traceback, metatable = debug.traceback, debug.getmetatable

-- Wrong use: see tide.lua.
local argerror, typeerror = sched.argerror, sched.typeerror
local checkself, raise = sched.checkself, sched.error
local checknumber, checkinteger = sched.checknumber, sched.checkinteger
local classof, new = sched.classof, sched.new

-- ---- Connections -----------------------------------------------------------

-- A value named in a report: a string as it is, anything else as
-- tostring makes it.
local function message (e)
  if type(e) == "string" then return e end
  local ok, s = pcall(tostring, e)
  if ok and type(s) == "string" then return s end
  return "(error object is a " .. type(e) .. " value)"
end

-- A handler's error, reported as tide.tcp.serve reports its handlers'
-- (a line on stderr naming the server), with the traceback taken where it
-- was raised; as lua.c's message handler (and runtime/report.c) name it: a
-- string or a number as it is, a value with a __tostring what that gives,
-- any other "(error object is a <type> value)".
local function errmessage (e)
  local t = type(e)
  if t == "string" then return e end
  if t == "number" then return tostring(e) end
  local mt = metatable(e)
  if mt and rawget(mt, "__tostring") ~= nil then
    local ok, s = pcall(tostring, e)
    if ok and type(s) == "string" then return s end
  end
  return "(error object is a " .. t .. " value)"
end

local function report (fname, err)
  pcall(io.stderr.write, io.stderr, fname, ": error in a request handler: ",
        errmessage(err), "\n")
end

local function handlererror (e)
  if tide.iscancelled(e) then return e end
  local ok, tb = pcall(traceback, errmessage(e), 2)
  return ok and tb or e
end

-- A response for a request that broke a limit or was malformed; the
-- connection closes after it.
local function refuse (c, status, msg)
  c.close = true
  if c.started then return end
  c.started = true
  send(c, (respond(status, { ["Content-Type"] = "text/plain" }, #msg + 1,
                   msg .. "\n", true, false)))
end

-- Finish the response of a handler that returned without finishing it:
-- false (reported) if that failed or ended short of its Content-Length.
local function finishup (srv, res)
  local done, ok, msg = pcall(finish, res)
  if not done then report(srv.fname, ok) return false end
  if ok == false then
    report(srv.fname, "the handler returned " .. msg)
    return false
  end
  return true
end

-- What is wrong with what a handler returned (status, headers, body), or
-- nil.
local function returned (status, headers, body)
  local n = type(status) == "number" and tointeger(status)
  if not n or n < 100 or n > 599 then
    return "status " .. message(status) .. " (an integer 100..599 expected)"
  end
  if body ~= nil and type(body) ~= "string" then
    return "body of type " .. type(body) .. " (a string or nil expected)"
  end
  if headers == nil then return nil end
  if type(headers) ~= "table" then
    return "headers " .. message(headers) .. " (a table expected)"
  end
  for k, v in pairs(headers) do
    local tv = type(v)
    if type(k) ~= "string" or (tv ~= "string" and tv ~= "number"
                               and tv ~= "table") then
      return "header " .. message(k) .. " (a string name and value expected)"
    end
    if crlf(k) or crlf(v) then
      return "header " .. k .. " (CR or LF in it)"
    end
  end
  return nil
end

-- One request: its handler's response, finished. Returns whether the
-- connection goes on. complete, keep, body, length, upgrade: as
-- parser:head says.
local function serve_request (c, req, complete, keep, hasbody, length,
                              upgrade)
  local srv = c.srv
  req._c = c
  c.started, c.close, c.bad, c.rest, c.received = false, false, false, false, 0
  c.bodydone, c.keep, c.hasbody, c.length, c.upgrade =
    complete, keep, hasbody, length, upgrade
  c.expect = false
  if hasbody then
    local len = length
    if len and len > srv.max_body then
      refuse(c, 413, "request body too large")
      return false
    end
    local e = rawget(req.headers, "expect")
    c.expect = e ~= nil and lower(e) == "100-continue"
  end
  -- (its fields made at once: adding them one by one would grow the
  -- table twice per request)
  local res = setmetatable({ _c = c, _req = req, _status = false,
                             _finished = false, _chunked = false,
                             _h = false, _length = nil, _sent = nil },
                           Response)
  -- (an error here, the handler's or not, is the connection's: see
  -- connection)
  local status, headers, body = srv.handler(req, res)
  -- The common case first, in few steps: a status and perhaps a body
  -- returned, no fields, nothing started, no request body, a response
  -- with a body; the checks and the outcome as those below.
  -- (quick checks the status and the body: nothing when they are not
  -- of that kind)
  if headers == nil
     and not (c.started or res._finished or c.bad or c.broken or c.hasbody)
  then
    local close = not c.keep or srv.closed or c.upgrade
    if close or req.version ~= "1.0" then
      local data, closes = quick(status, body, close, req.method == "HEAD")
      if data then
        res._status, res._finished = status, true
        c.close, c.started = closes, true
        local n = c.nout
        if c.pos <= #c.buf and not closes and n < OUTMAX
           and #data <= OUTSMALL then    -- more requests read: wait
          n = n + 1
          c.out[n], c.nout = data, n
          return true
        end
        -- (send, inline; with what waits, in one write)
        c.limit, c.mark = srv.write_timeout, c.mark + 1
        local ok
        if n == 0 then ok = c.write(c.s, data)
        else
          local out = c.out
          out[n + 1], c.nout = data, 0
          ok = c.write(c.s, unpack(out, 1, n + 1))
          for i = 1, n + 1 do out[i] = nil end
        end
        c.limit, c.mark = false, c.mark + 1
        if not ok then c.broken = true return false end
        return not closes
      end
    end
  end
  if c.broken then return false end
  if c.upgraded then return false end
  if c.bad and not c.started then
    refuse(c, c.bad, c.bad == 413 and "request body too large"
                     or "bad request: " .. tostring(c.badmsg))
    return false
  end
  if c.started or res._finished then
    if type(status) == "number" then
      -- (return res:finish() returns true, or nil, message, code)
      report(srv.fname, "the handler returned a status (" .. message(status)
                        .. ") after its response had started")
      c.close = true
    end
    if not res._finished and not finishup(srv, res) then return false end
    return not c.close and not c.broken
  end
  if c.hasbody then drain(c, req) end
  if status == nil and (headers ~= nil or body ~= nil) then
    status = res._status or 200
  end
  if status == nil then
    if not finishup(srv, res) then return false end
    return not c.close and not c.broken
  end
  -- (checked inline first: this is every such response's path)
  if type(status) ~= "number" or status % 1 ~= 0 or status < 100
     or status > 599 or (body ~= nil and type(body) ~= "string")
     or (headers ~= nil and returned(status, headers, body)) then
    report(srv.fname, "bad response returned by the handler: "
                      .. returned(status, headers, body))
    refuse(c, 500, "internal server error")
    return false
  end
  res._status = status
  if headers then
    for k, v in pairs(headers) do
      if lower(k) ~= "content-length" then
        res._h = res._h or {}
        res._h[k] = v
      end
    end
  end
  res._finished = true
  local sent, err = pcall(start, res, body and #body or 0, body)
  if not sent then
    report(srv.fname, err)
    return false
  end
  return not c.close and not c.broken
end

local IDLE, HEAD, BUSY = 0, 1, 2

-- The requests of a connection, one after the other.
local function serve_loop (srv, s, c, p)
  local read, head = s.read, p.head
  local buf, pos = "", 1
  while true do
    local req, npos, complete, keep, body, length, upgrade
    if pos <= #buf then
      req, npos, complete, keep, body, length, upgrade = head(p, buf, pos)
      if req == nil and c.state == IDLE then     -- a head begun, not ended
        c.state, c.limit, c.mark = HEAD, srv.header_timeout, c.mark + 1
      end
    elseif c.state == IDLE then                  -- waiting for a request
      if srv.closed and c.served then return end
      c.limit, c.mark = srv.idle_timeout, c.mark + 1
    end
    if req then
      c.buf, c.pos, c.state, c.limit = buf, npos, BUSY, false
      if not serve_request(c, req, complete, keep, body, length, upgrade) then
        return
      end
      c.served = true
      if srv.closed then return end
      buf, pos, c.state = c.buf, c.pos, IDLE
    elseif req == nil then
      if c.nout > 0 then           -- (as busy: a graceful close waits)
        local state = c.state
        c.state = BUSY
        if not flush(c) then return end
        c.state = state
      end
      local data = read(s)
      if not data then return end
      buf, pos = data, 1
    else
      refuse(c, npos, npos == 431 and "request header fields too large"
                      or "bad request: " .. tostring(complete))
      return
    end
  end
end

local function connection (srv, s)
  -- (every field there from the start, so that setting one is never
  -- adding it)
  local c = { s = s, srv = srv, buf = "", pos = 1, state = IDLE,
              received = 0, limit = false, mark = 0, seen = -1, since = 0,
              write = s.write, started = false,
              close = false, bad = false, badmsg = false, rest = false,
              bodydone = false, expect = false, broken = false,
              timedout = false, upgraded = false, keep = false, served = false,
              hasbody = false, length = false, upgrade = false, p = false,
              out = {}, nout = 0 }
  local p = newparser(srv.max_header, Headers, Request)
  c.p = p
  local conns = srv.conns
  conns[c] = true
  local _ <close> = setmetatable({}, { __close = function ()
    conns[c] = nil
    s:close()
  end })
  -- TLS: the handshake first, within header_timeout; a connection whose
  -- handshake fails is dropped, as tide.tls.serve drops it.
  if srv.tls and not tide.tls.wrap(s, srv.tls) then return end
  c.limit, c.mark = srv.header_timeout, c.mark + 1
  c.write = s.write
  -- One protected call for all the requests, not one each: an error while
  -- a request is served (its handler's, or in answering it) is reported,
  -- gets a 500 if nothing was sent, and ends the connection, as it always
  -- did; any other goes on as it came.
  local ok, err = xpcall(serve_loop, function (e)
    if c.state ~= BUSY or tide.iscancelled(e) then return e end
    return handlererror(e)
  end, srv, s, c, p)
  if c.nout > 0 then pcall(flush, c) end    -- the answers already made
  if ok then return end
  if c.state ~= BUSY then error(err, 0) end
  if tide.iscancelled(err) then return end
  report(srv.fname, err)
  if not c.started then refuse(c, 500, "internal server error") end
end

-- The connections past their time limit (header, idle, body, write) are
-- closed: their task sees its stream closed. A connection sets its limit
-- (or false) and counts a change in mark at each step; the sweep notes
-- when it first sees a mark, and closes the connection once the limit has
-- passed since: never before it, at most two sweeps after. (No clock is
-- read on a request's path.)
local function sweep (srv, every)
  while true do
    sleep(every)
    local t = now()
    for c in pairs(srv.conns) do
      local limit = c.limit
      if limit then
        if c.seen ~= c.mark then
          c.seen, c.since = c.mark, t
        elseif t - c.since >= limit then
          c.timedout = true
          c.s:close()
        end
      end
    end
  end
end

-- ---- Serving ----------------------------------------------------------------

local Serving = sched.newclass("tide.http.Serving")
Serving.__index = Serving

local function checkserving (self)
  if classof[self] ~= Serving then checkself(self, Serving) end
end

function Serving:getsockname ()
  checkserving(self)
  return self.server:getsockname()
end

-- Wait until the server has closed.
function Serving:wait ()
  checkserving(self)
  return self.loop:await()
end

-- Stop accepting; close the idle kept-alive connections; let the
-- requests being received or handled (and the first request of a
-- connection just accepted) finish for grace seconds (default 0: at
-- once), their connections closing after them; then cancel those left.
-- Returns once all have ended.
function Serving:close (grace)
  checkserving(self)
  grace = grace ~= nil and checknumber(2, grace) or 0
  if self.closed then return end
  self.closed = true
  self.server:close()
  pcall(self.loop.await, self.loop)
  self.sweeper:cancel()
  pcall(self.sweeper.await, self.sweeper)
  for c in pairs(self.conns) do
    if c.state == IDLE and c.served then c.s:close() end
  end
  sched.endall(self.handlers, grace)
end

function Serving:__close ()
  checkserving(self)
  self:close()
end

local function accept_loop (self, max)
  local w = self.handlers
  local _ <close> = self.server
  while true do
    while w:next() do end
    while w:live() >= max do w:wait() end
    if self.closed then return end
    local s, err, code = self.server:accept()
    if not s then
      if code == "ECANCELED" then return end
      io.stderr:write(self.fname, ": accept: ", err, "\n")
      sleep(0.1)
    elseif not pcall(w.spawn, w, connection, self, s) then
      s:close()
    end
  end
end

local function option (opts, i, k, default, positive)
  local v = opts and opts[k]
  if v == nil then return default end
  local n = tonumber(v)
  if not n or n < 0 or (positive and n == 0) then
    argerror(i, ("'%s': %s number expected"):format(k,
             positive and "positive" or "non-negative"))
  end
  return n
end

-- The options serve knows: its own and tide.tcp.listen's.
local known = {
  max_connections = true, max_header = true, max_body = true,
  header_timeout = true, idle_timeout = true, body_timeout = true,
  write_timeout = true, tls = true,
  backlog = true, reuseport = true, ipv6only = true,
}

-- tide.http.serve(host, port, handler [, opts]) -> Serving | nil, msg,
-- code. handler(req, res) runs for each request, in the task of its
-- connection. opts: those of tide.tcp.listen (reuseport, backlog, ...),
-- max_connections, max_header (bytes, 16 KiB), max_body (bytes, 1 MiB),
-- header_timeout (s, 10), idle_timeout (s, 5), body_timeout (s, 10),
-- write_timeout (s, 30).
function http.serve (host, port, handler, opts)
  if type(host) ~= "string" then typeerror(1, "string", host) end
  port = checkinteger(2, port)
  if port < 0 or port > 65535 then argerror(2, "port out of range") end
  if type(handler) ~= "function" then typeerror(3, "function", handler) end
  if opts ~= nil and type(opts) ~= "table" then typeerror(4, "table", opts) end
  if opts then
    for k in pairs(opts) do
      if not known[k] then
        argerror(4, ("'%s': unknown option"):format(tostring(k)))
      end
    end
  end
  local self = {
    handler = handler, fname = "tide.http.serve", conns = {},
    max_header = option(opts, 4, "max_header", 16 * 1024, true),
    max_body = option(opts, 4, "max_body", 1024 * 1024),
    header_timeout = option(opts, 4, "header_timeout", 10, true),
    idle_timeout = option(opts, 4, "idle_timeout", 5, true),
    body_timeout = option(opts, 4, "body_timeout", 10, true),
    write_timeout = option(opts, 4, "write_timeout", 30, true),
  }
  local max = option(opts, 4, "max_connections", huge, true)
  if opts and opts.tls ~= nil then
    local t = opts.tls
    local ctxmeta = debug.getregistry()["tide.TlsContext"]
    if ctxmeta ~= nil and getmetatable(t) == ctxmeta then
      self.tls = { server = true, context = t }
    elseif type(t) ~= "table" then
      argerror(4, "'tls': tide.tls.context or a table of its fields expected")
    elseif t.cert == nil then
      argerror(4, "'tls': 'cert' and 'key' (or a tide.tls.context) expected")
    else
      local ctx, err, code = tide.tls.context(t)
      if not ctx then return nil, err, code end
      self.tls = { server = true, context = ctx }
    end
    self.tls.timeout = self.header_timeout
  end
  local server, err, code = tide.tcp.listen(host, port, opts)
  if not server then return nil, err, code end
  self.server, self.handlers = server, sched.watch()
  new(Serving, self)
  local every = self.header_timeout
  if self.idle_timeout < every then every = self.idle_timeout end
  if self.body_timeout < every then every = self.body_timeout end
  if self.write_timeout < every then every = self.write_timeout end
  every = every / 4
  if every > 1 then every = 1 end
  self.sweeper = spawn(sweep, self, every)
  self.loop = spawn(accept_loop, self, max)
  sched.servings[self] = true        -- see net.lua
  return self
end
