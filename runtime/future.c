/*
** future.c: the Future object (tide.Future()): a value that some code sets
** and tasks wait for, the bridge from callback code (on_done callbacks, a
** C library's callbacks through tide.h) to tasks; and its C side.
*/
#include <string.h>

#include "tide_int.h"

/* User values: the outcome (a table of the results, or the error: nil for
** a cancellation whose Cancelled object is made when first asked for), and
** the on_done callbacks (a list), or nil. */
enum { FU_VALUE = 1, FU_CBS, FU_NUV = FU_CBS };

static tide_Future *checkfuture (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_FUTURE);
}

tide_Future *tide__tofuture (lua_State *L, int i) {
  return luaL_testudata(L, i, TIDE_FUTURE);
}

/* Its result or error is being looked at. */
void tide__futureobserved (tide_Future *f) {
  if (f->reported && !f->retrieved) f->rt->nunobserved--;
  f->retrieved = 1;
}

/* Push the error of the failed future at idx (its Cancelled object made,
** and kept, on first use). */
static void pusherror (lua_State *L, int idx, tide_Future *f) {
  idx = lua_absindex(L, idx);
  if (lua_getiuservalue(L, idx, FU_VALUE) == LUA_TNIL && f->cancelled) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    luaL_setmetatable(L, TIDE_CANCELLED);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, FU_VALUE);
  }
}

/* Push the results of the done future at idx, or raise its error. */
static int results (lua_State *L, int idx, tide_Future *f) {
  int i;
  tide__futureobserved(f);
  if (f->failed) {
    pusherror(L, idx, f);
    return lua_error(L);
  }
  luaL_checkstack(L, f->nres + 1, "too many results");
  lua_getiuservalue(L, idx, FU_VALUE);
  for (i = 1; i <= f->nres; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -(f->nres + 1));
  return f->nres;
}

/* ---- Settling ------------------------------------------------------------
** The outcome is in place (user value, flags): wake the tasks in await()
** through the ready queue, queue it in the watches on it, run its on_done
** callbacks (outside any task, errors reported), and keep a failure that
** nobody may look at for the report (report.c). Allocates only in
** protected calls; L is any thread of the runtime's state. */

/* (future): anchor it in the runtime's table of failed objects. */
static int anchor (lua_State *L) {
  tide_Future *f = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->rt->failedref);
  lua_pushvalue(L, 1);
  lua_rawsetp(L, -2, f);
  return 0;
}

/* The callbacks run on the runtime's thread for them, as a task's do (on
** L's if there is no memory to move the future there). */
static void run_callbacks (lua_State *L, int idx, tide_Future *f) {
  lua_State *C = f->rt->cbL;
  lua_Integer i, n;
  if (C != L && lua_checkstack(C, 4)) {
    lua_pushvalue(L, idx);
    lua_xmove(L, C, 1);
    idx = lua_gettop(C);
  }
  else C = L;
  lua_getiuservalue(C, idx, FU_CBS);
  lua_pushnil(C);
  lua_setiuservalue(C, idx, FU_CBS);
  f->hascbs = 0;
  n = (lua_Integer)lua_rawlen(C, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(C, -1, i);
    lua_pushvalue(C, idx);
    tide__callback(f->rt, C);
  }
  lua_pop(C, C == L ? 1 : 2);
}

static void settle (lua_State *L, int idx, tide_Future *f) {
  tide_Runtime *rt = f->rt;
  Task *a = NULL, *b = f->awaiters;
  idx = lua_absindex(L, idx);
  f->done = 1;
  f->awaiters = NULL;
  while (b != NULL) {              /* latest first: woken in their order */
    Task *next = b->link;
    b->link = a;
    a = b;
    b = next;
  }
  if (a != NULL) tide__futureobserved(f);
  rt->depth++;                     /* through the ready queue, never now */
  while (a != NULL) {
    Task *next = a->link;
    a->link = NULL;
    tide_wake(&a->w, 0);
    a = next;
  }
  rt->depth--;
  if (f->watchers) tide__futurewatched(f);
  if (f->hascbs) {
    tide__futureobserved(f);
    run_callbacks(L, idx, f);
  }
  if (!f->failed || f->cancelled || f->retrieved) return;
  lua_pushcfunction(L, anchor);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {   /* no memory to keep it: */
    lua_pop(L, 1);                         /* report it now */
    lua_getiuservalue(L, idx, FU_VALUE);
    tide__futurefailed(rt, f, L, -1);
    lua_pop(L, 1);
  }
  else
    tide__futurefailed(rt, f, NULL, 0);
}

