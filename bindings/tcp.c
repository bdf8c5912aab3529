/*
** tcp.c: TCP on numeric addresses: connect (-> tide.Stream) and listen
** (-> tide.Server, see server.c). Name resolution, timeouts
** and serve are in runtime/lua/net.lua, on top of these.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tide_int.h"

/* tcp._connect(ip, port) -> Stream | nil, msg, code */
static int tcp_connect (lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  int port = tide__checkport(L, 2), err;
  struct sockaddr_storage ss;
  uv_connect_t *req;
  uv_tcp_t *h;
  if (tide__toaddr(ip, port, &ss) < 0)
    return luaL_argerror(L, 1, "numeric IPv4 or IPv6 address expected");
  tide_wait(L);                    /* raises outside a task */
  lua_settop(L, 2);
  h = (uv_tcp_t *)tide__newstream(L, tide__rt(L), sizeof(uv_tcp_t));
  if ((err = uv_tcp_init(tide_getloop(L), h)) < 0) {
    tide__streamfail(L, -1);
    return tide_pushfail(L, err, ip);
  }
  req = tide__connreq(L);
  err = uv_tcp_connect(req, h, (struct sockaddr *)&ss, tide__connected);
  return tide__connwait(L, req, err);
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

/* Create the socket now to set options that must precede bind (also for
** transport_net.c's servers). */
int tide__listensocket (uv_loop_t *loop, uv_tcp_t *h, int family,
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

/* Open fd, the master's socket that err (0 or a UV error) gave this
** worker, in h (also for transport_net.c's servers): 0, or an error (fd
** closed). */
int tide__sharedsocket (uv_loop_t *loop, uv_tcp_t *h, int err, int fd) {
  if (err == 0 && (err = uv_tcp_init(loop, h)) == 0 &&
      (err = uv_tcp_open(h, fd)) == 0) {
    fd = -1;                       /* the handle has it */
    /* After each accept libuv yields the CPU (a nanosleep), so that the
    ** other workers woken by the same connection get their turn: without
    ** it, the worker that is already running takes nearly all of a burst
    ** of connections (90 of 100 in bench/run.sh's echo rows). */
    uv_tcp_simultaneous_accepts(h, 0);
  }
  if (fd >= 0) close(fd);
  return err;
}

/* A listening Server on fd, the master's socket that err (0 or a UV
** error) gave this worker. */
static int shared_listen (lua_State *L, const char *ip, int port,
                          int backlog, int err, int fd) {
  uv_tcp_t *h = tide__newserver(L, tide__rt(L), sizeof(uv_tcp_t));
  if ((err = tide__sharedsocket(tide_getloop(L), h, err, fd)) < 0)
    tide__serverfail(L, -1);
  else err = tide__listen(L, backlog);
  if (err < 0)
    return tide_pushfail(L, err, lua_pushfstring(L, "%s:%d", ip, port));
  return 1;
}

/* tcp._listen(ip, port [, {backlog =, reuseport =, ipv6only =}]) ->
** Server | nil, msg, code */
static int tcp_listen (lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  int port = tide__checkport(L, 2), err;
  int backlog = optfield(L, 3, "backlog", 511);
  int reuseport = optfield(L, 3, "reuseport", 0), fd;
  unsigned flags = optfield(L, 3, "ipv6only", 0) ? UV_TCP_IPV6ONLY : 0;
  struct sockaddr_storage ss;
  uv_tcp_t *h;
  if (tide__toaddr(ip, port, &ss) < 0)
    return luaL_argerror(L, 1, "numeric IPv4 or IPv6 address expected");
  if (!reuseport &&               /* a worker: the master's socket */
      (err = tide__workerlisten(L, ip, port, backlog, flags, 0, &fd)) != 1)
    return shared_listen(L, ip, port, backlog, err, fd);
  h = tide__newserver(L, tide__rt(L), sizeof(uv_tcp_t));
  if ((err = tide__listensocket(tide_getloop(L), h, ss.ss_family, reuseport)) < 0 ||
      (err = uv_tcp_bind(h, (struct sockaddr *)&ss, flags)) < 0)
    tide__serverfail(L, -1);
  else
    err = tide__listen(L, backlog);
  if (err == 0 && reuseport &&     /* a worker tells its master */
      (err = tide__workerlisten(L, ip, port, backlog, flags, 1, &fd)) != 0)
    err = err == 1 ? 0 : (tide__serverfail(L, -1), err);
  if (err < 0)
    return tide_pushfail(L, err, lua_pushfstring(L, "%s:%d", ip, port));
  return 1;
}

static const luaL_Reg tcp_funcs[] = {
  {"_connect", tcp_connect},
  {"_listen", tcp_listen},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. */
int tide__open_tcp (lua_State *L) {
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, tcp_funcs, 1);
  lua_setfield(L, -4, "tcp");
  return tide__open_workers(L);
}
