/*
** coro.c: coroutine.resume and coroutine.wrap that let a task wait inside
** a coroutine it runs (a generator that reads a socket, say). When the
** coroutine suspends for tide, the wrapper suspends its own caller in turn,
** up to the task; when the task is woken, each wrapper resumes the
** coroutine below it. Other yields behave as in Lua's own library.
*/
#include <lualib.h>

#include "tide_int.h"

#define FORWARD (-2)

/* Is co suspended because the current task waits (not a plain yield)? */
static int waiting_in (tide_Runtime *rt, lua_State *co) {
  Task *t = rt->current;
  return t != NULL && t->state == T_WAITING && t->w.yielder == co;
}

/* The wait cannot pass through L (a C call boundary): cancel it and let
** the coroutine raise at its await point. */
static void refuse_wait (Task *t) {
  tide_CancelF cancel = t->w.cancel;
  t->w.cancel = NULL;
  if (cancel) cancel(&t->w);
  t->interrupted = 1;
  t->badwait = 1;
  t->gen++;
  t->state = T_RUNNING;
}

/* Resume co with the narg values on its stack: as lcorolib's auxresume,
** or FORWARD when co waits for tide. */
static int doresume (lua_State *L, tide_Runtime *rt, lua_State *co,
                     int narg) {
  int status, nres;
  for (;;) {
    status = lua_resume(co, L, narg, &nres);
    if (status != LUA_YIELD || !waiting_in(rt, co)) break;
    if (lua_isyieldable(L)) return FORWARD;
    refuse_wait(rt->current);
    narg = 0;
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

static int auxresume (lua_State *L, tide_Runtime *rt, lua_State *co,
                      int narg) {
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  lua_xmove(L, co, narg);
  return doresume(L, rt, co, narg);
}

/* Suspend L for the task's wait; k resumes co once the task is woken. */
static int forward (lua_State *L, tide_Runtime *rt, lua_KFunction k) {
  rt->current->w.yielder = L;
  return lua_yieldk(L, 0, 0, k);
}

/* Values the waker left on co for its wait, if co is the waiting thread. */
static int pending (tide_Runtime *rt, lua_State *co) {
  Task *t = rt->current;
  return t->w.L == co ? t->w.nres : 0;
}

static lua_State *getco (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "thread");
  return co;
}

static int resume_done (lua_State *L, int r) {
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int resume_k (lua_State *L, int status, lua_KContext ctx) {
  tide_Runtime *rt = tide__rt(L);
  lua_State *co = lua_tothread(L, 1);
  int r;
  (void)status; (void)ctx;
  lua_settop(L, 1);
  r = doresume(L, rt, co, pending(rt, co));
  if (r == FORWARD) return forward(L, rt, resume_k);
  return resume_done(L, r);
}

static int co_resume (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  lua_State *co = getco(L);
  int r = auxresume(L, rt, co, lua_gettop(L) - 1);
  if (r == FORWARD) {
    lua_settop(L, 1);
    return forward(L, rt, resume_k);
  }
  return resume_done(L, r);
}

/* A wrap function's resumption ended: return its values or raise, as
** lcorolib's auxwrap does. */
static int wrap_done (lua_State *L, lua_State *co, int r) {
  if (r < 0) {
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) {
      stat = lua_resetthread(co);
      lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}

static int wrap_k (lua_State *L, int status, lua_KContext ctx) {
  tide_Runtime *rt = tide__rt(L);
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  int r;
  (void)status; (void)ctx;
  lua_settop(L, 0);
  r = doresume(L, rt, co, pending(rt, co));
  if (r == FORWARD) return forward(L, rt, wrap_k);
  return wrap_done(L, co, r);
}

static int co_auxwrap (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  int r = auxresume(L, rt, co, lua_gettop(L));
  if (r == FORWARD) {
    lua_settop(L, 0);
    return forward(L, rt, wrap_k);
  }
  return wrap_done(L, co, r);
}

static int co_wrap (lua_State *L) {
  lua_State *NL;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));
  NL = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, NL, 1);
  lua_pushcclosure(L, co_auxwrap, 2);
  return 1;
}

/* Is co the thread of the running task: to Lua code, a main thread. */
static int istaskthread (lua_State *L, lua_State *co) {
  Task *t = tide__rt(L)->current;
  return t != NULL && t->co == co;
}

/* coroutine.yield: as Lua's, except that a task's own thread cannot yield
** (it has no resumer but the scheduler): raise where the yield is, as Lua
** does for its main thread, so that a pcall around it catches the error. */
static int co_yield (lua_State *L) {
  if (istaskthread(L, L)) {
    lua_pushliteral(L, "attempt to yield from outside a coroutine");
    return lua_error(L);
  }
  return lua_yield(L, lua_gettop(L));
}

/* coroutine.running() -> thread, ismain: a task's own thread counts as a
** main thread, as it cannot yield to Lua code. */
static int co_running (lua_State *L) {
  int ismain = lua_pushthread(L);
  lua_pushboolean(L, ismain || istaskthread(L, L));
  return 2;
}

/* coroutine.isyieldable([co]): false for a task's own thread, as for the
** main thread (tide's waits suspend it; coroutine.yield does not). */
static int co_isyieldable (lua_State *L) {
  lua_State *co = lua_isnone(L, 1) ? L : lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  lua_pushboolean(L, lua_isyieldable(co) && !istaskthread(L, co));
  return 1;
}

/* Replace coroutine.resume, wrap, yield, running and isyieldable.
** Stack: runtime userdata. */
int tide__opencoro (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"resume", co_resume},
    {"wrap", co_wrap},
    {"yield", co_yield},
    {"running", co_running},
    {"isyieldable", co_isyieldable},
    {NULL, NULL}
  };
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_COLIBNAME) == LUA_TTABLE) {
    lua_pushvalue(L, -3);
    luaL_setfuncs(L, funcs, 1);
  }
  lua_pop(L, 2);
  return 0;
}
