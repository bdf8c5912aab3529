/*
** signals.c: a host that takes Ctrl-C and SIGTERM as the tide command does
** (tide_catchsignals): a script's main task is cancelled, its <close>
** variables run, and the host exits with 128 + the signal's number. A
** second runtime cannot take the signals while the first has them.
*/
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "tide.h"

static const char script[] =
  "local x <close> = setmetatable({}, { __close = function ()\n"
  "  print('cleanup') io.stdout:flush()\n"
  "end })\n"
  "print('ready') io.stdout:flush()\n"
  "tide.sleep(30)\n";

int main (void) {
  lua_State *L = luaL_newstate(), *L2 = luaL_newstate();
  tide_Runtime *rt, *rt2;
  int status, signum;
  luaL_openlibs(L);
  luaL_openlibs(L2);
  rt = tide_open(L, NULL);
  rt2 = tide_open(L2, NULL);
  if (rt == NULL || rt2 == NULL || tide_catchsignals(rt) != 0) return 2;
  if (tide_catchsignals(rt2) != UV_EBUSY) return 3;
  tide_close(rt2);
  lua_close(L2);
  if (luaL_loadstring(L, script) != LUA_OK) return 4;
  status = tide_call(rt, 0, 0);
  signum = tide_interrupted(rt);
  printf("status %s, signal %d\n", status == LUA_OK ? "ok" : "error", signum);
  tide_close(rt);
  lua_close(L);
  return signum ? 128 + signum : 0;
}
