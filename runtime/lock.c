/*
** lock.c: tide.Lock, held by one task at a time: release hands it straight
** to the first waiter, so nobody can take it in between. And the Guard
** that lock:hold() (and the Lua side's sem:hold()) returns: its __close
** releases.
*/
#include <string.h>

#include "sync.h"

#define TIDE_LOCK "tide.Lock"
#define TIDE_GUARD "tide.Guard"

/* User values: 1, the owner's Task object (a task that ends holding the
** lock still holds it, and is not mistaken for a later one); 2, the
** guard, made by the first hold(). */
typedef struct Lock {
  Task *owner;             /* NULL when free */
  tide_Fifo waiting;
} Lock;

/* The lock at 1 goes to t (NULL: nobody). Allocates nothing. */
static void setowner (lua_State *L, Lock *l, Task *t) {
  if (t != NULL) tide__pushtask(L, t);
  else lua_pushnil(L);
  lua_setiuservalue(L, 1, 1);
  l->owner = t;
}

/* tide.Lock() -> a free lock */
static int lock_new (lua_State *L) {
  Lock *l = lua_newuserdatauv(L, sizeof *l, 2);
  memset(l, 0, sizeof *l);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, -2);
  return 1;
}

/* ---- Guards --------------------------------------------------------------- */

/* Push the guard of the object at 1, made with the one in upvalue 3 on
** first use, so that a guard never fails to be made once the object is
** acquired. */
static void pushguard (lua_State *L) {
  if (lua_getiuservalue(L, 1, 2) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, 2);
}

/* private newguard(x) -> a Guard whose __close calls x:release() */
static int guard_new (lua_State *L) {
  lua_settop(L, 1);
  lua_newuserdatauv(L, 0, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, TIDE_GUARD);
  return 1;
}

static int guard_close (lua_State *L) {
  tide__checkudata(L, 1, TIDE_GUARD);
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, 2, "release");
  lua_insert(L, 2);
  lua_call(L, 1, 0);
  return 0;
}

/* ---- Acquiring and releasing ------------------------------------------------ */

/* What acquire returns, from its continuation k or at once. */
static int acquired (lua_State *L, int hold) {
  if (hold) lua_getiuservalue(L, 1, 2);
  else lua_pushboolean(L, 1);
  return 1;
}

static int acquire_k (lua_State *L, int status, lua_KContext hold) {
  (void)status;
  return acquired(L, (int)hold);
}

/* Acquire the lock at 1 for the calling task, waiting while another task
** holds it; then return as acquired does. */
static int acquire (lua_State *L, int hold) {
  Lock *l = lua_touserdata(L, 1);
  tide_Runtime *rt = tide__rt(L);
  Task *me = rt->current;
  tide_Wait *w;
  if (l->owner == NULL && me != NULL) {
    setowner(L, l, me);
    return acquired(L, hold);
  }
  if (me == NULL || rt->closing || !lua_isyieldable(L))
    tide__waitbegin(rt, L);        /* raises: the caller cannot wait */
  if (l->owner == me)
    return tide__error(L, "%s: lock already held by this task",
                       tide__fname(L));
  w = tide__waitbegin(rt, L);
  lua_settop(L, 1);
  tide__fifopush(&l->waiting, me);
  /* the releaser makes us the owner */
  return tide_awaitk(L, w, tide__fifocancel, &l->waiting, acquire_k, hold);
}

/* lock:acquire() -> true, waiting while another task holds it. */
static int lock_acquire (lua_State *L) {
  tide__syncself(L);
  return acquire(L, 0);
}

/* local _ <close> = lock:hold(): acquire, released when the scope ends. */
static int lock_hold (lua_State *L) {
  tide__syncself(L);
  lua_settop(L, 1);
  pushguard(L);
  return acquire(L, 1);
}

/* lock:release(): hand the lock to the first waiter, or leave it free.
** Outside any task it releases for the holder: the <close> variables of a
** task that ends with an error are closed once it is no longer current. */
static int lock_release (lua_State *L) {
  Lock *l = tide__syncself(L);
  Task *me = tide__rt(L)->current, *next;
  if (l->owner == NULL || (l->owner != me && me != NULL))
    return tide__error(L, l->owner ? "%s: lock held by another task"
                                   : "%s: lock not held", tide__fname(L));
  next = tide__fifopop(&l->waiting);
  setowner(L, l, next);
  if (next != NULL) tide__syncwake(next, 0);
  return 0;
}

static int lock_locked (lua_State *L) {
  Lock *l = tide__syncself(L);
  lua_pushboolean(L, l->owner != NULL);
  return 1;
}

static int lock_tostring (lua_State *L) {
  Lock *l = tide__syncself(L);
  lua_pushfstring(L, "tide.Lock (%s)", l->owner ? "locked" : "unlocked");
  return 1;
}

/* private lockowned(lock) -> whether the calling task holds it (for
** Condition, which raises otherwise) */
static int lock_owned (lua_State *L) {
  Lock *l = tide__syncself(L);
  Task *me = tide__rt(L)->current;
  lua_pushboolean(L, me != NULL && l->owner == me);
  return 1;
}

static const luaL_Reg lock_methods[] = {
  {"acquire", lock_acquire},
  {"release", lock_release},
  {"locked", lock_locked},
  {"hold", lock_hold},
  {"__tostring", lock_tostring},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. Sets tide.Lock,
** private.Lock (the metatable), private.lockowned and private.newguard. */
int tide__openlock (lua_State *L) {
  luaL_newmetatable(L, TIDE_GUARD);   /* filled by every open: a failed */
  lua_pushcfunction(L, guard_close);  /* one may have left it half done */
  lua_setfield(L, -2, "__close");
  lua_pushvalue(L, -1);               /* it has no fields: g.x is nil */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, guard_new);
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "newguard");    /* tide, private, rt, newguard */
  luaL_newmetatable(L, TIDE_LOCK);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -1);
  lua_setfield(L, -5, "Lock");
  lua_pushvalue(L, -3);               /* upvalues: rt, mt, newguard */
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, lock_methods, 3);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, lock_new, 2);
  lua_setfield(L, -6, "Lock");
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, lock_owned, 2);
  lua_setfield(L, -5, "lockowned");
  lua_pop(L, 2);
  return 0;
}
