/*
** work.c: tide.work(fn, ...): fn runs in a Lua state of its own on libuv's
** thread pool while the calling task waits. fn goes across as bytecode
** (lua_dump), its arguments and results as copies: nil, booleans, numbers,
** strings and tables of these. The state is made, used and closed on the
** pool thread, so nothing of it outlives the call. A call cancelled while
** it runs is stopped at its next instruction (a C function it is in runs
** on to its end); its results are dropped. The pool has UV_THREADPOOL_SIZE
** threads (4 by default), shared with tide.fs and DNS.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "tide_int.h"

#define TIDE_WORKBUF "tide.WorkBuf"
#define DEPTH_MAX 100              /* table nesting that can be copied */

/* A growable buffer of encoded values; a userdata, so that its memory is
** freed when an error cuts the encoding short. */
typedef struct Buf {
  char *p;
  size_t n, cap;
} Buf;

typedef struct Running Running;

typedef struct WorkReq {
  uv_work_t req;
  tide_Wait *w;            /* NULL once the task stopped waiting */
  char *in;                /* the function's bytecode, then the arguments */
  size_t dumplen, inlen;
  char *out;               /* the results, or the error value (failed) */
  size_t outlen;
  int failed;
  lua_State *W;            /* the worker's state while fn runs, or NULL */
  Running *running;        /* the coroutines running in it, innermost first */
  int stop;                /* the task stopped waiting: stop fn */
} WorkReq;

/* ---- Encoding ------------------------------------------------------------
** A list of values: a uint32 count, then each value as a tag and its bytes.
** A table: 'T', a uint32 n, the values at 1..n, key-value pairs for the
** other keys, 'E'. */

static int buf_gc (lua_State *L) {
  Buf *b = tide__checkudata(L, 1, TIDE_WORKBUF);
  tide__free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
  return 0;
}

static Buf *newbuf (lua_State *L) {
  Buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  b->n = b->cap = 0;
  /* filled every time: an earlier fill may have run out of memory */
  luaL_newmetatable(L, TIDE_WORKBUF);
  lua_pushcfunction(L, buf_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  return b;
}

/* Take the buffer's memory away from it. */
static char *buf_take (Buf *b, size_t *len) {
  char *p = b->p;
  *len = b->n;
  b->p = NULL;
  b->n = b->cap = 0;
  return p;
}

static void put (lua_State *L, Buf *b, const void *s, size_t len) {
  if (b->cap - b->n < len) {
    size_t cap = b->cap ? b->cap : 256;
    char *p;
    while (cap - b->n < len) {
      if (cap > SIZE_MAX / 2) luaL_error(L, "tide.work: not enough memory");
      cap *= 2;
    }
    if ((p = tide__realloc(b->p, cap)) == NULL)
      luaL_error(L, "tide.work: not enough memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, len);
  b->n += len;
}

static void puttag (lua_State *L, Buf *b, char tag) {
  put(L, b, &tag, 1);
}

static void putu32 (lua_State *L, Buf *b, uint32_t v) {
  put(L, b, &v, sizeof v);
}

/* What is being copied, for messages: argument #i or result #i. */
typedef struct Ctx {
  const char *fname;       /* the function copying: tide.work, ... */
  const char *what;
  int i;
  int seen;                /* stack index of the tables being copied */
} Ctx;

static int nocopy (lua_State *L, const Ctx *c, const char *why,
                   const char *more) {
  return luaL_error(L, "%s: %s (%s #%d)%s", c->fname, why, c->what, c->i,
                    more);
}

static void enc (lua_State *L, Buf *b, int i, const Ctx *c, int depth);

static void enctable (lua_State *L, Buf *b, int i, const Ctx *c, int depth) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, i), k;
  if (depth >= DEPTH_MAX) nocopy(L, c, "tables nested too deeply", "");
  luaL_checkstack(L, 4, "tide.work: tables nested too deeply");
  if (lua_rawgetp(L, c->seen, lua_topointer(L, i)) != LUA_TNIL)
    nocopy(L, c, "a table that contains itself cannot be copied", "");
  lua_pop(L, 1);
  lua_pushboolean(L, 1);
  lua_rawsetp(L, c->seen, lua_topointer(L, i));
  if (n > UINT32_MAX) nocopy(L, c, "table too long", "");
  puttag(L, b, 'T');
  putu32(L, b, (uint32_t)n);
  for (k = 1; k <= n; k++) {
    lua_rawgeti(L, i, k);
    enc(L, b, lua_gettop(L), c, depth + 1);
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, i)) {
    if (!(lua_isinteger(L, -2) && (k = lua_tointeger(L, -2)) >= 1 && k <= n)) {
      enc(L, b, lua_gettop(L) - 1, c, depth + 1);
      enc(L, b, lua_gettop(L), c, depth + 1);
    }
    lua_pop(L, 1);
  }
  puttag(L, b, 'E');
  lua_pushnil(L);
  lua_rawsetp(L, c->seen, lua_topointer(L, i));
}

