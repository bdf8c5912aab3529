/*
** transport_net.c: making transports (transport.c), as asyncio's loop does:
** tide.tcp.create_server / create_connection and tide.pipe's, and the
** server they give, tide.ProtocolServer: each connection it accepts gets a
** protocol from the factory and a transport, with no task of its own.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "transport.h"

typedef struct PServer {
  tide_Handle o;           /* o.h: the listening uv_tcp_t or uv_pipe_t */
  tide_TCtx *c;
  int ref;                 /* anchors[ref]: this userdata, while open */
  Task *waiters;           /* tasks in wait() */
  char *path;              /* a Unix socket's file, removed at close */
} PServer;

#define CTX(L) ((tide_TCtx *)lua_touserdata(L, lua_upvalueindex(2)))

/* The factory argument: something callable. */
void tide__checkfactory (lua_State *L, int i) {
  if (lua_type(L, i) == LUA_TFUNCTION) return;
  if (luaL_getmetafield(L, i, "__call") == LUA_TNIL)
    tide__typeerror(L, i, "function");
  lua_pop(L, 1);                   /* the __call */
}

static int optfield (lua_State *L, int opts, const char *name, int def) {
  int v = def;
  if (lua_istable(L, opts)) {
    lua_getfield(L, opts, name);
    if (lua_isboolean(L, -1)) v = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1)) v = (int)tide__checkinteger(L, -1);
    lua_pop(L, 1);
  }
  return v;
}

/* Anchor the value on top of L (popped): its reference. */
static int anchor (lua_State *L) {
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

int tide__tfactory (lua_State *L, tide_TCtx *c, int report) {
  tide_Runtime *rt = c->o.rt;
  int status;
  if (report) status = tide__tcall(L, c, "factory", 0, 1);
  else status = tide__outside(rt, L, 0, 1, 0);
  if (status != LUA_OK) return 0;
  if (!lua_istable(L, -1) && !lua_isuserdata(L, -1)) {
    const char *tn = luaL_typename(L, -1);
    lua_pop(L, 1);
    lua_pushfstring(L, "the protocol factory returned %s, not a protocol",
                    tn);
    if (report) tide__treport(c, L, "factory");
    return 0;
  }
  return 1;
}

/* ---- The server ----------------------------------------------------------- */

static PServer *checkserver (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_PSERVER);
}

/* (server) -> a new transport, accepted and anchored */
static int accept_p (lua_State *L) {
  PServer *sv = lua_touserdata(L, 1);
  tide_Transport *t;
  uv_loop_t *loop = sv->o.h->loop;
  int err;
  if (sv->o.h->type == UV_TCP) {
    uv_tcp_t *h = tide__newtransport(L, sv->c, sizeof *h, TIDE_TRANSPORT);
    err = uv_tcp_init(loop, h);
  }
  else {
    uv_pipe_t *h = tide__newtransport(L, sv->c, sizeof *h, TIDE_TRANSPORT);
    err = uv_pipe_init(loop, h, 0);
  }
  t = lua_touserdata(L, -1);
  if (err == 0) err = uv_accept((uv_stream_t *)sv->o.h, (uv_stream_t *)t->o.h);
  if (err < 0) {
    tide__handleclose(&t->o);
    return tide_pushfail(L, err, NULL);
  }
  if (t->o.h->type == UV_TCP) uv_tcp_nodelay((uv_tcp_t *)t->o.h, 1);
  lua_pushvalue(L, -1);
  t->ref = anchor(L);
  return 1;
}

/* A connection: its transport, its protocol from the factory, then
** connection_made and reading. A failing factory is reported and the
** connection closed; the server goes on. */
static void connection_cb (uv_stream_t *h, int status) {
  PServer *sv = h->data;
  tide_TCtx *c = sv->c;
  lua_State *L = c->L;
  tide_Transport *t;
  int top = lua_gettop(L);
  if (status < 0 || !lua_checkstack(L, 8)) return;
  lua_pushcfunction(L, accept_p);
  lua_pushlightuserdata(L, sv);
  if (tide__tcall(L, c, "accept", 1, 3) != LUA_OK ||
      lua_isnil(L, -3)) {          /* out of memory, EMFILE: reported */
    lua_settop(L, top);
    return;
  }
  lua_pop(L, 2);
  t = lua_touserdata(L, -1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, sv->ref);
  lua_getiuservalue(L, -1, 1);     /* the factory */
  lua_remove(L, -2);
  if (!tide__tfactory(L, c, 1)) {
    lua_settop(L, top);
    luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
    t->ref = LUA_NOREF;
    tide__handleclose(&t->o);
    return;
  }
  lua_setiuservalue(L, -2, 1);
  tide__tstart(L, t);
  lua_settop(L, top);
}

