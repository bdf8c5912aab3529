/*
** sync.h: what the synchronisation types written in C (lock.c, queue.c)
** share: the check of self against the class in upvalue 2, lists of
** waiting tasks served first come, first served, and waking them.
*/
#ifndef TIDE_SYNC_H
#define TIDE_SYNC_H

#include "tide_int.h"

/* Methods and constructors have two upvalues: the runtime userdata and
** the metatable of their class (which is its own method table). */

/* Raise for a self that is not of the class (with the message that
** tide__checkudata gives, naming the method; no self is nil, as for the
** methods written in Lua). */
static inline void *tide__badself (lua_State *L) {
  if (lua_gettop(L) == 0) lua_pushnil(L);
  lua_getfield(L, lua_upvalueindex(2), "__name");
  return tide__checkudata(L, 1, lua_tostring(L, -1));
}

/* The object at 1, checked with one comparison of metatables. */
static inline void *tide__syncself (lua_State *L) {
  void *p = lua_touserdata(L, 1);
  if (p != NULL && lua_getmetatable(L, 1)) {
    int ok = lua_rawequal(L, -1, lua_upvalueindex(2));
    lua_pop(L, 1);
    if (ok) return p;
  }
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