static void enc (lua_State *L, Buf *b, int i, const Ctx *c, int depth) {
  switch (lua_type(L, i)) {
    case LUA_TNIL: puttag(L, b, 'n'); break;
    case LUA_TBOOLEAN: puttag(L, b, lua_toboolean(L, i) ? 't' : 'f'); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, i)) {
        lua_Integer v = lua_tointeger(L, i);
        puttag(L, b, 'i');
        put(L, b, &v, sizeof v);
      }
      else {
        lua_Number v = lua_tonumber(L, i);
        puttag(L, b, 'd');
        put(L, b, &v, sizeof v);
      }
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, i, &len);
      puttag(L, b, 's');
      put(L, b, &len, sizeof len);
      put(L, b, s, len);
      break;
    }
    case LUA_TTABLE: enctable(L, b, i, c, depth); break;
    default:
      nocopy(L, c, lua_pushfstring(L, "cannot copy a %s", luaL_typename(L, i)),
             ": only nil, booleans, numbers, strings and tables of these "
             "go across");
  }
}

/* Encode the n values from index first on into b, after their count;
** messages number them from num. */
static void enclist (lua_State *L, Buf *b, int first, int n,
                     const char *what, int num) {
  Ctx c;
  int i;
  lua_newtable(L);
  c.fname = "tide.work";
  c.what = what;
  c.seen = lua_gettop(L);
  putu32(L, b, (uint32_t)n);
  for (i = 0; i < n; i++) {
    c.i = num + i;
    enc(L, b, first + i, &c, 0);
  }
  lua_pop(L, 1);
}

/* ---- Decoding (from buffers this file made) ------------------------------ */

typedef struct Rd {
  const char *p, *end;
} Rd;

static void get (Rd *r, void *dst, size_t len) {
  memcpy(dst, r->p, len);
  r->p += len;
}

static void dec (lua_State *L, Rd *r) {
  char tag = *r->p++;
  switch (tag) {
    case 'n': lua_pushnil(L); break;
    case 't': lua_pushboolean(L, 1); break;
    case 'f': lua_pushboolean(L, 0); break;
    case 'i': {
      lua_Integer v;
      get(r, &v, sizeof v);
      lua_pushinteger(L, v);
      break;
    }
    case 'd': {
      lua_Number v;
      get(r, &v, sizeof v);
      lua_pushnumber(L, v);
      break;
    }
    case 's': {
      size_t len;
      get(r, &len, sizeof len);
      lua_pushlstring(L, r->p, len);
      r->p += len;
      break;
    }
    default: {                     /* 'T' */
      uint32_t n, k;
      get(r, &n, sizeof n);
      lua_createtable(L, (int)(n < INT32_MAX ? n : 0), 0);
      for (k = 1; k <= n; k++) {
        dec(L, r);
        lua_rawseti(L, -2, k);
      }
      while (*r->p != 'E') {
        dec(L, r);
        dec(L, r);
        lua_rawset(L, -3);
      }
      r->p++;
    }
  }
}

/* The count of values in the list at r. */
static uint32_t declen (Rd *r) {
  uint32_t n;
  get(r, &n, sizeof n);
  return n;
}

/* Room for n values and the deepest table on L's stack (without raising). */
static int room (lua_State *L, uint32_t n) {
  return n < 100000 && lua_checkstack(L, (int)n + 3 * DEPTH_MAX + 10);
}

