/*
** stream.c: tide.Stream, the one stream behind TCP connections and Unix
** sockets: the object and its lifetime (shutdown, close, lingering),
** addresses and options, creating and connecting. Reading is in
** stream_read.c, writing in stream_write.c, a layer (TLS) between the
** socket and the buffers in stream_layer.c; stream.h has what they share.
*/
#include <stdlib.h>
#include <string.h>

#include "stream.h"

/* ---- Shutdown and close --------------------------------------------------- */

typedef struct ShutReq {
  uv_shutdown_t req;
  tide_Wait *w;            /* NULL once the task stopped waiting */
} ShutReq;

static int shutdown_push (lua_State *L) {
  int status = *(int *)lua_touserdata(L, 1);
  if (status < 0) return tide_pushfail(L, status, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static void shutdown_cb (uv_shutdown_t *req, int status) {
  ShutReq *r = (ShutReq *)req;
  if (r->w) tide_wakewith(r->w, shutdown_push, &status);
  tide__free(r);
}

static void shutdown_cancel (tide_Wait *w) {
  ((ShutReq *)tide_waitdata(w))->w = NULL;
}

/* s:shutdown() -> true once the queued data is sent and the write side
** closed (the peer reads EOF); reading goes on. */
static int stream_shutdown (lua_State *L) {
  Stream *s = checkopen(L, 1);
  tide_Wait *w = tide_wait(L);
  ShutReq *r;
  int err;
  if (s->layer && ((err = s->layer->ops->shutdown(s->layer)) < 0 ||
                   (err = tide__streamflush(s)) < 0))  /* close_notify first */
    return tide__streamlayerfail(L, s, err);
  if ((r = tide__malloc(sizeof *r)) == NULL) return tide__nomem(L);
  r->w = w;
  if ((err = uv_shutdown(&r->req, H(s), shutdown_cb)) < 0) {
    tide__free(r);
    return tide_pushfail(L, err, NULL);
  }
  return tide_await(L, w, shutdown_cancel, r);
}

static void stream_onclose (tide_Handle *o) {
  Stream *s = (Stream *)o;
  s->reading = 0;
  if (s->reader) {
    Task *t = s->reader;
    s->reader = NULL;
    tide_wake(&t->w, 0);           /* it sees the stream closed */
  }
  tide__wakeall(&s->writers);
  if (s->layer) {
    s->layer->ops->free(s->layer);
    s->layer = NULL;
  }
}

/* A stream closed with writes still queued lingers: its handle passes to
** a Linger, which shuts the write side down once the queue is sent (the
** peer reads all of it, then EOF) and then closes the handle. The Linger
** stays in the runtime's handle list, so tide_close ends it in any case. */
typedef struct Linger {
  tide_Handle o;
  uv_shutdown_t req;
} Linger;

static void linger_done (uv_shutdown_t *req, int status) {
  Linger *l = req->data;
  (void)status;                    /* sent, failed or cancelled: done */
  tide__handleclose(&l->o);
  tide__free(l);
}

/* Close s for its users now; its queued writes still go out. */
static void closestream (Stream *s) {
  Linger *l;
  if (s->layer && s->o.h != NULL && !s->o.rt->closing && !s->werr &&
      s->layer->ops->shutdown(s->layer) == 0)
    tide__streamflush(s);          /* close_notify, as far as it goes */
  if (s->o.h == NULL || s->o.rt->closing || s->werr || queued(s) == 0 ||
      (l = tide__malloc(sizeof *l)) == NULL) {
    tide__handleclose(&s->o);
    return;
  }
  read_stop(s);
  tide__handlemove(&s->o, &l->o);
  l->req.data = l;
  if (uv_shutdown(&l->req, (uv_stream_t *)l->o.h, linger_done) < 0) {
    tide__handleclose(&l->o);      /* already shut down: close now */
    tide__free(l);
  }
}

/* s:close(): tasks waiting on the stream get nil, "stream closed"; data
** already written is still sent, then the connection closes. */
static int stream_close (lua_State *L) {
  closestream(checkstream(L, 1));
  return 0;
}

static int stream_gc (lua_State *L) {
  Stream *s = checkstream(L, 1);
  closestream(s);
  tide__free(s->buf);
  s->buf = NULL;
  s->len = s->cap = s->off = 0;
  return 0;
}

static int stream_tostring (lua_State *L) {
  Stream *s = checkstream(L, 1);
  if (s->o.h == NULL) lua_pushliteral(L, "tide.Stream (closed)");
  else lua_pushfstring(L, "tide.Stream (%s): %p",
                       uv_handle_type_name(s->o.h->type), (void *)s);
  return 1;
}

/* ---- Addresses and options ------------------------------------------------ */

static int stream_name (lua_State *L, int peer) {
  Stream *s = checkopen(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss, err;
  if (s->o.h->type == UV_TCP) {
    uv_tcp_t *t = (uv_tcp_t *)s->o.h;
    err = peer ? uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len)
               : uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len);
    if (err < 0) return tide_pushfail(L, err, NULL);
    return tide__pushaddr(L, (struct sockaddr *)&ss);
  }
  if (s->o.h->type == UV_NAMED_PIPE) {
    char path[1024];
    size_t n = sizeof path;
    err = peer ? uv_pipe_getpeername((uv_pipe_t *)s->o.h, path, &n)
               : uv_pipe_getsockname((uv_pipe_t *)s->o.h, path, &n);
    if (err < 0) return tide_pushfail(L, err, NULL);
    lua_pushlstring(L, path, n);
    return 1;
  }
  return tide_pushfail(L, UV_ENOTSUP, NULL);
}

/* s:tlsinfo() -> what TLS agreed on (see tls.c), or nil without TLS */
static int stream_tlsinfo (lua_State *L) {
  Stream *s = checkopen(L, 1);
  if (s->layer == NULL) {
    luaL_pushfail(L);
    return 1;
  }
  return s->layer->ops->info(s->layer, L);
}

/* s:getpeername() -> host, port (TCP) or path (Unix socket) */
static int stream_getpeername (lua_State *L) { return stream_name(L, 1); }
static int stream_getsockname (lua_State *L) { return stream_name(L, 0); }

/* s:setoption(name, value): "nodelay" (bool), "keepalive" (bool or
** seconds), "sndbuf" / "rcvbuf" (bytes) -> true | nil, msg, code */
static int stream_setoption (lua_State *L) {
  static const char *const names[] = {
    "nodelay", "keepalive", "sndbuf", "rcvbuf", NULL
  };
  Stream *s = checkopen(L, 1);
  int opt = tide__checkoption(L, 2, NULL, names), err, v;
  int istcp = s->o.h->type == UV_TCP;
  switch (opt) {
    case 0:
      tide__argcheck(L, istcp, 2, "a TCP option");
      err = uv_tcp_nodelay((uv_tcp_t *)s->o.h, lua_toboolean(L, 3));
      break;
    case 1:
      tide__argcheck(L, istcp, 2, "a TCP option");
      v = lua_isboolean(L, 3) || lua_isnoneornil(L, 3)
          ? 60 : (int)tide__checkinteger(L, 3);
      err = uv_tcp_keepalive((uv_tcp_t *)s->o.h,
                             lua_toboolean(L, 3), (unsigned)v);
      break;
    default:
      v = (int)tide__checkinteger(L, 3);
      tide__argcheck(L, v > 0, 3, "positive size expected");
      err = opt == 2 ? uv_send_buffer_size(s->o.h, &v)
                     : uv_recv_buffer_size(s->o.h, &v);
  }
  if (err < 0) return tide_pushfail(L, err, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- Creating streams (for tcp.c, pipe.c, server.c) ----------------------- */

/* Push a new Stream whose uv handle (size bytes) the caller initialises. */
uv_stream_t *tide__newstream (lua_State *L, tide_Runtime *rt, size_t size) {
  Stream *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->rsize = READ_MIN;
  luaL_setmetatable(L, TIDE_STREAM);
  return tide__handleinit(L, rt, &s->o, size, stream_onclose);
}

/* The uv stream of the Stream at index i. */
uv_stream_t *tide__tostream (lua_State *L, int i) {
  return H(checkstream(L, i));
}

/* The Stream at index i is done for (its handle never opened): close it. */
void tide__streamfail (lua_State *L, int i) {
  tide__handleclose(&checkstream(L, i)->o);
}

/* ---- Connecting (for tcp.c and pipe.c) ----------------------------------- */

typedef struct ConnReq {
  uv_connect_t req;
  tide_Wait *w;            /* NULL until awaited, or once the task stopped */
  tide_Handle *o;          /* the stream being connected */
} ConnReq;

/* The request to start connecting the new Stream on top of L with; its
** callback is tide__connected. */
uv_connect_t *tide__connreq (lua_State *L) {
  ConnReq *r = tide__malloc(sizeof *r);
  if (r == NULL) {
    tide__streamfail(L, -1);
    tide__nomem(L);
  }
  r->w = NULL;
  r->o = &checkstream(L, -1)->o;
  return &r->req;
}

void tide__connected (uv_connect_t *req, int status) {
  ConnReq *r = (ConnReq *)req;
  if (r->w) {
    lua_pushinteger(tide_thread(r->w), status);
    tide_wake(r->w, 1);
  }
  tide__free(r);
}

static void connect_cancel (tide_Wait *w) {
  ConnReq *r = tide_waitdata(w);
  r->w = NULL;
  tide__handleclose(r->o);         /* tide__connected runs with ECANCELED */
}

static int connect_k (lua_State *L, int status, lua_KContext ctx) {
  int err = (int)lua_tointeger(L, -1);
  (void)status; (void)ctx;
  lua_pop(L, 1);
  if (err < 0) {
    tide__streamfail(L, -1);
    return tide_pushfail(L, err, lua_tostring(L, 1));
  }
  return 1;                        /* the stream */
}

/* Wait for the connect of req (err: the error starting it, or 0); the
** stream, or nil, msg (naming argument 1), code. */
int tide__connwait (lua_State *L, uv_connect_t *req, int err) {
  ConnReq *r = (ConnReq *)req;
  if (err < 0) {
    tide__free(r);
    tide__streamfail(L, -1);
    return tide_pushfail(L, err, lua_tostring(L, 1));
  }
  r->w = tide_wait(L);
  return tide_awaitk(L, r->w, connect_cancel, r, connect_k, 0);
}


static const luaL_Reg stream_methods[] = {
  {"shutdown", stream_shutdown},
  {"close", stream_close},
  {"getpeername", stream_getpeername},
  {"getsockname", stream_getsockname},
  {"setoption", stream_setoption},
  {"tlsinfo", stream_tlsinfo},
  {NULL, NULL}
};

static const luaL_Reg stream_meta[] = {
  {"__gc", stream_gc},
  {"__close", stream_close},
  {"__tostring", stream_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

int tide__open_stream (lua_State *L) {
  /* filled by every open: a failed one may have left it half done */
  luaL_newmetatable(L, TIDE_STREAM);
  lua_pushvalue(L, -1);            /* upvalue 1 of each: see checkstream */
  luaL_setfuncs(L, stream_meta, 1);
  lua_createtable(L, 0, 12);       /* the methods of the three files */
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, stream_methods, 1);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, tide__streamread_methods, 1);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, tide__streamwrite_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  return 0;
}
