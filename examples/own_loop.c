/*
** own_loop.c: a host that owns its libuv loop and has a timer of its own.
** tide runs on the same loop: the C timer and the Lua tasks interleave, and
** uv_run returns when both are done. tide_close leaves the host's loop and
** handles alone; the host closes them.
*/
#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>
#include <tide.h>

static int ticks = 0;

static void on_tick (uv_timer_t *t) {
  printf("C tick %d\n", ++ticks);
  if (ticks == 3) uv_timer_stop(t);
}

static const char *script =
  "for i = 1, 3 do\n"
  "  tide.sleep(0.015)\n"
  "  print('lua tick ' .. i)\n"
  "end\n";

int main (void) {
  uv_loop_t loop;
  uv_timer_t timer;
  lua_State *L = luaL_newstate();
  tide_Runtime *rt;
  uv_loop_init(&loop);
  uv_timer_init(&loop, &timer);
  uv_timer_start(&timer, on_tick, 10, 10);
  luaL_openlibs(L);
  rt = tide_open(L, &loop);              /* tide on the host's loop */
  luaL_loadstring(L, script);
  tide_spawn(rt, 0);                     /* a task; it runs once the loop does */
  lua_pop(L, 1);
  uv_run(&loop, UV_RUN_DEFAULT);         /* the host drives: both interleave */
  tide_close(rt);
  lua_close(L);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