/* For tide.worker (workers.c): the n values from index first on, copied
** as tide.work copies them, pushed as a string; fname names the caller in
** the errors of values that cannot be copied. */
void tide__encodevalues (lua_State *L, int first, int n, const char *fname) {
  Buf *b = newbuf(L);
  Ctx c;
  int i;
  lua_newtable(L);
  c.fname = fname;
  c.what = "argument";
  c.seen = lua_gettop(L);
  putu32(L, b, (uint32_t)n);
  for (i = 0; i < n; i++) {
    c.i = i + 1;
    enc(L, b, first + i, &c, 0);
  }
  lua_pop(L, 1);
  lua_pushlstring(L, b->p, b->n);
  tide__free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
  lua_remove(L, -2);
}

/* The values of a string tide__encodevalues made, pushed; their count. */
int tide__decodevalues (lua_State *L, const char *s, size_t len) {
  Rd r;
  uint32_t n, i;
  r.p = s;
  r.end = s + len;
  if (len < sizeof n) return 0;
  n = declen(&r);
  if (!room(L, n)) luaL_error(L, "too many values");
  for (i = 0; i < n; i++) dec(L, &r);
  return (int)n;
}

/* ---- Stopping a call nobody waits for -------------------------------------
** A cancelled call's state, and the coroutines running in it, get a hook
** that raises an error at each of their instructions from the next one on,
** so that no pcall (nor <close> handler) keeps the call going. It is set
** from the loop's thread while the pool thread runs, as lua.c sets one
** from a signal handler: lua_sethook only stores the hook and marks the
** frames to trap. */

struct Running {           /* a coroutine that runs, in its resumer's frame */
  lua_State *co;
  Running *prev;
};

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t lock;    /* guards WorkReq.W, .running and .stop */

static void init_lock (void) {
  if (uv_mutex_init(&lock) != 0) abort();
}

static void stophook (lua_State *L, lua_Debug *ar) {
  (void)ar;
  luaL_error(L, "tide.work: cancelled");
}

static void sethook (lua_State *L) {
  lua_sethook(L, stophook, LUA_MASKCOUNT, 1);
}

/* From the loop: stop r's state, now or as soon as fn starts. */
static void work_stop (WorkReq *r) {
  Running *c;
  uv_mutex_lock(&lock);
  r->stop = 1;
  if (r->W != NULL) {
    sethook(r->W);
    for (c = r->running; c != NULL; c = c->prev) sethook(c->co);
  }
  uv_mutex_unlock(&lock);
}

/* On the pool thread: fn runs in W from now on; 0 if it must not. */
static int work_begin (WorkReq *r, lua_State *W) {
  int go;
  uv_mutex_lock(&lock);
  go = !r->stop;
  if (go) r->W = W;
  uv_mutex_unlock(&lock);
  return go;
}

/* fn has returned: W is no more to be stopped. 1 if r was stopped. */
static int work_end (WorkReq *r, lua_State *W) {
  int stopped;
  uv_mutex_lock(&lock);
  r->W = NULL;
  stopped = r->stop;
  uv_mutex_unlock(&lock);
  lua_sethook(W, NULL, 0, 0);
  return stopped;
}

/* Call the function at 1 with the values above it, with co on r's list of
** running coroutines meanwhile. */
static int call_running (lua_State *L, WorkReq *r, lua_State *co) {
  Running me;
  int status;
  me.co = co;
  uv_mutex_lock(&lock);
  me.prev = r->running;
  r->running = &me;
  if (r->stop) sethook(co);
  uv_mutex_unlock(&lock);
  status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  uv_mutex_lock(&lock);
  r->running = me.prev;
  uv_mutex_unlock(&lock);
  return status;
}

/* coroutine.resume in the worker's state (upvalues: r, Lua's resume). */
static int co_resume (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  if (call_running(L, lua_touserdata(L, lua_upvalueindex(1)), co) != LUA_OK)
    return lua_error(L);
  return lua_gettop(L);
}

/* A function made by coroutine.wrap (upvalues: r, Lua's function, its
** coroutine); an error gets the caller's position, as Lua's has. */
static int co_wrapped (lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(3));
  int status;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  status = call_running(L, lua_touserdata(L, lua_upvalueindex(1)), co);
  if (status == LUA_OK) return lua_gettop(L);
  if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

/* coroutine.wrap in the worker's state (upvalues: r, Lua's wrap). */
static int co_wrap (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  lua_call(L, 1, 1);               /* the coroutine is its upvalue 1 */
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_getupvalue(L, 2, 1);
  lua_pushcclosure(L, co_wrapped, 3);
  return 1;
}

