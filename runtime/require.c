/*
** require.c: Lua 5.4's require (loadlib.c's ll_require, step for step)
** in which a task can wait: a module whose main chunk sleeps or connects
** loads from a task, and a task that requires a module another task is
** loading waits for that load to end instead of running it again.
*/
#include <lualib.h>

#include "tide_int.h"

#define TIDE_LOAD "tide.Load"

/* A module being loaded by a task: the to-be-closed slot of that task's
** require, and the entry of the table of loads in progress under its
** name. User values: 1 that table, 2 the name. */
typedef struct Load {
  Task *owner;             /* the task running its searchers and loader */
  Task *waiters;           /* tasks waiting for the load to end (link) */
} Load;

#define RQ_RT       lua_upvalueindex(1)  /* the runtime userdata */
#define RQ_PACKAGE  lua_upvalueindex(2)  /* package, as ll_require's */
#define RQ_LOADING  lua_upvalueindex(3)  /* [name] = its Load */

/* The entries of all the tables of loads in the process: while it is 0,
** require of a loaded module takes a path as short as Lua's. (A state
** closed in the middle of a load leaves it above 0: only slower.) */
static int nloads;

/* require's stack: ll_require's first two slots, then its own. */
enum { S_NAME = 1, S_LOADED, S_GUARD, S_SEARCHERS, S_MSG };

/* Continuation contexts: the call that yielded (the low 2 bits); whether
** searchers and loader run so that they can wait (K_WAITS) and S_GUARD
** holds a Load (K_GUARD); above K_SHIFT, the searcher's index. */
enum { K_WAITED, K_SEARCHER, K_LOADER };
#define K_WAITS 4
#define K_GUARD 8
#define K_SHIFT 4

static int require_k (lua_State *L, int status, lua_KContext ctx);
static int tide_require (lua_State *L);

/* ---- Loads in progress -------------------------------------------------- */

/* __close of a Load, at the end of its require however it ends: it is no
** longer in progress, and the tasks waiting for it run require again. */
static int load_close (lua_State *L) {
  Load *ld = tide__checkudata(L, 1, TIDE_LOAD);
  ld->owner = NULL;
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, 1, 2);
  lua_pushvalue(L, -1);
  if (lua_rawget(L, -3) == LUA_TUSERDATA && lua_touserdata(L, -1) == ld) {
    lua_pop(L, 1);
    lua_pushnil(L);                /* removing a key never allocates */
    lua_rawset(L, -3);
    __atomic_sub_fetch(&nloads, 1, __ATOMIC_RELAXED);
  }
  tide__wakeall(&ld->waiters);     /* through the ready queue */
  return 0;
}

static void load_cancel (tide_Wait *w) {
  Load *ld = tide_waitdata(w);
  tide__waitlist_remove(&ld->waiters, w);
}

/* The owner of the load that task o waits for, or NULL. */
static Task *blocker (lua_State *L, Task *o) {
  lua_pushnil(L);
  while (lua_next(L, RQ_LOADING)) {
    Load *ld = lua_touserdata(L, -1);
    Task *w;
    for (w = ld->waiters; w != NULL; w = w->link)
      if (w == o) {
        lua_pop(L, 2);
        return ld->owner;
      }
    lua_pop(L, 1);
  }
  return NULL;
}

/* Would t waiting for ld close a circle of tasks waiting for each other's
** modules? (Modules that require each other, loaded from two tasks.) */
static int circle (lua_State *L, Load *ld, Task *t) {
  Task *o = ld->owner;
  int n = 0;
  while (o != NULL && n++ < 1000000) {
    if (o == t) return 1;
    o = blocker(L, o);
  }
  return 0;
}

