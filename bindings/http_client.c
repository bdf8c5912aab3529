/*
** http_client.c: tide.http's transfers on libcurl. A Transfer is one
** request and its response: curl's callbacks fill its header block and body
** buffer and pull the request body from it; the task waits with
** Transfer:_wait until the headers, data, the end, or curl's need for more
** of the request body. runtime/lua/http.lua builds the user's API (request,
** get, post, the Response) on these calls.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_transfer.h"

#define TIDE_TRANSFER "tide.HttpTransfer"

/* stream = true: curl is paused while this much is buffered unread */
#define HIGH (64 * 1024)


enum { S_HEAD, S_BODY, S_DONE };          /* where the response is */
enum { W_HEAD = 1, W_DATA, W_DONE };      /* what a task waits for */

/* Buf and Transfer: http_transfer.h. */

/* ---- Buffers ------------------------------------------------------------ */

static size_t buf_unread (const Buf *b) { return b->len - b->off; }

static void buf_free (Buf *b) {
  tide__free(b->p);
  memset(b, 0, sizeof *b);
}

/* Append n bytes; 0 when out of memory. Read bytes are dropped first. */
static int buf_add (Buf *b, const char *s, size_t n) {
  if (b->off > 0 && b->len + n > b->cap) {
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
  }
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *p;
    while (cap < b->len + n) cap *= 2;
    if ((p = tide__realloc(b->p, cap)) == NULL) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 1;
}

/* ---- Waking the task ------------------------------------------------------ */

static void wake (Transfer *t) {
  tide_Wait *w = t->w;
  if (w == NULL) return;
  t->w = NULL;
  t->waitfor = 0;
  if (t->h) tide__httpwait(t->h, -1);
  tide_wake(w, 0);                 /* no values: nothing is allocated */
}

/* The transfer leaves the multi: its easy handle and header list go. */
static void release (Transfer *t) {
  tide__httpremove(&t->l);
  if (t->headers) CU.slist_free_all(t->headers);
  t->headers = NULL;
  t->recvpaused = t->sendpaused = 0;
  t->upneed = 0;
  t->state = S_DONE;
}

/* ---- curl's callbacks (no Lua may run here) -------------------------------- */

static void take_info (Transfer *t) {
  CURL *e = t->l.easy;
  char *url = NULL;
  CU.easy_getinfo(e, CURLINFO_RESPONSE_CODE, &t->status);
  CU.easy_getinfo(e, CURLINFO_HTTP_VERSION, &t->version);
  tide__httpversion(&t->l, t->version);
  CU.easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url);
  tide__free(t->url);
  t->url = NULL;
  if (url != NULL) {
    size_t n = strlen(url) + 1;
    if ((t->url = tide__malloc(n)) != NULL) memcpy(t->url, url, n);
    else t->nomem = 1;
  }
}

/* A header block has ended: the final one unless it is informational (1xx)
** or a redirect that curl follows. */
static void head_end (Transfer *t) {
  long status = 0;
  CU.easy_getinfo(t->l.easy, CURLINFO_RESPONSE_CODE, &status);
  if (status / 100 == 1) return;
  if (t->follow && status / 100 == 3 && t->hasloc) return;
  take_info(t);
  t->state = S_BODY;
  if (t->waitfor == W_HEAD) wake(t);
}

static size_t on_header (char *p, size_t size, size_t n, void *ud) {
  Transfer *t = ud;
  size_t len = size * n;
  if (t->state != S_HEAD) return len;        /* trailers */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    t->head.off = t->head.len = 0;           /* a new block */
    t->hasloc = 0;
  }
  else if (len >= 9 && strncasecmp(p, "location:", 9) == 0)
    t->hasloc = 1;
  if (!buf_add(&t->head, p, len)) {
    t->nomem = 1;
    return 0;
  }
  if ((len == 2 && p[0] == '\r' && p[1] == '\n') || (len == 1 && p[0] == '\n'))
    head_end(t);
  return len;
}

