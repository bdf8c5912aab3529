/*
** transport.c: tide.Transport, asyncio's callback layer over a connected
** TCP or Unix socket: the protocol's callbacks (connection_made,
** data_received, eof_received, connection_lost, pause_writing,
** resume_writing) run outside any task, in the order and with the flow
** control of asyncio's selector transports (Lib/asyncio/selector_events.py).
** Each read is handed to data_received at once, as one string copied from
** a buffer all transports share; writes go to the socket at once and only
** what it does not take is copied and queued. transport_net.c makes them.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport.h"

#define DEFAULT_HIGH (64 * 1024)  /* asyncio's write buffer limits */

static const char *const evname[] = {
  "connection_made", "data_received", "eof_received", "connection_lost",
  "pause_writing", "resume_writing", "datagram_received", "error_received"
};
#define NEVENTS ((int)(sizeof evname / sizeof evname[0]))

static const char ctxkey = 'c';

static void lost (tide_Transport *t, int err);

#define H(t) ((uv_stream_t *)(t)->o.h)

/* ---- Calling the protocol ------------------------------------------------ */

static void around (tide_Runtime *rt, int after) {
  if (after) fflush(stderr);
  if (rt->aroundreport) rt->aroundreport(after);
}

/* The message handler (upvalue: the context): report the error with its
** traceback as tide reports a task's; the error itself goes on. */
static int report_h (lua_State *L) {
  tide_TCtx *c = lua_touserdata(L, lua_upvalueindex(1));
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  around(c->o.rt, 0);
  fprintf(stderr, "tide: error in a Protocol callback (%s): %s\n", c->ev,
          lua_tostring(L, -1));
  around(c->o.rt, 1);
  lua_settop(L, 1);
  return 1;
}

/* Report an error the message handler did not see (out of memory). */
static void plainreport (tide_TCtx *c, lua_State *L) {
  around(c->o.rt, 0);
  fprintf(stderr, "tide: error in a Protocol callback (%s): %s\n", c->ev,
          lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                         : "not enough memory");
  around(c->o.rt, 1);
}

void tide__treport (tide_TCtx *c, lua_State *L, const char *ev) {
  const char *pev = c->ev;
  c->ev = ev;
  plainreport(c, L);
  c->ev = pev;
}

int tide__tcall (lua_State *L, tide_TCtx *c, const char *ev, int nargs,
                 int nres) {
  const char *pev = c->ev;
  int fn = lua_gettop(L) - nargs, status;
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->msgh);
  lua_insert(L, fn);
  c->ev = ev;
  status = tide__outside(c->o.rt, L, nargs, nres, fn);   /* not yieldable */
  if (status != LUA_OK && status != LUA_ERRRUN) plainreport(c, L);
  c->ev = pev;
  lua_remove(L, fn);
  return status;
}

/* (transport): call the protocol's method c->ev, if it has one, with
** c->data; its first result. */
static int docall (lua_State *L) {
  tide_Transport *t = lua_touserdata(L, 1);
  tide_TCtx *c = t->c;
  int n = 1;
  lua_getiuservalue(L, 1, 1);      /* 2: the protocol */
  lua_pushvalue(L, lua_upvalueindex(c->evi + 1));   /* its name, made once */
  if (lua_gettable(L, 2) == LUA_TNIL) return 0;
  lua_pushvalue(L, 2);
  switch (c->evi) {
    case TIDE_EV_MADE:
      lua_pushvalue(L, 1);
      n++;
      break;
    case TIDE_EV_DATA:
      lua_pushlstring(L, c->data, c->len);
      n++;
      break;
    case TIDE_EV_DGRAM:
      lua_pushlstring(L, c->data, c->len);
      n += 1 + tide__pushaddr(L, c->addr);
      break;
    case TIDE_EV_ERROR:
      lua_pushstring(L, uv_strerror(c->err));
      lua_pushstring(L, uv_err_name(c->err));
      n += 2;
      break;
    case TIDE_EV_LOST:
      if (t->lerr == TIDE_TRAISED) {
        lua_getiuservalue(L, 1, 2);
        n++;
      }
      else if (t->lerr < 0) {
        lua_pushstring(L, uv_strerror(t->lerr));
        lua_pushstring(L, uv_err_name(t->lerr));
        n += 2;
      }
      break;
  }
  lua_call(L, n, 1);
  return 1;
}

