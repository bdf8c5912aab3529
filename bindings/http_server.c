/*
** http_server.c: the C side of tide.http.serve (runtime/lua/http_server.lua):
** response heads built in one buffer, with the body when it is small, so
** that a response is one write; and the opening of the server's part of
** tide.http (the parser is http_server_parser.c).
*/
#include <string.h>
#include <time.h>

#include "tide_int.h"
#include "http_server.h"

static const char *reason (int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

/* n in decimal at the end of buf[0..32); the start of its digits. */
static char *decimal (char *end, unsigned long long n) {
  do {
    *--end = (char)('0' + n % 10);
    n /= 10;
  } while (n != 0);
  return end;
}

/* "Date: ...\r\n", made once a second; *second: the second it names. */
static const char *datefield (size_t *len, time_t *second) {
  static char buf[64];
  static size_t n;
  static time_t last = -1;
  time_t now = time(NULL);
  if (now != last) {
    struct tm tm;
    gmtime_r(&now, &tm);
    n = strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    last = now;
  }
  *len = n;
  *second = now;
  return buf;
}

/* The last response made without headers (http_response's upvalue; its
** user values: 1, the response; 2, its body, kept so that the body's
** address names that string alone). A handler that answers the same
** string with no fields gets the same response again, not a new one,
** until the Date changes. Only a small one is kept. */
typedef struct Last {
  int valid, status, close, headonly;
  lua_Integer length;
  time_t second;
  const char *body;
} Last;

static int iequal (const char *a, size_t n, const char *b) {
  size_t i;
  if (strlen(b) != n) return 0;
  for (i = 0; i < n; i++) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    if (c != b[i]) return 0;
  }
  return 1;
}

/* Whether a header value is unsafe to send (it would end the field). */
static int badvalue (const char *s, size_t n) {
  return memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL;
}

static int badname (const char *s, size_t n) {
  size_t i;
  if (n == 0) return 1;
  for (i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] == ':' || s[i] >= 127) return 1;
  return 0;
}

enum { F_DATE = 1, F_CLOSE = 2 };

/* The response being built: in init until it outgrows it, then in a
** userdata at stack slot 7 (so that nothing leaks when Lua raises). */
typedef struct Buf {
  lua_State *L;
  char *p;
  size_t n, cap;
  char init[1024];
} Buf;

static void bufadd (Buf *b, const char *s, size_t n) {
  if (b->n + n > b->cap) {
    size_t ncap = b->cap * 2;
    char *np;
    while (ncap < b->n + n) ncap *= 2;
    np = lua_newuserdatauv(b->L, ncap, 0);
    memcpy(np, b->p, b->n);
    lua_replace(b->L, 7);
    b->p = np;
    b->cap = ncap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

/* Add "name: value\r\n" for each value (the value at the top: a string, a
** number or a list of them); F_DATE / F_CLOSE as
** the field is; *bad: why it cannot be sent, or NULL. */
static int addfield (lua_State *L, Buf *b, const char *name, size_t nlen,
                     const char **bad) {
  int seen = 0, i, n = 1, islist = lua_type(L, -1) == LUA_TTABLE;
  if (badname(name, nlen)) {
    *bad = "bad header name";
    return 0;
  }
  if (iequal(name, nlen, "content-length") ||
      iequal(name, nlen, "transfer-encoding"))
    return 0;                      /* the server sets them */
  if (iequal(name, nlen, "date")) seen = F_DATE;
  if (islist) n = (int)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    size_t vlen;
    const char *v;
    int t = islist ? lua_rawgeti(L, -1, i) : lua_type(L, -1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) {
      *bad = "header values must be strings";
      if (islist) lua_pop(L, 1);
      return 0;
    }
    v = lua_tolstring(L, -1, &vlen);
    if (badvalue(v, vlen)) {
      *bad = "a header value holds a line break";
      if (islist) lua_pop(L, 1);
      return 0;
    }
    if (iequal(name, nlen, "connection") && iequal(v, vlen, "close"))
      seen |= F_CLOSE;
    bufadd(b, name, nlen);
    bufadd(b, ": ", 2);
    bufadd(b, v, vlen);
    bufadd(b, "\r\n", 2);
    if (islist) lua_pop(L, 1);
  }
  return seen;
}

/* http._response(status, headers, length, body, close, headonly) ->
** string, closing. The status line, the headers (a table of name = value
** or list of values; Content-Length and Transfer-Encoding are the
** server's), Date, Content-Length: length (>= 0) or Transfer-Encoding:
** chunked (-1) or neither (-2), Connection: close if close, then body
** (unless headonly). closing: the connection ends after it (close, or a
** Connection: close among the headers). */
static int http_response (lua_State *L) {
  int status = (int)tide__checkinteger(L, 1);
  lua_Integer length = tide__checkinteger(L, 3);
  int close = lua_toboolean(L, 5), headonly = lua_toboolean(L, 6);
  int seen = 0, plain;
  size_t blen = 0, dlen;
  const char *body = NULL, *date, *bad = NULL, *why;
  char line[64];
  time_t second;
  Last *last = lua_touserdata(L, lua_upvalueindex(1));
  Buf b;
  tide__argcheck(L, status >= 100 && status <= 999, 1,
                 "status out of range");
  if (!lua_isnoneornil(L, 4)) body = tide__checklstring(L, 4, &blen);
  if (!lua_isnoneornil(L, 2)) tide__checktype(L, 2, LUA_TTABLE);
  plain = lua_type(L, 2) != LUA_TTABLE;
  date = datefield(&dlen, &second);
  if (plain && last->valid && last->status == status &&
      last->length == length && last->close == close &&
      last->headonly == headonly && last->body == body &&
      last->second == second) {
    lua_getiuservalue(L, lua_upvalueindex(1), 1);
    lua_pushboolean(L, close);
    return 2;
  }
  lua_settop(L, 7);
  b.L = L;
  b.p = b.init;
  b.n = 0;
  b.cap = sizeof b.init;
  why = reason(status);
  memcpy(b.p, "HTTP/1.1 ", 9);
  b.p[9] = (char)('0' + status / 100);
  b.p[10] = (char)('0' + status / 10 % 10);
  b.p[11] = (char)('0' + status % 10);
  b.p[12] = ' ';
  b.n = 13;
  bufadd(&b, why, strlen(why));
  bufadd(&b, "\r\n", 2);
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      size_t nlen;
      const char *name;
      if (lua_type(L, -2) != LUA_TSTRING) {
        bad = "header names must be strings";
        break;
      }
      name = lua_tolstring(L, -2, &nlen);
      seen |= addfield(L, &b, name, nlen, &bad);
      if (bad != NULL) break;
      lua_pop(L, 1);
    }
  }
  if (bad != NULL) return tide__argerror(L, 2, bad);
  if (!(seen & F_DATE)) bufadd(&b, date, dlen);
  if (length >= 0) {
    char *end = line + sizeof line - 2, *d = decimal(end, (unsigned long long)length);
    end[0] = '\r';
    end[1] = '\n';
    bufadd(&b, "Content-Length: ", 16);
    bufadd(&b, d, (size_t)(end + 2 - d));
  }
  else if (length == -1)
    bufadd(&b, "Transfer-Encoding: chunked\r\n", 28);
  if (close && !(seen & F_CLOSE)) bufadd(&b, "Connection: close\r\n", 19);
  bufadd(&b, "\r\n", 2);
  if (body != NULL && !headonly) bufadd(&b, body, blen);
  lua_pushlstring(L, b.p, b.n);
  if (plain && b.n <= sizeof b.init) {   /* (a large one is not kept) */
    last->valid = 0;
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, lua_upvalueindex(1), 1);
    lua_pushvalue(L, 4);
    lua_setiuservalue(L, lua_upvalueindex(1), 2);
    last->status = status;
    last->length = length;
    last->close = close;
    last->headonly = headonly;
    last->body = body;
    last->second = second;
    last->valid = 1;
  }
  lua_pushboolean(L, close || (seen & F_CLOSE));
  return 2;
}

