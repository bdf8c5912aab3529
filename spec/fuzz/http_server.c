/*
** http_server.c: libFuzzer harness for the request parser of
** tide.http.serve: bindings/http_server_parser.c is compiled in, and the
** input (after two bytes that pick max_header and how the rest is cut)
** arrives as a connection would hand it over, in pieces, to parser:head
** and parser:body called as runtime/lua/http_server.lua calls them:
** heads one after the other (pipelined), each body read to its end, and
** parser:eof when the input runs out. Each answer is checked: positions
** within the string and moving on, nothing left unread when more is
** asked for, the request's fields all there and of their types, a body as
** long as its Content-Length, refusals with 400 or 431 and a message.
*/
#include "../../bindings/http_server_parser.c"

#include "fuzz.h"

static lua_State *L;
static int parserref;
static int headref, bodyref;       /* the methods, as Lua gets them */

enum { HEAD, BODY };

/* parser:head or parser:body (what) on s from pos: the results, on the
** stack above top; their count. */
static int call (int what, const char *s, size_t len, size_t pos) {
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, what == HEAD ? headref : bodyref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, parserref);
  lua_pushlstring(L, s, len);
  lua_pushinteger(L, (lua_Integer)pos);
  if (lua_pcall(L, 3, LUA_MULTRET, 0) != LUA_OK)
    fail("%s raised: %s", what == HEAD ? "head" : "body",
         lua_tostring(L, -1));
  return lua_gettop(L) - top;
}

/* A refusal at the top (n values): false, 400 or 431, a message. */
static void check_refusal (int n) {
  lua_Integer status;
  if (n != 3) fail("a refusal of %d values", n);
  status = lua_tointeger(L, -2);
  if (status != 400 && status != 431) fail("refused with %d", (int)status);
  if (lua_type(L, -1) != LUA_TSTRING) fail("a refusal without a message");
}

/* The position at idx: within [from, len + 1]. */
static size_t check_pos (int idx, size_t from, size_t len) {
  lua_Integer p;
  if (!lua_isinteger(L, idx)) fail("the position is a %s",
                                   luaL_typename(L, idx));
  p = lua_tointeger(L, idx);
  if (p < (lua_Integer)from || p > (lua_Integer)len + 1)
    fail("position %lld outside [%zu, %zu]", (long long)p, from, len + 1);
  return (size_t)p;
}

static int field (int req, const char *k, int type) {
  int t = lua_getfield(L, req, k);
  if (t != type && type != LUA_TNONE)
    fail("req.%s is a %s", k, lua_typename(L, t));
  return t;
}

static void check_type (int idx, int type, const char *what) {
  if (lua_type(L, idx) != type)
    fail("%s is a %s", what, luaL_typename(L, idx));
}

/* The request at idx, followed by complete, keep, body, length, upgrade:
** its fields and those results; whether it has a body, and its length
** (-1: chunked). */
static int check_request (int idx, lua_Integer *length) {
  int req = lua_absindex(L, idx), body, top = lua_gettop(L);
  size_t tlen, plen, qlen, off = 0, end;
  const char *target, *path, *query;
  if (!lua_istable(L, req)) fail("the request is a %s",
                                 luaL_typename(L, req));
  field(req, "method", LUA_TSTRING);
  target = (field(req, "target", LUA_TSTRING), lua_tolstring(L, -1, &tlen));
  path = (field(req, "path", LUA_TSTRING), lua_tolstring(L, -1, &plen));
  /* The path is the target's from its start or, in an absolute-form
  ** target, from the end of its authority ("/" or "*" when nothing is
  ** there), up to its query or fragment. */
  if (plen > tlen || memcmp(target, path, plen) != 0) {
    while (off + 3 <= tlen && memcmp(target + off, "://", 3) != 0) off++;
    if (off + 3 > tlen) fail("the path is not the start of the target");
    off += 3;
    while (off < tlen && target[off] != '/' && target[off] != '?' &&
           target[off] != '#')
      off++;
    if (plen == 1 && (*path == '/' || *path == '*') &&
        (off == tlen || target[off] != '/'))
      plen = 0;                    /* made, not the target's */
    else if (off + plen > tlen || memcmp(target + off, path, plen) != 0)
      fail("the path is not the target's after its authority");
  }
  end = off + plen;
  if (memchr(path, '?', plen) != NULL || memchr(path, '#', plen) != NULL)
    fail("a '?' or a '#' in the path");
  if (field(req, "_query", LUA_TNONE) != LUA_TNIL) {
    query = lua_tolstring(L, -1, &qlen);
    if (end >= tlen || target[end] != '?') fail("a query without a '?'");
    if (end + 1 + qlen > tlen || memcmp(target + end + 1, query, qlen) != 0)
      fail("the query is not the target's after its '?'");
    if (memchr(query, '#', qlen) != NULL) fail("a '#' in the query");
  }
  else if (end < tlen && target[end] != '#')
    fail("the target goes on after the path, with no query or fragment");
  field(req, "version", LUA_TSTRING);
  field(req, "headers", LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    size_t i, n;
    const char *name = lua_tolstring(L, -2, &n);
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      fail("a header that is not string = string");
    for (i = 0; i < n; i++)
      if (name[i] >= 'A' && name[i] <= 'Z') fail("a header name in capitals");
    lua_pop(L, 1);
  }
  check_type(req + 2, LUA_TBOOLEAN, "complete");
  check_type(req + 3, LUA_TBOOLEAN, "keep");
  check_type(req + 4, LUA_TBOOLEAN, "body");
  body = lua_toboolean(L, req + 4);
  check_type(req + 6, LUA_TBOOLEAN, "upgrade");
  if (lua_type(L, req + 5) == LUA_TNUMBER) {
    *length = lua_tointeger(L, req + 5);
    if (!body || *length <= 0) fail("a length %lld, body %d",
                                    (long long)*length, body);
  }
  else if (lua_type(L, req + 5) != LUA_TBOOLEAN || lua_toboolean(L, req + 5))
    fail("length is not false or a number");
  else *length = -1;
  lua_settop(L, top);
  return body;
}

