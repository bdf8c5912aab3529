/*
** debug.c: famine detection (TIDE_DEBUG=1 or tide.debug(true)): a task that
** runs too long without waiting starves every other task; say which one
** and where. A hook on calls, returns and every 1000 instructions catches
** it in the act (right after a blocking C call such as os.execute returns);
** the check after the resume catches the rest.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tide_int.h"

/* The resume being timed, per thread (each runtime runs on one thread). */
static _Thread_local struct {
  uint64_t start, limit;           /* ns */
  int reported;
} famine;

static void report (lua_State *L, lua_State *co, uint64_t ns,
                    const char *how) {
  luaL_traceback(L, co, NULL, 0);
  fprintf(stderr, "tide: a task %s %.3f s without yielding, blocking every "
          "other task, at:\n%s\n", how, (double)ns / 1e9, lua_tostring(L, -1));
  fflush(stderr);
  lua_pop(L, 1);
}

static void famine_hook (lua_State *L, lua_Debug *ar) {
  uint64_t ns;
  (void)ar;
  if (famine.reported) return;
  ns = uv_hrtime() - famine.start;
  if (ns < famine.limit) return;
  famine.reported = 1;
  report(L, L, ns, "has run");
}

void tide__faminebegin (tide_Runtime *rt, Task *t) {
  famine.start = uv_hrtime();
  famine.limit = (uint64_t)(rt->famine * 1e9);
  famine.reported = 0;
  lua_sethook(t->co, famine_hook,
              LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1000);
}

void tide__famineend (tide_Runtime *rt, Task *t) {
  uint64_t ns = uv_hrtime() - famine.start;
  if (!rt->debug) lua_sethook(t->co, NULL, 0, 0);
  if (famine.reported || ns < famine.limit) return;
  if (lua_status(t->co) == LUA_YIELD)
    report(rt->cbL, t->co, ns, "ran");
  else {
    fprintf(stderr, "tide: a task ran %.3f s without yielding, blocking "
            "every other task, and then ended\n", (double)ns / 1e9);
    fflush(stderr);
  }
}

/* tide.debug([on [, seconds]]) -> on, seconds */
static int debug_set (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  if (!lua_isnone(L, 1)) {
    rt->debug = lua_toboolean(L, 1);
    if (!lua_isnoneornil(L, 2)) {
      double s = luaL_checknumber(L, 2);
      luaL_argcheck(L, s >= 0, 2, "negative duration");
      rt->famine = s;
    }
  }
  lua_pushboolean(L, rt->debug);
  lua_pushnumber(L, rt->famine);
  return 2;
}

/* Stack: tide table, private table, runtime userdata. */
int tide__opendebug (lua_State *L) {
  tide_Runtime *rt = lua_touserdata(L, -1);
  const char *env = getenv("TIDE_DEBUG");
  rt->famine = 0.1;
  rt->debug = env != NULL && *env != '\0' && strcmp(env, "0") != 0;
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, debug_set, 1);
  lua_setfield(L, -4, "debug");
  return 0;
}
