-- http.lua: tide.http, the HTTP client: request, get and post, and the
-- Response they return (status, headers, the body whole or streamed), on
-- top of the transfers of bindings/http_client.c (libcurl on tide's loop).
local tide, sched = ...

local http = tide.http
local start = http._start
http._start = nil

local getmetatable, ipairs, pairs, rawget, setmetatable, tonumber, tostring, type =
      getmetatable, ipairs, pairs, rawget, setmetatable, tonumber, tostring, type
local concat, tointeger = table.concat, math.tointeger
local lower, find = string.lower, string.find

-- Wrong use: see tide.lua.
local argerror, typeerror = sched.argerror, sched.typeerror
local checkself, checkwait = sched.checkself, sched.checkwait
local classof, new = sched.classof, sched.new


-- ---- Headers ------------------------------------------------------------

-- res.headers: the first value of each field by its name in lower case;
-- any case finds it.
local Headers = {}
function Headers.__index (h, name)
  if type(name) ~= "string" then return nil end
  return rawget(h, lower(name))
end

-- A phrase for the statuses whose line has none (HTTP/2 has none at all).
local reasons = {
  [100] = "Continue", [101] = "Switching Protocols", [200] = "OK",
  [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [206] = "Partial Content", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect", [400] = "Bad Request",
  [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout",
  [409] = "Conflict", [410] = "Gone", [413] = "Content Too Large",
  [429] = "Too Many Requests", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

-- The reason phrase, the headers table and the list of { name, value }
-- (names as sent) of a header block.
local function parse_head (block, status)
  local line, rest = block:match("^([^\n]*)\n?(.*)$")
  local reason = line:match("^HTTP/%S+%s+%d+[ \t]*(.-)%s*$")
  if reason == nil or reason == "" then reason = reasons[status] or "" end
  local headers, list, n = setmetatable({}, Headers), {}, 0
  for l in rest:gmatch("[^\r\n]+") do
    local name, value = l:match("^([^:%s]+)[ \t]*:[ \t]*(.-)[ \t]*$")
    if name then
      n = n + 1
      list[n] = { name, value }
      local k = lower(name)
      if rawget(headers, k) == nil then headers[k] = value end
    elseif n > 0 and l:find("^[ \t]") then   -- obsolete line folding
      local v = list[n][2] .. " " .. l:match("^%s*(.-)%s*$")
      list[n][2] = v
      local k = lower(list[n][1])
      if headers[k] == v:sub(1, #headers[k]) then headers[k] = v end
    end
  end
  return reason, headers, list
end

-- ---- The request body ---------------------------------------------------------

local CHUNK = 64 * 1024

local function isfile (x)
  local mt = getmetatable(x)
  return type(mt) == "table" and mt.__name == "tide.File"
end

-- The length of what a File holds from its position on, or -1.
local function filesize (f)
  local st = f:stat()
  local pos = f:seek("cur")
  if st and st.size and pos and st.size > pos then return st.size - pos end
  return -1
end

-- ---- The Response --------------------------------------------------------

local Response = sched.newclass("tide.http.Response")
local methods = {}

-- The fields made on first use: the header block is parsed only if asked.
local lazy = {}
function lazy.reason (r)
  r.reason, r.headers, r._list = parse_head(r._t:_head(), r.status)
  return r.reason
end
function lazy.headers (r)
  lazy.reason(r)
  return r.headers
end
function lazy._list (r)
  lazy.reason(r)
  return r._list
end

function Response.__index (r, k)
  local m = methods[k]
  if m ~= nil then return m end
  if classof[r] ~= Response then checkself(r, Response) end
  local f = lazy[k]
  if f then return f(r) end
  return nil
end

-- Wait on transfer t for what ("head", "data", "done"), feeding it the
-- request body from src whenever curl asks for more.
local function pump (t, what, src)
  while true do
    local ev = t:_wait(what)
    if ev ~= "send" then return end
    local chunk = src and src()
    while chunk == "" do chunk = src() end
    if chunk ~= nil and type(chunk) ~= "string" then
      argerror(1, "'body': the function must return strings, got "
                  .. type(chunk))
    end
    t:_feed(chunk)
  end
end

-- res:read([n]) -> data | nil | nil, msg, code: waits for body data, at
-- most n bytes (default: what is buffered, up to 64 KiB); nil at its end.
function methods:read (n)
  if classof[self] ~= Response then checkself(self, Response) end
  if n ~= nil then
    n = tointeger(n)
    if not n or n <= 0 then argerror(2, "positive integer expected") end
  end
  local t = self._t
  while true do
    local s = t:_read(n)
    if s then return s end
    local ok, msg, code = t:_result()
    if ok then return nil end
    if msg then return nil, msg, code end
    checkwait()
    pump(t, "data", self._src)
  end
end

-- res:body() -> the whole body (what read() has not taken) | nil, msg, code
function methods:body ()
  if classof[self] ~= Response then checkself(self, Response) end
  local t = self._t
  local rest = t:_rest()
  if rest then return rest end
  local parts, n = {}, 0
  while true do
    local s = t:_read()
    if s then
      n = n + 1
      parts[n] = s
    else
      local ok, msg, code = t:_result()
      if ok then break end
      if msg then return nil, msg, code end
      checkwait()
      pump(t, "data", self._src)
    end
  end
  return concat(parts)
end

-- for line in res:lines() do ... end: lines without "\n" (the last may
-- lack it); an error raises.
function methods:lines ()
  if classof[self] ~= Response then checkself(self, Response) end
  local buf, ended = "", false
  return function ()
    while true do
      local i = find(buf, "\n", 1, true)
      if i then
        local line = buf:sub(1, i - 1)
        buf = buf:sub(i + 1)
        return line
      end
      if ended then
        if buf == "" then return nil end
        local line = buf
        buf = ""
        return line
      end
      local s, msg = self:read()
      if s then buf = buf .. s
      elseif msg then error(msg, 2)
      else ended = true end
    end
  end
end

-- res:getall(name) -> { value, ... }: every value of a field, in order.
function methods:getall (name)
  if classof[self] ~= Response then checkself(self, Response) end
  if type(name) ~= "string" then typeerror(2, "string", name) end
  local k, all = lower(name), {}
  for _, h in ipairs(self._list) do
    if lower(h[1]) == k then all[#all + 1] = h[2] end
  end
  return all
end

-- res:close(): stop a transfer still going (a streamed body not read to
-- its end: its connection is closed, not reused); harmless twice.
function methods:close ()
  if classof[self] ~= Response then checkself(self, Response) end
  self._t:close()
  if self._file then self._file:close() end
end
Response.__close = methods.close

function Response:__tostring ()
  if classof[self] ~= Response then checkself(self, Response) end
  return ("tide.http.Response (%d %s)"):format(self.status, self.reason)
end

-- ---- Options ------------------------------------------------------------------

local function field (i, name, msg)
  argerror(i, ("'%s': %s"):format(name, msg))
end

local function isnumber (i, k, v)
  v = tonumber(v)
  if not v or not (v >= 0) then
    field(i, k, "non-negative number expected")
  end
end

local function isstring (i, k, v)
  if type(v) ~= "string" then field(i, k, "string expected") end
end

local function isboolean (i, k, v)
  if type(v) ~= "boolean" then field(i, k, "boolean expected") end
end

local function iscount (i, k, v)
  v = tointeger(v)
  if not v or v < 0 then field(i, k, "non-negative integer expected") end
end

local function isname (i, k, v)
  if type(v) ~= "string" or not v:find("^[%w!#$%%&'*+.^_`|~-]+$") then
    field(i, k, "method name expected")
  end
end

local versions = { ["1.0"] = true, ["1.1"] = true, ["2"] = true }

-- The checks of each option (the table passed to _start as it is).
local checks = {
  stream = isboolean, follow = isboolean, decompress = isboolean,
  verify = isboolean, timeout = isnumber, connect_timeout = isnumber,
  low_speed_limit = isnumber, low_speed_time = isnumber, cafile = isstring,
  capath = isstring, proxy = isstring, noproxy = isstring,
  user_agent = isstring, max_redirects = iscount, size = iscount,
  method = isname, url = isstring, file = isstring,
  version = function (i, k, v)
    if not versions[v] then field(i, k, "\"1.0\", \"1.1\" or \"2\" expected") end
  end,
  body = function (i, k, v)
    if type(v) ~= "string" and type(v) ~= "function" and not isfile(v) then
      field(i, k, "string, function or tide.File expected")
    end
  end,
  headers = function (i, k, v)
    if type(v) ~= "table" then field(i, k, "table expected") end
  end,
}

local function checkopts (i, opts)
  for k, v in pairs(opts) do
    local check = checks[k]
    if not check then field(i, tostring(k), "unknown option") end
    check(i, k, v)
  end
end

-- The header lines ("Name: value") of opts.headers { name = value |
-- { value, ... } }; with a request body, none of curl's own Content-Type
-- and no Expect: 100-continue round trip unless they are given.
local nolines = { "Content-Type:", "Expect:" }

local function header_lines (i, hs, withbody)
  if hs == nil then return withbody and nolines or nil end
  local lines, has = {}, {}
  for name, v in pairs(hs) do
    if type(name) ~= "string" or not name:find("^[%w!#$%%&'*+.^_`|~-]+$") then
      field(i, "headers", "bad field name " .. tostring(name))
    end
    local vs = type(v) == "table" and v or { v }
    for _, x in ipairs(vs) do
      if type(x) ~= "string" and type(x) ~= "number" then
        field(i, "headers", "string expected for " .. name)
      end
      x = tostring(x)
      if x:find("[\r\n%z]") then
        field(i, "headers", "line break in the value of " .. name)
      end
      -- "Name;" sends an empty value ("Name:" would remove curl's own)
      lines[#lines + 1] = x == "" and name .. ";" or name .. ": " .. x
    end
    has[lower(name)] = true
  end
  if withbody then
    if not has["content-type"] then lines[#lines + 1] = "Content-Type:" end
    if not has["expect"] then lines[#lines + 1] = "Expect:" end
  end
  return lines
end

-- ---- Requests ----------------------------------------------------------------

-- Closes the file a request opened when it fails, is cancelled or raises.
-- A body source that gives exactly size bytes, from src: one that gives
-- more, or ends before, would send a request other than the one announced
-- (the extra bytes would be taken for the next request on the connection).
local function exact (src, size)
  local left = size
  return function ()
    local chunk = src()
    if type(chunk) ~= "string" then
      if chunk == nil and left > 0 then
        argerror(1, ("'body': it ended after %d of its %d bytes ('size')")
                    :format(size - left, size))
      end
      return chunk
    end
    left = left - #chunk
    if left < 0 then
      argerror(1, ("'body': it gave more than its %d bytes ('size')")
                  :format(size))
    end
    return chunk
  end
end

local Holder = { __close = function (h) if h.f then h.f:close() end end }

-- The request body for _start: the string, or the function that pulls it
-- (reading a File, opened here from a path: returned too, to close) and
-- its size; or nil, nil, nil, msg, code when the file cannot be opened.
local function body_source (body, file, size)
  if type(body) == "string" or body == nil and file == nil then
    return body
  end
  if type(body) == "function" then
    return nil, size and exact(body, tointeger(size)) or body, size or -1
  end
  local opened
  if file ~= nil then
    local f, msg, code = tide.fs.open(file, "r")
    if not f then return nil, nil, nil, msg, code end
    body, opened = f, f
  end
  local f = body
  local function src () return f:read(CHUNK) end
  size = size or filesize(f)
  return nil, size and exact(src, tointeger(size)) or src, size, opened
end

-- The request to url with options opts (argument i of the function the
-- user called; nil: none) and body.
local function request (i, url, opts, body)
  local method, hs, file, size, stream
  if opts then
    checkopts(i, opts)
    method, hs, file, size = opts.method, opts.headers, opts.file, opts.size
    stream = opts.stream
    if body ~= nil and file ~= nil then field(i, "file", "a body is given") end
  end
  local withbody = body ~= nil or file ~= nil
  method = method or (withbody and "POST" or "GET")
  local lines = header_lines(i, hs, withbody)
  checkwait()
  local str, src, n, opened, code = body_source(body, file, size)
  if opened and not src then return nil, opened, code end   -- msg, code
  local t <close> = start(url, opts, method, lines, str, src ~= nil, n)
  local hold <close> = opened and setmetatable({ f = opened }, Holder)
  pump(t, stream and "head" or "done", src)
  local ok, msg
  ok, msg, code = t:_result()
  if ok == nil and msg then return nil, msg, code end
  local status, version, where = t:_info()
  local res = new(Response, {
    status = status, version = version, url = where, _t = t,
  })
  t:_keep()
  if ok == nil then                     -- streamed: the body goes on
    res._src = src
    if opened then res._file, hold.f = opened, nil end
  end
  return res
end

-- tide.http.request{ url =, method =, headers =, body =, ... } ->
-- Response | nil, msg, code
function http.request (opts)
  if type(opts) ~= "table" then typeerror(1, "table", opts) end
  if type(opts.url) ~= "string" then field(1, "url", "string expected") end
  local res, msg, code = request(1, opts.url, opts, opts.body)
  return res, msg, code
end

-- tide.http.get(url [, opts]) -> Response | nil, msg, code
function http.get (url, opts)
  if type(url) ~= "string" then typeerror(1, "string", url) end
  if opts ~= nil and type(opts) ~= "table" then typeerror(2, "table", opts) end
  local res, msg, code = request(2, url, opts, opts and opts.body)
  return res, msg, code
end

-- tide.http.post(url, body [, opts]) -> Response | nil, msg, code; body
-- nil when opts.file gives it.
function http.post (url, body, opts)
  if type(url) ~= "string" then typeerror(1, "string", url) end
  if type(body) ~= "string" and type(body) ~= "function" and not isfile(body)
     and not (body == nil and type(opts) == "table" and opts.file ~= nil)
  then
    typeerror(2, "string, function or tide.File", body)
  end
  if opts ~= nil and type(opts) ~= "table" then typeerror(3, "table", opts) end
  local res, msg, code = request(3, url, opts, body)
  return res, msg, code
end
