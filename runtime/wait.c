/*
** wait.c: the wait/wake protocol every awaitable function uses (tide_wait,
** tide_await, tide_wake), cancellation of a task's wait, and the Lua-side
** waits the library written in Lua builds on (token, wake, shield).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tide_int.h"

char tide__luawait;

/* Push the Cancelled object of task t (made on first use, with the message
** given to cancel()). */
void tide__pushcancelled (lua_State *L, Task *t) {
  tide__pushtask(L, t);
  tide__pushextras(L, -1);
  if (lua_rawgeti(L, -1, TIDE_EXCANCEL) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    luaL_setmetatable(L, TIDE_CANCELLED);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, TIDE_EXCANCEL);
  }
  lua_replace(L, -3);
  lua_pop(L, 1);
}

int tide__raisecancelled (lua_State *L, Task *t) {
  tide__pushcancelled(L, t);
  return lua_error(L);
}

/* ---- The wait/wake protocol ---------------------------------------------- */

tide_Wait *tide__waitbegin (tide_Runtime *rt, lua_State *L) {
  Task *t = rt ? rt->current : NULL;
  if (t == NULL)
    tide__error(L, "'%s' must be called inside a task "
                  "(use tide.run or tide.spawn)", tide__fname(L));
  if (rt->closing)
    tide__error(L, "'%s': the tide runtime is closed", tide__fname(L));
  if (!lua_isyieldable(L))
    tide__error(L, "'%s' cannot wait inside a C call such as table.sort, "
                  "string.gsub or require, nor in a __close run by an "
                  "error or a cancellation", tide__fname(L));
  if (t->cancelreq && !t->shield)
    tide__raisecancelled(L, t);
  t->w.L = L;
  t->w.nres = 0;
  return &t->w;
}

TIDE_API tide_Wait *tide_wait (lua_State *L) {
  return tide__waitbegin(tide_runtime(L), L);
}

static int await_k (lua_State *L, int status, lua_KContext ctx) {
  tide_Wait *w = (tide_Wait *)ctx;
  Task *t = tide__task(w);
  (void)status;
  if (t->interrupted) {
    unsigned kcancel = t->kcancel;   /* else k clears it */
    t->kcancel = 0;
    t->interrupted = 0;
    if (t->badwait) {
      t->badwait = 0;
      return luaL_error(L, "cannot wait in a coroutine resumed inside a C "
                           "call such as table.sort or string.gsub");
    }
    if (t->wakeerr) {              /* tide_wakewith's push raised */
      t->wakeerr = 0;
      if (lua_gettop(L) > w->base) return lua_error(L);
      return tide__nomem(L);
    }
    if (kcancel) return w->k(L, LUA_ERRRUN, w->ctx);  /* it raises */
    return tide__raisecancelled(L, t);
  }
  if (w->k) return w->k(L, LUA_YIELD, w->ctx);
  return lua_gettop(L) - w->base;
}

TIDE_API int tide_awaitk (lua_State *L, tide_Wait *w, tide_CancelF cancel,
                          void *data, lua_KFunction k, lua_KContext ctx) {
  w->cancel = cancel;
  w->data = data;
  w->k = k;
  w->ctx = ctx;
  w->base = lua_gettop(L);
  w->yielder = L;
  tide__task(w)->state = T_WAITING;
  return lua_yieldk(L, 0, (lua_KContext)w, await_k);
}

int tide__awaitkc (lua_State *L, tide_Wait *w, tide_CancelF cancel,
                   void *data, lua_KFunction k, lua_KContext ctx) {
  tide__task(w)->kcancel = 1;
  return tide_awaitk(L, w, cancel, data, k, ctx);
}

TIDE_API int tide_await (lua_State *L, tide_Wait *w, tide_CancelF cancel,
                         void *data) {
  return tide_awaitk(L, w, cancel, data, NULL, 0);
}

TIDE_API void *tide_waitdata (tide_Wait *w) { return w->data; }
TIDE_API lua_State *tide_thread (tide_Wait *w) { return w->L; }

TIDE_API void tide_wake (tide_Wait *w, int nres) {
  Task *t = tide__task(w);
  tide_Runtime *rt = t->rt;
  if (t->state != T_WAITING) {     /* not waiting any more: drop the values */
    lua_pop(w->L, nres);
    return;
  }
  w->nres = nres;
  w->cancel = NULL;
  if (tide__timed(t)) tide__heapremove(rt, t);
  t->gen++;
  t->state = T_READY;
  if (rt->depth > 0 || rt->closing)
    tide__enqueue(rt, t);
  else {                           /* from a libuv callback: resume now */
    tide__taskrun(rt, t);
    if (rt->rcount > 0) tide__runready(rt);
  }
}