/* Call t's protocol method ev outside any task (t's userdata at index self
** of L, or 0: from its anchor): 1 if it returned a true value, else 0; -1
** if it raised (the error is reported and t aborted: connection_lost gets
** the error). The hot path: one protected call, no stack shuffling. */
static int callback (lua_State *L, tide_Transport *t, int self, int ev,
                     const char *data, size_t len) {
  tide_TCtx *c = t->c;
  tide_Runtime *rt = c->o.rt;
  const char *pev = c->ev;
  int pevi = c->evi, base = lua_gettop(L), status, r;
  lua_Debug ar;
  if (!lua_checkstack(L, 4)) {
    lost(t, UV_ENOMEM);
    return -1;
  }
  if (L == c->L && !lua_getstack(L, 0, &ar)) {  /* nothing running on it: */
    lua_pushvalue(L, 1);           /* the bottom of its stack holds them */
    lua_pushvalue(L, 2);
  }
  else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->msgh);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->docall);
  }
  if (self) lua_pushvalue(L, self);
  else lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
  c->ev = evname[ev];
  c->evi = ev;
  c->data = data;
  c->len = len;
  status = tide__outside(rt, L, 1, 1, base + 1);   /* not yieldable */
  if (status == LUA_OK) {
    c->ev = pev;
    c->evi = pevi;
    r = lua_toboolean(L, -1);
    lua_settop(L, base);
    return r;
  }
  if (status != LUA_ERRRUN) plainreport(c, L);
  c->ev = pev;
  c->evi = pevi;
  if (!t->lostdue && t->ref != LUA_NOREF) {   /* for connection_lost */
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_pushvalue(L, -2);
    lua_setiuservalue(L, -2, 2);
  }
  lua_settop(L, base);
  lost(t, TIDE_TRAISED);
  return -1;
}

/* ---- Ending: connection_lost, once, on the loop's next turn ------------- */

static void idle_cb (uv_idle_t *h) {
  tide_TCtx *c = h->data;
  tide_Transport *t;
  while ((t = c->lost) != NULL) {
    c->lost = t->next;
    if (c->lost == NULL) c->losttail = &c->lost;
    t->next = NULL;
    callback(c->L, t, 0, TIDE_EV_LOST, NULL, 0);
    luaL_unref(c->L, LUA_REGISTRYINDEX, t->ref);  /* allocates nothing */
    t->ref = LUA_NOREF;
  }
  uv_idle_stop(h);
}

/* The connection is over (err: 0, a UV error, TIDE_TRAISED): close the
** socket now, what is queued dropped; connection_lost comes after. */
static void lost (tide_Transport *t, int err) {
  tide_TCtx *c = t->c;
  if (t->lostdue) return;
  t->lostdue = t->closing = 1;
  t->reading = 0;
  t->lerr = err;
  tide__handleclose(&t->o);
  if (c->o.h == NULL || t->ref == LUA_NOREF) return;  /* tide closes */
  t->next = NULL;
  *c->losttail = t;
  c->losttail = &t->next;
  uv_idle_start((uv_idle_t *)c->o.h, idle_cb);
}

/* ---- Reading -------------------------------------------------------------- */

static void alloc_cb (uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tide_Transport *t = h->data;
  (void)suggested;
  buf->base = t->c->buf;
  buf->len = sizeof t->c->buf;
}

static void read_cb (uv_stream_t *h, ssize_t n, const uv_buf_t *buf);

/* The bytes queued, not yet handed to the system. */
static size_t queued (tide_Transport *t) {
  if (t->o.h == NULL) return 0;
  if (t->o.h->type == UV_UDP)
    return uv_udp_get_send_queue_size((uv_udp_t *)t->o.h);
  return H(t)->write_queue_size;
}

