/*
** http_server_parser.c: the request parser of tide.http.serve, a
** tide.HttpParser per connection around Debian's http-parser (the parser
** Node.js shipped). It parses straight from the strings the connection
** reads, stops at the end of each request's head and of each request, and
** builds the request table in C.
*/
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>

#include "tide_int.h"
#include "http_server.h"

typedef struct Field {     /* offsets in Parser.buf */
  uint32_t name, namelen, value, valuelen;
} Field;

typedef struct Piece {     /* body data in the string being parsed */
  const char *p;
  size_t n;
} Piece;

typedef struct Parser {
  http_parser p;
  char *buf;               /* the target, then the names and values */
  size_t len, cap;
  size_t urllen;
  Field *fields;
  int nfields, capfields;
  int invalue;             /* the last header callback was a value */
  int headdone, msgdone;   /* the head / the whole request has been parsed */
  int nomem;               /* a callback could not keep its data */
  size_t headbytes;        /* bytes of the head parsed so far */
  size_t maxhead;
  Piece *pieces;           /* body data seen by one execute */
  int npieces, cappieces;
} Parser;

static Parser *checkparser (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_HTTPPARSER);
}

/* As checkparser for the methods, which hold the metatable as their
** upvalue: a pointer compare on each request rather than a look-up by
** name (the fuzz harness calls them without it, and gets the look-up). */
static Parser *selfparser (lua_State *L) {
  if (lua_getmetatable(L, 1)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (same) return lua_touserdata(L, 1);
  }
  return checkparser(L, 1);
}

/* ---- Callbacks ------------------------------------------------------------ */

static int append (Parser *ps, const char *at, size_t n) {
  if (ps->len + n > ps->cap) {
    size_t ncap = ps->cap ? ps->cap : 256;
    char *nb;
    while (ncap < ps->len + n) ncap *= 2;
    if ((nb = tide__realloc(ps->buf, ncap)) == NULL) {
      ps->nomem = 1;
      return -1;
    }
    ps->buf = nb;
    ps->cap = ncap;
  }
  memcpy(ps->buf + ps->len, at, n);
  ps->len += n;
  return 0;
}

static int on_message_begin (http_parser *p) {
  Parser *ps = p->data;
  ps->len = ps->urllen = 0;
  ps->nfields = 0;
  ps->invalue = 1;
  ps->headdone = ps->msgdone = 0;
  return 0;
}

static int on_url (http_parser *p, const char *at, size_t n) {
  Parser *ps = p->data;
  ps->urllen += n;
  return append(ps, at, n);
}

static int on_header_field (http_parser *p, const char *at, size_t n) {
  Parser *ps = p->data;
  if (ps->invalue) {               /* a new field */
    Field *f;
    if (ps->nfields == ps->capfields) {
      int ncap = ps->capfields ? ps->capfields * 2 : 16;
      Field *nf = tide__realloc(ps->fields, (size_t)ncap * sizeof *nf);
      if (nf == NULL) {
        ps->nomem = 1;
        return -1;
      }
      ps->fields = nf;
      ps->capfields = ncap;
    }
    f = &ps->fields[ps->nfields++];
    f->name = f->value = (uint32_t)ps->len;
    f->namelen = f->valuelen = 0;
    ps->invalue = 0;
  }
  ps->fields[ps->nfields - 1].namelen += (uint32_t)n;
  return append(ps, at, n);
}

static int on_header_value (http_parser *p, const char *at, size_t n) {
  Parser *ps = p->data;
  Field *f = &ps->fields[ps->nfields - 1];
  if (!ps->invalue) {
    f->value = (uint32_t)ps->len;
    ps->invalue = 1;
  }
  f->valuelen += (uint32_t)n;
  return append(ps, at, n);
}

/* A CONNECT has none whatever its head says: http-parser ends the request
** at its head, and what follows is the tunnel's. */
static int hasbody (http_parser *p) {
  if (p->method == HTTP_CONNECT) return 0;
  return (p->flags & F_CHUNKED) ||
         (p->content_length > 0 && p->content_length != ULLONG_MAX);
}

/* Stop at the end of the head when a body follows (the handler reads it
** when it wants); without one the request ends at once. */
static int on_headers_complete (http_parser *p) {
  Parser *ps = p->data;
  ps->headdone = 1;
  if (hasbody(p)) http_parser_pause(p, 1);
  return 0;
}

