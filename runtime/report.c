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

/* (error, co) -> "msg\nstack traceback:..." for co's error, as lua.c's
** message handler makes it for the main chunk. co is dead (no call may run
** on it): a __tostring runs here, in a protected call. */
static int traceback (lua_State *L) {
  lua_State *co = lua_touserdata(L, 2);
  const char *msg;
  lua_pushvalue(L, 1);
  msg = lua_tostring(L, -1);
  if (msg == NULL) {
    lua_pushcfunction(L, calltostring);
    lua_pushvalue(L, 1);
    if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL &&
        (lua_pop(L, 1), lua_pcall(L, 1, 1, 0) == LUA_OK) &&
        lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(L, 1));
  }
  luaL_traceback(L, co, msg, tide__tracelevel(co, 0));
  return 1;
}

/* Push the traceback of co's error (on top of L), or nil when there is no
** memory to make it; never raises. */
void tide__pushtraceback (lua_State *L, lua_State *co) {
  lua_pushcfunction(L, traceback);
  lua_pushvalue(L, -2);
  lua_pushlightuserdata(L, co);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

/* The value at idx as a message for stderr: a string, what luaL_tolstring
** makes of it (in a protected call), else its type in buf. Pushes one
** value (which the result may point into); never raises. */
const char *tide__errstring (lua_State *L, int idx, char *buf, size_t size) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    lua_pushvalue(L, idx);
    return lua_tostring(L, -1);
  }
  lua_pushcfunction(L, calltostring);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
    return lua_tostring(L, -1);
  snprintf(buf, size, "(error object is a %s value)", luaL_typename(L, idx));
  return buf;
}

/* (task) -> "<task> is stuck; stack traceback:..." */
static int stuck (lua_State *L) {
  Task *t = lua_touserdata(L, 1);
  tide__pushtask(L, t);
  luaL_tolstring(L, -1, NULL);
  luaL_traceback(L, t->co, NULL, 0);
  lua_pushfstring(L, "%s is stuck; %s", lua_tostring(L, -2),
                  lua_tostring(L, -1));
  return 1;
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
    lua_rawgeti(L, -1, i);
    t = lua_touserdata(L, -1);
    lua_pop(L, 1);                 /* the live array keeps it */
    if (tide__pcall(rt, stuck, t, 1) == LUA_OK)
      fprintf(stderr, "%s\n", lua_tostring(L, -1));
    else
      fprintf(stderr, "a task is stuck (no memory left to tell where)\n");
    lua_pop(L, 1);
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

/* Report t's error, with its traceback if there was memory to make it. */
static void report_one (tide_Runtime *rt, Task *t) {
  lua_State *co = t->co;
  char buf[64];
  const char *msg = lua_type(co, 2) == LUA_TSTRING ? lua_tostring(co, 2)
                  : lua_type(co, 1) == LUA_TSTRING ? lua_tostring(co, 1)
                  : NULL;
  if (msg == NULL) {
    snprintf(buf, sizeof buf, "(error object is a %s value)",
             luaL_typename(co, 1));
    msg = buf;
  }
  t->reported = 1;
  rt->nunobserved++;
  begin_report(rt);
  fprintf(stderr, "tide: error in a task nobody awaited: %s\n", msg);
  end_report(rt);
}

/* (task): anchor it in the table of failed tasks. */
static int anchor (lua_State *L) {
  Task *t = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->rt->failedref);
  tide__pushtask(L, t);
  lua_rawsetp(L, -2, t);
  return 0;
}

/* t (still live) ended with an error: keep it until the report. With no
** memory left to keep it, it is reported now, while it is alive. */
void tide__failed (tide_Runtime *rt, Task *t) {
  if (t->retrieved || t->cancelled || t->main) return;
  if (tide__pcall(rt, anchor, t, 0) != LUA_OK) {
    lua_pop(rt->cbL, 1);
    report_one(rt, t);
    return;
  }
  t->link = NULL;
  *rt->failedtail = t;
  rt->failedtail = &t->link;
  if (rt->failed == t && rt->ffailed == NULL && !rt->closing)
    uv_prepare_start(&rt->prepare, prepare_cb);
}

/* Its result or error is being looked at. */
void tide__observed (Task *t) {
  if (t->reported && !t->retrieved) t->rt->nunobserved--;
  t->retrieved = 1;
}