/* Cancel the pending future at idx; its Cancelled object (nil: made when
** asked for) is on top, popped. */
static void cancel (lua_State *L, int idx, tide_Future *f) {
  idx = lua_absindex(L, idx);
  lua_setiuservalue(L, idx, FU_VALUE);
  f->failed = f->cancelled = 1;
  settle(L, idx, f);
}

static int checkpending (lua_State *L, tide_Future *f) {
  if (f->done)
    return tide__error(L, "%s: the future is already %s", tide__fname(L),
                       f->cancelled ? "cancelled" : "done");
  return 0;
}

/* ---- Methods ------------------------------------------------------------- */

/* f:set_result(...): done, with those results. */
static int future_set_result (lua_State *L) {
  tide_Future *f = checkfuture(L, 1);
  int i, n = lua_gettop(L) - 1;
  checkpending(L, f);
  lua_createtable(L, n, 0);
  lua_insert(L, 2);
  for (i = n; i >= 1; i--)
    lua_rawseti(L, 2, i);
  lua_setiuservalue(L, 1, FU_VALUE);
  f->nres = n;
  settle(L, 1, f);
  return 0;
}

/* f:set_error(err): done, with that error (any value but nil). */
static int future_set_error (lua_State *L) {
  tide_Future *f = checkfuture(L, 1);
  checkpending(L, f);
  if (lua_isnoneornil(L, 2))
    return tide__argerror(L, 2, "error value expected");
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, FU_VALUE);
  f->failed = 1;
  settle(L, 1, f);
  return 0;
}

/* f:cancel([msg]) -> true if it was pending (it is now cancelled) */
static int future_cancel (lua_State *L) {
  tide_Future *f = checkfuture(L, 1);
  if (!lua_isnoneornil(L, 2)) tide__checkstring(L, 2);
  if (f->done) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (lua_isnoneornil(L, 2))
    lua_pushnil(L);
  else {
    lua_createtable(L, 0, 1);
    luaL_setmetatable(L, TIDE_CANCELLED);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "message");
  }
  cancel(L, 1, f);
  lua_pushboolean(L, 1);
  return 1;
}

static int future_done (lua_State *L) {
  lua_pushboolean(L, checkfuture(L, 1)->done);
  return 1;
}

static int future_cancelled (lua_State *L) {
  lua_pushboolean(L, checkfuture(L, 1)->cancelled);
  return 1;
}

/* f:result() -> true, results... | false, err (as task:result()); raises
** if it is not done. */
static int future_result (lua_State *L) {
  tide_Future *f = checkfuture(L, 1);
  lua_settop(L, 1);
  if (!f->done)
    return tide__error(L, "%s: the future is not done", tide__fname(L));
  tide__futureobserved(f);
  lua_pushboolean(L, !f->failed);
  if (f->failed) {
    pusherror(L, 1, f);
    return 2;
  }
  return 1 + results(L, 1, f);
}

static void unlink_awaiter (tide_Wait *w) {
  tide_Future *f = tide_waitdata(w);
  Task *me = tide__task(w), **p = &f->awaiters;
  while (*p != NULL && *p != me) p = &(*p)->link;
  if (*p) *p = me->link;
  me->link = NULL;
}

/* ctx: the future, at 1. status LUA_ERRRUN: the awaiting task was
** cancelled (see tide__awaitkc): so is the future, as in asyncio. */
static int await_done (lua_State *L, int status, lua_KContext ctx) {
  tide_Future *f = (tide_Future *)ctx;
  f->rt->current->kcancel = 0;
  if (status != LUA_YIELD) {
    if (!f->done) {
      lua_pushnil(L);
      cancel(L, 1, f);
    }
    return tide__raisecancelled(L, f->rt->current);
  }
  return results(L, 1, f);
}