/* Read while connection_made has run and nothing stops it. */
static void readupdate (tide_Transport *t) {
  int want = t->made && !t->closing && !t->rpaused && !t->ateof, err = 0;
  if (t->o.h == NULL || want == (int)t->reading) return;
  if (t->o.h->type == UV_UDP) err = tide__udprecv(t, want);
  else if (want) err = uv_read_start(H(t), alloc_cb, read_cb);
  else uv_read_stop(H(t));
  if (err < 0) {
    lost(t, err);
    return;
  }
  t->reading = want;
}

/* close(): once what is queued is sent, the connection is lost. */
static void closing (tide_Transport *t) {
  if (t->closing) return;
  t->closing = 1;
  readupdate(t);
  if (queued(t) == 0) lost(t, 0);
}

static void read_cb (uv_stream_t *h, ssize_t n, const uv_buf_t *buf) {
  tide_Transport *t = h->data;
  if (n > 0) {
    callback(t->c->L, t, 0, TIDE_EV_DATA, buf->base, (size_t)n);
    return;
  }
  if (n == 0) return;
  if (n != UV_EOF) {
    lost(t, (int)n);
    return;
  }
  t->ateof = 1;                    /* eof_received: true keeps it open */
  readupdate(t);
  if (callback(t->c->L, t, 0, TIDE_EV_EOF, NULL, 0) == 0) closing(t);
}

/* ---- Writing -------------------------------------------------------------- */

#define PIN_MIN (16 * 1024)     /* a rest this big is kept, not copied */

typedef struct WriteReq {
  uv_write_t req;
  uv_buf_t buf;
  tide_Runtime *rt;
  int ref;                 /* registry: the string written from, or
                              LUA_NOREF: the rest is in data */
  char data[];
} WriteReq;

/* Below the low mark again: resume_writing; a closing transport whose
** queue has gone is lost. */
void tide__tsent (tide_Transport *t, int status) {
  if (status < 0) {
    lost(t, status);
    return;
  }
  if (t->wpaused && queued(t) <= t->low) {
    t->wpaused = 0;
    if (callback(t->c->L, t, 0, TIDE_EV_RESUME, NULL, 0) < 0) return;
  }
  if (t->closing && !t->lostdue && queued(t) == 0) lost(t, 0);
}

static void write_cb (uv_write_t *req, int status) {
  tide_Transport *t = req->handle->data;   /* NULL once closed */
  WriteReq *r = (WriteReq *)req;
  if (r->ref != LUA_NOREF && r->rt->L != NULL)   /* not while tide closes */
    luaL_unref(r->rt->cbL, LUA_REGISTRYINDEX, r->ref);  /* allocates nothing */
  tide__free(req);
  if (t != NULL) tide__tsent(t, status);
}

void tide__tpause (lua_State *L, tide_Transport *t, int i) {
  if (t->wpaused || t->o.h == NULL || queued(t) <= t->high)
    return;
  t->wpaused = 1;
  callback(L, t, i, TIDE_EV_PAUSE, NULL, 0);
}