static size_t on_write (char *p, size_t size, size_t n, void *ud) {
  Transfer *t = ud;
  size_t len = size * n;
  if (t->stream && buf_unread(&t->body) >= HIGH) {
    t->recvpaused = 1;             /* curl keeps p and gives it again */
    return CURL_WRITEFUNC_PAUSE;
  }
  if (!buf_add(&t->body, p, len)) {
    t->nomem = 1;
    return 0;
  }
  if (t->waitfor == W_DATA) wake(t);
  return len;
}

static size_t on_read (char *p, size_t size, size_t n, void *ud) {
  Transfer *t = ud;
  size_t room = size * n, k = t->uplen - t->upoff;
  if (k > 0) {
    if (k > room) k = room;
    memcpy(p, t->up + t->upoff, k);
    t->upoff += k;
    return k;
  }
  if (t->upend) return 0;
  t->upneed = t->sendpaused = 1;
  wake(t);
  return CURL_READFUNC_PAUSE;
}

/* curl has finished the transfer (or the runtime closes under it). */
static void on_done (tide_HttpLink *l, CURLcode rc) {
  Transfer *t = (Transfer *)l;
  if (l->easy != NULL) {
    if (t->state == S_HEAD) take_info(t);
    CU.easy_getinfo(l->easy, CURLINFO_OS_ERRNO, &t->oserr);
  }
  t->result = rc;
  if (rc == CURLE_ABORTED_BY_CALLBACK) t->cut = 1;
  release(t);
  wake(t);
  t->h = NULL;
}

/* ---- Setting a transfer up -------------------------------------------------- */

static Transfer *checktransfer (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_TRANSFER);
}

/* The arguments of _start (see http_start). */
enum { A_URL = 1, A_OPTS, A_METHOD, A_LINES, A_BODY, A_PULL, A_SIZE };

