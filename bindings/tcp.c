/*
** tcp.c: TCP on numeric addresses: connect (-> tide.Stream) and listen
** (-> tide.Server, whose accept gives streams). Name resolution, timeouts
** and serve are in runtime/lua/net.lua, on top of these.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tide_int.h"

#define TIDE_SERVER "tide.Server"

/* ---- connect -------------------------------------------------------------- */

typedef struct ConnReq {
  uv_connect_t req;
  tide_Wait *w;            /* NULL once the task stopped waiting */
  tide_Handle *o;          /* the stream being connected */
} ConnReq;

static void connect_cb (uv_connect_t *req, int status) {
  ConnReq *r = (ConnReq *)req;
  if (r->w) {
    lua_pushinteger(tide_thread(r->w), status);
    tide_wake(r->w, 1);
  }
  free(r);
}

static void connect_cancel (tide_Wait *w) {
  ConnReq *r = tide_waitdata(w);
  r->w = NULL;
  tide__handleclose(r->o);         /* connect_cb runs with ECANCELED */
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

/* tcp._connect(ip, port) -> Stream | nil, msg, code */
static int tcp_connect (lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  int port = tide__checkport(L, 2), err;
  struct sockaddr_storage ss;
  tide_Wait *w;
  uv_tcp_t *h;
  ConnReq *r;
  if (tide__toaddr(ip, port, &ss) < 0)
    return luaL_argerror(L, 1, "numeric IPv4 or IPv6 address expected");
  w = tide_wait(L);
  lua_settop(L, 2);
  h = (uv_tcp_t *)tide__newstream(L, tide__rt(L), sizeof(uv_tcp_t));
  if ((err = uv_tcp_init(tide_getloop(L), h)) < 0) {
    tide__streamfail(L, -1);
    return tide_pushfail(L, err, ip);
  }
  if ((r = malloc(sizeof *r)) == NULL) {
    tide__streamfail(L, -1);
    return luaL_error(L, "not enough memory");
  }
  r->w = w;
  r->o = h->data;
  err = uv_tcp_connect(&r->req, h, (struct sockaddr *)&ss, connect_cb);
  if (err < 0) {
    free(r);
    tide__streamfail(L, -1);
    return tide_pushfail(L, err, ip);
  }
  return tide_awaitk(L, w, connect_cancel, r, connect_k, 0);
}

/* ---- The server ------------------------------------------------------------ */

typedef struct Server {
  tide_Handle o;           /* o.h: the listening uv_tcp_t */
  Task *acceptors;         /* tasks waiting in accept */
  int pending;             /* connections ready to accept */
  int err;                 /* an error of the listening socket, reported once */
} Server;

static Server *checkserver (lua_State *L, int i) {
  return luaL_checkudata(L, i, TIDE_SERVER);
}

static Server *checklistening (lua_State *L, int i) {
  Server *sv = checkserver(L, i);
  if (sv->o.h == NULL) luaL_error(L, "attempt to use a closed server");
  return sv;
}

static void connection_cb (uv_stream_t *h, int status) {
  Server *sv = h->data;
  if (status < 0) sv->err = status;
  else sv->pending++;
  if (sv->acceptors) {             /* wake the first acceptor */
    Task *t = sv->acceptors;
    sv->acceptors = t->link;
    t->link = NULL;
    tide_wake(&t->w, 0);
  }
}

static void accept_cancel (tide_Wait *w) {
  Server *sv = tide_waitdata(w);
  tide__waitlist_remove(&sv->acceptors, w);
}

static int accept_k (lua_State *L, int status, lua_KContext ctx) {
  Server *sv = checkserver(L, 1);
  uv_tcp_t *h;
  tide_Wait *w;
  int err;
  (void)status; (void)ctx;
  lua_settop(L, 1);
  if (sv->o.h == NULL) {
    luaL_pushfail(L);
    lua_pushliteral(L, "server closed");
    lua_pushliteral(L, "ECANCELED");
    return 3;
  }
  if (sv->err) {
    err = sv->err;
    sv->err = 0;
    return tide_pushfail(L, err, NULL);
  }
  if (sv->pending == 0) {
    w = tide_wait(L);
    tide__waitlist_add(&sv->acceptors, w);
    return tide_awaitk(L, w, accept_cancel, sv, accept_k, 0);
  }
  h = (uv_tcp_t *)tide__newstream(L, sv->o.rt, sizeof(uv_tcp_t));
  if ((err = uv_tcp_init(tide_getloop(L), h)) == 0) {
    sv->pending--;
    err = uv_accept((uv_stream_t *)sv->o.h, (uv_stream_t *)h);
  }
  if (err < 0) {
    tide__streamfail(L, -1);
    return tide_pushfail(L, err, NULL);
  }
  return 1;
}

/* server:accept() -> Stream | nil, msg, code (EMFILE, ...) */
static int server_accept (lua_State *L) {
  checklistening(L, 1);
  return accept_k(L, LUA_OK, 0);
}

static void server_onclose (tide_Handle *o) {
  tide__wakeall(&((Server *)o)->acceptors);
}

static int server_close (lua_State *L) {
  tide__handleclose(&checkserver(L, 1)->o);
  return 0;
}

/* server:getsockname() -> host, port */
static int server_getsockname (lua_State *L) {
  Server *sv = checklistening(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int err = uv_tcp_getsockname((uv_tcp_t *)sv->o.h, (struct sockaddr *)&ss,
                               &len);
  if (err < 0) return tide_pushfail(L, err, NULL);
  return tide__pushaddr(L, (struct sockaddr *)&ss);
}

static int server_tostring (lua_State *L) {
  Server *sv = checkserver(L, 1);
  if (sv->o.h == NULL) lua_pushliteral(L, "tide.Server (closed)");
  else lua_pushfstring(L, "tide.Server: %p", (void *)sv);
  return 1;
}

static int optfield (lua_State *L, int opts, const char *name, int def) {
  int v = def;
  if (lua_istable(L, opts)) {
    lua_getfield(L, opts, name);
    if (lua_isboolean(L, -1)) v = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1)) v = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  return v;
}

/* Create the socket now to set options that must precede bind. */
static int listen_socket (uv_loop_t *loop, uv_tcp_t *h, int family,
                          int reuseport) {
  uv_os_fd_t fd;
  int err = uv_tcp_init_ex(loop, h, (unsigned)family);
  if (err < 0 || !reuseport) return err;
  if ((err = uv_fileno((uv_handle_t *)h, &fd)) < 0) return err;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuseport,
                 sizeof reuseport) < 0)
    return uv_translate_sys_error(errno);
  return 0;
}

