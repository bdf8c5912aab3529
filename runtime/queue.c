/*
** queue.c: tide.Queue (first in, first out), tide.LifoQueue (last in,
** first out) and tide.PriorityQueue (least first), one engine for the
** three. The hot paths hand an item straight to a waiting getter and move
** a waiting putter's item straight in, so a producer and a consumer switch
** less often than items pass; nobody can cut in between.
*/
#include <string.h>

#include "sync.h"

enum { FIFO, LIFO, PRIO };

/* User values: 1, the table of items; 2, the comparator of a
** PriorityQueue (or nil). The items are kept in the table by kind:
** FIFO: a ring of size slots, the first at slot head + 1;
** LIFO: a stack in slots 1 .. n;
** PRIO: a binary heap of n entries of three slots each (entry i at
**       3i - 2 .. 3i: the item, its priority, its arrival number, which
**       keeps equal priorities in arrival order).
** A putter waiting for room keeps its item (and priority) as arguments 2
** and 3 of its put, on its own stack, until a getter moves them in. */
typedef struct Queue {
  lua_Integer n;           /* items in the queue */
  lua_Integer max;         /* room: maxsize (LUA_MAXINTEGER when
                              unbounded), or -1 once closed, so that one
                              test sends put to its slow path */
  lua_Integer maxsize;     /* 0: unbounded */
  lua_Integer head, size;  /* FIFO: the ring */
  lua_Integer seq;         /* PRIO: arrivals so far */
  lua_Integer unfinished;  /* items put and not marked task_done */
  tide_Fifo getters, putters, joiners;
  int kind, closed;
} Queue;

static const char closedmsg[] = "%s: the queue is closed";

/* The functions below find the items table at stack index it (pushed by
** pushitems) and, in a PriorityQueue, the comparator at it + 1. An item to
** store is at vi, its priority at pi. */

/* ---- FIFO: a ring that doubles as it fills ---------------------------- */

static lua_Integer fifo_slot (Queue *q, lua_Integer i) {
  lua_Integer pos = q->head + i;
  return (pos >= q->size ? pos - q->size : pos) + 1;
}

/* Double the full ring: its part that wraps around moves after the rest.
** The copies come first; if one runs out of memory, nothing has changed. */
static void fifo_grow (lua_State *L, Queue *q, int it) {
  lua_Integer i, size = q->size ? 2 * q->size : 1;
  for (i = 1; i <= q->head; i++) {
    lua_rawgeti(L, it, i);
    lua_rawseti(L, it, q->size + i);
  }
  for (i = 1; i <= q->head; i++) {
    lua_pushnil(L);
    lua_rawseti(L, it, i);
  }
  q->size = size;
}

/* Store the item at vi last. */
static void fifo_push (lua_State *L, Queue *q, int it, int vi) {
  if (q->n == q->size) fifo_grow(L, q, it);
  lua_pushvalue(L, vi);
  lua_rawseti(L, it, fifo_slot(q, q->n));
  q->n++;
}

/* Push the first item and take it out; the item at vi, if vi is not 0,
** goes in last (a putter's, the queue being full). */
static void fifo_take (lua_State *L, Queue *q, int it, int vi) {
  lua_Integer first = q->head + 1;
  lua_rawgeti(L, it, first);
  if (vi != 0) {                   /* first, so that if it runs out of */
    fifo_push(L, q, it, vi);       /* memory, nothing has changed */
    first = q->head + 1;
  }
  if (vi == 0 || fifo_slot(q, q->n - 1) != first) {
    lua_pushnil(L);
    lua_rawseti(L, it, first);
  }
  q->head = first == q->size ? 0 : first;
  q->n--;
}

/* ---- LIFO: a stack ------------------------------------------------------ */

static void lifo_push (lua_State *L, Queue *q, int it, int vi) {
  lua_pushvalue(L, vi);
  lua_rawseti(L, it, q->n + 1);
  q->n++;
}

static void lifo_take (lua_State *L, Queue *q, int it, int vi) {
  lua_rawgeti(L, it, q->n);
  if (vi != 0) lua_pushvalue(L, vi);   /* in its place: it is the last */
  else lua_pushnil(L);
  lua_rawseti(L, it, q->n);
  if (vi == 0) q->n--;
}

/* ---- PRIO: a binary heap ------------------------------------------------
** Each change is worked out by comparisons alone (which may raise: the
** comparator's or the items' error), then made by moves that cannot fail,
** so that an error leaves the heap as it was. */

