/*
** watch.c: watches on tasks (and futures), for what the Lua-side library builds on them
** (gather, settle, race, timeout, group, serve): a watch queues the tasks
** it watches as they end, in that order, and wakes the task waiting on it.
** An on_done callback would have to run Lua code when a task ends, which
** can run out of memory and lose the news; a watch passes it in C alone,
** with what it needs reserved when a task is added.
*/
#include <string.h>

#include "tide_int.h"

#define TIDE_WATCH "tide.Watch"

typedef struct Watch Watch;

struct tide_WatchNode {
  Watch *watch;
  Task *task;              /* the task, or NULL for the future fut */
  tide_Future *fut;
  tide_WatchNode *tnext;   /* in task->watchers until the task ends */
  tide_WatchNode *prev, *next;     /* the watch's nodes */
  int ended;
};

typedef tide_WatchNode Node;

/* Its user value is a table: [node] = the Task object, for each node. */
struct Watch {
  Task *waiter;            /* the task in wait(), or NULL */
  Node *nodes;             /* the tasks not yet taken by next() */
  Node *spare;             /* reserved for the next task added */
  Node **ended;            /* ring of ended nodes: cap >= n */
  uint32_t n, cap, head, count;
};

static Watch *checkwatch (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_WATCH);
}

/* Room for one more task, taken before it is added: raises or returns. */
static void reserve (lua_State *L, Watch *w) {
  if (w->n == w->cap) {
    uint32_t cap = w->cap ? 2 * w->cap : 4, i;
    Node **a = tide__malloc(cap * sizeof *a);
    if (a == NULL) tide__nomem(L);
    for (i = 0; i < w->count; i++)
      a[i] = w->ended[(w->head + i) % w->cap];
    tide__free(w->ended);
    w->ended = a;
    w->head = 0;
    w->cap = cap;
  }
  if (w->spare == NULL && (w->spare = tide__malloc(sizeof(Node))) == NULL)
    tide__nomem(L);
}

/* Wake the waiter through the ready queue, even from Lua code outside
** any task (w:add of a task that has ended). */
static void wake_waiter (Watch *w) {
  Task *me = w->waiter;
  if (me == NULL) return;
  w->waiter = NULL;
  me->rt->depth++;
  tide_wake(&me->w, 0);
  me->rt->depth--;
}

static void queue_ended (Watch *w, Node *n) {
  n->ended = 1;
  w->ended[(w->head + w->count++) % w->cap] = n;
  wake_waiter(w);
}

/* The Task object at i goes in w's table under the spare node (the watch
** at 1); may raise, before anything is done. */
static void anchor (lua_State *L, Watch *w, int i) {
  i = lua_absindex(L, i);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, i);
  lua_rawsetp(L, -2, w->spare);
  lua_pop(L, 1);
}

/* The list of the watch nodes on what n watches. */
static Node **watchers (Node *n) {
  return n->fut ? &n->fut->watchers : &n->task->watchers;
}

/* Watch t (or f) with the spare node, anchored already: allocates
** nothing. */
static void commit (Watch *w, Task *t, tide_Future *f) {
  Node *n = w->spare;
  w->spare = NULL;
  n->watch = w;
  n->task = t;
  n->fut = f;
  n->ended = 0;
  n->prev = NULL;
  n->next = w->nodes;
  if (w->nodes) w->nodes->prev = n;
  w->nodes = n;
  w->n++;
  if (f ? f->done : t->state == T_DONE) {
    if (f) tide__futureobserved(f);
    else tide__observed(t);
    queue_ended(w, n);
  }
  else {
    n->tnext = *watchers(n);
    *watchers(n) = n;
  }
}

/* Watch the Task or Future object at i too. */
static void add (lua_State *L, Watch *w, int i) {
  tide_Future *f = tide__tofuture(L, i);
  Task *t = f ? NULL : tide__checktask(L, i);
  reserve(L, w);
  anchor(L, w, i);
  commit(w, t, f);
}

/* t has ended: queue it in the watches on it. Being watched counts as
** being observed, as having on_done callbacks does. */
static void ended (Node *n) {
  while (n != NULL) {
    Node *next = n->tnext;
    queue_ended(n->watch, n);
    n = next;
  }
}

void tide__watched (Task *t) {
  Node *n = t->watchers;
  t->watchers = NULL;
  if (n != NULL) tide__observed(t);
  ended(n);
}

/* Future f is done: the same. */
void tide__futurewatched (tide_Future *f) {
  Node *n = f->watchers;
  f->watchers = NULL;
  if (n != NULL) tide__futureobserved(f);
  ended(n);
}

static void unlink_node (Watch *w, Node *n) {
  if (!n->ended) {
    Node **p = watchers(n);
    while (*p != NULL && *p != n) p = &(*p)->tnext;
    if (*p) *p = n->tnext;
  }
  if (n->prev) n->prev->next = n->next;
  else w->nodes = n->next;
  if (n->next) n->next->prev = n->prev;
  w->n--;
}

/* Push the next ended task (and forget it), or nothing; 1 or 0. */
static int pushnext (lua_State *L, Watch *w) {
  Node *n;
  if (w->count == 0) return 0;
  n = w->ended[w->head];
  w->head = (w->head + 1) % w->cap;
  w->count--;
  lua_getiuservalue(L, 1, 1);
  lua_rawgetp(L, -1, n);
  lua_pushnil(L);
  lua_rawsetp(L, -3, n);           /* a key it has: allocates nothing */
  lua_remove(L, -2);
  unlink_node(w, n);
  if (w->spare == NULL) w->spare = n;
  else tide__free(n);
  return 1;
}

