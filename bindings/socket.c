/*
** socket.c: the C side of tide.socket (runtime/lua/socket.lua, LuaSocket's
** API on tide's streams): what Lua cannot see, a Stream's descriptor
** (getfd), whether a pooled connection is still usable (setkeepalive's
** pool) and the wall clock to the microsecond (gettime).
*/
#include <errno.h>
#include <sys/socket.h>
#include <time.h>

#include "tide_int.h"
#include "stream.h"

/* _fileno(stream) -> the Stream's descriptor, or -1 where it has none. */
static int socket_fileno (lua_State *L) {
  uv_os_fd_t fd;
  uv_stream_t *h = tide__tostream(L, 1);
  if (h == NULL || uv_fileno((uv_handle_t *)h, &fd) < 0) fd = -1;
  lua_pushinteger(L, (lua_Integer)fd);
  return 1;
}

/* _alive(stream) -> whether the connection is open with nothing unread:
** nothing buffered, no end seen, and the socket neither at its end (the
** peer closed) nor holding stray data. A peek that does not wait. */
static int socket_alive (lua_State *L) {
  Stream *s = tide__checkudata(L, 1, TIDE_STREAM);
  uv_os_fd_t fd;
  char c;
  ssize_t n;
  int alive = 0;
  if (s->o.h != NULL && s->len == 0 && s->rerr == 0 &&
      uv_fileno((uv_handle_t *)s->o.h, &fd) == 0) {
    do n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    alive = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  lua_pushboolean(L, alive);
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
  {"_alive", socket_alive},
  {"_gettime", socket_gettime},
  {NULL, NULL}
};

/* Stack: tide, private, runtime; sets tide.socket (filled by socket.lua). */
int tide__open_socket (lua_State *L) {
  luaL_newlib(L, socket_funcs);
  lua_setfield(L, -4, "socket");
  return 0;
}

/* ---- Entry points of tide.so for stock Lua --------------------------------- */

/* require "tide" and give what require "tide.<field>" gives once it is
** loaded: the preload tide set (tide.ssl, tide.luasocket, installed), or
** tide.<field>. So that with LUA_CPATH reaching tide.so, require
** "tide.luasocket" alone works (the all-in-one searcher finds
** luaopen_tide_luasocket in tide.so). */
static int fromtide (lua_State *L, const char *field) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "tide");
  lua_call(L, 1, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushfstring(L, "tide.%s", field);
  if (lua_gettable(L, -2) == LUA_TFUNCTION) {
    lua_pushfstring(L, "tide.%s", field);
    lua_call(L, 1, 1);
    return 1;
  }
  lua_pop(L, 2);
  lua_getfield(L, -1, field);
  return 1;
}

TIDE_API int luaopen_tide_luasocket (lua_State *L) {
  return fromtide(L, "luasocket");
}

TIDE_API int luaopen_tide_socket (lua_State *L) {
  return fromtide(L, "socket");
}

TIDE_API int luaopen_tide_ssl (lua_State *L) {
  return fromtide(L, "ssl");
}