/* The load of the module named at 1 by another task than t, which t is to
** wait for, pushed; or NULL, nothing pushed. The task's own load of it
** (a module that requires itself) or a circle goes on as Lua's require
** does, without waiting. */
static Load *inprogress (lua_State *L, Task *t) {
  Load *ld;
  lua_pushvalue(L, S_NAME);
  if (lua_rawget(L, RQ_LOADING) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    return NULL;
  }
  ld = lua_touserdata(L, -1);
  if (ld->owner == NULL || ld->owner == t || (t && circle(L, ld, t))) {
    lua_pop(L, 1);
    return NULL;
  }
  return ld;
}

/* Wait for the load at the top to end, then require again. */
static int wait_load (lua_State *L, tide_Runtime *rt, Task *t, Load *ld) {
  tide_Wait *w;
  if (t == NULL)
    return luaL_error(L, "module '%s' is being loaded by a task; require "
                      "it from a task to wait for it", lua_tostring(L, 1));
  w = tide__waitbegin(rt, L);      /* raises where it cannot wait */
  tide__waitlist_add(&ld->waiters, w);
  return tide_awaitk(L, w, load_cancel, ld, require_k, K_WAITED);
}

/* Push the Load of the module named at 1, owned by t, in S_GUARD: marked
** to be closed before it is entered in the table, so that an error that
** leaves it out of the table closes nothing else. */
static void guard (lua_State *L, Task *t) {
  Load *ld = lua_newuserdatauv(L, sizeof *ld, 2);
  ld->owner = t;
  ld->waiters = NULL;
  luaL_setmetatable(L, TIDE_LOAD);
  lua_pushvalue(L, RQ_LOADING);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, S_NAME);
  lua_setiuservalue(L, -2, 2);
  lua_toclose(L, S_GUARD);
  lua_pushvalue(L, S_NAME);
  lua_pushvalue(L, S_GUARD);
  lua_rawset(L, RQ_LOADING);
  __atomic_add_fetch(&nloads, 1, __ATOMIC_RELAXED);
}

/* ---- require ------------------------------------------------------------ */

/* The loader returned its result: as ll_require, LOADED[name] is it, or
** true when neither it nor the loader set one; the waiters are let go
** once it is set. Returns the module and the loader data. */
static int loaded (lua_State *L, lua_KContext ctx) {
  const char *name = lua_tostring(L, S_NAME);
  if (!lua_isnil(L, -1))
    lua_setfield(L, S_LOADED, name);
  else
    lua_pop(L, 1);
  if (lua_getfield(L, S_LOADED, name) == LUA_TNIL) {
    lua_pushboolean(L, 1);
    lua_copy(L, -1, -2);
    lua_setfield(L, S_LOADED, name);
  }
  if (ctx & K_GUARD) lua_closeslot(L, S_GUARD);
  lua_rotate(L, -2, 1);
  return 2;
}

/* Run the loader (below its data) with the name and the data. */
static int load (lua_State *L, lua_KContext ctx) {
  lua_rotate(L, -2, 1);
  lua_pushvalue(L, S_NAME);
  lua_pushvalue(L, -3);
  ctx = (ctx & (K_WAITS | K_GUARD)) | K_LOADER;
  if (ctx & K_WAITS) lua_callk(L, 2, 1, ctx, require_k);
  else lua_call(L, 2, 1);
  return loaded(L, ctx);
}

/* A searcher's two results: a loader found (1), or its message (if it gave
** one) added to S_MSG (0), as findloader does. */
static int searched (lua_State *L) {
  if (lua_isfunction(L, -2)) return 1;
  if (lua_isstring(L, -2)) {
    lua_pop(L, 1);
    lua_pushvalue(L, S_MSG);
    lua_pushliteral(L, "\n\t");
    lua_rotate(L, -3, -1);
    lua_concat(L, 3);
    lua_replace(L, S_MSG);
  }
  else
    lua_pop(L, 2);
  return 0;
}

