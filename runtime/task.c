/*
** task.c: the Task object: await, cancel, done, result, on_done, state,
** traceback, <close>; and the tide.Cancelled error raised at await points.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tide_int.h"

static Task *checktask (lua_State *L, int i);

static int task_cancel (lua_State *L) {
  Task *t = checktask(L, 1);
  if (!lua_isnoneornil(L, 2) && t->state != T_DONE && !t->cancelreq) {
    tide__checkstring(L, 2);
    tide__pushcancelled(L, t);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "message");
    lua_pop(L, 1);
  }
  lua_pushboolean(L, tide__cancel(t));
  return 1;
}

/* ---- Task methods ---------------------------------------------------------- */

Task *tide__checktask (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_TASK);
}

/* As tide__checktask, with one comparison against the runtime's Task
** metatable where luaL_testudata looks the metatable up by its name. */
Task *tide__totask (tide_Runtime *rt, lua_State *L, int i) {
  Task *t = lua_touserdata(L, i);
  if (t != NULL && lua_getmetatable(L, i)) {
    const void *mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    if (mt == rt->taskmt) return t;
  }
  return tide__checktask(L, i);
}

void tide__pushextras (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_getiuservalue(L, idx, 1) == LUA_TTABLE) return;
  lua_createtable(L, 3, 0);        /* thread, extras */
  lua_rotate(L, -2, 1);
  lua_rawseti(L, -2, TIDE_EXCO);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, 1);
}

/* The Task at i for its methods, which have the runtime as upvalue 1. */
static Task *checktask (lua_State *L, int i) {
  return tide__totask(tide__rt(L), L, i);
}

/* Push the results of an ended task, or raise its error. */
static int task_results (lua_State *L, Task *t) {
  lua_State *co = t->co;
  int i;
  tide__observed(t);
  if (t->failed) {
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
    return lua_error(L);
  }
  luaL_checkstack(L, t->nres, "too many results");
  if (!lua_checkstack(co, t->nres))  /* raises here, not on co */
    return luaL_error(L, "too many results");
  for (i = 1; i <= t->nres; i++)
    lua_pushvalue(co, i);
  lua_xmove(co, L, t->nres);
  return t->nres;
}

static void unlink_awaiter (Task *me) {
  Task *t = tide__task(me->w.data), **p = &t->awaiters;
  while (*p != NULL && *p != me) p = &(*p)->link;
  if (*p) *p = me->link;
  me->link = NULL;
}

static void await_cancel (tide_Wait *w) {
  unlink_awaiter(tide__task(w));
  tide__cancel(w->data);           /* cancelling the awaiter cancels the task */
}

static void shieldawait_cancel (tide_Wait *w) {
  unlink_awaiter(tide__task(w));
}

/* ctx: the awaited task, which stays at 1 */
static int await_done (lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return task_results(L, (Task *)ctx);
}

static int awaittask (lua_State *L, tide_CancelF cancel) {
  Task *t = checktask(L, 1), *me;
  tide_Wait *w;
  lua_settop(L, 1);
  if (t->rt->current == NULL) tide__waitbegin(t->rt, L);   /* raises */
  if (t->state == T_DONE) return task_results(L, t);
  w = tide__waitbegin(t->rt, L);
  me = tide__task(w);
  if (me == t)
    return tide__error(L, "%s: a task cannot await itself", tide__fname(L));
  me->link = t->awaiters;
  t->awaiters = me;
  return tide_awaitk(L, w, cancel, t, await_done, (lua_KContext)t);
}

static int task_await (lua_State *L) {
  return awaittask(L, await_cancel);
}

/* Await t; if the awaiting task is cancelled, t goes on. */
static int sched_shieldawait (lua_State *L) {
  return awaittask(L, shieldawait_cancel);
}

static int task_done (lua_State *L) {
  lua_pushboolean(L, checktask(L, 1)->state == T_DONE);
  return 1;
}

static int task_cancelled (lua_State *L) {
  lua_pushboolean(L, checktask(L, 1)->cancelled);
  return 1;
}

/* task:result() -> true, results... | false, err; raises if not done. */
static int task_result (lua_State *L) {
  Task *t = checktask(L, 1);
  lua_State *co = t->co;
  if (t->state != T_DONE)
    return tide__error(L, "%s: the task has not ended", tide__fname(L));
  tide__observed(t);
  lua_pushboolean(L, !t->failed);
  if (t->failed) {
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
    return 2;
  }
  return 1 + task_results(L, t);
}