int LLVMFuzzerInitialize (int *argc, char ***argv) {
  (void)argc; (void)argv;
  L = luaL_newstate();
  tide__open_httpparser(L);
  lua_pop(L, 1);
  luaL_getmetatable(L, TIDE_HTTPPARSER);
  lua_getfield(L, -1, "__index");
  lua_getfield(L, -1, "head");
  headref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "body");
  bodyref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 2);
  return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  static const lua_Integer maxheads[] = { 16 * 1024, 64, 1, 1 << 20 };
  In in = { data, size };
  unsigned mh = in_u8(&in), cut = in_u8(&in);
  int state = HEAD, top = lua_gettop(L), n;
  unsigned rng = cut * 2654435761u + 1;
  lua_Integer length = -1, received = 0;
  /* the current piece and where the parser is in it */
  const char *s = NULL;
  size_t len = 0, pos = 1;
  lua_pushcfunction(L, http_parser_new);
  lua_pushinteger(L, maxheads[mh % 4]);
  lua_newtable(L);
  lua_newtable(L);
  lua_call(L, 3, 1);
  parserref = luaL_ref(L, LUA_REGISTRYINDEX);
  while (1) {
    size_t npos;
    if (pos > len) {               /* all of it taken: the next piece */
      size_t k;
      if (in.n == 0) break;
      if (cut == 0) k = in.n;
      else {
        rng = rng * 1103515245u + 12345u;
        k = cut < 128 ? cut : (rng >> 16) % (cut - 126) + 1;
      }
      s = in_bytes(&in, k, &len);
      pos = 1;
    }
    if (state == HEAD) {
      n = call(HEAD, s, len, pos);
      if (lua_type(L, -n) == LUA_TBOOLEAN) {
        check_refusal(n);
        goto done;
      }
      if (lua_isnil(L, -n)) {      /* more needed: all taken */
        if (n != 2) fail("head: nil and %d values", n - 1);
        if (check_pos(-1, pos, len) != len + 1)
          fail("head wants more with bytes left");
        pos = len + 1;
      }
      else {
        if (n != 7) fail("head: a request and %d values", n - 1);
        npos = check_pos(-6, pos, len);
        if (!check_request(-7, &length) && !lua_toboolean(L, -5))
          fail("a request without a body not complete");
        if (!lua_toboolean(L, -5)) state = BODY, received = 0;
        pos = npos;
      }
    }
    else {
      size_t dlen = 0;
      int isdone;
      n = call(BODY, s, len, pos);
      if (lua_type(L, -n) == LUA_TBOOLEAN) {
        check_refusal(n);
        goto done;
      }
      if (n != 3) fail("body: %d values", n);
      npos = check_pos(-2, pos, len);
      isdone = lua_toboolean(L, -1);
      if (lua_type(L, -3) == LUA_TSTRING) {
        lua_tolstring(L, -3, &dlen);
        if (dlen == 0) fail("body: an empty piece");
        received += (lua_Integer)dlen;
      }
      else if (!lua_isnil(L, -3)) fail("body: a %s", luaL_typename(L, -3));
      else if (!isdone && npos != len + 1)
        fail("body wants more with bytes left");
      if (npos == pos && dlen == 0 && !isdone && pos <= len)
        fail("body: no progress");
      if (length >= 0 && received > length)
        fail("a body of %lld bytes past its length %lld",
             (long long)received, (long long)length);
      if (isdone) {
        if (length >= 0 && received != length)
          fail("a body of %lld bytes, its length %lld", (long long)received,
               (long long)length);
        state = HEAD;
      }
      pos = npos;
    }
    lua_settop(L, top);
  }
  lua_settop(L, top);
  lua_pushcfunction(L, parser_eof);
  lua_rawgeti(L, LUA_REGISTRYINDEX, parserref);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK)
    fail("eof raised: %s", lua_tostring(L, -1));
  n = lua_gettop(L) - top;
  if (lua_type(L, -n) == LUA_TBOOLEAN && !lua_toboolean(L, -n))
    check_refusal(n);
  else if (n != 1 || !lua_toboolean(L, -1)) fail("eof: %d values", n);
done:
  lua_settop(L, top);
  luaL_unref(L, LUA_REGISTRYINDEX, parserref);
  lua_gc(L, LUA_GCCOLLECT);        /* parser_gc frees its buffers */
  return 0;
}
