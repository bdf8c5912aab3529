/*
** pipe.c: Unix domain sockets: connect (-> tide.Stream) and listen
** (-> tide.Server, see server.c). serve is in runtime/lua/net.lua.
*/
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tide_int.h"

int tide__pipepath (lua_State *L, int i) {
  size_t len;
  const char *path = lua_tolstring(L, i, &len);
  if (len >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return UV_ENAMETOOLONG;        /* libuv would cut it short */
  if (strlen(path) != len) return UV_EINVAL;
  return 0;
}

/* Is path a socket file nobody listens on (a connect is refused)? Any
** other file (a connect to it is refused too) is left alone. */
static int stale (const char *path) {
  struct sockaddr_un sa;
  struct stat st;
  int fd, refused;
  if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path));   /* tide__pipepath checked it */
  refused = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 &&
            errno == ECONNREFUSED;
  close(fd);
  return refused;
}

int tide__pipebind (uv_pipe_t *h, const char *path) {
  int err = uv_pipe_bind(h, path);
  if (err == UV_EADDRINUSE && stale(path) && unlink(path) == 0)
    err = uv_pipe_bind(h, path);
  return err;
}

/* pipe._connect(path) -> Stream | nil, msg, code */
static int pipe_connect (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  uv_connect_t *req;
  uv_pipe_t *h;
  int err;
  tide_wait(L);                    /* raises outside a task */
  if ((err = tide__pipepath(L, 1)) < 0) return tide_pushfail(L, err, path);
  lua_settop(L, 1);
  h = (uv_pipe_t *)tide__newstream(L, tide__rt(L), sizeof(uv_pipe_t));
  if ((err = uv_pipe_init(tide_getloop(L), h, 0)) < 0) {
    tide__streamfail(L, -1);
    return tide_pushfail(L, err, path);
  }
  req = tide__connreq(L);
  uv_pipe_connect(req, h, path, tide__connected);  /* errors come to it */
  return tide__connwait(L, req, 0);
}

/* pipe._listen(path [, backlog]) -> Server | nil, msg, code */
static int pipe_listen (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int backlog = (int)luaL_optinteger(L, 2, 511), err;
  uv_pipe_t *h;
  if ((err = tide__pipepath(L, 1)) < 0) return tide_pushfail(L, err, path);
  h = tide__newserver(L, tide__rt(L), sizeof(uv_pipe_t));
  if ((err = uv_pipe_init(tide_getloop(L), h, 0)) < 0 ||
      (err = tide__pipebind(h, path)) < 0)
    tide__serverfail(L, -1);
  else
    err = tide__listen(L, backlog);
  if (err < 0) return tide_pushfail(L, err, path);
  return 1;
}

static const luaL_Reg pipe_funcs[] = {
  {"_connect", pipe_connect},
  {"_listen", pipe_listen},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. */
int tide__open_pipe (lua_State *L) {
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, pipe_funcs, 1);
  lua_setfield(L, -4, "pipe");
  return 0;
}
