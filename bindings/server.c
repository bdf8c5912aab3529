/*
** server.c: tide.Server, a listening TCP or Unix socket: accept() gives a
** tide.Stream of the same kind. tcp.c and pipe.c create and bind it.
*/
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tide_int.h"

typedef struct Server {
  tide_Handle o;           /* o.h: the listening uv_tcp_t or uv_pipe_t */
  Task *acceptors;         /* tasks waiting in accept */
  int pending;             /* connections ready to accept */
  int err;                 /* an error of the listening socket, reported once */
  char *path;              /* a Unix socket's file, removed at close */
} Server;

static Server *checkserver (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_SERVER);
}

static Server *checklistening (lua_State *L, int i) {
  Server *sv = checkserver(L, i);
  if (sv->o.h == NULL)
    tide__error(L, "%s: attempt to use a closed server", tide__fname(L));
  return sv;
}

/* Only a task waiting in accept keeps the loop alive. */
static void hold (Server *sv) {
  if (sv->o.h == NULL) return;
  if (sv->acceptors) uv_ref(sv->o.h);
  else uv_unref(sv->o.h);
}

static void connection_cb (uv_stream_t *h, int status) {
  Server *sv = h->data;
  if (status < 0) sv->err = status;
  else sv->pending++;
  if (sv->acceptors) {             /* wake the first acceptor */
    Task *t = sv->acceptors;
    sv->acceptors = t->link;
    t->link = NULL;
    hold(sv);
    tide_wake(&t->w, 0);
  }
}

static void accept_cancel (tide_Wait *w) {
  Server *sv = tide_waitdata(w);
  tide__waitlist_remove(&sv->acceptors, w);
  hold(sv);
}

/* A new stream of the server's kind, accepted; 0 or a UV error. */
static int accept_stream (lua_State *L, Server *sv) {
  uv_loop_t *loop = tide_getloop(L);
  int err;
  if (sv->o.h->type == UV_TCP) {
    uv_tcp_t *h = (uv_tcp_t *)tide__newstream(L, sv->o.rt, sizeof *h);
    err = uv_tcp_init(loop, h);
  }
  else {
    uv_pipe_t *h = (uv_pipe_t *)tide__newstream(L, sv->o.rt, sizeof *h);
    err = uv_pipe_init(loop, h, 0);
  }
  if (err == 0) {
    sv->pending--;
    err = uv_accept((uv_stream_t *)sv->o.h, tide__tostream(L, -1));
  }
  if (err < 0) tide__streamfail(L, -1);
  return err;
}

static int accept_k (lua_State *L, int status, lua_KContext ctx) {
  Server *sv = checkserver(L, 1);
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
    hold(sv);
    return tide_awaitk(L, w, accept_cancel, sv, accept_k, 0);
  }
  if ((err = accept_stream(L, sv)) < 0) return tide_pushfail(L, err, NULL);
  return 1;
}

/* server:accept() -> Stream | nil, msg, code (EMFILE, ...) */
static int server_accept (lua_State *L) {
  checklistening(L, 1);
  return accept_k(L, LUA_OK, 0);
}

static void server_onclose (tide_Handle *o) {
  Server *sv = (Server *)o;
  tide__wakeall(&sv->acceptors);
  if (sv->path) {
    unlink(sv->path);
    tide__free(sv->path);
    sv->path = NULL;
  }
}

static int server_close (lua_State *L) {
  tide__handleclose(&checkserver(L, 1)->o);
  return 0;
}

/* The address a listening handle h is bound to: host, port (TCP) or
** path (Unix socket) | nil, msg, code (also for transport_net.c). */
int tide__pushsockname (lua_State *L, uv_handle_t *h) {
  int err;
  if (h->type == UV_TCP) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    err = uv_tcp_getsockname((uv_tcp_t *)h, (struct sockaddr *)&ss, &len);
    if (err == 0) return tide__pushaddr(L, (struct sockaddr *)&ss);
  }
  else {
    char path[1024];
    size_t n = sizeof path;
    err = uv_pipe_getsockname((uv_pipe_t *)h, path, &n);
    if (err == 0) {
      lua_pushlstring(L, path, n);
      return 1;
    }
  }
  return tide_pushfail(L, err, NULL);
}

/* server:getsockname() -> host, port (TCP) or path (Unix socket) */
static int server_getsockname (lua_State *L) {
  return tide__pushsockname(L, checklistening(L, 1)->o.h);
}

static int server_tostring (lua_State *L) {
  Server *sv = checkserver(L, 1);
  if (sv->o.h == NULL) lua_pushliteral(L, "tide.Server (closed)");
  else lua_pushfstring(L, "tide.Server (%s): %p",
                       uv_handle_type_name(sv->o.h->type), (void *)sv);
  return 1;
}

/* Push a new Server whose uv handle (size bytes) the caller initialises
** and binds before tide__listen. */
void *tide__newserver (lua_State *L, tide_Runtime *rt, size_t size) {
  Server *sv = lua_newuserdatauv(L, sizeof *sv, 0);
  memset(sv, 0, sizeof *sv);
  luaL_setmetatable(L, TIDE_SERVER);
  return tide__handleinit(L, rt, &sv->o, size, server_onclose);
}

/* The file of a listening Unix socket (not an abstract one), to remove
** when the server closes. */
static void keeppath (Server *sv) {
  char path[1024];
  size_t n = sizeof path;
  if (uv_pipe_getsockname((uv_pipe_t *)sv->o.h, path, &n) == 0 && n > 0 &&
      path[0] != '\0' && (sv->path = tide__malloc(n + 1)) != NULL) {
    memcpy(sv->path, path, n);
    sv->path[n] = '\0';
  }
}

/* Listen on the Server at the top of L; on an error it is closed. */
int tide__listen (lua_State *L, int backlog) {
  Server *sv = checkserver(L, -1);
  int err = uv_listen((uv_stream_t *)sv->o.h, backlog, connection_cb);
  if (err < 0) {
    tide__handleclose(&sv->o);
    return err;
  }
  if (sv->o.h->type == UV_NAMED_PIPE) keeppath(sv);
  hold(sv);
  return 0;
}

/* The Server at index i is done for (bind failed): close it. */
void tide__serverfail (lua_State *L, int i) {
  tide__handleclose(&checkserver(L, i)->o);
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

int tide__open_server (lua_State *L) {
  /* filled by every open: a failed one may have left it half done */
  luaL_newmetatable(L, TIDE_SERVER);
  luaL_setfuncs(L, server_meta, 0);
  luaL_newlib(L, server_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  return 0;
}