/* Send the nb buffers b (total bytes): as much as the socket takes now, the
** rest queued: copied, or (one buffer, the string at index pin of L, a
** big rest) written from the string, kept until sent. */
static void send_bufs (lua_State *L, tide_Transport *t, uv_buf_t *b, int nb,
                       size_t total, int pin) {
  size_t done = 0;
  WriteReq *r;
  char *p;
  int i, err;
  if (H(t)->write_queue_size == 0) {
    int n = uv_try_write(H(t), b, (unsigned)nb);
    if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
    if (n < 0) {
      lost(t, n);
      return;
    }
    if ((size_t)n == total) return;
    done = (size_t)n;
  }
  if (pin && nb == 1 && total - done >= PIN_MIN) {
    int ref;
    lua_pushvalue(L, pin);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if ((r = tide__malloc(sizeof *r)) == NULL) {
      luaL_unref(L, LUA_REGISTRYINDEX, ref);
      tide__nomem(L);
    }
    r->ref = ref;
    r->buf = uv_buf_init(b->base + done, (unsigned)(total - done));
  }
  else {
    if ((r = tide__malloc(sizeof *r + total - done)) == NULL) tide__nomem(L);
    r->ref = LUA_NOREF;
    p = r->data;
    for (i = 0; i < nb; i++) {
      size_t skip = done < b[i].len ? done : b[i].len;
      memcpy(p, b[i].base + skip, b[i].len - skip);
      p += b[i].len - skip;
      done -= skip;
    }
    r->buf = uv_buf_init(r->data, (unsigned)(p - r->data));
  }
  r->rt = t->o.rt;
  if ((err = uv_write(&r->req, H(t), &r->buf, 1, write_cb)) < 0) {
    if (r->ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, r->ref);
    tide__free(r);
    lost(t, err);
    return;
  }
  tide__tpause(L, t, 1);
}

/* ---- Methods -------------------------------------------------------------- */

/* The methods have the metatable as upvalue 1; a transport knows its
** own (t->mt, set when it was made: only tide writes it), which spares
** the hot path of write a metatable fetch and comparison. */
static tide_Transport *checkt (lua_State *L) {
  tide_Transport *t = lua_touserdata(L, 1);
  if (t != NULL && lua_rawlen(L, 1) == sizeof *t
      && t->mt == lua_topointer(L, lua_upvalueindex(1)))
    return t;
  lua_getfield(L, lua_upvalueindex(1), "__name");   /* the wrong self */
  return tide__checkudata(L, 1, lua_tostring(L, -1));
}

/* May t take writes? Raises after write_eof; false once closing. */
static int writable (lua_State *L, tide_Transport *t) {
  if (t->eof) tide__error(L, "%s: cannot write after write_eof",
                          tide__fname(L));
  return !t->closing && t->o.h != NULL;
}

/* Send the n strings (or numbers) at stack index first.. of L, as one
** write; more than 16 are made one string first. */
static void send_strings (lua_State *L, tide_Transport *t, int first, int n) {
  uv_buf_t b[16];
  size_t total = 0, len;
  int i;
  if (n > 16) {
    luaL_Buffer lb;
    luaL_buffinit(L, &lb);
    for (i = 0; i < n; i++) {
      lua_pushvalue(L, first + i);
      luaL_addvalue(&lb);
    }
    luaL_pushresult(&lb);
    first = lua_gettop(L);
    n = 1;
  }
  for (i = 0; i < n; i++) {
    b[i].base = (char *)lua_tolstring(L, first + i, &len);
    b[i].len = len;
    total += len;
  }
  if (total > 0) send_bufs(L, t, b, n, total, n == 1 ? first : 0);
}

/* t:write(data, ...): at once as far as the socket takes it, the rest
** queued; several strings go as one write. After close() or abort() it
** does nothing (asyncio drops it too). */
static int t_write (lua_State *L) {
  tide_Transport *t = checkt(L);
  int n = lua_gettop(L), i;
  uv_buf_t b;
  size_t len;
  if (n == 2) {                    /* the hot path: one string */
    b.base = (char *)(lua_type(L, 2) == LUA_TSTRING
                      ? lua_tolstring(L, 2, &len)
                      : tide__checklstring(L, 2, &len));
    b.len = len;
    if (writable(L, t) && len > 0) send_bufs(L, t, &b, 1, len, 2);
    return 0;
  }
  if (n < 2) tide__checklstring(L, 2, NULL);     /* raises: no data */
  for (i = 2; i <= n; i++) tide__checklstring(L, i, NULL);
  if (writable(L, t)) send_strings(L, t, 2, n - 1);
  return 0;
}