/* Replace coroutine[name] by f, with r and the old one as upvalues.
** Stack: the coroutine table on top. */
static void track (lua_State *W, WorkReq *r, const char *name,
                   lua_CFunction f) {
  lua_pushlightuserdata(W, r);
  lua_getfield(W, -2, name);
  lua_pushcclosure(W, f, 2);
  lua_setfield(W, -2, name);
}

/* Let work_stop reach the coroutines that run in W. */
static void track_coroutines (lua_State *W, WorkReq *r) {
  if (lua_getglobal(W, LUA_COLIBNAME) == LUA_TTABLE) {
    track(W, r, "resume", co_resume);
    track(W, r, "wrap", co_wrap);
  }
  lua_pop(W, 1);
}

/* ---- On the pool thread ----------------------------------------------------- */

typedef struct Chunk {
  const char *p;
  size_t len;
} Chunk;

static const char *chunk_read (lua_State *L, void *ud, size_t *size) {
  Chunk *c = ud;
  (void)L;
  *size = c->len;
  c->len = 0;
  return c->p;
}

/* Protected: encode the error value (2) into the buffer (1). */
static int encerror (lua_State *W) {
  enclist(W, lua_touserdata(W, 1), 2, 1, "error value", 1);
  return 0;
}

/* Protected, in the worker's state W: load fn, decode the arguments, call
** fn, and encode its results (or its error value) into r->out. */
static int worker_main (lua_State *W) {
  WorkReq *r = lua_touserdata(W, 1);
  Chunk c = { r->in, r->dumplen };
  Rd rd = { r->in + r->dumplen, r->in + r->inlen };
  Buf *b;
  uint32_t n, i;
  int base, status;
  luaL_openlibs(W);
  track_coroutines(W, r);
  b = newbuf(W);                   /* at 2 */
  if (lua_load(W, chunk_read, &c, "=tide.work", "b") != LUA_OK)
    return lua_error(W);
  base = lua_gettop(W);
  n = declen(&rd);
  luaL_checkstack(W, (int)n + 3 * DEPTH_MAX, "tide.work: too many arguments");
  for (i = 0; i < n; i++) dec(W, &rd);
  if (!work_begin(r, W)) return 0;
  status = lua_pcall(W, (int)n, LUA_MULTRET, 0);
  if (work_end(r, W)) return 0;    /* stopped: nobody takes the results */
  if (status == LUA_OK)
    enclist(W, b, base, lua_gettop(W) - base + 1, "result", 1);
  else {
    r->failed = 1;
    lua_pushcfunction(W, encerror);
    lua_pushvalue(W, 2);
    lua_pushvalue(W, -3);
    if (lua_pcall(W, 2, 0, 0) != LUA_OK) {   /* then its string form */
      lua_pop(W, 1);
      b->n = 0;
      luaL_tolstring(W, -1, NULL);
      enclist(W, b, lua_gettop(W), 1, "error value", 1);
    }
  }
  r->out = buf_take(b, &r->outlen);
  return 0;
}

/* An encoded list of one string, made without Lua (for errors outside fn). */
static char *encmsg (const char *msg, size_t len, size_t *outlen) {
  uint32_t one = 1;
  char *p = tide__malloc(sizeof one + 1 + sizeof len + len);
  if (p == NULL) return NULL;
  memcpy(p, &one, sizeof one);
  p[sizeof one] = 's';
  memcpy(p + sizeof one + 1, &len, sizeof len);
  memcpy(p + sizeof one + 1 + sizeof len, msg, len);
  *outlen = sizeof one + 1 + sizeof len + len;
  return p;
}

static void work_cb (uv_work_t *req) {
  WorkReq *r = req->data;
  lua_State *W = luaL_newstate();
  if (W == NULL) {
    r->failed = 1;
    r->out = encmsg("tide.work: not enough memory", 28, &r->outlen);
    return;
  }
  lua_pushcfunction(W, worker_main);
  lua_pushlightuserdata(W, r);
  if (lua_pcall(W, 1, 0, 0) != LUA_OK) {   /* loading or copying failed */
    size_t len;
    const char *msg = lua_tolstring(W, -1, &len);
    if (msg == NULL) msg = "tide.work: error", len = 16;
    tide__free(r->out);
    r->failed = 1;
    r->out = encmsg(msg, len, &r->outlen);
  }
  lua_close(W);
}

/* ---- On the loop ------------------------------------------------------------- */

static void freework (WorkReq *r) {
  tide__free(r->in);
  tide__free(r->out);
  tide__free(r);
}