/* tcp._listen(ip, port [, {backlog =, reuseport =, ipv6only =}]) ->
** Server | nil, msg, code */
static int tcp_listen (lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  int port = tide__checkport(L, 2), err;
  int backlog = optfield(L, 3, "backlog", 511);
  int reuseport = optfield(L, 3, "reuseport", 0);
  unsigned flags = optfield(L, 3, "ipv6only", 0) ? UV_TCP_IPV6ONLY : 0;
  struct sockaddr_storage ss;
  Server *sv;
  uv_tcp_t *h;
  if (tide__toaddr(ip, port, &ss) < 0)
    return luaL_argerror(L, 1, "numeric IPv4 or IPv6 address expected");
  sv = lua_newuserdatauv(L, sizeof *sv, 0);
  memset(sv, 0, sizeof *sv);
  luaL_setmetatable(L, TIDE_SERVER);
  h = tide__handleinit(L, tide__rt(L), &sv->o, sizeof(uv_tcp_t),
                       server_onclose);
  if ((err = listen_socket(tide_getloop(L), h, ss.ss_family, reuseport)) == 0 &&
      (err = uv_tcp_bind(h, (struct sockaddr *)&ss, flags)) == 0)
    err = uv_listen((uv_stream_t *)h, backlog, connection_cb);
  if (err < 0) {
    tide__handleclose(&sv->o);
    return tide_pushfail(L, err, lua_pushfstring(L, "%s:%d", ip, port));
  }
  return 1;
}

static const luaL_Reg server_methods[] = {
  {"accept", server_accept},
  {"close", server_close},
  {"getsockname", server_getsockname},
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
  {"_connect", tcp_connect},
  {"_listen", tcp_listen},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. */
int tide__open_tcp (lua_State *L) {
  if (luaL_newmetatable(L, TIDE_SERVER)) {
    luaL_setfuncs(L, server_meta, 0);
    luaL_newlib(L, server_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, tcp_funcs, 1);
  lua_setfield(L, -4, "tcp");
  return 0;
}
