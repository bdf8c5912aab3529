/*
** pipe.c: Unix domain sockets: connect (-> tide.Stream) and listen
** (-> tide.Server, see server.c). serve is in runtime/lua/net.lua.
*/
#include "tide_int.h"

/* pipe._connect(path) -> Stream | nil, msg, code */
static int pipe_connect (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  uv_connect_t *req;
  uv_pipe_t *h;
  int err;
  tide_wait(L);                    /* raises outside a task */
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
  uv_pipe_t *h = tide__newserver(L, tide__rt(L), sizeof(uv_pipe_t));
  if ((err = uv_pipe_init(tide_getloop(L), h, 0)) < 0 ||
      (err = uv_pipe_bind(h, path)) < 0)
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
