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

/* The owner is known by its lockid, so that a task that ends holding the
** lock still holds it, and no later task is taken for it. User value 1:
** the guard, made by the first hold(). */
typedef struct Lock {
  uint32_t owner;          /* the owner's lockid; 0 when free */
  tide_Fifo waiting;
} Lock;

/* The lockid of t, given on first use: a number no other task of the last
** 2^32 - 1 that took a lock has. */
static uint32_t lockid (Task *t) {
  static uint32_t last;
  while (t->lockid == 0)
    t->lockid = __atomic_add_fetch(&last, 1, __ATOMIC_RELAXED);
  return t->lockid;
}

/* tide.Lock() -> a free lock */
static int lock_new (lua_State *L) {
  Lock *l = lua_newuserdatauv(L, sizeof *l, 1);
  memset(l, 0, sizeof *l);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, -2);
  return 1;
}

/* ---- Guards --------------------------------------------------------------- */

/* Push the guard of the lock at 1, made on first use with the function
** in upvalue 3 (before the lock is acquired: then nothing can fail). */
static void pushguard (lua_State *L) {
  if (lua_getiuservalue(L, 1, 1) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, 1);
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
  if (hold) lua_getiuservalue(L, 1, 1);
  else lua_pushboolean(L, 1);
  return 1;
}

static int acquire_k (lua_State *L, int status, lua_KContext hold) {
  (void)status;
  return acquired(L, (int)hold);
}

/* Acquire the lock at 1 for the calling task, waiting while another task
** holds it; then return as acquired does. */
static int acquire (lua_State *L, Lock *l, tide_Runtime *rt, int hold) {
  Task *me = rt->current;
  tide_Wait *w;
  if (l->owner == 0 && me != NULL) {
    l->owner = lockid(me);
    return acquired(L, hold);
  }
  if (me == NULL || rt->closing || !lua_isyieldable(L))
    tide__waitbegin(rt, L);        /* raises: the caller cannot wait */
  if (l->owner == me->lockid)
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
  tide_SyncClass *c = tide__syncclass(L);
  return acquire(L, tide__syncself(L, c), c->rt, 0);
}

/* local _ <close> = lock:hold(): acquire, released when the scope ends. */
static int lock_hold (lua_State *L) {
  tide_SyncClass *c = tide__syncclass(L);
  Lock *l = tide__syncself(L, c);
  lua_settop(L, 1);
  pushguard(L);
  return acquire(L, l, c->rt, 1);
}

/* lock:release(): hand the lock to the first waiter, or leave it free.
** Outside any task it releases for the holder: the <close> variables of a
** task that ends with an error are closed once it is no longer current. */
static int lock_release (lua_State *L) {
  tide_SyncClass *c = tide__syncclass(L);
  Lock *l = tide__syncself(L, c);
  Task *me = c->rt->current, *next;
  if (l->owner == 0 || (me != NULL && l->owner != me->lockid))
    return tide__error(L, l->owner ? "%s: lock held by another task"
                                   : "%s: lock not held", tide__fname(L));
  next = tide__fifopop(&l->waiting);
  if (next == NULL) {
    l->owner = 0;
    return 0;
  }
  l->owner = lockid(next);
  tide__syncwake(next, 0);
  return 0;
}

static int lock_locked (lua_State *L) {
  Lock *l = tide__syncself(L, tide__syncclass(L));
  lua_pushboolean(L, l->owner != 0);
  return 1;
}

static int lock_tostring (lua_State *L) {
  Lock *l = tide__syncself(L, tide__syncclass(L));
  lua_pushfstring(L, "tide.Lock (%s)", l->owner ? "locked" : "unlocked");
  return 1;
}

/* private lockowned(lock) -> whether the calling task holds it (for
** Condition, which raises otherwise) */
static int lock_owned (lua_State *L) {
  tide_SyncClass *c = tide__syncclass(L);
  Lock *l = tide__syncself(L, c);
  Task *me = c->rt->current;
  lua_pushboolean(L, me != NULL && l->owner != 0 && l->owner == me->lockid);
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
  int top = lua_gettop(L), tide = top - 2, private = top - 1, rt = top;
  int guardnew = top + 1, mt = top + 2, class = top + 3;
  luaL_newmetatable(L, TIDE_GUARD);   /* filled by every open: a failed */
  lua_pushcfunction(L, guard_close);  /* one may have left it half done */
  lua_setfield(L, -2, "__close");
  lua_pushvalue(L, -1);               /* it has no fields: g.x is nil */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, guard_new);    /* guardnew */
  lua_pushvalue(L, guardnew);
  lua_setfield(L, private, "newguard");
  luaL_newmetatable(L, TIDE_LOCK);    /* mt */
  lua_pushvalue(L, mt);
  lua_setfield(L, mt, "__index");
  lua_pushvalue(L, mt);
  lua_setfield(L, private, "Lock");
  tide__newclass(L, rt);              /* class */
  lua_pushvalue(L, mt);
  lua_pushvalue(L, class);
  lua_pushvalue(L, mt);
  lua_pushvalue(L, guardnew);
  luaL_setfuncs(L, lock_methods, 3);
  lua_pop(L, 1);
  lua_pushvalue(L, class);
  lua_pushvalue(L, mt);
  lua_pushcclosure(L, lock_new, 2);
  lua_setfield(L, tide, "Lock");
  lua_pushvalue(L, class);
  lua_pushvalue(L, mt);
  lua_pushcclosure(L, lock_owned, 2);
  lua_setfield(L, private, "lockowned");
  lua_settop(L, top);
  return 0;
}