/* t:writelines(list): the strings of list, as one write */
static int t_writelines (lua_State *L) {
  tide_Transport *t = checkt(L);
  lua_Integer i, n;
  tide__checktype(L, 2, LUA_TTABLE);
  n = luaL_len(L, 2);
  for (i = 1; i <= n; i++) {       /* check them all first */
    if (lua_geti(L, 2, i) != LUA_TSTRING && !lua_isnumber(L, -1))
      tide__argerror(L, 2, lua_pushfstring(L, "string expected at index %d, "
                                           "got %s", (int)i,
                                           luaL_typename(L, -1)));
    lua_pop(L, 1);
  }
  if (!writable(L, t) || n == 0) return 0;
  lua_settop(L, 2);
  if (n > 16) {                    /* many: one string of them all */
    luaL_Buffer lb;
    luaL_buffinit(L, &lb);
    for (i = 1; i <= n; i++) {
      lua_geti(L, 2, i);
      luaL_addvalue(&lb);
    }
    luaL_pushresult(&lb);
    n = 1;
  }
  else for (i = 1; i <= n; i++) lua_geti(L, 2, i);   /* kept while sent */
  send_strings(L, t, 3, (int)n);
  return 0;
}

static void shutdown_cb (uv_shutdown_t *req, int status) {
  (void)status;                    /* an error shows in the reads */
  tide__free(req);
}

/* t:write_eof(): the write side ends once what is queued is sent */
static int t_write_eof (lua_State *L) {
  tide_Transport *t = checkt(L);
  uv_shutdown_t *req;
  int err;
  if (t->closing || t->eof || t->o.h == NULL) return 0;
  t->eof = 1;
  if ((req = tide__malloc(sizeof *req)) == NULL) return tide__nomem(L);
  if ((err = uv_shutdown(req, H(t), shutdown_cb)) < 0) {
    tide__free(req);
    lost(t, err);
  }
  return 0;
}

