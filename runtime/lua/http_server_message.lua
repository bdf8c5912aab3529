-- http_server_message.lua: the requests and responses of tide.http.serve
-- (http_server.lua, which takes from sched.http_server what it needs of
-- these): req.headers, req.query, req:read, req:body, and the response's
-- status, header, write, finish and upgrade.
local tide, sched = ...

local http = tide.http
local newparser, respond, frame = http._parser, http._response, http._chunk
local quick = http._quick
http._parser, http._response, http._chunk, http._quick = nil, nil, nil, nil

local getmetatable, pairs, rawget, tonumber, tostring, type =
      getmetatable, pairs, rawget, tonumber, tostring, type
local concat, lower, char, unpack =
      table.concat, string.lower, string.char, table.unpack
local tointeger = math.tointeger

-- Wrong use: see tide.lua.
local argerror, typeerror = sched.argerror, sched.typeerror
local checkself, raise = sched.checkself, sched.error
local checkinteger = sched.checkinteger

-- ---- Requests --------------------------------------------------------------

-- req.headers: each field by its name in lower case (repeated fields
-- joined with ", "); any case finds it.
local Headers = {}
function Headers.__index (h, name)
  if type(name) ~= "string" then return nil end
  return rawget(h, lower(name))
end

local Request = sched.newclass("tide.http.Request")
local Response = sched.newclass("tide.http.ServerResponse")
Response.__index = Response
local methods = {}

-- req.query: the query string decoded, made on first use.
local function unescape (s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function (h) return char(tonumber(h, 16)) end))
end