/* Push the call's outcome on T: true, results... | false, error value. */
static int pushoutcome (lua_State *T, WorkReq *r, int status) {
  Rd rd;
  uint32_t n, i;
  if (status < 0 || r->out == NULL) {
    lua_pushboolean(T, 0);
    lua_pushstring(T, status < 0 ? uv_strerror(status)
                                 : "tide.work: not enough memory");
    return 2;
  }
  rd.p = r->out;
  rd.end = r->out + r->outlen;
  n = declen(&rd);
  if (!room(T, n)) {
    lua_pushboolean(T, 0);
    lua_pushliteral(T, "tide.work: too many results");
    return 2;
  }
  lua_pushboolean(T, !r->failed);
  for (i = 0; i < n; i++) dec(T, &rd);
  return (int)n + 1;
}

typedef struct Outcome {
  WorkReq *r;
  int status;
} Outcome;

static int outcome_push (lua_State *L) {
  Outcome *o = lua_touserdata(L, 1);
  return pushoutcome(L, o->r, o->status);
}

/* The call has ended, or was dropped before it started. It only frees r
** when the task stopped waiting, so it may run late (at tide_close, or
** never when a C function in fn never returns). */
static void after_work (uv_work_t *req, int status) {
  WorkReq *r = req->data;
  Outcome o = { r, status };
  if (r->w != NULL) {
    tide__poolwait(r->w, req->loop, -1);
    tide_wakewith(r->w, outcome_push, &o);
  }
  freework(r);                     /* the state was closed on the pool */
}

/* The task stopped waiting: a call not started yet is dropped; one that
** runs is stopped, and after_work drops what it gives. */
static void work_cancel (tide_Wait *w) {
  WorkReq *r = tide_waitdata(w);
  tide__poolwait(w, r->req.loop, -1);
  r->w = NULL;
  if (uv_cancel((uv_req_t *)&r->req) != 0) work_stop(r);
}

static int work_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  if (!lua_toboolean(L, 1)) {
    lua_settop(L, 2);
    return lua_error(L);
  }
  return lua_gettop(L) - 1;
}

static int dump_write (lua_State *L, const void *p, size_t len, void *ud) {
  put(L, ud, p, len);
  return 0;
}

/* fn must be a Lua function whose only upvalue, if any, is _ENV. */
static void checkfunction (lua_State *L) {
  const char *name;
  int i;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (lua_iscfunction(L, 1))
    luaL_argerror(L, 1, "Lua function expected, got a C function");
  for (i = 1; (name = lua_getupvalue(L, 1, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0)
      luaL_error(L, "tide.work: the function uses '%s', a local variable "
                    "of an enclosing function (an upvalue), which cannot go "
                    "to another Lua state; pass it as an argument", name);
  }
}

/* tide.work(fn, ...) -> fn(...)'s results, computed in a new Lua state on
** the thread pool; fn's error is raised here. */
static int work (lua_State *L) {
  int nargs = lua_gettop(L) - 1, err;
  size_t dumplen;
  uv_loop_t *loop;
  tide_Wait *w;
  WorkReq *r;
  Buf *b;
  checkfunction(L);
  w = tide_wait(L);                /* raises outside a task */
  loop = tide__poolloop(L);        /* may raise: before r is allocated */
  uv_once(&once, init_lock);
  b = newbuf(L);
  lua_pushvalue(L, 1);
  lua_dump(L, dump_write, b, 0);
  lua_pop(L, 1);
  dumplen = b->n;
  enclist(L, b, 2, nargs, "argument", 2);
  if ((r = tide__calloc(1, sizeof *r)) == NULL)
    return luaL_error(L, "tide.work: not enough memory");
  r->dumplen = dumplen;
  r->in = buf_take(b, &r->inlen);
  r->req.data = r;
  r->w = w;
  if ((err = uv_queue_work(loop, &r->req, work_cb, after_work)) < 0) {
    freework(r);
    return tide_pushfail(L, err, "tide.work");
  }
  tide__poolwait(w, loop, 1);
  lua_settop(L, 0);
  return tide_awaitk(L, w, work_cancel, r, work_k, 0);
}

/* Stack: tide table, private table, runtime userdata. */
int tide__open_work (lua_State *L) {
  lua_pushcfunction(L, work);
  lua_setfield(L, -4, "work");
  return 0;
}