static void server_onclose (tide_Handle *o) {
  PServer *sv = (PServer *)o;
  tide__wakeall(&sv->waiters);
  if (sv->path) {
    unlink(sv->path);
    tide__free(sv->path);
    sv->path = NULL;
  }
}

/* server:close(): stop listening; the connections go on. */
static int server_close (lua_State *L) {
  PServer *sv = checkserver(L, 1);
  tide__handleclose(&sv->o);
  if (sv->ref != LUA_NOREF && !sv->c->o.rt->closing) {
    luaL_unref(L, LUA_REGISTRYINDEX, sv->ref);
    sv->ref = LUA_NOREF;
  }
  return 0;
}

static int server_is_serving (lua_State *L) {
  lua_pushboolean(L, checkserver(L, 1)->o.h != NULL);
  return 1;
}

/* Only a task in wait() keeps the loop alive, as with tide.tcp.listen's
** server and its accepting tasks. */
static void hold (PServer *sv) {
  if (sv->o.h == NULL) return;
  if (sv->waiters) uv_ref(sv->o.h);
  else uv_unref(sv->o.h);
}

static void wait_cancel (tide_Wait *w) {
  PServer *sv = tide_waitdata(w);
  tide__waitlist_remove(&sv->waiters, w);
  hold(sv);
}

/* server:wait(): until the server is closed (asyncio's serve_forever) */
static int server_wait (lua_State *L) {
  PServer *sv = checkserver(L, 1);
  tide_Wait *w;
  if (sv->o.h == NULL) return 0;
  w = tide_wait(L);
  tide__waitlist_add(&sv->waiters, w);
  hold(sv);
  return tide_await(L, w, wait_cancel, sv);
}

/* server:getsockname() -> host, port (TCP) or path (Unix socket) */
static int server_getsockname (lua_State *L) {
  PServer *sv = checkserver(L, 1);
  if (sv->o.h == NULL)
    return tide__error(L, "%s: attempt to use a closed server",
                       tide__fname(L));
  return tide__pushsockname(L, sv->o.h);
}

static int server_tostring (lua_State *L) {
  PServer *sv = checkserver(L, 1);
  if (sv->o.h == NULL) lua_pushliteral(L, "tide.ProtocolServer (closed)");
  else lua_pushfstring(L, "tide.ProtocolServer (%s): %p",
                       uv_handle_type_name(sv->o.h->type), (void *)sv);
  return 1;
}

/* Push a new server with the factory at index f; its uv handle (size
** bytes) for the caller to init and bind before listen. */
static void *newserver (lua_State *L, tide_TCtx *c, int f, size_t size) {
  PServer *sv = lua_newuserdatauv(L, sizeof *sv, 1);
  memset(sv, 0, sizeof *sv);
  sv->c = c;
  sv->ref = LUA_NOREF;
  luaL_setmetatable(L, TIDE_PSERVER);
  lua_pushvalue(L, f);
  lua_setiuservalue(L, -2, 1);
  return tide__handleinit(L, c->o.rt, &sv->o, size, server_onclose);
}

/* Listen on the server on top of L: 0, or an error (it is closed). */
static int serve (lua_State *L, int backlog) {
  PServer *sv = lua_touserdata(L, -1);
  int err = uv_listen((uv_stream_t *)sv->o.h, backlog, connection_cb);
  if (err < 0) {
    tide__handleclose(&sv->o);
    return err;
  }
  if (sv->o.h->type == UV_NAMED_PIPE) {
    char path[1024];
    size_t n = sizeof path;
    if (uv_pipe_getsockname((uv_pipe_t *)sv->o.h, path, &n) == 0 && n > 0 &&
        path[0] != '\0' && (sv->path = tide__malloc(n + 1)) != NULL) {
      memcpy(sv->path, path, n);
      sv->path[n] = '\0';
    }
  }
  hold(sv);                 /* nobody waits yet */
  lua_pushvalue(L, -1);
  sv->ref = anchor(L);      /* served until closed */
  return 0;
}