static int t_can_write_eof (lua_State *L) {
  checkt(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* t:close(): reading stops; once the queued writes are sent the
** connection closes and connection_lost(nil) is called. */
static int t_close (lua_State *L) {
  tide_Transport *t = checkt(L);
  if (t->o.h != NULL) closing(t);
  return 0;
}

/* t:abort(): close now, dropping what is queued; connection_lost(nil). */
static int t_abort (lua_State *L) {
  tide_Transport *t = checkt(L);
  if (t->o.h != NULL) lost(t, 0);
  return 0;
}

static int t_is_closing (lua_State *L) {
  lua_pushboolean(L, checkt(L)->closing);
  return 1;
}

static int t_is_reading (lua_State *L) {
  tide_Transport *t = checkt(L);
  lua_pushboolean(L, !t->closing && !t->rpaused);
  return 1;
}

/* t:pause_reading(): no more data_received until resume_reading() */
static int t_pause_reading (lua_State *L) {
  tide_Transport *t = checkt(L);
  if (t->closing || t->rpaused) return 0;
  t->rpaused = 1;
  readupdate(t);
  return 0;
}

static int t_resume_reading (lua_State *L) {
  tide_Transport *t = checkt(L);
  if (t->closing || !t->rpaused) return 0;
  t->rpaused = 0;
  readupdate(t);
  return 0;
}

/* A size argument: a non-negative integer, or nil. */
static lua_Integer optsize (lua_State *L, int i) {
  lua_Integer v;
  if (lua_isnoneornil(L, i)) return -1;
  v = tide__checkinteger(L, i);
  tide__argcheck(L, v >= 0, i, "non-negative size expected");
  return v;
}

/* t:set_write_buffer_limits([high [, low]]): asyncio's defaults: high
** 64 KiB, or 4 * low; low high / 4. */
static int t_set_write_buffer_limits (lua_State *L) {
  tide_Transport *t = checkt(L);
  lua_Integer high = optsize(L, 2), low = optsize(L, 3);
  if (high < 0) high = low < 0 ? DEFAULT_HIGH : 4 * low;
  if (low < 0) low = high / 4;
  if (low > high) tide__argerror(L, 2, "high must be >= low");
  t->high = (size_t)high;
  t->low = (size_t)low;
  tide__tpause(L, t, 1);
  return 0;
}

/* t:get_write_buffer_limits() -> low, high (asyncio's order) */
static int t_get_write_buffer_limits (lua_State *L) {
  tide_Transport *t = checkt(L);
  lua_pushinteger(L, (lua_Integer)t->low);
  lua_pushinteger(L, (lua_Integer)t->high);
  return 2;
}

static int t_get_write_buffer_size (lua_State *L) {
  tide_Transport *t = checkt(L);
  lua_pushinteger(L, (lua_Integer)queued(t));
  return 1;
}

int tide__tpushname (lua_State *L, tide_Transport *t, int peer) {
  struct sockaddr_storage ss;
  int len = sizeof ss, err;
  if (t->o.h->type == UV_UDP) {
    uv_udp_t *h = (uv_udp_t *)t->o.h;
    err = peer ? uv_udp_getpeername(h, (struct sockaddr *)&ss, &len)
               : uv_udp_getsockname(h, (struct sockaddr *)&ss, &len);
    if (err == 0) return tide__pushaddr(L, (struct sockaddr *)&ss);
  }
  else if (t->o.h->type == UV_TCP) {
    uv_tcp_t *h = (uv_tcp_t *)t->o.h;
    err = peer ? uv_tcp_getpeername(h, (struct sockaddr *)&ss, &len)
               : uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len);
    if (err == 0) return tide__pushaddr(L, (struct sockaddr *)&ss);
  }
  else {
    char path[1024];
    size_t n = sizeof path;
    err = peer ? uv_pipe_getpeername((uv_pipe_t *)t->o.h, path, &n)
               : uv_pipe_getsockname((uv_pipe_t *)t->o.h, path, &n);
    if (err == 0) {
      lua_pushlstring(L, path, n);
      return 1;
    }
  }
  return 0;
}

/* t:get_extra_info(name [, default]): "peername", "sockname" (host, port
** for TCP; the path for a Unix socket), "socket" (the descriptor) ->
** the value, or default */
static int t_get_extra_info (lua_State *L) {
  static const char *const names[] = { "peername", "sockname", "socket",
                                       NULL };
  tide_Transport *t = checkt(L);
  const char *name = tide__checkstring(L, 2);
  int i, n = 0;
  for (i = 0; names[i] && strcmp(names[i], name) != 0; i++) ;
  if (t->o.h != NULL && names[i] != NULL) {
    uv_os_fd_t fd;
    if (i < 2) n = tide__tpushname(L, t, i == 0);
    else if (uv_fileno(t->o.h, &fd) == 0) {
      lua_pushinteger(L, fd);
      n = 1;
    }
  }
  if (n > 0) return n;
  lua_settop(L, 3);
  return 1;
}

static int t_get_protocol (lua_State *L) {
  checkt(L);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

/* As abort() (the collector's runs only once nothing anchors it). */
static int t_gc (lua_State *L) {
  tide_Transport *t = checkt(L);
  if (t->o.h != NULL) lost(t, 0);
  return 0;
}

static int t_tostring (lua_State *L) {
  tide_Transport *t = checkt(L);
  const char *name;
  luaL_getmetafield(L, 1, "__name");
  name = lua_tostring(L, -1);
  if (t->o.h == NULL) lua_pushfstring(L, "%s (closed)", name);
  else lua_pushfstring(L, "%s (%s): %p", name,
                       uv_handle_type_name(t->o.h->type), (void *)t);
  return 1;
}

static void t_onclose (tide_Handle *o) {
  tide_Transport *t = (tide_Transport *)o;
  t->reading = 0;
  t->closing = 1;
}

/* ---- For transport_net.c ------------------------------------------------- */

void *tide__newtransport (lua_State *L, tide_TCtx *c, size_t size,
                          const char *tname) {
  tide_Transport *t = lua_newuserdatauv(L, sizeof *t, 2);
  memset(t, 0, sizeof *t);
  t->c = c;
  t->ref = LUA_NOREF;
  t->high = DEFAULT_HIGH;
  t->low = DEFAULT_HIGH / 4;
  luaL_setmetatable(L, tname);
  luaL_getmetatable(L, tname);
  t->mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  return tide__handleinit(L, c->o.rt, &t->o, size, t_onclose);
}

int tide__tcallback (lua_State *L, tide_Transport *t, int self, int ev,
                     const char *data, size_t len) {
  return callback(L, t, self, ev, data, len);
}

void tide__tlost (tide_Transport *t, int err) {
  lost(t, err);
}

void tide__tstart (lua_State *L, tide_Transport *t) {
  t->made = 1;
  if (callback(L, t, lua_gettop(L), TIDE_EV_MADE, NULL, 0) >= 0) readupdate(t);
  lua_pop(L, 1);
}

static void ctx_onclose (tide_Handle *o) {
  tide_TCtx *c = (tide_TCtx *)o;
  c->lost = NULL;                  /* the runtime closes: none is called */
  c->losttail = &c->lost;
}

/* The context of the runtime rt, made on first use. */
static tide_TCtx *getctx (lua_State *L, tide_Runtime *rt) {
  tide_TCtx *c;
  uv_idle_t *h;
  int i;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ctxkey) == LUA_TUSERDATA) {
    c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return c;
  }
  lua_pop(L, 1);
  c = lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->losttail = &c->lost;
  c->ev = "?";
  c->L = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  lua_pushlightuserdata(L, c);
  lua_pushcclosure(L, report_h, 1);
  lua_pushvalue(L, -1);
  lua_xmove(L, c->L, 1);           /* c->L's 1 */
  c->msgh = luaL_ref(L, LUA_REGISTRYINDEX);
  for (i = 0; i < NEVENTS; i++) lua_pushstring(L, evname[i]);
  lua_pushcclosure(L, docall, NEVENTS);
  lua_pushvalue(L, -1);
  lua_xmove(L, c->L, 1);           /* c->L's 2 */
  c->docall = luaL_ref(L, LUA_REGISTRYINDEX);
  h = tide__handleinit(L, rt, &c->o, sizeof *h, ctx_onclose);
  uv_idle_init(tide_getloop(L), h);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ctxkey);
  return c;
}

