/*
** run_script.c: the smallest host. It opens a Lua state and a tide runtime
** on tide's own loop, runs a script as the main task, lets the tasks it
** spawned finish, and closes everything.
**   ./run_script script.lua
*/
#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>
#include <tide.h>

int main (int argc, char **argv) {
  lua_State *L = luaL_newstate();
  tide_Runtime *rt;
  int status;
  if (argc != 2) {
    fprintf(stderr, "usage: %s script.lua\n", argv[0]);
    return 2;
  }
  luaL_openlibs(L);
  rt = tide_open(L, NULL);             /* NULL: tide owns the loop */
  status = tide_dofile(rt, argv[1]);   /* the script, as a task, to its end */
  if (status == LUA_OK)
    status = tide_run(rt, UV_RUN_DEFAULT);   /* the tasks it left running */
  else
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
  tide_close(rt);
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