/* Run push(ud) on cbL, protected; 1 and its values moved to w->L, else 0
** and its error (if there is room for it) on w->L. */
static int wake_values (tide_Runtime *rt, tide_Wait *w, lua_CFunction push,
                        void *ud, int *n) {
  lua_State *L = rt->cbL;
  int top = lua_gettop(L);
  lua_pushcfunction(L, push);
  lua_pushlightuserdata(L, ud);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) == LUA_OK) {
    *n = lua_gettop(L) - top;
    if (lua_checkstack(w->L, *n)) {
      lua_xmove(L, w->L, *n);
      return 1;
    }
    lua_settop(L, top);
    lua_pushliteral(L, "not enough memory");
  }
  *n = lua_checkstack(w->L, 1);    /* else await_k says it */
  lua_xmove(L, w->L, *n);
  lua_settop(L, top);
  return 0;
}

/* The task is queued, never run here: the caller may clean up after. */
TIDE_API int tide_wakewith (tide_Wait *w, lua_CFunction push, void *ud) {
  Task *t = tide__task(w);
  int n, ok;
  if (t->state != T_WAITING) return 0;
  ok = wake_values(t->rt, w, push, ud, &n);
  if (!ok) t->interrupted = t->wakeerr = 1;
  t->rt->depth++;
  tide_wake(w, n);
  t->rt->depth--;
  return ok;
}

/* ---- Cancellation -------------------------------------------------------- */

/* Cut the task's current wait: stop the operation, resume it to raise. */
void tide__interrupt (Task *t) {
  tide_CancelF cancel = t->w.cancel;
  t->w.cancel = NULL;
  t->interrupted = 1;
  if (cancel) cancel(&t->w);
  if (tide__timed(t)) tide__heapremove(t->rt, t);
  t->gen++;
  t->state = T_READY;
  tide__enqueue(t->rt, t);
}

/* Ask t to stop: its current or next wait raises tide.Cancelled (values
** already handed to it by a wake are still delivered first). Returns 0 if
** the task had already ended. */
int tide__cancel (Task *t) {
  if (t->state == T_DONE) return 0;
  t->cancelreq = 1;
  if (t->state == T_WAITING && !t->shield) tide__interrupt(t);
  return 1;
}

/* ---- Lua-side waits: what the library written in Lua builds on ----------
** token() -> task, gen    names the wait the calling task is about to do
** suspend([s])            (timer.c) waits until wake(task, gen, ...) and
**                         returns ..., or returns nothing after s seconds
** wake(task, gen, ...)    -> true if the task was still in that wait
** shield(delta)           holds back (or releases) the caller's cancellation
** canwait()               whether the caller may wait (see below)
*/

/* Each token is a new generation: an entry left by a wait that ran out of
** memory before it suspended never matches a later wait. */
static int sched_token (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  if (rt->current == NULL)
    return tide__error(L, "'%s' must be called inside a task "
                          "(use tide.run or tide.spawn)", tide__fname(L));
  tide__pushtask(L, rt->current);
  lua_pushinteger(L, ++rt->current->gen);
  return 2;
}

static int sched_wake (lua_State *L) {
  Task *t = tide__totask(tide__rt(L), L, 1);
  lua_Integer gen = luaL_checkinteger(L, 2);
  int n = lua_gettop(L) - 2;
  if (t->state != T_WAITING || t->gen != (uint32_t)gen ||
      t->w.data != TIDE_LUAWAIT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (!lua_checkstack(t->w.L, n))
    return luaL_error(L, "too many values to wake");
  lua_xmove(L, t->w.L, n);
  t->rt->depth++;                  /* through the ready queue, never now: */
  tide_wake(&t->w, n);             /* the waker's Lua code goes on first */
  t->rt->depth--;
  lua_pushboolean(L, 1);
  return 1;
}

static int sched_shield (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  Task *t = rt->current;
  lua_Integer d = luaL_checkinteger(L, 1);
  if (t == NULL) return luaL_error(L, "shield: not inside a task");
  t->shield = (unsigned char)(t->shield + d);
  return 0;
}

/* canwait() -> whether the caller could wait here (not inside a C call
** such as table.sort) */
static int sched_canwait (lua_State *L) {
  lua_pushboolean(L, lua_isyieldable(L));
  return 1;
}

static const luaL_Reg wait_private[] = {
  {"canwait", sched_canwait},
  {"token", sched_token},
  {"wake", sched_wake},
  {"shield", sched_shield},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. */
int tide__openwait (lua_State *L) {
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, wait_private, 1);
  lua_pop(L, 1);
  return 0;
}