/* ---- Errors in callbacks ------------------------------------------------
** An error raised in an on_done callback (sched.c) or a Protocol callback
** (bindings/transport.c) has nobody to observe it: it is reported at once
** and counted with the errors nobody observed, so the tide command exits 1
** as it does for a task's. */

/* The message handler for a callback: the error with the traceback of
** where it was raised (as a task's is reported); any other error value
** goes on as it is. */
int tide__tracebackh (lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) return 1;       /* reported through tide__errstring */
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Report the error on top of L (popped) of a callback, "what". */
void tide__callbackerror (tide_Runtime *rt, lua_State *L, const char *what) {
  char buf[64];
  const char *msg = tide__errstring(L, -1, buf, sizeof buf);
  rt->nunobserved++;
  begin_report(rt);
  fprintf(stderr, "tide: error in %s: %s\n", what, msg);
  end_report(rt);
  lua_pop(L, 2);                   /* the error and its string */
}

/* ---- Futures (future.c) that failed with nobody to look ---------------- */

/* Report the error of future f, the value at idx of L. */
static void report_future (tide_Runtime *rt, tide_Future *f, lua_State *L,
                           int idx) {
  char buf[64];
  const char *msg = tide__errstring(L, idx, buf, sizeof buf);
  f->reported = 1;
  rt->nunobserved++;
  begin_report(rt);
  fprintf(stderr, "tide: error in a future nobody awaited: %s\n", msg);
  end_report(rt);
  lua_pop(L, 1);
}

void tide__futurefailed (tide_Runtime *rt, tide_Future *f, lua_State *L,
                         int idx) {
  if (L != NULL) {
    report_future(rt, f, L, idx);
    return;
  }
  f->link = NULL;
  *rt->ffailedtail = f;
  rt->ffailedtail = &f->link;
  if (rt->ffailed == f && rt->failed == NULL && !rt->closing)
    uv_prepare_start(&rt->prepare, prepare_cb);
}

/* The futures' part of tide__reportfailed; L: the table of failed ones. */
static void report_futures (tide_Runtime *rt, lua_State *L) {
  tide_Future *f = rt->ffailed;
  rt->ffailed = NULL;
  rt->ffailedtail = &rt->ffailed;
  while (f != NULL) {
    tide_Future *next = f->link;
    f->link = NULL;
    lua_rawgetp(L, -1, f);
    if (!f->retrieved) {
      lua_getiuservalue(L, -1, 1);
      report_future(rt, f, L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawsetp(L, -2, f);
    f = next;
  }
}

/* Report the errors on the lists that are still unobserved. */
void tide__reportfailed (tide_Runtime *rt) {
  lua_State *L = rt->cbL;
  Task *t = rt->failed;
  if (t == NULL && rt->ffailed == NULL) return;
  rt->failed = NULL;
  rt->failedtail = &rt->failed;
  uv_prepare_stop(&rt->prepare);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->failedref);
  if (rt->ffailed != NULL) report_futures(rt, L);
  while (t != NULL) {
    Task *next = t->link;
    t->link = NULL;
    if (!t->retrieved) report_one(rt, t);
    lua_pushnil(L);
    lua_rawsetp(L, -2, t);
    t = next;
  }
  lua_pop(L, 1);
}

/* (task) -> what reportleft says of a task that never started: its
** function is at the bottom of its thread. */
static int neverstarted (lua_State *L) {
  Task *t = lua_touserdata(L, 1);
  lua_Debug ar;
  luaL_checkstack(t->co, 1, NULL);
  lua_pushvalue(t->co, 1);
  lua_xmove(t->co, L, 1);
  lua_getinfo(L, ">S", &ar);
  tide__pushtask(L, t);
  lua_pushfstring(L, "tide: %s never started (function at %s:%d): the loop "
                  "did not run again before the runtime closed",
                  luaL_tolstring(L, -1, NULL), ar.short_src, ar.linedefined);
  return 1;
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
    lua_rawgeti(L, -1, i);
    t = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (t->state != T_NEW) continue;
    if (tide__pcall(rt, neverstarted, t, 1) == LUA_OK) {
      begin_report(rt);
      fprintf(stderr, "%s\n", lua_tostring(L, -1));
      end_report(rt);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}