static int on_body (http_parser *p, const char *at, size_t n) {
  Parser *ps = p->data;
  if (ps->npieces == ps->cappieces) {
    int ncap = ps->cappieces ? ps->cappieces * 2 : 8;
    Piece *np = tide__realloc(ps->pieces, (size_t)ncap * sizeof *np);
    if (np == NULL) {
      ps->nomem = 1;
      return -1;
    }
    ps->pieces = np;
    ps->cappieces = ncap;
  }
  ps->pieces[ps->npieces].p = at;
  ps->pieces[ps->npieces++].n = n;
  return 0;
}

static int on_message_complete (http_parser *p) {
  Parser *ps = p->data;
  ps->msgdone = 1;
  http_parser_pause(p, 1);         /* the next request waits its turn */
  return 0;
}

static const http_parser_settings settings = {
  .on_message_begin = on_message_begin,
  .on_url = on_url,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

/* ---- Parsing ---------------------------------------------------------------- */

/* Run the parser over the string at 2 from position 3 (1-based); the
** count of bytes it took, or -1 with its error left in the parser. */
static long execute (lua_State *L, Parser *ps) {
  size_t len, n;
  const char *s = tide__checklstring(L, 2, &len);
  lua_Integer pos = tide__checkinteger(L, 3);
  enum http_errno e;
  tide__argcheck(L, pos >= 1 && (size_t)pos <= len + 1, 3, "out of range");
  if ((size_t)pos > len) return 0;
  n = http_parser_execute(&ps->p, &settings, s + pos - 1, len - (size_t)pos + 1);
  e = HTTP_PARSER_ERRNO(&ps->p);
  if (e == HPE_PAUSED) http_parser_pause(&ps->p, 0);
  else if (e != HPE_OK) {
    if (ps->nomem) tide__nomem(L);
    return -1;
  }
  return (long)n;
}

/* false, status, message: the request is malformed. */
static int pushbad (lua_State *L, int status, const char *msg) {
  lua_pushboolean(L, 0);
  lua_pushinteger(L, status);
  lua_pushstring(L, msg);
  return 3;
}

static int pusherror (lua_State *L, Parser *ps) {
  enum http_errno e = HTTP_PARSER_ERRNO(&ps->p);
  if (e == HPE_HEADER_OVERFLOW)
    return pushbad(L, 431, "request header fields too large");
  return pushbad(L, 400, http_errno_description(e));
}

static const char *const versions[] = { "1.0", "1.1" };

/* A header name in lower case, as the table keys are. */
static void pushlower (lua_State *L, const char *s, size_t n) {
  char tmp[64];
  size_t i;
  if (n > sizeof tmp) {
    luaL_Buffer b;
    char *d = luaL_buffinitsize(L, &b, n);
    for (i = 0; i < n; i++)
      d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
    luaL_pushresultsize(&b, n);
    return;
  }
  for (i = 0; i < n; i++)
    tmp[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
  lua_pushlstring(L, tmp, n);
}

/* The methods' upvalues: the parser's metatable, then the request's
** keys, made once. */
enum { K_META = 1, K_METHOD, K_TARGET, K_PATH, K_QUERY, K_VERSION, K_HEADERS,
       K_COUNT = K_HEADERS };
static const char *const keys[] = {
  "method", "target", "path", "_query", "version", "headers"
};
#define KEY(k) lua_pushvalue(L, lua_upvalueindex(k))

/* The length of the "scheme://" that starts an absolute-form target (RFC
** 9112 3.2.2: "http://host:port/path?query"), or 0. */
static size_t schemelen (const char *t, size_t n) {
  size_t i = 0;
  if (n == 0 || !((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z')) return 0;
  while (i < n && (((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z') ||
                   (t[i] >= '0' && t[i] <= '9') || t[i] == '+' ||
                   t[i] == '-' || t[i] == '.'))
    i++;
  if (n - i >= 3 && memcmp(t + i, "://", 3) == 0) return i + 3;
  return 0;
}

/* Push the request table: method, target, path, _query (the raw query
** string, or nil), version, headers (its metatable: user value 1); its
** metatable: user value 2. An absolute-form target's path is what follows
** its authority ("/" if nothing does, "*" for OPTIONS), and its authority
** replaces the Host field (RFC 9112 3.2.2); a fragment ("#..."), which a
** client should not send, is dropped from the path and the query. */
static void pushrequest (lua_State *L, Parser *ps) {
  http_parser *p = &ps->p;
  const char *t = ps->buf, *end = ps->buf + ps->urllen, *path, *q, *h;
  const char *host = NULL;
  size_t hostlen = 0, n;
  int i;
  lua_createtable(L, 0, 8);
  KEY(K_METHOD);
  lua_pushstring(L, http_method_str((enum http_method)p->method));
  lua_rawset(L, -3);
  KEY(K_TARGET);
  lua_pushlstring(L, t, ps->urllen);
  lua_rawset(L, -3);
  path = t;
  if (p->method != HTTP_CONNECT && (n = schemelen(t, ps->urllen)) > 0) {
    host = t + n;
    path = host;
    while (path < end && *path != '/' && *path != '?' && *path != '#') path++;
    hostlen = (size_t)(path - host);
    h = memchr(host, '@', hostlen);            /* userinfo: not the host */
    while (h != NULL) {
      hostlen -= (size_t)(h + 1 - host);
      host = h + 1;
      h = memchr(host, '@', hostlen);
    }
  }
  h = memchr(path, '#', (size_t)(end - path));
  if (h != NULL) end = h;                      /* the fragment dropped */
  q = memchr(path, '?', (size_t)(end - path));
  KEY(K_PATH);
  if (host != NULL && (path == end || path == q))   /* (RFC 9112 3.2.4) */
    lua_pushstring(L, p->method == HTTP_OPTIONS ? "*" : "/");
  else if (path == t && q == NULL && end == t + ps->urllen) {
    KEY(K_TARGET);                             /* the same string */
    lua_rawget(L, -3);
  }
  else
    lua_pushlstring(L, path, (size_t)((q != NULL ? q : end) - path));
  lua_rawset(L, -3);
  if (q != NULL) {
    KEY(K_QUERY);
    lua_pushlstring(L, q + 1, (size_t)(end - q - 1));
    lua_rawset(L, -3);
  }
  KEY(K_VERSION);
  if (p->http_major == 1 && p->http_minor <= 1)
    lua_pushstring(L, versions[p->http_minor]);
  else
    lua_pushfstring(L, "%d.%d", (int)p->http_major, (int)p->http_minor);
  lua_rawset(L, -3);
  KEY(K_HEADERS);
  lua_createtable(L, 0, ps->nfields);
  for (i = 0; i < ps->nfields; i++) {
    Field *f = &ps->fields[i];
    pushlower(L, ps->buf + f->name, f->namelen);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushlstring(L, ps->buf + f->value, f->valuelen);
    }
    else {                         /* repeated: the values joined */
      lua_pushstring(L, ", ");
      lua_pushlstring(L, ps->buf + f->value, f->valuelen);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
  if (host != NULL) {
    lua_pushliteral(L, "host");
    lua_pushlstring(L, host, hostlen);
    lua_rawset(L, -3);
  }
  lua_getiuservalue(L, 1, 1);      /* the Headers metatable */
  lua_setmetatable(L, -2);
  lua_rawset(L, -3);
  lua_getiuservalue(L, 1, 2);      /* the Request metatable */
  lua_setmetatable(L, -2);
}

/* What the connection needs to know of the request (results 4 to 7 of
** parser:head): keep (the connection may go on after it), body (one
** follows the head), length (the body's Content-Length, or false when
** chunked or none), upgrade. */
static void pushframing (lua_State *L, Parser *ps) {
  http_parser *p = &ps->p;
  int body = hasbody(p);
  lua_pushboolean(L, http_should_keep_alive(p));
  lua_pushboolean(L, body);
  if (body && !(p->flags & F_CHUNKED))
    lua_pushinteger(L, (lua_Integer)p->content_length);
  else
    lua_pushboolean(L, 0);
  lua_pushboolean(L, p->upgrade);
}

/* parser:head(s, pos) -> request, pos, complete, keep, body, length,
** upgrade | nil, pos (more needed) | false, status, message. complete:
** the request has no body (or it was all in s); the rest as pushframing
** says. */
static int parser_head (lua_State *L) {
  Parser *ps = selfparser(L);
  long n;
  if (ps->msgdone) {               /* a new request */
    ps->msgdone = ps->headdone = 0;
    ps->headbytes = 0;
  }
  ps->npieces = 0;
  n = execute(L, ps);
  if (n < 0) return pusherror(L, ps);
  ps->headbytes += (size_t)n;
  if (!ps->headdone) {
    if (ps->headbytes > ps->maxhead)
      return pushbad(L, 431, "request header fields too large");
    lua_pushnil(L);
    lua_pushinteger(L, lua_tointeger(L, 3) + n);
    return 2;
  }
  if (ps->headbytes > ps->maxhead)
    return pushbad(L, 431, "request header fields too large");
  pushrequest(L, ps);
  lua_pushinteger(L, lua_tointeger(L, 3) + n);
  lua_pushboolean(L, ps->msgdone);
  pushframing(L, ps);
  return 7;
}

/* parser:body(s, pos) -> data | nil, pos, done | false, status, message:
** the body data in s from pos (nil if none), the position after it, and
** whether the request has ended. */
static int parser_body (lua_State *L) {
  Parser *ps = selfparser(L);
  long n;
  ps->npieces = 0;
  if (ps->msgdone) {
    lua_pushnil(L);
    lua_pushvalue(L, 3);
    lua_pushboolean(L, 1);
    return 3;
  }
  n = execute(L, ps);
  if (n < 0) return pusherror(L, ps);
  if (ps->npieces == 0) lua_pushnil(L);
  else if (ps->npieces == 1) lua_pushlstring(L, ps->pieces[0].p, ps->pieces[0].n);
  else {
    luaL_Buffer b;
    int i;
    luaL_buffinit(L, &b);
    for (i = 0; i < ps->npieces; i++)
      luaL_addlstring(&b, ps->pieces[i].p, ps->pieces[i].n);
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, lua_tointeger(L, 3) + n);
  lua_pushboolean(L, ps->msgdone);
  return 3;
}

/* parser:eof() -> true | false, status, message: the peer closed. */
static int parser_eof (lua_State *L) {
  Parser *ps = checkparser(L, 1);
  http_parser_execute(&ps->p, &settings, NULL, 0);
  if (HTTP_PARSER_ERRNO(&ps->p) != HPE_OK &&
      HTTP_PARSER_ERRNO(&ps->p) != HPE_PAUSED)
    return pusherror(L, ps);
  lua_pushboolean(L, 1);
  return 1;
}

static int parser_gc (lua_State *L) {
  Parser *ps = checkparser(L, 1);
  tide__free(ps->buf);
  tide__free(ps->fields);
  tide__free(ps->pieces);
  ps->buf = NULL;
  ps->fields = NULL;
  ps->pieces = NULL;
  ps->len = ps->cap = 0;
  ps->nfields = ps->capfields = ps->npieces = ps->cappieces = 0;
  return 0;
}

static int parser_tostring (lua_State *L) {
  lua_pushfstring(L, "tide.HttpParser: %p", (void *)checkparser(L, 1));
  return 1;
}

/* http._parser(maxhead, Headers, Request) -> a parser of requests */
static int http_parser_new (lua_State *L) {
  lua_Integer maxhead = tide__checkinteger(L, 1);
  Parser *ps;
  tide__checktype(L, 2, LUA_TTABLE);
  tide__checktype(L, 3, LUA_TTABLE);
  ps = lua_newuserdatauv(L, sizeof *ps, 2);
  memset(ps, 0, sizeof *ps);
  http_parser_init(&ps->p, HTTP_REQUEST);
  ps->p.data = ps;
  ps->maxhead = maxhead > 0 ? (size_t)maxhead : 0;
  luaL_setmetatable(L, TIDE_HTTPPARSER);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, 2);
  return 1;
}

static const luaL_Reg parser_methods[] = {
  {"head", parser_head},
  {"body", parser_body},
  {"eof", parser_eof},
  {NULL, NULL}
};

static const luaL_Reg parser_meta[] = {
  {"__gc", parser_gc},
  {"__tostring", parser_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

/* Register the parser's type; push its constructor. */
void tide__open_httpparser (lua_State *L) {
  int i;
  luaL_newmetatable(L, TIDE_HTTPPARSER);
  luaL_setfuncs(L, parser_meta, 0);
  luaL_newlibtable(L, parser_methods);
  lua_pushvalue(L, -2);
  for (i = 0; i < K_COUNT - K_META; i++) lua_pushstring(L, keys[i]);
  luaL_setfuncs(L, parser_methods, K_COUNT);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, http_parser_new);
}