/* ---- Connecting ------------------------------------------------------------ */

typedef struct ConnReq {
  uv_connect_t req;
  tide_Wait *w;            /* NULL once the task stopped waiting */
  tide_Transport *t;
} ConnReq;

static void connected (uv_connect_t *req, int status) {
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
  tide__handleclose(&r->t->o);     /* connected runs with ECANCELED */
}

/* Connected (stack: what, factory, _, transport, status): the protocol,
** connection_made, reading -> transport, protocol. A factory's error is
** raised here, as asyncio raises it from create_connection. */
static int connect_k (lua_State *L, int status, lua_KContext ctx) {
  tide_Transport *t = lua_touserdata(L, 4);
  tide_TCtx *c = (tide_TCtx *)ctx;
  int err = (int)lua_tointeger(L, 5);
  (void)status;
  lua_settop(L, 4);
  if (err < 0) {
    tide__handleclose(&t->o);
    return tide_pushfail(L, err, lua_tostring(L, 1));
  }
  if (t->o.h->type == UV_TCP) uv_tcp_nodelay((uv_tcp_t *)t->o.h, 1);
  lua_pushvalue(L, 2);
  if (!tide__tfactory(L, c, 0)) {
    tide__handleclose(&t->o);
    return lua_error(L);
  }
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 4, 1);      /* 5: the protocol */
  lua_pushvalue(L, 4);
  t->ref = anchor(L);
  lua_pushvalue(L, 4);
  tide__tstart(L, t);
  lua_settop(L, 5);
  lua_remove(L, 3);
  lua_remove(L, 2);
  lua_remove(L, 1);
  return 2;
}

/* Start connecting the new transport on top of L (stack: what, factory,
** _, transport) with r; wait. */
static int connwait (lua_State *L, tide_TCtx *c, ConnReq *r, int err) {
  if (err < 0) {
    tide__handleclose(&r->t->o);
    tide__free(r);
    return tide_pushfail(L, err, lua_tostring(L, 1));
  }
  r->w = tide_wait(L);
  return tide_awaitk(L, r->w, connect_cancel, r, connect_k, (lua_KContext)c);
}

static ConnReq *connreq (lua_State *L) {
  ConnReq *r = tide__malloc(sizeof *r);
  tide_Transport *t = lua_touserdata(L, -1);
  if (r == NULL) {
    tide__handleclose(&t->o);
    tide__nomem(L);
  }
  r->w = NULL;
  r->t = t;
  return r;
}

/* ---- TCP ----------------------------------------------------------------- */

/* The address of argument 1 (host) and 2 (port) in ss: numeric ones as
** they are; names through tide.dns.resolve (which waits), then k. 0, or
** the count of results pushed (a failure). */
static int tcp_address (lua_State *L, struct sockaddr_storage *ss,
                        lua_KFunction k) {
  const char *host = lua_tostring(L, 1);
  int port = (int)lua_tointeger(L, 2);
  if (tide__toaddr(host, port, ss) == 0) return 0;
  if (lua_gettop(L) < 5) {         /* resolve it, and come back */
    if (tide_runtime(L)->current == NULL)
      tide__error(L, "%s: a host name is resolved in a task only (outside "
                     "one, give a numeric address)", tide__fname(L));
    lua_settop(L, 4);
    lua_getfield(L, lua_upvalueindex(3), "dns");
    lua_getfield(L, -1, "resolve");
    lua_remove(L, -2);
    lua_pushvalue(L, 1);
    lua_callk(L, 1, 3, 0, k);
  }
  if (lua_isnil(L, 5)) return 3;   /* nil, msg, code */
  lua_geti(L, 5, 1);
  lua_getfield(L, -1, "addr");
  host = lua_tostring(L, -1);
  if (host == NULL || tide__toaddr(host, port, ss) != 0)
    return tide_pushfail(L, UV_EAI_NONAME, lua_tostring(L, 1));
  lua_settop(L, 4);
  return 0;
}