local function decodequery (q)
  local t = {}
  if q == nil then return t end
  for pair in q:gmatch("[^&;]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if not k then k, v = pair, "" end
    k, v = unescape(k), unescape(v)
    local old = t[k]
    if old == nil then t[k] = v
    elseif type(old) == "table" then old[#old + 1] = v
    else t[k] = { old, v } end
  end
  return t
end

function Request.__index (req, k)
  if getmetatable(req) ~= Request then checkself(req, Request) end
  if k == "query" then
    local q = decodequery(rawget(req, "_query"))
    req.query = q
    return q
  end
  return methods[k]
end

local function checkreq (req)
  if getmetatable(req) ~= Request then checkself(req, Request) end
  return req
end

local CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n"

-- Responses to pipelined requests wait in c.out (c.nout of them, each
-- small) while more requests are already read, and go in one write:
-- before anything else is written or read, and when the connection ends.
local OUTMAX, OUTSMALL = 16, 4096

-- Write what waits in c.out: true | nil, message, code.
local function flush (c)
  local n = c.nout
  if n == 0 then return true end
  c.nout = 0
  local out, limit = c.out, c.limit
  c.limit, c.mark = c.srv.write_timeout, c.mark + 1
  local ok, err, code = c.write(c.s, unpack(out, 1, n))
  c.limit, c.mark = limit, c.mark + 1
  for i = 1, n do out[i] = nil end
  if not ok then
    c.broken = true
    if c.timedout then
      return nil, "response write timed out", "ETIMEDOUT"
    end
    return nil, err, code
  end
  return true
end

-- The next piece of the body of c's current request, nil at its end, or
-- nil, message, code.
local function nextpiece (c)
  if c.bodydone then return nil end
  local s, p = c.s, c.p
  while true do
    local data, pos, done = p:body(c.buf, c.pos)
    if data == false then
      c.bad, c.badmsg = pos, done
      return nil, "bad request body: " .. done, "EPROTO"
    end
    c.pos = pos
    if done then c.bodydone = true end
    if data then
      local n = c.received + #data
      c.received = n
      if n > c.srv.max_body then
        c.bad, c.badmsg = 413, "request body too large"
        return nil, "request body too large", "E2BIG"
      end
      return data
    end
    if done then return nil end
    local ok, err, code = flush(c)
    if not ok then return nil, err, code end
    if c.expect and not c.started then
      c.expect = false
      ok, err, code = s:write(CONTINUE)
      if not ok then return nil, err, code end
    end
    c.limit, c.mark = c.srv.body_timeout, c.mark + 1
    local more, err, code = s:read()
    c.limit, c.mark = false, c.mark + 1
    if not more then
      c.broken = true
      if err == nil or c.timedout then
        if c.timedout then
          return nil, "request body timed out", "ETIMEDOUT"
        end
        return nil, "connection closed before the body ended", "EOF"
      end
      return nil, err, code
    end
    c.buf, c.pos = more, 1
  end
end

-- req:read([n]) -> up to n bytes of the body (as they come), nil at its
-- end | nil, message, code
function methods.read (req, n)
  checkreq(req)
  if n ~= nil then
    n = checkinteger(2, n)
    if n <= 0 then argerror(2, "positive size expected") end
  end
  local c = req._c
  local data, err, code
  if c.rest then
    data, c.rest = c.rest, nil
  else
    data, err, code = nextpiece(c)
    if not data then return nil, err, code end
  end
  if n and #data > n then
    data, c.rest = data:sub(1, n), data:sub(n + 1)
  end
  return data
end

-- req:body() -> the whole body (at most max_body bytes) | nil, message,
-- code
function methods.body (req)
  checkreq(req)
  local c = req._c
  local parts, i = { c.rest }, c.rest and 1 or 0
  c.rest = nil
  while true do
    local data, err, code = nextpiece(c)
    if not data then
      if err then return nil, err, code end
      return concat(parts, "", 1, i)
    end
    i = i + 1
    parts[i] = data
  end
end

-- ---- Responses -------------------------------------------------------------

local function checkres (res)
  if getmetatable(res) ~= Response then checkself(res, Response) end
  return res
end

local function checkunstarted (res)
  if res._c.started then raise("%s: the response has started") end
end

-- Read and drop what is left of a body the handler did not read, when it
-- is small (at most DRAIN bytes) and the client is not waiting for a 100
-- Continue, so that the connection can go on.
local DRAIN = 64 * 1024

local function drain (c, req)
  if c.bodydone or c.expect or c.bad or (c.length or 0) > DRAIN then
    return
  end
  local left = DRAIN - c.received
  while left > 0 do
    local data = nextpiece(c)
    if not data then return end
    left = left - #data
  end
end

-- Whether the connection must close after this response.
local function closing (c)
  return not c.keep or c.srv.closed or (c.hasbody and not c.bodydone)
         or c.upgrade or c.bad
end

local nobody = { [204] = true, [304] = true }

-- Whether v (a string, a number, a list of them) holds a CR or an LF,
-- which would end the field early and let the rest pass for more of the
-- head.
local function crlf (v)
  if type(v) == "string" then return v:find("[\r\n]") ~= nil end
  if type(v) == "table" then
    for _, x in pairs(v) do
      if type(x) == "string" and x:find("[\r\n]") then return true end
    end
  end
  return false
end

-- res:status(code) -> res
function Response:status (code)
  checkres(self)
  code = checkinteger(2, code)
  if code < 100 or code > 999 then argerror(2, "status out of range") end
  checkunstarted(self)
  self._status = code
  return self
end

-- res:header(name, value) -> res: sets the field (a list of values sends
-- it once for each); Content-Length sets the length of what write sends.
function Response:header (name, value)
  checkres(self)
  if type(name) ~= "string" then typeerror(2, "string", name) end
  local tv = type(value)
  if tv ~= "string" and tv ~= "number" and tv ~= "table" and value ~= nil then
    typeerror(3, "string", value)
  end
  checkunstarted(self)
  if crlf(name) then argerror(2, "CR or LF in the name") end
  if crlf(value) then argerror(3, "CR or LF in the value") end
  local k = lower(name)
  if k == "content-length" then
    local n = tointeger(tonumber(value))
    if value ~= nil and not (n and n >= 0) then
      argerror(3, "non-negative integer expected")
    end
    self._length = n
    return self
  end
  local h, names = self._h, self._names
  if not h then
    h, names = {}, {}
    self._h, self._names = h, names
  end
  local old = names[k]
  if old then h[old] = nil end
  names[k] = value ~= nil and name or nil
  h[name] = value
  return self
end

-- Write to the client; a client that takes none of it for write_timeout
-- seconds has its connection closed by the sweep.
local function send (c, data)
  if c.nout > 0 then
    local ok, err, code = flush(c)
    if not ok then return nil, err, code end
  end
  local limit = c.limit
  c.limit, c.mark = c.srv.write_timeout, c.mark + 1
  local ok, err, code = c.write(c.s, data)
  c.limit, c.mark = limit, c.mark + 1
  if not ok then
    c.broken = true
    if c.timedout then
      return nil, "response write timed out", "ETIMEDOUT"
    end
    return nil, err, code
  end
  return true
end

-- An HTTP/1.0 client keeps a connection only when the response says so:
-- Connection: keep-alive, unless the handler set a Connection field.
local function keepalive (res)
  local h = res._h
  if h then
    for k in pairs(h) do
      if type(k) == "string" and lower(k) == "connection" then return end
    end
  else
    h = {}
    res._h = h
  end
  h.Connection = "keep-alive"
end

-- Send the head; length: >= 0, -1 (chunked) or -2 (neither).
local function start (res, length, body)
  local c, req = res._c, res._req
  local status = res._status or 200
  if nobody[status] or status < 200 then length, body = -2, nil end
  local close = closing(c)
  if length == -2 and status >= 200 and not nobody[status] then close = true end
  if not close and req.version == "1.0" then keepalive(res) end
  local data, closes = respond(status, res._h or nil, length, body, close,
                               req.method == "HEAD")
  c.close = closes
  c.started = true
  res._chunked = length == -1
  return send(c, data)
end

-- Wrong use: more body than the Content-Length set, raised before any of
-- it is sent.
local function toolong (length)
  raise(("%%s: more than the %d bytes of Content-Length"):format(length))
end

-- For a response finished short of its Content-Length, "after n of the
-- m bytes of Content-Length"; else nil.
local function short (res, extra)
  local length = res._length
  if not length or res._chunked or res._req.method == "HEAD" then return nil end
  local status = res._status or 200
  if nobody[status] or status < 200 then return nil end
  local n = (res._sent or 0) + extra
  if n >= length then return nil end
  return ("after %d of the %d bytes of Content-Length"):format(n, length)
end

-- res:write(chunk) -> true | nil, message, code: the head first if not
-- sent, chunked when no Content-Length was set (HTTP/1.1).
function Response:write (data)
  checkres(self)
  if type(data) ~= "string" then
    if type(data) ~= "number" then typeerror(2, "string", data) end
    data = tostring(data)
  end
  local c = self._c
  if self._finished then raise("%s: the response has finished") end
  local length = self._length
  if length and not self._chunked then
    local n = (self._sent or 0) + #data
    if n > length then toolong(length) end
    self._sent = n
  end
  if not c.started then
    local length = self._length or (self._req.version == "1.1" and -1 or -2)
    local ok, err, code = start(self, length)
    if not ok then return nil, err, code end
  end
  if self._req.method == "HEAD" or data == "" then return true end
  if self._chunked then data = frame(data) end
  return send(c, data)
end

-- Finish the response with body (a string or nil): true | nil, message,
-- code | false, message when it ends short of its Content-Length (for
-- finish to raise, and for the server to report when the handler returned
-- so).
local function finish (self, body)
  local c, length = self._c, self._length
  local extra = body and #body or 0
  if length and not self._chunked and (self._sent or 0) + extra > length then
    toolong(length)
  end
  self._finished = true
  local msg = short(self, extra)
  if msg then
    -- what was declared cannot come: send the rest, then close, so that
    -- the client sees a body cut short rather than waiting for the rest.
    self._sent = (self._sent or 0) + extra
    c.close = true
    c.keep = false
    if not c.started then start(self, length, body)
    elseif extra > 0 then send(c, body) end
    c.close = true
    return false, msg
  end
  if not c.started then
    return start(self, length or extra, body)
  end
  if self._req.method == "HEAD" then return true end
  if self._chunked then
    return send(c, body and body ~= "" and frame(body) .. "0\r\n\r\n"
                    or "0\r\n\r\n")
  end
  if body and body ~= "" then return send(c, body) end
  return true
end

-- res:finish([body]) -> true | nil, message, code
function Response:finish (body)
  checkres(self)
  if body ~= nil and type(body) ~= "string" then
    if type(body) ~= "number" then typeerror(2, "string", body) end
    body = tostring(body)
  end
  if self._finished then raise("%s: the response has finished") end
  local ok, msg, code = finish(self, body)
  if ok == false then raise("%s: finished " .. msg) end
  return ok, msg, code
end

-- res:upgrade() -> Stream, bytes: after a 101 with the headers set, the
-- connection's raw Stream (the handler's until it returns) and what the
-- peer sent after the request's head.
function Response:upgrade ()
  checkres(self)
  checkunstarted(self)
  local c = self._c
  self._status = 101
  local h = self._h or {}
  if not self._names or not self._names.connection then
    h.Connection = "Upgrade"
  end
  local data = respond(101, h, -2, nil, false, false)
  c.started, self._finished, c.upgraded = true, true, true
  local ok, err, code = send(c, data)
  if not ok then return nil, err, code end
  local rest = c.buf:sub(c.pos)
  c.buf, c.pos = "", 1
  return c.s, rest
end

-- For http_server.lua, which runs after this file (see the Makefile's
-- LUALIB).
sched.http_server = { Headers = Headers, Request = Request,
  Response = Response, OUTMAX = OUTMAX, OUTSMALL = OUTSMALL, crlf = crlf,
  drain = drain, finish = finish, flush = flush, send = send, start = start,
  newparser = newparser, respond = respond, quick = quick }