/* opts[name] (checked by http.lua) pushed, or nil when there are no
** options; its type. */
static int getopt (lua_State *L, const char *name) {
  if (!lua_istable(L, A_OPTS)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  return lua_getfield(L, A_OPTS, name);
}

/* opts[name] as a string, or NULL. */
static const char *optstr (lua_State *L, const char *name) {
  const char *s;
  getopt(L, name);
  s = lua_tostring(L, -1);
  lua_pop(L, 1);                   /* anchored by opts */
  return s;
}

static double optnum (lua_State *L, const char *name, double def) {
  double v = getopt(L, name) == LUA_TNIL ? def : lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static int optbool (lua_State *L, const char *name, int def) {
  int v = getopt(L, name) == LUA_TNIL ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* The setopt calls that copy strings may run out of memory. */
static void setstr (lua_State *L, CURL *e, CURLoption o, const char *s) {
  if (CU.easy_setopt(e, o, s) == CURLE_OUT_OF_MEMORY) tide__nomem(L);
}

/* The header lines, "Name: value" each, in the list at A_LINES (or none). */
static void set_headers (lua_State *L, Transfer *t) {
  lua_Integer i, n;
  n = lua_istable(L, A_LINES) ? (lua_Integer)lua_rawlen(L, A_LINES) : 0;
  for (i = 1; i <= n; i++) {
    struct curl_slist *s;
    lua_rawgeti(L, A_LINES, i);
    s = CU.slist_append(t->headers, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (s == NULL) tide__nomem(L);
    t->headers = s;
  }
  if (t->headers) CU.easy_setopt(t->l.easy, CURLOPT_HTTPHEADER, t->headers);
}

static const char *const versions[] = { "1.0", "1.1", "2", NULL };
static const long versioncodes[] = {
  CURL_HTTP_VERSION_1_0, CURL_HTTP_VERSION_1_1, CURL_HTTP_VERSION_2TLS
};

/* The method and the request body: a string (kept in user value 1), or
** pulled with _feed, of size bytes (-1: unknown, sent chunked). */
static void set_method (lua_State *L, Transfer *t, int ud) {
  CURL *e = t->l.easy;
  size_t len;
  const char *method = lua_tostring(L, A_METHOD);
  const char *body = lua_tolstring(L, A_BODY, &len);
  int pull = lua_toboolean(L, A_PULL);
  lua_pushvalue(L, A_BODY);
  lua_setiuservalue(L, ud, 1);
  if (body != NULL || pull) {
    CU.easy_setopt(e, CURLOPT_POST, 1L);
    if (body != NULL) {
      CU.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
      CU.easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }
    else {
      CU.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)luaL_optinteger(L, A_SIZE, -1));
      CU.easy_setopt(e, CURLOPT_READFUNCTION, on_read);
      CU.easy_setopt(e, CURLOPT_READDATA, t);
    }
    if (strcmp(method, "POST") != 0) setstr(L, e, CURLOPT_CUSTOMREQUEST, method);
  }
  else if (strcmp(method, "HEAD") == 0)
    CU.easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0)
    setstr(L, e, CURLOPT_CUSTOMREQUEST, method);
}

/* Verification against the system store, or cafile/capath, or what
** SSL_CERT_FILE and SSL_CERT_DIR name, as OpenSSL takes them. */
static void set_tls (lua_State *L, Transfer *t) {
  CURL *e = t->l.easy;
  const char *cafile = optstr(L, "cafile"), *capath = optstr(L, "capath");
  if (!optbool(L, "verify", 1)) {
    CU.easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    CU.easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    return;
  }
  if (cafile != NULL || capath != NULL) {
    setstr(L, e, CURLOPT_CAINFO, cafile);
    setstr(L, e, CURLOPT_CAPATH, capath);
    return;
  }
  if ((cafile = getenv("SSL_CERT_FILE")) != NULL && cafile[0] != '\0')
    setstr(L, e, CURLOPT_CAINFO, cafile);
  if ((capath = getenv("SSL_CERT_DIR")) != NULL && capath[0] != '\0')
    setstr(L, e, CURLOPT_CAPATH, capath);
}

static void set_limits (lua_State *L, Transfer *t) {
  CURL *e = t->l.easy;
  t->timeout = optnum(L, "timeout", 0);
  t->ctimeout = optnum(L, "connect_timeout", 0);
  t->lslimit = (long)optnum(L, "low_speed_limit", 0);
  t->lstime = (long)optnum(L, "low_speed_time", 0);
  t->l.timeout_ms = 0;
  if (t->timeout > 0) {
    t->l.timeout_ms = (long)(t->timeout * 1000 + 0.5);
    CU.easy_setopt(e, CURLOPT_TIMEOUT_MS, t->l.timeout_ms);
  }
  if (t->ctimeout > 0)
    CU.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)(t->ctimeout * 1000 + 0.5));
  if (t->lslimit > 0 && t->lstime > 0) {
    CU.easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, t->lslimit);
    CU.easy_setopt(e, CURLOPT_LOW_SPEED_TIME, t->lstime);
  }
}