/* cmp(a, b) for the values at a and b, as a boolean */
static int callcmp (lua_State *L, int cmp, int a, int b) {
  int r;
  lua_pushvalue(L, cmp);
  lua_pushvalue(L, a);
  lua_pushvalue(L, b);
  lua_call(L, 2, 1);
  r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

/* Whether priority pa (a stack index) of arrival sa comes before pb of sb:
** cmp(pa, pb) if there is a comparator, else pa < pb; then arrival. */
static int before (lua_State *L, int it, int pa, lua_Integer sa, int pb,
                   lua_Integer sb) {
  if (!lua_isnil(L, it + 1)) {
    if (callcmp(L, it + 1, pa, pb)) return 1;
    if (callcmp(L, it + 1, pb, pa)) return 0;
  }
  else {
    if (lua_compare(L, pa, pb, LUA_OPLT)) return 1;
    if (lua_compare(L, pb, pa, LUA_OPLT)) return 0;
  }
  return sa < sb;
}

/* Push the priority of entry i; return its arrival number. */
static lua_Integer heap_key (lua_State *L, int it, lua_Integer i) {
  lua_Integer s;
  lua_rawgeti(L, it, 3 * i);
  s = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_rawgeti(L, it, 3 * i - 1);
  return s;
}

/* Whether entry i comes before the priority at p of arrival s. */
static int heap_before (lua_State *L, int it, lua_Integer i, int p,
                        lua_Integer s) {
  lua_Integer si = heap_key(L, it, i);
  int r = before(L, it, lua_gettop(L), si, p, s);
  lua_pop(L, 1);
  return r;
}

/* Entry i moves to slot j (which exists). */
static void heap_move (lua_State *L, int it, lua_Integer i, lua_Integer j) {
  int k;
  for (k = 0; k < 3; k++) {
    lua_rawgeti(L, it, 3 * i - k);
    lua_rawseti(L, it, 3 * j - k);
  }
}

/* Entry j becomes the item at vi, of priority at pi, arrival s. */
static void heap_set (lua_State *L, int it, lua_Integer j, int vi, int pi,
                      lua_Integer s) {
  lua_pushvalue(L, vi);
  lua_rawseti(L, it, 3 * j - 2);
  lua_pushvalue(L, pi);
  lua_rawseti(L, it, 3 * j - 1);
  lua_pushinteger(L, s);
  lua_rawseti(L, it, 3 * j);
}

/* Add the item at vi of priority at pi. */
static void heap_push (lua_State *L, Queue *q, int it, int vi, int pi) {
  lua_Integer s = q->seq + 1, i = q->n + 1, j = i;
  while (j > 1 && !heap_before(L, it, j / 2, pi, s)) j /= 2;
  heap_set(L, it, i, vi, pi, s);   /* the new slots: may run out of memory */
  for (; i > j; i /= 2) heap_move(L, it, i / 2, i);
  if (j != q->n + 1) heap_set(L, it, j, vi, pi, s);
  q->n++;
  q->seq = s;
}

/* Where the entry of priority p, arrival s, put at the top of entries
** 1 .. m, sinks to: path[0 .. d - 1], the entries that move up a level. */
static int heap_sink (lua_State *L, int it, lua_Integer m, int p,
                      lua_Integer s, lua_Integer *path) {
  lua_Integer i = 1;
  int d = 0;
  for (;;) {
    lua_Integer c = 2 * i;
    if (c > m) break;
    if (c < m) {
      lua_Integer sc = heap_key(L, it, c);
      if (heap_before(L, it, c + 1, lua_gettop(L), sc)) c++;
      lua_pop(L, 1);
    }
    if (!heap_before(L, it, c, p, s)) break;
    path[d++] = c;
    i = c;
  }
  return d;
}

/* Push the first item and take it out; the item at vi of priority at pi,
** if vi is not 0, takes its place (a putter's, the queue being full). */
static void heap_take (lua_State *L, Queue *q, int it, int vi, int pi) {
  lua_Integer path[64], m = q->n, s, hole = 1;
  int d, k;
  if (vi == 0) {                   /* the last entry goes to the top */
    lua_rawgeti(L, it, 3 * m - 2);
    vi = lua_gettop(L);
    s = heap_key(L, it, m);
    pi = vi + 1;
    m--;
  }
  else s = q->seq + 1;
  d = heap_sink(L, it, m, pi, s, path);
  lua_rawgeti(L, it, 1);           /* the first item */
  for (k = 0; k < d; k++) {
    heap_move(L, it, path[k], hole);
    hole = path[k];
  }
  heap_set(L, it, hole, vi, pi, s);
  if (m < q->n) {                  /* the last slot is free */
    for (k = 0; k < 3; k++) {
      lua_pushnil(L);
      lua_rawseti(L, it, 3 * q->n - k);
    }
    q->n = m;
  }
  else q->seq = s;
}

/* ---- The engine --------------------------------------------------------- */

/* The queue at 1, with the count of arguments in *n (before the metatable
** is pushed by the check). */
static Queue *checkqueue (lua_State *L, tide_SyncClass *c, int *n) {
  *n = lua_gettop(L);
  return tide__syncself(L, c);
}

/* The priority of the item at 2 of a put with n arguments: the one given,
** else the item. */
static int priority (lua_State *L, int n) {
  return n >= 3 && !lua_isnil(L, 3) ? 3 : 2;
}

/* Push the items table and, for a PriorityQueue, the comparator above
** it; return the index of the table. */
static int pushitems (lua_State *L, Queue *q) {
  lua_getiuservalue(L, 1, 1);
  if (q->kind == PRIO) lua_getiuservalue(L, 1, 2);
  return lua_gettop(L) - (q->kind == PRIO);
}

/* A putter must not wait with a priority that cannot be compared: raise
** now rather than in a later get. */
static void checkpriority (lua_State *L, Queue *q, int n) {
  if (q->kind == PRIO && q->n > 0)
    heap_before(L, pushitems(L, q), 1, priority(L, n), 0);
}

/* The first waiter of f, which is waiting on it. */
static Task *first (tide_Fifo *f) {
  return f->head;
}

/* Give the item at 2 to the first waiting getter. */
static void handoff (lua_State *L, Queue *q) {
  Task *g = first(&q->getters);
  lua_State *gL = g->w.L;
  if (!lua_checkstack(gL, 1)) tide__nomem(L);
  tide__fifopop(&q->getters);
  lua_pushvalue(L, 2);
  lua_xmove(L, gL, 1);
  q->unfinished++;
  tide__syncwake(g, 1);
}

/* The item at 2 of a put of n arguments has room: give it to a waiting
** getter or store it. If storing it raises, nothing has changed. */
static void enter (lua_State *L, Queue *q, int n) {
  int it;
  if (q->n == 0 && q->getters.head != NULL) {
    handoff(L, q);
    return;
  }
  it = pushitems(L, q);
  switch (q->kind) {
    case FIFO: fifo_push(L, q, it, 2); break;
    case LIFO: lifo_push(L, q, it, 2); break;
    default: heap_push(L, q, it, 2, priority(L, n)); break;
  }
  q->unfinished++;
}

/* Push the first item and take it out; a waiting putter's item takes its
** place if the queue was full. */
static void take (lua_State *L, Queue *q) {
  Task *p = q->n == q->max ? first(&q->putters) : NULL;
  int it = pushitems(L, q), vi = 0;
  if (p != NULL) {                 /* its item and priority, on top */
    lua_State *pL = p->w.L;
    if (!lua_checkstack(pL, 2)) tide__nomem(L);
    lua_pushvalue(pL, 2);
    lua_pushvalue(pL, 3);
    lua_xmove(pL, L, 2);
    vi = lua_gettop(L) - 1;
  }
  switch (q->kind) {
    case FIFO: fifo_take(L, q, it, vi); break;
    case LIFO: lifo_take(L, q, it, vi); break;
    default:
      heap_take(L, q, it, vi, vi == 0 || lua_isnil(L, vi + 1) ? vi : vi + 1);
      break;
  }
  if (p != NULL) {
    tide__fifopop(&q->putters);
    q->unfinished++;
    tide__syncwake(p, 0);
  }
}

/* Raise for a put of n arguments that cannot be done: a nil item, or a
** closed queue. */
static int badput (lua_State *L, int n) {
  if (n < 2 || lua_isnil(L, 2)) return tide__argerror(L, 2, "value expected");
  return tide__error(L, closedmsg, tide__fname(L));
}

/* Woken with a value by close: the item was not put. */
static int put_k (lua_State *L, int status, lua_KContext base) {
  (void)status;
  if (lua_gettop(L) > (int)base)
    return tide__error(L, closedmsg, tide__fname(L));
  return 0;
}

/* q:put(item [, priority]): store it, waiting while the queue is full. */
static int queue_put (lua_State *L) {
  tide_SyncClass *c = tide__syncclass(L);
  int n;
  Queue *q = checkqueue(L, c, &n);
  tide_Wait *w;
  if (n < 2 || lua_isnil(L, 2) || q->closed) return badput(L, n);
  if (q->n < q->max) {
    enter(L, q, n);
    return 0;
  }
  checkpriority(L, q, n);
  w = tide__waitbegin(c->rt, L);
  lua_settop(L, n < 3 ? 2 : 3);    /* a getter moves the item in from */
  if (n < 3) lua_pushnil(L);       /* 2 and 3 */
  tide__fifopush(&q->putters, tide__task(w));
  return tide_awaitk(L, w, tide__fifocancel, &q->putters, put_k, 3);
}

/* q:put_nowait(item [, priority]) -> true | nil, "full" */
static int queue_put_nowait (lua_State *L) {
  int n;
  Queue *q = checkqueue(L, tide__syncclass(L), &n);
  if (n < 2 || lua_isnil(L, 2) || q->closed) return badput(L, n);
  if (q->n >= q->max) {
    luaL_pushfail(L);
    lua_pushliteral(L, "full");
    return 2;
  }
  enter(L, q, n);
  lua_pushboolean(L, 1);
  return 1;
}

/* q:get() -> item, waiting while the queue is empty; nil, "closed" once
** it is closed and empty. */
static int queue_get (lua_State *L) {
  tide_SyncClass *c = tide__syncclass(L);
  Queue *q = tide__syncself(L, c);
  tide_Wait *w;
  if (q->n > 0) {
    take(L, q);
    return 1;
  }
  if (q->closed) {
    luaL_pushfail(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  w = tide__waitbegin(c->rt, L);
  lua_settop(L, 1);                /* a putter hands the item over */
  tide__fifopush(&q->getters, tide__task(w));
  return tide_await(L, w, tide__fifocancel, &q->getters);
}

/* q:get_nowait() -> item | nil, "empty" | nil, "closed" */
static int queue_get_nowait (lua_State *L) {
  Queue *q = tide__syncself(L, tide__syncclass(L));
  if (q->n > 0) {
    take(L, q);
    return 1;
  }
  luaL_pushfail(L);
  if (q->closed) lua_pushliteral(L, "closed");
  else lua_pushliteral(L, "empty");
  return 2;
}

static int queue_size (lua_State *L) {
  Queue *q = tide__syncself(L, tide__syncclass(L));
  lua_pushinteger(L, q->n);
  return 1;
}

static int queue_empty (lua_State *L) {
  Queue *q = tide__syncself(L, tide__syncclass(L));
  lua_pushboolean(L, q->n == 0);
  return 1;
}

static int queue_full (lua_State *L) {
  Queue *q = tide__syncself(L, tide__syncclass(L));
  lua_pushboolean(L, q->maxsize > 0 && q->n >= q->maxsize);
  return 1;
}

/* q:maxsize() -> the maxsize it was made with, 0 when unbounded */
static int queue_maxsize (lua_State *L) {
  Queue *q = tide__syncself(L, tide__syncclass(L));
  lua_pushinteger(L, q->maxsize);
  return 1;
}

static int queue_is_closed (lua_State *L) {
  Queue *q = tide__syncself(L, tide__syncclass(L));
  lua_pushboolean(L, q->closed);
  return 1;
}

/* Wake every task of f with the values on top of L (none if n is 0);
** those that wait from now on wait for the next time. */
static void wakeall (lua_State *L, tide_Fifo *f, int n) {
  tide_Fifo all = *f;
  Task *t;
  int i;
  f->head = f->tail = NULL;
  while ((t = tide__fifopop(&all)) != NULL) {
    for (i = n; i > 0; i--) lua_pushvalue(L, -n);
    lua_xmove(L, t->w.L, n);       /* its wait left room (LUA_MINSTACK) */
    tide__syncwake(t, n);
  }
}

/* q:task_done(): an item taken by get is dealt with (for join). */
static int queue_task_done (lua_State *L) {
  Queue *q = tide__syncself(L, tide__syncclass(L));
  if (q->unfinished == 0)
    return tide__error(L, "%s: called more times than items were put",
                       tide__fname(L));
  if (--q->unfinished == 0) wakeall(L, &q->joiners, 0);
  return 0;
}

/* q:join(): wait until every item put has been marked task_done. */
static int queue_join (lua_State *L) {
  tide_SyncClass *c = tide__syncclass(L);
  Queue *q = tide__syncself(L, c);
  tide_Wait *w;
  if (q->unfinished == 0) return 0;
  w = tide__waitbegin(c->rt, L);
  lua_settop(L, 1);
  tide__fifopush(&q->joiners, tide__task(w));
  return tide_await(L, w, tide__fifocancel, &q->joiners);
}

/* q:close(): no more puts (they raise, and so do those waiting now);
** getters drain what is left and then get nil, "closed". */
static int queue_close (lua_State *L) {
  Queue *q = tide__syncself(L, tide__syncclass(L));
  if (q->closed) return 0;
  lua_settop(L, 1);
  luaL_pushfail(L);
  lua_pushliteral(L, "closed");    /* allocates: before anything changes */
  q->closed = 1;
  q->max = -1;
  lua_pushboolean(L, 1);
  wakeall(L, &q->putters, 1);      /* true: raise closedmsg */
  lua_pop(L, 1);
  wakeall(L, &q->getters, 2);      /* nil, "closed" */
  return 0;
}

/* for item in q:iter() do ... end: get until the queue is closed and empty. */
static int queue_iter (lua_State *L) {
  tide__syncself(L, tide__syncclass(L));
  lua_getfield(L, lua_upvalueindex(2), "get");
  lua_pushvalue(L, 1);
  return 2;
}

static int queue_tostring (lua_State *L) {
  Queue *q = tide__syncself(L, tide__syncclass(L));
  const char *closed = q->closed ? ", closed" : "";
  lua_getfield(L, lua_upvalueindex(2), "__name");
  if (q->maxsize > 0)
    lua_pushfstring(L, "%s (%I/%I%s)", lua_tostring(L, -1), q->n,
                    q->maxsize, closed);
  else
    lua_pushfstring(L, "%s (%I/inf%s)", lua_tostring(L, -1), q->n, closed);
  return 1;
}

static const luaL_Reg queue_methods[] = {
  {"put", queue_put},
  {"get", queue_get},
  {"put_nowait", queue_put_nowait},
  {"get_nowait", queue_get_nowait},
  {"size", queue_size},
  {"empty", queue_empty},
  {"full", queue_full},
  {"maxsize", queue_maxsize},
  {"is_closed", queue_is_closed},
  {"task_done", queue_task_done},
  {"join", queue_join},
  {"close", queue_close},
  {"iter", queue_iter},
  {"__tostring", queue_tostring},
  {NULL, NULL}
};

/* ---- Making queues -------------------------------------------------------- */

/* The maxsize at 1: a non-negative integer (numbers in strings too), 0 by
** default. */
static lua_Integer checkmaxsize (lua_State *L) {
  int isnum;
  lua_Integer n;
  if (lua_isnoneornil(L, 1)) return 0;
  n = lua_tointegerx(L, 1, &isnum);
  if (!isnum || n < 0)
    tide__argerror(L, 1, "non-negative integer expected");
  return n;
}

/* Push a new queue of the kind, with the comparator at 2 (or nil). */
static int newqueue (lua_State *L, int kind) {
  lua_Integer maxsize = checkmaxsize(L);
  Queue *q;
  lua_settop(L, 2);
  q = lua_newuserdatauv(L, sizeof *q, 2);
  memset(q, 0, sizeof *q);
  q->kind = kind;
  q->maxsize = maxsize;
  q->max = maxsize > 0 ? maxsize : LUA_MAXINTEGER;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, -2);
  lua_createtable(L, 0, 0);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 2);
  return 1;
}

/* tide.Queue([maxsize]) */
static int queue_new (lua_State *L) {
  lua_settop(L, 1);
  return newqueue(L, FIFO);
}

/* tide.LifoQueue([maxsize]) */
static int lifoqueue_new (lua_State *L) {
  lua_settop(L, 1);
  return newqueue(L, LIFO);
}

/* tide.PriorityQueue([maxsize] [, cmp]) */
static int priorityqueue_new (lua_State *L) {
  lua_settop(L, 2);
  if (lua_type(L, 1) == LUA_TFUNCTION && lua_isnil(L, 2))
    lua_insert(L, 1);
  if (!lua_isnil(L, 2) && lua_type(L, 2) != LUA_TFUNCTION)
    tide__typeerror(L, 2, "function");
  return newqueue(L, PRIO);
}

/* Make the class name (its metatable, which is its own method table) and
** its constructor tide[name]. Stack: tide table, private table, runtime
** userdata. */
static void openclass (lua_State *L, const char *name, lua_CFunction ctor) {
  lua_pushfstring(L, "tide.%s", name);
  luaL_newmetatable(L, lua_tostring(L, -1));  /* filled by every open */
  lua_remove(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  tide__newclass(L, -2);           /* tide, private, rt, mt, class */
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -4);
  luaL_setfuncs(L, queue_methods, 2);
  lua_pop(L, 1);
  lua_insert(L, -2);
  lua_pushcclosure(L, ctor, 2);
  lua_setfield(L, -4, name);
}

int tide__openqueue (lua_State *L) {
  openclass(L, "Queue", queue_new);
  openclass(L, "LifoQueue", lifoqueue_new);
  openclass(L, "PriorityQueue", priorityqueue_new);
  return 0;
}