static int awaitfuture (lua_State *L, int shielded) {
  tide_Future *f = checkfuture(L, 1);
  tide_Wait *w;
  Task *me;
  lua_settop(L, 1);
  if (f->rt == NULL || f->rt->current == NULL)
    tide__waitbegin(f->rt, L);     /* raises, done or not, as Task:await */
  if (f->done) return results(L, 1, f);
  w = tide__waitbegin(f->rt, L);
  me = tide__task(w);
  me->link = f->awaiters;
  f->awaiters = me;
  if (shielded)
    return tide_awaitk(L, w, unlink_awaiter, f, await_done, (lua_KContext)f);
  return tide__awaitkc(L, w, unlink_awaiter, f, await_done, (lua_KContext)f);
}

/* f:await() -> its results, waiting for them; raises its error. If the
** awaiting task is cancelled, the future is cancelled too. Outside any task
** it raises, even when f is done (f:result() is for that). */
static int future_await (lua_State *L) {
  return awaitfuture(L, 0);
}

static int future_shieldawait (lua_State *L) {
  return awaitfuture(L, 1);
}

/* f:on_done(fn): fn(f) once it is done (now, if it is). */
static int future_on_done (lua_State *L) {
  tide_Future *f = checkfuture(L, 1);
  tide__checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  if (f->done) {
    tide__futureobserved(f);
    lua_pushvalue(L, 1);
    tide__callback(f->rt, L);
    return 0;
  }
  if (lua_getiuservalue(L, 1, FU_CBS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, FU_CBS);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  f->hascbs = 1;
  return 0;
}

static const char *statename (tide_Future *f) {
  if (!f->done) return "pending";
  return f->cancelled ? "cancelled" : f->failed ? "failed" : "done";
}

/* f:state() -> "pending", "done", "failed" or "cancelled" */
static int future_state (lua_State *L) {
  lua_pushstring(L, statename(checkfuture(L, 1)));
  return 1;
}

static int future_tostring (lua_State *L) {
  tide_Future *f = checkfuture(L, 1);
  lua_pushfstring(L, "tide.Future: %p (%s)", (void *)f, statename(f));
  return 1;
}

/* A future in a <close> variable is cancelled when the scope ends. */
static int future_close (lua_State *L) {
  tide_Future *f = checkfuture(L, 1);
  if (!f->done) {
    lua_pushnil(L);
    cancel(L, 1, f);
  }
  return 0;
}

static void pushmeta (lua_State *L);

static tide_Future *newfuture (lua_State *L, tide_Runtime *rt) {
  tide_Future *f = lua_newuserdatauv(L, sizeof *f, FU_NUV);
  memset(f, 0, sizeof *f);
  f->rt = rt;
  f->ref = LUA_NOREF;
  pushmeta(L);
  lua_setmetatable(L, -2);
  return f;
}

/* tide.Future() -> a pending future */
static int future_new (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  if (rt->closing)
    return tide__error(L, "%s: the tide runtime is closed", tide__fname(L));
  newfuture(L, rt);
  return 1;
}

/* ---- The C side (tide.h) ------------------------------------------------- */

TIDE_API tide_Future *tide_newfuture (lua_State *L) {
  tide_Runtime *rt = tide_runtime(L);
  tide_Future *f;
  if (rt == NULL || rt->closing)
    luaL_error(L, "tide_newfuture: no open tide runtime");
  f = newfuture(L, rt);
  lua_pushvalue(L, -1);
  f->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return f;
}

TIDE_API int tide_futuredone (tide_Future *f) {
  return f->done;
}

/* Push the held future and drop the hold (nothing is allocated). */
static void unhold (lua_State *L, tide_Future *f) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->ref);
  luaL_unref(L, LUA_REGISTRYINDEX, f->ref);
  f->ref = LUA_NOREF;
}