/* Bind h to ss (ip: its address), or in a worker take the master's
** socket as tcp.listen does (tcp.c): 0 or an error. */
static int tcp_bind (lua_State *L, uv_tcp_t *h, struct sockaddr_storage *ss,
                     const char *ip, int backlog, unsigned flags,
                     int reuseport) {
  int err, fd;
  if (!reuseport && (err = tide__workerlisten(L, ip, (int)lua_tointeger(L, 2),
                                              backlog, flags, 0, &fd)) != 1)
    return tide__sharedsocket(tide_getloop(L), h, err, fd);
  if ((err = tide__listensocket(tide_getloop(L), h, ss->ss_family,
                                reuseport)) < 0)
    return err;
  return uv_tcp_bind(h, (struct sockaddr *)ss, flags);
}

static int create_server_k (lua_State *L, int status, lua_KContext ctx) {
  struct sockaddr_storage ss;
  char ip[INET6_ADDRSTRLEN];
  int backlog, reuseport, port = (int)lua_tointeger(L, 2), err, n, fd;
  unsigned flags;
  uv_tcp_t *h;
  (void)status; (void)ctx;
  if ((n = tcp_address(L, &ss, create_server_k)) > 0) return n;
  backlog = optfield(L, 4, "backlog", 511);
  reuseport = optfield(L, 4, "reuseport", 0);
  flags = optfield(L, 4, "ipv6only", 0) ? UV_TCP_IPV6ONLY : 0;
  uv_ip_name((struct sockaddr *)&ss, ip, sizeof ip);
  h = newserver(L, CTX(L), 3, sizeof *h);
  if ((err = tcp_bind(L, h, &ss, ip, backlog, flags, reuseport)) < 0)
    tide__handleclose(&((PServer *)lua_touserdata(L, -1))->o);
  else if ((err = serve(L, backlog)) == 0 && reuseport &&
           (err = tide__workerlisten(L, ip, port, backlog, flags, 1,
                                     &fd)) != 0) {   /* a worker tells */
    if (err == 1) err = 0;                          /* its master */
    else {
      lua_pushcfunction(L, server_close);
      lua_pushvalue(L, -2);
      lua_call(L, 1, 0);
    }
  }
  if (err < 0)
    return tide_pushfail(L, err, lua_pushfstring(L, "%s:%d",
                         lua_tostring(L, 1), port));
  return 1;
}

/* tide.tcp.create_server(host, port, factory [, {backlog =, reuseport =,
** ipv6only =}]) -> server | nil, msg, code */
static int tcp_create_server (lua_State *L) {
  tide__checkstring(L, 1);
  tide__checkport(L, 2);
  tide__checkfactory(L, 3);
  if (!lua_isnoneornil(L, 4)) tide__checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);
  return create_server_k(L, LUA_OK, 0);
}

static int create_connection_k (lua_State *L, int status, lua_KContext ctx) {
  struct sockaddr_storage ss;
  tide_TCtx *c = CTX(L);
  uv_tcp_t *h;
  ConnReq *r;
  int err, n;
  (void)status; (void)ctx;
  if ((n = tcp_address(L, &ss, create_connection_k)) > 0) return n;
  lua_settop(L, 3);
  lua_insert(L, 2);                /* host, factory, port */
  h = tide__newtransport(L, c, sizeof *h, TIDE_TRANSPORT);
  if ((err = uv_tcp_init(tide_getloop(L), h)) < 0) {
    tide__handleclose(&((tide_Transport *)lua_touserdata(L, -1))->o);
    return tide_pushfail(L, err, lua_tostring(L, 1));
  }
  r = connreq(L);
  err = uv_tcp_connect(&r->req, h, (struct sockaddr *)&ss, connected);
  return connwait(L, c, r, err);
}

