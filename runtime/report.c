/*
** report.c: what tide tells about tasks on stderr: an error's traceback,
** the errors nobody observed, and the tasks stuck in a deadlock.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tide_int.h"

/* Around every report: the prompt clears its line, then redraws it. */
static void begin_report (tide_Runtime *rt) {
  if (rt->aroundreport) rt->aroundreport(0);
}

static void end_report (tide_Runtime *rt) {
  fflush(stderr);
  if (rt->aroundreport) rt->aroundreport(1);
}

/* Is the value at idx a tide.Cancelled error? */
int tide__israised (lua_State *L, int idx) {
  int r;
  if (!lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, TIDE_CANCELLED);
  r = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return r;
}

static int calltostring (lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* Push "msg\nstack traceback:..." for the error on top of co, as lua.c's
** message handler does for the main chunk. co is dead (no call may run on
** it): a __tostring runs on L, in a protected call. */
void tide__pushtraceback (lua_State *L, lua_State *co) {
  const char *msg = lua_tostring(co, -1);
  if (msg == NULL) {
    int top = lua_gettop(L);
    lua_pushcfunction(L, calltostring);
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    if (luaL_getmetafield(L, -1, "__tostring") != LUA_TNIL &&
        (lua_pop(L, 1), lua_pcall(L, 1, 1, 0) == LUA_OK) &&
        lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(co, -1));
    luaL_traceback(L, co, msg, 0);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return;
  }
  luaL_traceback(L, co, msg, 0);
}

/* Nothing can wake the tasks that are left: show where each one waits. */
void tide__reportstuck (tide_Runtime *rt) {
  lua_State *L = rt->cbL;
  uint32_t i;
  begin_report(rt);
  fprintf(stderr, "tide: deadlock: %u task%s waiting and nothing left that "
          "could wake %s\n", (unsigned)rt->nlive, rt->nlive == 1 ? "" : "s",
          rt->nlive == 1 ? "it" : "them");
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
  for (i = 1; i <= rt->nlive; i++) {
    Task *t;
    const char *name;
    lua_rawgeti(L, -1, i);
    t = lua_touserdata(L, -1);
    name = luaL_tolstring(L, -1, NULL);
    luaL_traceback(L, t->co, NULL, 0);
    fprintf(stderr, "%s is stuck; %s\n", name, lua_tostring(L, -1));
    lua_pop(L, 3);
  }
  lua_pop(L, 1);
  end_report(rt);
}


/* ---- Errors nobody observed ----------------------------------------------
** A task that ends with an error (not its own cancellation) that no awaiter,
** on_done callback or combinator takes is kept on a list; once the loop has
** run every task that was ready, what is still unobserved is reported with
** its traceback, as Node.js reports an unhandled rejection at the end of the
** turn. Observing it later (await, result, on_done) still gives the error. */

static void prepare_cb (uv_prepare_t *h) {
  tide_Runtime *rt = h->data;
  if (rt->rcount == 0) tide__reportfailed(rt);
}

void tide__initreport (tide_Runtime *rt) {
  uv_prepare_init(rt->loop, &rt->prepare);
  rt->prepare.data = rt;
  rt->failedtail = &rt->failed;
}

/* t (its Task object at the top of L) ended with an error: keep it until
** the report. */
void tide__failed (tide_Runtime *rt, lua_State *L, Task *t) {
  if (t->retrieved || t->cancelled || t->main) return;
  if (rt->failedref == 0) {
    lua_newtable(L);
    rt->failedref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->failedref);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, t);
  lua_pop(L, 1);
  t->link = NULL;
  *rt->failedtail = t;
  rt->failedtail = &t->link;
  if (rt->failed == t && !rt->closing)
    uv_prepare_start(&rt->prepare, prepare_cb);
}

/* Its result or error is being looked at. */
void tide__observed (Task *t) {
  if (t->reported && !t->retrieved) t->rt->nunobserved--;
  t->retrieved = 1;
}

/* Report the errors on the list that are still unobserved. */
void tide__reportfailed (tide_Runtime *rt) {
  lua_State *L = rt->cbL;
  Task *t = rt->failed;
  if (t == NULL) return;
  rt->failed = NULL;
  rt->failedtail = &rt->failed;
  uv_prepare_stop(&rt->prepare);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->failedref);
  while (t != NULL) {
    Task *next = t->link;
    t->link = NULL;
    if (!t->retrieved) {
      const char *tb = lua_tostring(t->co, 2);
      t->reported = 1;
      rt->nunobserved++;
      begin_report(rt);
      fprintf(stderr, "tide: error in a task nobody awaited: %s\n",
              tb ? tb : "?");
      end_report(rt);
    }
    lua_pushnil(L);
    lua_rawsetp(L, -2, t);
    t = next;
  }
  lua_pop(L, 1);
}

/* The state closes with tasks that never started (spawned after tide.run
** returned, in stock Lua): say so, naming where each function was
** defined, rather than drop them silently. */
void tide__reportleft (tide_Runtime *rt) {
  lua_State *L = rt->cbL;
  uint32_t i;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
  for (i = 1; i <= rt->nlive; i++) {
    Task *t;
    lua_Debug ar;
    lua_rawgeti(L, -1, i);
    t = lua_touserdata(L, -1);
    if (t->state == T_NEW) {       /* its function is at the bottom of co */
      lua_pushvalue(t->co, 1);
      lua_xmove(t->co, L, 1);
      lua_getinfo(L, ">S", &ar);
      begin_report(rt);
      fprintf(stderr, "tide: %s never started (function at %s:%d): the "
              "loop did not run again before the runtime closed\n",
              luaL_tolstring(L, -1, NULL), ar.short_src, ar.linedefined);
      end_report(rt);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}