TIDE_API void tide_releasefuture (tide_Future *f) {
  lua_State *L = f->rt->cbL;
  if (f->ref == LUA_NOREF) return;
  unhold(L, f);
  lua_pop(L, 1);
}

/* (future, push, ud, iserror): the values push(ud) returns become the
** outcome, not yet settled */
static int setfromc (lua_State *L) {
  tide_Future *f = lua_touserdata(L, 1);
  int iserror = lua_toboolean(L, 4), i, n;
  lua_rotate(L, 2, -1);            /* future, ud, iserror, push */
  lua_pushvalue(L, 2);
  lua_call(L, 1, LUA_MULTRET);
  n = lua_gettop(L) - 3;
  if (iserror) {
    lua_settop(L, 4);              /* its first value (nil: none) */
    if (lua_isnil(L, 4)) lua_pushliteral(L, "error");
    lua_setiuservalue(L, 1, FU_VALUE);
    f->failed = 1;
    return 0;
  }
  lua_createtable(L, n, 0);
  lua_insert(L, 4);
  for (i = n; i >= 1; i--)
    lua_rawseti(L, 4, i);
  lua_setiuservalue(L, 1, FU_VALUE);
  f->nres = n;
  return 0;
}

static int setc (tide_Future *f, lua_CFunction push, void *ud, int iserror) {
  tide_Runtime *rt = f->rt;
  lua_State *L = rt->cbL;
  int top = lua_gettop(L), ok = 0;
  if (f->ref == LUA_NOREF) return 0;   /* set or released already */
  unhold(L, f);
  if (!f->done && !rt->closing) {
    lua_pushcfunction(L, setfromc);
    lua_pushvalue(L, top + 1);
    lua_pushcfunction(L, push);
    lua_pushlightuserdata(L, ud);
    lua_pushboolean(L, iserror);
    ok = lua_pcall(L, 4, 0, 0) == LUA_OK;
    if (!ok) {                     /* it fails with push's error */
      lua_setiuservalue(L, top + 1, FU_VALUE);
      f->failed = 1;
    }
    settle(L, top + 1, f);
  }
  lua_settop(L, top);
  return ok;
}

TIDE_API int tide_setresult (tide_Future *f, lua_CFunction push, void *ud) {
  return setc(f, push, ud, 0);
}

TIDE_API int tide_seterror (tide_Future *f, lua_CFunction push, void *ud) {
  return setc(f, push, ud, 1);
}

/* ---- Opening ------------------------------------------------------------- */

static const luaL_Reg future_methods[] = {
  {"set_result", future_set_result},
  {"set_error", future_set_error},
  {"cancel", future_cancel},
  {"done", future_done},
  {"cancelled", future_cancelled},
  {"result", future_result},
  {"await", future_await},
  {"on_done", future_on_done},
  {"state", future_state},
  {NULL, NULL}
};

static const luaL_Reg future_meta[] = {
  {"__index", NULL},
  {"__close", future_close},
  {"__tostring", future_tostring},
  {NULL, NULL}
};

/* Push the metatable of futures, made on first use (by tide.lua, which
** opens it when the library written in Lua first runs, or by
** tide_newfuture), so that a program that uses neither pays nothing. */
static void pushmeta (lua_State *L) {
  if (!luaL_newmetatable(L, TIDE_FUTURE)) return;
  luaL_setfuncs(L, future_meta, 0);
  luaL_newlibtable(L, future_methods);
  luaL_setfuncs(L, future_methods, 0);
  lua_setfield(L, -2, "__index");
}

/* private openfuture() -> tide.Future (the constructor), the metatable,
** fshieldawait(f) (await f; if the caller is cancelled, f goes on) */
static int future_open (lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, future_new, 1);
  pushmeta(L);
  lua_pushcfunction(L, future_shieldawait);
  return 3;
}

/* Stack: tide table, private table, runtime userdata. Sets
** private.openfuture. */
int tide__openfuture (lua_State *L) {
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, future_open, 1);
  lua_setfield(L, -3, "openfuture");
  return 0;
}