/* tide.tcp.create_connection(host, port, factory [, opts]) -> transport,
** protocol | nil, msg, code (waits) */
static int tcp_create_connection (lua_State *L) {
  tide__checkstring(L, 1);
  tide__checkport(L, 2);
  tide__checkfactory(L, 3);
  if (!lua_isnoneornil(L, 4)) tide__checktype(L, 4, LUA_TTABLE);
  tide_wait(L);                    /* raises outside a task */
  lua_settop(L, 4);
  return create_connection_k(L, LUA_OK, 0);
}

/* ---- Unix sockets ---------------------------------------------------------- */

/* tide.pipe.create_server(path, factory [, {backlog =}]) -> server | nil,
** msg, code */
static int pipe_create_server (lua_State *L) {
  const char *path = tide__checkstring(L, 1);
  uv_pipe_t *h;
  int backlog, err;
  tide__checkfactory(L, 2);
  if (!lua_isnoneornil(L, 3)) tide__checktype(L, 3, LUA_TTABLE);
  backlog = optfield(L, 3, "backlog", 511);
  lua_settop(L, 3);
  if ((err = tide__pipepath(L, 1)) < 0) return tide_pushfail(L, err, path);
  h = newserver(L, CTX(L), 2, sizeof *h);
  if ((err = uv_pipe_init(tide_getloop(L), h, 0)) < 0 ||
      (err = tide__pipebind(h, path)) < 0)
    tide__handleclose(&((PServer *)lua_touserdata(L, -1))->o);
  else
    err = serve(L, backlog);
  if (err < 0) return tide_pushfail(L, err, path);
  return 1;
}

/* tide.pipe.create_connection(path, factory) -> transport, protocol |
** nil, msg, code (waits) */
static int pipe_create_connection (lua_State *L) {
  tide_TCtx *c = CTX(L);
  uv_pipe_t *h;
  ConnReq *r;
  int err;
  tide__checkstring(L, 1);
  tide__checkfactory(L, 2);
  tide_wait(L);
  if ((err = tide__pipepath(L, 1)) < 0)
    return tide_pushfail(L, err, lua_tostring(L, 1));
  lua_settop(L, 3);                /* as TCP has them: what, factory, _ */
  h = tide__newtransport(L, c, sizeof *h, TIDE_TRANSPORT);
  if ((err = uv_pipe_init(tide_getloop(L), h, 0)) < 0) {
    tide__handleclose(&((tide_Transport *)lua_touserdata(L, -1))->o);
    return tide_pushfail(L, err, lua_tostring(L, 1));
  }
  r = connreq(L);
  uv_pipe_connect(&r->req, h, lua_tostring(L, 1), connected);
  return connwait(L, c, r, 0);
}

static const luaL_Reg server_methods[] = {
  {"close", server_close},
  {"getsockname", server_getsockname},
  {"is_serving", server_is_serving},
  {"wait", server_wait},
  {NULL, NULL}
};

static const luaL_Reg server_meta[] = {
  {"__gc", server_close},
  {"__close", server_close},
  {"__tostring", server_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg tcp_funcs[] = {
  {"create_server", tcp_create_server},
  {"create_connection", tcp_create_connection},
  {NULL, NULL}
};

static const luaL_Reg pipe_funcs[] = {
  {"create_server", pipe_create_server},
  {"create_connection", pipe_create_connection},
  {NULL, NULL}
};

/* Add funcs to the table tide[name]; stack: tide, private, runtime. The
** functions' upvalues: the runtime, the context, the tide table. */
static int addfuncs (lua_State *L, const char *name, const luaL_Reg *funcs) {
  tide__open_transport(L);
  luaL_newmetatable(L, TIDE_PSERVER);
  luaL_setfuncs(L, server_meta, 0);
  luaL_newlib(L, server_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_getfield(L, -3, name);
  lua_pushvalue(L, -2);
  lua_pushlightuserdata(L, tide__tctx(L));
  lua_pushvalue(L, -6);
  luaL_setfuncs(L, funcs, 3);
  lua_pop(L, 1);
  return 0;
}

int tide__open_transport_tcp (lua_State *L) {
  return addfuncs(L, "tcp", tcp_funcs);
}

int tide__open_transport_pipe (lua_State *L) {
  return addfuncs(L, "pipe", pipe_funcs);
}