/* Call the searchers from the one at ctx's index on until one finds a
** loader, then load the module; none: ll_require's error. */
static int search (lua_State *L, lua_KContext ctx) {
  for (;; ctx += 1 << K_SHIFT) {
    if (lua_rawgeti(L, S_SEARCHERS, (lua_Integer)(ctx >> K_SHIFT)) ==
        LUA_TNIL)
      return luaL_error(L, "module '%s' not found:%s", lua_tostring(L, 1),
                        lua_tostring(L, S_MSG));
    lua_pushvalue(L, S_NAME);
    ctx = (ctx & ~(lua_KContext)3) | K_SEARCHER;
    if (ctx & K_WAITS) lua_callk(L, 1, 2, ctx, require_k);
    else lua_call(L, 1, 2);
    if (searched(L)) return load(L, ctx);
  }
}

static int require_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  switch (ctx & 3) {
    case K_WAITED:
      lua_settop(L, S_NAME);
      return tide_require(L);
    case K_SEARCHER:
      if (searched(L)) return load(L, ctx);
      return search(L, ctx + (1 << K_SHIFT));
    default:
      return loaded(L, ctx);
  }
}

/* The module is not loaded, or a task is loading one: LOADED[name] at
** the top. Wait for another task's load of it, or load it. */
static int require_load (lua_State *L) {
  tide_Runtime *rt = lua_touserdata(L, RQ_RT);
  Task *t = rt->closing ? NULL : rt->current;
  lua_KContext ctx = 1 << K_SHIFT;
  Load *ld = inprogress(L, t);
  if (ld != NULL)                  /* even if it set LOADED[name] itself */
    return wait_load(L, rt, t, ld);
  if (lua_toboolean(L, -1))
    return 1;
  lua_pop(L, 1);
  if (t != NULL && t->co == L && lua_isyieldable(L)) {
    ctx |= K_WAITS;
    lua_pushvalue(L, S_NAME);
    if (lua_rawget(L, RQ_LOADING) == LUA_TNIL) {   /* not its own again */
      lua_pop(L, 1);
      guard(L, t);
      ctx |= K_GUARD;
    }
  }
  else
    lua_pushnil(L);
  if (lua_getfield(L, RQ_PACKAGE, "searchers") != LUA_TTABLE)
    return luaL_error(L, "'package.searchers' must be a table");
  lua_pushliteral(L, "");
  return search(L, ctx);
}

/* require(name): ll_require's, the same steps and messages. In the running
** task's own thread, searchers and loader may wait; elsewhere they run as
** under Lua's require, where they cannot. */
static int tide_require (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, S_LOADED, name);
  if (lua_toboolean(L, -1) && __atomic_load_n(&nloads, __ATOMIC_RELAXED) == 0)
    return 1;
  return require_load(L);
}

/* Stack: tide, private, runtime. Put tide's require in place of Lua's
** (whose upvalue is package.loaded.package) or an earlier runtime's; a
** require the host or a library put there instead stays. */
int tide__openrequire (lua_State *L) {
  int top = lua_gettop(L);
  luaL_newmetatable(L, TIDE_LOAD);
  lua_pushcfunction(L, load_close);
  lua_setfield(L, -2, "__close");
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);   /* top + 2 */
  lua_pushliteral(L, "require");
  if (lua_rawget(L, -2) != LUA_TFUNCTION || !lua_iscfunction(L, -1))
    goto done;
  if (lua_tocfunction(L, -1) == tide_require) {
    lua_getupvalue(L, -1, 2);
  }
  else {
    if (lua_getupvalue(L, -1, 1) == NULL) goto done;
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, LUA_LOADLIBNAME);
    lua_remove(L, -2);
    if (!lua_istable(L, -1) || !lua_rawequal(L, -1, -2)) goto done;
    lua_pop(L, 1);
  }
  lua_pushvalue(L, top);           /* runtime, package, loading */
  lua_insert(L, -2);
  lua_newtable(L);
  lua_pushcclosure(L, tide_require, 3);
  lua_pushliteral(L, "require");
  lua_insert(L, -2);
  lua_rawset(L, top + 2);
done:
  lua_settop(L, top);
  return 0;
}