/* task:on_done(fn): fn(task) once the task ends (now, if it has). */
static int task_on_done (lua_State *L) {
  Task *t = checktask(L, 1);
  tide__checktype(L, 2, LUA_TFUNCTION);
  if (t->state == T_DONE) {
    lua_State *cbL = t->rt->cbL;
    tide__observed(t);
    lua_settop(L, 2);
    lua_pushvalue(L, 1);
    lua_xmove(L, cbL, 2);          /* cbL: fn, task */
    tide__callback(t->rt, cbL);
    return 0;
  }
  tide__pushextras(L, 1);
  if (lua_rawgeti(L, -1, TIDE_EXCBS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, TIDE_EXCBS);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  t->hascbs = 1;
  return 0;
}

/* A task in a <close> variable is cancelled when the scope ends. */
static int task_close (lua_State *L) {
  tide__cancel(checktask(L, 1));
  return 0;
}

static const char *const statenames[] = {
  "pending", "ready", "running", "waiting", "done"
};

static const char *task_statename (Task *t) {
  if (t->state != T_DONE) return statenames[t->state];
  return t->cancelled ? "cancelled" : t->failed ? "failed" : "done";
}

static int task_tostring (lua_State *L) {
  Task *t = checktask(L, 1);
  lua_pushfstring(L, "tide.Task: %p (%s)", (void *)t, task_statename(t));
  return 1;
}

static int task_state (lua_State *L) {
  lua_pushstring(L, task_statename(checktask(L, 1)));
  return 1;
}

/* task:traceback([msg]) -> where the task is (waits), as debug.traceback */
static int task_traceback (lua_State *L) {
  Task *t = checktask(L, 1);
  const char *msg = tide__optstring(L, 2, NULL);
  if (t->state == T_DONE || t->co == NULL) {
    lua_pushstring(L, msg ? msg : "stack traceback:\n\t(the task has ended)");
    return 1;
  }
  luaL_traceback(L, t->co, msg, 0);
  return 1;
}

void tide__pushresult (lua_State *L, Task *t) {
  int n = task_results(L, t);
  (void)n;
}
static const luaL_Reg task_methods[] = {
  {"await", task_await},
  {"cancel", task_cancel},
  {"done", task_done},
  {"cancelled", task_cancelled},
  {"result", task_result},
  {"on_done", task_on_done},
  {"state", task_state},
  {"traceback", task_traceback},
  {NULL, NULL}
};

static const luaL_Reg task_meta[] = {
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg task_meta_rt[] = {   /* runtime as upvalue 1 */
  {"__close", task_close},
  {"__tostring", task_tostring},
  {NULL, NULL}
};

/* tide.tasks() -> a list of the tasks that have not ended. */
static int cancelled_tostring (lua_State *L) {
  tide__checkclass(L, 1, TIDE_CANCELLED);
  lua_getfield(L, 1, "message");
  if (lua_isstring(L, -1))
    lua_pushfstring(L, "cancelled: %s", lua_tostring(L, -1));
  else
    lua_pushliteral(L, "cancelled");
  return 1;
}


/* Stack: tide table, private table, runtime userdata. Sets private.Task
** (the metatable), private.shieldawait and tide.Cancelled. */
int tide__opentask (lua_State *L) {
  tide_Runtime *rt = lua_touserdata(L, -1);
  /* filled by every open: a failed one may have left it half done */
  luaL_newmetatable(L, TIDE_TASK);
  luaL_setfuncs(L, task_meta, 0);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, task_meta_rt, 1);
  luaL_newlibtable(L, task_methods);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, task_methods, 1);
  lua_setfield(L, -2, "__index");
  rt->taskmt = lua_topointer(L, -1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
  lua_pushvalue(L, -2);            /* at hand for spawn (the live array */
  lua_setmetatable(L, -2);         /* is only used raw) */
  lua_pop(L, 1);
  lua_setfield(L, -3, "Task");
  /* filled by every open: a failed one may have left it half done */
  luaL_newmetatable(L, TIDE_CANCELLED);
  lua_pushcfunction(L, cancelled_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, TIDE_CANCELLED);
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -4, "Cancelled");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, sched_shieldawait, 1);
  lua_setfield(L, -3, "shieldawait");
  return 0;
}