/* ---- Methods ------------------------------------------------------------ */

/* w:add(task): watch it too; queued at once if it has ended. */
static int watch_add (lua_State *L) {
  add(L, checkwatch(L, 1), 2);
  return 0;
}

/* w:spawn(fn, ...) -> a new task, watched; if there is no memory to watch
** it, there is no task either. */
static int watch_spawn (lua_State *L) {
  Watch *w = checkwatch(L, 1);
  Task *t;
  tide__checktype(L, 2, LUA_TFUNCTION);
  reserve(L, w);
  lua_pushboolean(L, 0);           /* the table's slot, made beforehand */
  anchor(L, w, -1);
  lua_pop(L, 1);
  t = tide__spawn(tide__rt(L), L, lua_gettop(L) - 2);
  anchor(L, w, -1);                /* the slot is there: cannot fail */
  commit(w, t, NULL);
  return 1;
}

/* w:next() -> the next task that ended (in the order they ended), or nil
** if none has since the last. */
static int watch_next (lua_State *L) {
  lua_settop(L, 1);
  return pushnext(L, checkwatch(L, 1));
}

static void wait_cancel (tide_Wait *tw) {
  Watch *w = tide_waitdata(tw);
  Task *t = tide__task(tw);
  w->waiter = NULL;
  if (tide__timed(t)) tide__heapremove(t->rt, t);
}

static int wait_k (lua_State *L, int status, lua_KContext ctx) {
  Watch *w = checkwatch(L, 1);
  (void)status; (void)ctx;
  w->waiter = NULL;                /* woken by its timer, it still is */
  return pushnext(L, w);
}

/* w:wait([seconds]) -> the next task that ends, waiting for it; nil after
** seconds, or at once when w watches no task. */
static int watch_wait (lua_State *L) {
  Watch *w = checkwatch(L, 1);
  double s = luaL_optnumber(L, 2, -1);
  tide_Wait *tw;
  lua_settop(L, 1);
  if (w->count > 0 || w->n == 0) return pushnext(L, w);
  if (w->waiter)
    return tide__error(L, "%s: another task waits on it", tide__fname(L));
  tw = tide__waitbegin(tide__rt(L), L);
  if (s >= 0) tide__timeradd(L, tw, s);
  w->waiter = tide__task(tw);
  return tide_awaitk(L, tw, wait_cancel, w, wait_k, 0);
}

/* w:live() -> the count of tasks it watches that next() has not taken */
static int watch_live (lua_State *L) {
  lua_pushinteger(L, checkwatch(L, 1)->n);
  return 1;
}

/* w:cancel(): cancel every task it watches that has not ended (not the
** futures). */
static int watch_cancel (lua_State *L) {
  Watch *w = checkwatch(L, 1);
  Node *n;
  for (n = w->nodes; n != NULL; n = n->next)
    if (!n->ended && n->task) tide__cancel(n->task);
  return 0;
}

/* close(), __close and __gc: stop watching; the waiter gets nil. (The
** user value keeps the tasks alive until this has run.) */
static int watch_close (lua_State *L) {
  Watch *w = checkwatch(L, 1);
  while (w->nodes != NULL) {
    Node *n = w->nodes;
    unlink_node(w, n);
    tide__free(n);
  }
  tide__free(w->spare);
  tide__free(w->ended);
  w->spare = NULL;
  w->ended = NULL;
  w->cap = w->head = w->count = 0;
  wake_waiter(w);
  return 0;
}

/* watch([task | {tasks...}]) -> a Watch on them (the list's n, if it has
** one, counts them) */
static int sched_watch (lua_State *L) {
  Watch *w;
  lua_settop(L, 1);
  w = lua_newuserdatauv(L, sizeof *w, 1);
  memset(w, 0, sizeof *w);
  luaL_setmetatable(L, TIDE_WATCH);
  lua_insert(L, 1);                /* watch, what to watch */
  lua_newtable(L);
  lua_setiuservalue(L, 1, 1);
  if (lua_istable(L, 2)) {
    lua_Integer i, n;
    if (lua_getfield(L, 2, "n") == LUA_TNUMBER) n = lua_tointeger(L, -1);
    else n = (lua_Integer)lua_rawlen(L, 2);
    for (i = 1; i <= n; i++) {
      lua_settop(L, 2);
      lua_rawgeti(L, 2, i);
      add(L, w, 3);
    }
  }
  else if (!lua_isnil(L, 2))
    add(L, w, 2);
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg watch_methods[] = {
  {"add", watch_add},
  {"spawn", watch_spawn},
  {"next", watch_next},
  {"wait", watch_wait},
  {"live", watch_live},
  {"cancel", watch_cancel},
  {"close", watch_close},
  {NULL, NULL}
};

static const luaL_Reg watch_meta[] = {
  {"__gc", watch_close},
  {"__close", watch_close},
  {"__index", NULL},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. Sets private.watch. */
int tide__openwatch (lua_State *L) {
  luaL_newmetatable(L, TIDE_WATCH);
  luaL_setfuncs(L, watch_meta, 0);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, watch_methods, 1);   /* wait reaches the runtime */
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, sched_watch, 1);
  lua_setfield(L, -3, "watch");
  return 0;
}
