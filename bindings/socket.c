/*
** socket.c: the C side of tide.socket (runtime/lua/socket.lua, LuaSocket's
** API on tide's streams): what Lua cannot see, a Stream's descriptor
** (getfd) and the wall clock to the microsecond (gettime).
*/
#include <time.h>

#include "tide_int.h"

/* _fileno(stream) -> the Stream's descriptor, or -1 where it has none. */
static int socket_fileno (lua_State *L) {
  uv_os_fd_t fd;
  uv_stream_t *h = tide__tostream(L, 1);
  if (h == NULL || uv_fileno((uv_handle_t *)h, &fd) < 0) fd = -1;
  lua_pushinteger(L, (lua_Integer)fd);
  return 1;
}

/* _gettime() -> seconds since the epoch, microseconds in the fraction. */
static int socket_gettime (lua_State *L) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) < 0) {
    lua_pushnumber(L, (lua_Number)time(NULL));
    return 1;
  }
  lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
  return 1;
}

static const luaL_Reg socket_funcs[] = {
  {"_fileno", socket_fileno},
  {"_gettime", socket_gettime},
  {NULL, NULL}
};

/* Stack: tide, private, runtime; sets tide.socket (filled by socket.lua). */
int tide__open_socket (lua_State *L) {
  luaL_newlib(L, socket_funcs);
  lua_setfield(L, -4, "socket");
  return 0;
}
