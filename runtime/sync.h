/*
** sync.h: what the synchronisation types written in C (lock.c, queue.c)
** share: the check of self against the class in upvalue 2, lists of
** waiting tasks served first come, first served, and waking them.
*/
#ifndef TIDE_SYNC_H
#define TIDE_SYNC_H

#include "tide_int.h"

/* Methods and constructors have two upvalues: their class, a userdata
** made by tide__newclass, and the metatable of the class (which is its
** own method table). */
typedef struct tide_SyncClass {
  tide_Runtime *rt;        /* kept alive by the class's user value */
  const void *mt;          /* the metatable, upvalue 2 */
} tide_SyncClass;

#define tide__syncclass(L) \
  ((tide_SyncClass *)lua_touserdata(L, lua_upvalueindex(1)))

/* Push a class for the metatable on top, of the runtime userdata at rt. */
static inline void tide__newclass (lua_State *L, int rt) {
  tide_SyncClass *c;
  rt = lua_absindex(L, rt);
  c = lua_newuserdatauv(L, sizeof *c, 1);
  c->rt = lua_touserdata(L, rt);
  c->mt = lua_topointer(L, -2);
  lua_pushvalue(L, rt);
  lua_setiuservalue(L, -2, 1);
}

/* Raise for a self that is not of the class (with the message that
** tide__checkudata gives, naming the method; no self is nil, as for the
** methods written in Lua). */
static inline void *tide__badself (lua_State *L) {
  if (lua_gettop(L) == 0) lua_pushnil(L);
  lua_getfield(L, lua_upvalueindex(2), "__name");
  return tide__checkudata(L, 1, lua_tostring(L, -1));
}

/* The object at 1, of class c, checked with one comparison of metatables.
** Its metatable is left on top. */
static inline void *tide__syncself (lua_State *L, const tide_SyncClass *c) {
  void *p = lua_touserdata(L, 1);
  if (p != NULL && lua_getmetatable(L, 1) && lua_topointer(L, -1) == c->mt)
    return p;
  return tide__badself(L);
}

/* A list of waiting tasks, through Task.link (a task waits on one thing
** at a time). A task leaves it when it is woken or its wait is cancelled,
** so every task in it is waiting on it. */
typedef struct tide_Fifo {
  Task *head, *tail;
} tide_Fifo;

static inline void tide__fifopush (tide_Fifo *f, Task *t) {
  t->link = NULL;
  if (f->tail != NULL) f->tail->link = t;
  else f->head = t;
  f->tail = t;
}

static inline Task *tide__fifopop (tide_Fifo *f) {
  Task *t = f->head;
  if (t != NULL) {
    f->head = t->link;
    if (f->head == NULL) f->tail = NULL;
    t->link = NULL;
  }
  return t;
}

/* Take t out, wherever it is (its wait was cancelled). */
static inline void tide__fiforemove (tide_Fifo *f, Task *t) {
  Task **p = &f->head, *prev = NULL;
  while (*p != NULL && *p != t) {
    prev = *p;
    p = &prev->link;
  }
  if (*p == NULL) return;
  *p = t->link;
  if (f->tail == t) f->tail = prev;
  t->link = NULL;
}

/* The cancel function of a wait in a list: its data is the list. */
static inline void tide__fifocancel (tide_Wait *w) {
  tide__fiforemove(tide_waitdata(w), tide__task(w));
}

/* Wake t with the nres values pushed on its thread, through the ready
** queue (the waker's code goes on first, also outside any task). */
static inline void tide__syncwake (Task *t, int nres) {
  tide_Runtime *rt = t->rt;
  rt->depth++;
  tide_wake(&t->w, nres);
  rt->depth--;
}

#endif
