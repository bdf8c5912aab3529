/*
** host.c: a host program embedding tide on its own loop. It runs a chunk
** that starts tasks, steps the loop with UV_RUN_NOWAIT as a frame loop
** would, closes tide while tasks still sleep and read, and checks that its own loop
** closes cleanly (no handle of tide's left). Exit 0 on success.
*/
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "tide.h"

#define CHECK(c) do { if (!(c)) { \
  fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
  return 1; } } while (0)

static const char *script =
  "local tide = require 'tide'\n"
  "ticks = 0\n"
  "tide.spawn(function () for i = 1, 3 do tide.sleep(0.01); ticks = i end end)\n"
  "tide.spawn(function () tide.sleep(60) end)\n"    /* still asleep at close */
  "srv = assert(tide.tcp.listen('127.0.0.1', 0))\n"
  "local _, port = srv:getsockname()\n"
  "tide.spawn(function ()\n"                      /* still reading at close */
  "  local c = assert(tide.tcp.connect('127.0.0.1', port))\n"
  "  c:write(('x'):rep(100000))\n"                /* queued: nobody reads */
  "  c:read()\n"
  "end)\n";

int main (void) {
  uv_loop_t loop;
  lua_State *L;
  tide_Runtime *rt;
  int frames = 0;
  CHECK(uv_loop_init(&loop) == 0);
  L = luaL_newstate();
  luaL_openlibs(L);
  rt = tide_open(L, &loop);
  CHECK(rt != NULL && tide_loop(rt) == &loop);
  CHECK(luaL_loadstring(L, script) == LUA_OK);
  CHECK(tide_call(rt, 0, 0) == LUA_OK);
  CHECK(tide_ntasks(rt) == 3);
  for (;;) {                        /* the host's frame loop */
    lua_Integer ticks;
    tide_run(rt, UV_RUN_NOWAIT);
    lua_getglobal(L, "ticks");
    ticks = lua_tointeger(L, -1);
    lua_pop(L, 1);
    frames++;
    if (ticks == 3) break;
    uv_sleep(1);
  }
  CHECK(frames > 3);
  CHECK(tide_ntasks(rt) == 2);
  /* a task as a function call: results come back on the stack */
  CHECK(luaL_loadstring(L, "tide.sleep(0.001) return 6 * 7") == LUA_OK);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "tide");
  lua_call(L, 1, 1);
  lua_setglobal(L, "tide");
  CHECK(tide_call(rt, 0, 1) == LUA_OK && lua_tointeger(L, -1) == 42);
  lua_pop(L, 1);
  /* an error comes back with its traceback */
  CHECK(luaL_loadstring(L, "error('host boom')") == LUA_OK);
  CHECK(tide_call(rt, 0, 0) != LUA_OK);
  CHECK(strstr(lua_tostring(L, -1), "host boom\nstack traceback:") != NULL);
  lua_pop(L, 1);
  tide_close(rt);                   /* cancels the sleeper */
  CHECK(tide_ntasks(rt) == 0);
  lua_close(L);
  CHECK(uv_loop_close(&loop) == 0);
  puts("ok");
  return 0;
}