tide_TCtx *tide__tctx (lua_State *L) {
  return getctx(L, tide_runtime(L));
}

static const luaL_Reg t_methods[] = {
  {"write", t_write},
  {"writelines", t_writelines},
  {"write_eof", t_write_eof},
  {"can_write_eof", t_can_write_eof},
  {NULL, NULL}
};

/* Those of datagram transports too (transport_udp.c). */
const luaL_Reg tide__tmethods[] = {
  {"close", t_close},
  {"abort", t_abort},
  {"is_closing", t_is_closing},
  {"is_reading", t_is_reading},
  {"pause_reading", t_pause_reading},
  {"resume_reading", t_resume_reading},
  {"set_write_buffer_limits", t_set_write_buffer_limits},
  {"get_write_buffer_limits", t_get_write_buffer_limits},
  {"get_write_buffer_size", t_get_write_buffer_size},
  {"get_extra_info", t_get_extra_info},
  {"get_protocol", t_get_protocol},
  {NULL, NULL}
};

const luaL_Reg tide__tmeta[] = {
  {"__gc", t_gc},
  {"__close", t_close},
  {"__tostring", t_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

/* The metatable tname with the methods every transport has and those of
** own: their upvalue is the metatable (see checkt). */
void tide__tmetatable (lua_State *L, const char *tname, const luaL_Reg *own) {
  luaL_newmetatable(L, tname);
  lua_pushvalue(L, -1);
  luaL_setfuncs(L, tide__tmeta, 1);
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, tide__tmethods, 1);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, own, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* The Transport metatable and the context; stack: tide, private, runtime. */
int tide__open_transport (lua_State *L) {
  tide__tmetatable(L, TIDE_TRANSPORT, t_methods);
  getctx(L, lua_touserdata(L, -1));
  return 0;
}