/* The options of a transfer, from its arguments (checked by http.lua); ud:
** the Transfer's index. */
static void setup (lua_State *L, Transfer *t, int ud) {
  CURL *e = t->l.easy;
  const char *s;
  t->stream = optbool(L, "stream", 0);
  t->follow = optbool(L, "follow", 1);
  CU.easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  CU.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  CU.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  CU.easy_setopt(e, CURLOPT_HEADERDATA, t);
  CU.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  CU.easy_setopt(e, CURLOPT_WRITEDATA, t);
  CU.easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  /* Over TLS, wait for a connection being made that may carry HTTP/2 rather
  ** than open another; plain HTTP/1.1 requests go out at once, each on a
  ** connection of its own. */
  if (strncasecmp(lua_tostring(L, A_URL), "https:", 6) == 0)
    CU.easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  setstr(L, e, CURLOPT_PROTOCOLS_STR, "http,https");
  setstr(L, e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  setstr(L, e, CURLOPT_URL, lua_tostring(L, A_URL));
  CU.easy_setopt(e, CURLOPT_FOLLOWLOCATION, (long)t->follow);
  CU.easy_setopt(e, CURLOPT_MAXREDIRS, (long)optnum(L, "max_redirects", 5));
  if (optbool(L, "decompress", 1)) setstr(L, e, CURLOPT_ACCEPT_ENCODING, "");
  if ((s = optstr(L, "user_agent")) == NULL) {
    char ua[48];                   /* "tide/0.1.0" */
    snprintf(ua, sizeof ua, "tide/%s", &TIDE_VERSION[sizeof "tide"]);
    setstr(L, e, CURLOPT_USERAGENT, ua);
  }
  else setstr(L, e, CURLOPT_USERAGENT, s);
  if ((s = optstr(L, "proxy")) != NULL) setstr(L, e, CURLOPT_PROXY, s);
  if ((s = optstr(L, "noproxy")) != NULL) setstr(L, e, CURLOPT_NOPROXY, s);
  if ((s = optstr(L, "version")) != NULL) {
    int i;
    for (i = 0; versions[i] != NULL && strcmp(versions[i], s) != 0; i++) {}
    if (versions[i] != NULL)
      CU.easy_setopt(e, CURLOPT_HTTP_VERSION, versioncodes[i]);
  }
  set_limits(L, t);
  set_tls(L, t);
  set_headers(L, t);
  set_method(L, t, ud);
}

/* ---- The Lua side ------------------------------------------------------- */

/* The origin ("host:port", lower case) of an https URL whose transfer may
** speak HTTP/2, in buf; NULL for any other (plain HTTP, HTTP/1.x asked
** for, a name too long). */
static const char *mux_origin (lua_State *L, char *buf, size_t size) {
  const char *url = lua_tostring(L, A_URL), *p, *end, *at;
  const char *v = optstr(L, "version");
  size_t n, i;
  if (strncasecmp(url, "https://", 8) != 0) return NULL;
  if (v != NULL && strcmp(v, "2") != 0) return NULL;
  p = url + 8;
  end = p + strcspn(p, "/?#");
  at = memchr(p, '@', (size_t)(end - p));
  while (at != NULL) {             /* past the user information */
    p = at + 1;
    at = memchr(p, '@', (size_t)(end - p));
  }
  n = (size_t)(end - p);
  if (n == 0 || n >= size) return NULL;
  for (i = 0; i < n; i++)
    buf[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (char)(p[i] + 32) : p[i];
  buf[n] = '\0';
  return buf;
}

/* Cut a transfer that has not ended (cancel, close): out of the multi at
** once; curl closes its connection unless HTTP/2 shares it. */
static void cut (Transfer *t) {
  tide_Http *h = t->l.http;        /* NULL unless in the multi */
  if (t->state == S_DONE) return;
  t->cut = 1;
  t->result = CURLE_ABORTED_BY_CALLBACK;
  release(t);
  t->h = NULL;
  if (h != NULL) tide__httpsettle(h, &t->l, CURLE_OK);   /* the next in turn */
}

/* _start(url, opts, method, header lines, body, pull, size) -> Transfer,
** started: opts may be nil, the header lines too; body a string or nil;
** pull true to pull the body with _feed, of size bytes (-1: unknown). */
static int http_start (lua_State *L) {
  tide_Http *h;
  Transfer *t;
  int rc, ud = A_SIZE + 1;
  char origin[256];
  luaL_checkstring(L, A_URL);
  luaL_checkstring(L, A_METHOD);
  lua_settop(L, A_SIZE);
  h = tide__http(L);
  t = lua_newuserdatauv(L, sizeof *t, 2);
  memset(t, 0, sizeof *t);
  t->state = S_DONE;               /* until there is an easy handle */
  luaL_setmetatable(L, TIDE_TRANSFER);
  if ((t->l.easy = tide__httpeasy(h)) == NULL) tide__nomem(L);
  t->l.done = on_done;
  t->h = h;
  t->state = S_HEAD;
  setup(L, t, ud);
  if ((rc = tide__httpadd(h, &t->l, mux_origin(L, origin, sizeof origin)))
      != 0) {
    cut(t);
    if (rc == CURLM_OUT_OF_MEMORY) tide__nomem(L);
    return tide__error(L, "%s: cannot start the transfer (curl multi error "
                          "%d)", tide__fname(L), rc);
  }
  return 1;
}

static void wait_cancel (tide_Wait *w) {
  Transfer *t = tide_waitdata(w);
  if (t->w != w) return;
  t->w = NULL;
  t->waitfor = 0;
  if (t->h) tide__httpwait(t->h, -1);
  cut(t);
}

/* Is what the task waits for there? "send" when curl wants more of the
** request body, "ready" when it is there, else NULL. */
static const char *ready (Transfer *t, int what) {
  if (t->upneed) return "send";
  if (t->state == S_DONE) return "ready";
  if (what == W_HEAD && t->state == S_BODY) return "ready";
  if (what == W_DATA && buf_unread(&t->body) > 0) return "ready";
  return NULL;
}

static int wait_k (lua_State *L, int status, lua_KContext what) {
  Transfer *t = lua_touserdata(L, 1);
  const char *ev = ready(t, (int)what);
  tide_Wait *w;
  (void)status;
  if (ev != NULL) {
    lua_pushstring(L, ev);
    return 1;
  }
  if (t->w != NULL)
    return tide__error(L, "'%s': another task is reading this response",
                       tide__fname(L));
  w = tide_wait(L);
  t->w = w;
  t->waitfor = (int)what;
  tide__httpwait(t->h, 1);
  return tide_awaitk(L, w, wait_cancel, t, wait_k, what);
}

/* Transfer:_wait(what) -> "ready" | "send": waits for the final headers
** ("head"), body data ("data") or the end ("done"), or until curl wants
** more of the request body. */
static int tr_wait (lua_State *L) {
  static const char *const whats[] = { "head", "data", "done", NULL };
  checktransfer(L, 1);
  lua_settop(L, 2);
  return wait_k(L, LUA_OK, W_HEAD + tide__checkoption(L, 2, NULL, whats));
}

/* curl goes on with what was paused, (direction dir no longer paused). */
static void unpause (Transfer *t) {
  tide_Http *h = t->h;
  int mask = (t->recvpaused ? CURLPAUSE_RECV : 0) |
             (t->sendpaused ? CURLPAUSE_SEND : 0);
  if (t->l.easy == NULL || h == NULL) return;
  tide__httpsettle(h, &t->l, CU.easy_pause(t->l.easy, mask));
}

/* Transfer:_feed(chunk | nil): the next piece of the request body, or its
** end. */
static int tr_feed (lua_State *L) {
  Transfer *t = checktransfer(L, 1);
  size_t len = 0;
  const char *s = luaL_optlstring(L, 2, NULL, &len);
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, 2);
  t->up = s;
  t->uplen = len;
  t->upoff = 0;
  t->upend = (s == NULL);
  t->upneed = 0;
  if (t->sendpaused) {
    t->sendpaused = 0;
    unpause(t);
  }
  return 0;
}

static const char *versionname (long v) {
  switch (v) {
  case CURL_HTTP_VERSION_1_0: return "1.0";
  case CURL_HTTP_VERSION_1_1: return "1.1";
  case CURL_HTTP_VERSION_2_0: return "2";
  case CURL_HTTP_VERSION_3: return "3";
  default: return "";
  }
}

/* Transfer:_info() -> status, version, url */
static int tr_info (lua_State *L) {
  Transfer *t = checktransfer(L, 1);
  lua_pushinteger(L, t->status);
  lua_pushstring(L, versionname(t->version));
  lua_pushstring(L, t->url ? t->url : "");
  return 3;
}

/* Transfer:_head() -> the final header block, status line first */
static int tr_head (lua_State *L) {
  Transfer *t = checktransfer(L, 1);
  lua_pushlstring(L, t->head.p ? t->head.p : "", t->head.len);
  return 1;
}

/* Transfer:_keep(): its __close no longer closes it (a Response has it). */
static int tr_keep (lua_State *L) {
  checktransfer(L, 1)->kept = 1;
  return 0;
}

/* Transfer:_read([n]) -> up to n bytes of what is buffered (all of it by
** default), or nil when none is. */
static int tr_read (lua_State *L) {
  Transfer *t = checktransfer(L, 1);
  lua_Integer n = luaL_optinteger(L, 2, 0);
  Buf *b = &t->body;
  size_t k = buf_unread(b);
  if (k == 0) {
    lua_pushnil(L);
    return 1;
  }
  if (n > 0 && (size_t)n < k) k = (size_t)n;
  lua_pushlstring(L, b->p + b->off, k);
  b->off += k;
  if (b->off == b->len) b->off = b->len = 0;
  if (t->recvpaused && buf_unread(b) < HIGH / 2) {
    t->recvpaused = 0;
    unpause(t);
  }
  return 1;
}

/* Transfer:_rest() -> the whole body not read yet, when the transfer has
** ended well; else nil. */
static int tr_rest (lua_State *L) {
  Transfer *t = checktransfer(L, 1);
  Buf *b = &t->body;
  if (t->state != S_DONE || t->result != CURLE_OK || t->nomem) return 0;
  lua_pushlstring(L, b->p ? b->p + b->off : "", buf_unread(b));
  b->off = b->len = 0;
  return 1;
}

/* Transfer:_result() -> nothing while it goes on; true; or nil, msg,
** code */
static int tr_result (lua_State *L) {
  Transfer *t = checktransfer(L, 1);
  if (t->state != S_DONE) return 0;
  if (t->nomem) return tide__nomem(L);
  if (t->result == CURLE_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return tide__http_pushfail(L, t);
}

/* Transfer:close(): cut it if it goes on; free its buffers. */
static int tr_close (lua_State *L) {
  Transfer *t = checktransfer(L, 1);
  if (t->w != NULL) {              /* lua_close: finalized while waiting */
    t->w = NULL;
    if (t->h) tide__httpwait(t->h, -1);
  }
  cut(t);
  buf_free(&t->body);
  buf_free(&t->head);
  tide__free(t->url);
  t->url = NULL;
  return 0;
}

/* __close: close unless a Response has taken it (_keep). */
static int tr_release (lua_State *L) {
  Transfer *t = checktransfer(L, 1);
  return t->kept ? 0 : tr_close(L);
}

static int tr_tostring (lua_State *L) {
  Transfer *t = checktransfer(L, 1);
  lua_pushfstring(L, "%s (%s)", TIDE_TRANSFER,
                  t->state == S_DONE ? "ended" : "running");
  return 1;
}

static const luaL_Reg tr_methods[] = {
  {"_wait", tr_wait},
  {"_feed", tr_feed},
  {"_info", tr_info},
  {"_head", tr_head},
  {"_keep", tr_keep},
  {"_rest", tr_rest},
  {"_read", tr_read},
  {"_result", tr_result},
  {"close", tr_close},
  {NULL, NULL}
};

static const luaL_Reg tr_meta[] = {
  {"__gc", tr_close},
  {"__close", tr_release},
  {"__tostring", tr_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg http_funcs[] = {
  {"_start", http_start},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. */
int tide__open_http (lua_State *L) {
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, http_funcs, 1);
  lua_setfield(L, -4, "http");
  luaL_newmetatable(L, TIDE_TRANSFER);
  luaL_setfuncs(L, tr_meta, 0);
  luaL_newlib(L, tr_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  return 0;
}