/* http._quick(status, body, close, headonly) -> string, closing | nothing:
** http._response(status, nil, #body, body, close, headonly) for what a
** handler most often returns, a status 200..599 with a body (a string)
** and a length; nothing for any other status or body, which the caller
** checks and reports. */
static int http_quick (lua_State *L) {
  int isint, t = lua_type(L, 2);
  lua_Integer status;
  if (lua_type(L, 1) != LUA_TNUMBER) return 0;
  status = lua_tointegerx(L, 1, &isint);
  if (!isint || status < 200 || status > 599 || status == 204 ||
      status == 304)
    return 0;
  if (t != LUA_TSTRING && t != LUA_TNIL && t != LUA_TNONE) return 0;
  lua_settop(L, 4);
  lua_pushinteger(L, t == LUA_TSTRING ? (lua_Integer)lua_rawlen(L, 2) : 0);
  lua_insert(L, 2);
  lua_pushnil(L);
  lua_insert(L, 2);
  return http_response(L);
}

/* http._chunk(data) -> data framed as one chunk of a chunked body */
static int http_chunk (lua_State *L) {
  size_t n;
  const char *s = tide__checklstring(L, 1, &n);
  char size[32], *end = size + sizeof size - 2, *d = end;
  size_t m = n;
  luaL_Buffer b;
  do {
    *--d = "0123456789abcdef"[m & 15];
    m >>= 4;
  } while (m != 0);
  end[0] = '\r';
  end[1] = '\n';
  luaL_buffinitsize(L, &b, n + (size_t)(end + 2 - d) + 2);
  luaL_addlstring(&b, d, (size_t)(end + 2 - d));
  luaL_addlstring(&b, s, n);
  luaL_addlstring(&b, "\r\n", 2);
  luaL_pushresult(&b);
  return 1;
}

/* Add the server's C functions to the tide.http table (on the stack at
** tide__open_http_server's call: tide, private, runtime), for
** http_server.lua to take. */
int tide__open_http_server (lua_State *L) {
  if (lua_getfield(L, -3, "http") != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  tide__open_httpparser(L);
  lua_setfield(L, -2, "_parser");
  memset(lua_newuserdatauv(L, sizeof(Last), 2), 0, sizeof(Last));
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, http_response, 1);
  lua_setfield(L, -3, "_response");
  lua_pushcclosure(L, http_quick, 1);
  lua_setfield(L, -2, "_quick");
  lua_pushcfunction(L, http_chunk);
  lua_setfield(L, -2, "_chunk");
  lua_pop(L, 1);
  return 0;
}
