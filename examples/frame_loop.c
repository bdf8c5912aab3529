/*
** frame_loop.c: a game-style host. Its main loop draws a frame every
** 10 ms and steps tide once per frame with UV_RUN_NOWAIT, which never
** blocks. A Lua task moves a "player" over time; the host reads its
** position from a global each frame.
*/
#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>
#include <tide.h>

static const char *script =
  "x = 0\n"
  "tide.spawn(function ()\n"
  "  for step = 1, 5 do tide.sleep(0.02); x = step end\n"
  "end)\n";

int main (void) {
  lua_State *L = luaL_newstate();
  tide_Runtime *rt;
  int frames = 0;
  lua_Integer x = 0, last = -1;
  luaL_openlibs(L);
  rt = tide_open(L, NULL);
  luaL_loadstring(L, script);
  if (tide_call(rt, 0, 0) != LUA_OK) return 1;   /* runs the chunk */
  while (tide_ntasks(rt) > 0) {                  /* the frame loop */
    tide_run(rt, UV_RUN_NOWAIT);
    lua_getglobal(L, "x");
    x = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (x != last) printf("frame %d: x = %d\n", frames, (int)x);
    last = x;
    frames++;
    uv_sleep(10);                                /* drawing the frame */
  }
  printf("%s after %d frames\n", x == 5 ? "done" : "wrong", frames);
  tide_close(rt);
  lua_close(L);
  return x == 5 ? 0 : 1;
}
