/*
** timer.c: tide.sleep, tide.yield, tide.now, tide.hrtime, and the timers
** behind them: one libuv timer for the runtime, and the waiting tasks in
** one list per duration, as Node.js keeps its timers: a wait of d ms joins
** the end of the list of d, where it is due last (the loop's clock only goes
** forward), so adding, removing and waking a task take constant time. The
** lists sit in a binary heap by the key of their first task (its due time,
** ties in arrival order); only a duration not in use touches the heap.
*/
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "tide_int.h"

/* A list of the timed waits of one duration. Lists are userdata in a
** registry table (under &rt->heap, by duration), so the collector frees
** what tide_close leaves; a list is in that table while it is in the heap.
** Its key may be less than its first task's (after that task left the
** list): the heap then takes it too early and puts it back in its place. */
struct tide_TimerList {
  tide_TNode head;         /* the tasks, in the order they are due */
  uint64_t ms;             /* the duration of every wait in it */
  uint64_t key;            /* heap key: at most its first task's */
  uint32_t heapidx;        /* position in the heap + 1; 0 if absent */
  int idle;                /* came up empty once: dropped if it does again */
};

#define task_of(n) ((Task *)(void *)((char *)(n) - offsetof(Task, tnode)))

static void heap_set (Heap *h, uint32_t i, tide_TimerList *l) {
  h->a[i] = l;
  l->heapidx = i + 1;
}

static void heap_up (Heap *h, uint32_t i) {
  tide_TimerList *l = h->a[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (h->a[p]->key <= l->key) break;
    heap_set(h, i, h->a[p]);
    i = p;
  }
  heap_set(h, i, l);
}

static void heap_down (Heap *h, uint32_t i) {
  tide_TimerList *l = h->a[i];
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && h->a[c + 1]->key < h->a[c]->key) c++;
    if (l->key <= h->a[c]->key) break;
    heap_set(h, i, h->a[c]);
    i = c;
  }
  heap_set(h, i, l);
}

static void timer_cb (uv_timer_t *timer);

/* Arm the loop's timer for the first list of the heap, or stop it when no
** task is timed. */
static void timer_rearm (tide_Runtime *rt) {
  uint64_t now, due;
  if (rt->ntimed == 0) {
    uv_timer_stop(&rt->timer);
    return;
  }
  now = uv_now(rt->loop);
  due = rt->heap.a[0]->key >> 24;
  uv_timer_start(&rt->timer, timer_cb, due > now ? due - now : 0, 0);
}

/* The list of the waits of ms ms: found, or made (which may raise, before
** anything is changed). */
static tide_TimerList *getlist (lua_State *L, tide_Runtime *rt,
                                uint64_t ms) {
  Heap *h = &rt->heap;
  tide_TimerList *l = rt->lastlist;
  if (l != NULL && l->ms == ms) return l;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &rt->heap);
  lua_rawgeti(L, -1, (lua_Integer)ms);
  l = lua_touserdata(L, -1);
  if (l == NULL) {
    if (h->n == h->cap) {          /* room in the heap, first */
      uint32_t ncap = h->cap ? h->cap * 2 : 16;
      tide_TimerList **a = tide__realloc(h->a, ncap * sizeof *a);
      if (a == NULL) tide__nomem(L);
      h->a = a;
      h->cap = ncap;
    }
    l = lua_newuserdatauv(L, sizeof *l, 0);
    l->head.prev = l->head.next = &l->head;
    l->ms = ms;
    l->key = 0;
    l->heapidx = 0;
    l->idle = 0;
    lua_rawseti(L, -3, (lua_Integer)ms);
    h->a[h->n] = l;                /* in the heap with the table */
    h->a[h->n]->key = (uv_now(rt->loop) + ms) << 24;
    heap_up(h, h->n++);
    if (l->heapidx == 1) timer_rearm(rt);
  }
  lua_pop(L, 2);
  rt->lastlist = l;
  return l;
}

/* Take the first list, empty, out of the heap and its table. */
static void droplist (tide_Runtime *rt) {
  Heap *h = &rt->heap;
  lua_State *L = rt->cbL;
  tide_TimerList *l = h->a[0];
  if (--h->n > 0) {
    heap_set(h, 0, h->a[h->n]);
    heap_down(h, 0);
  }
  l->heapidx = 0;
  if (rt->lastlist == l) rt->lastlist = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &rt->heap);
  lua_pushnil(L);                  /* a key it has: allocates nothing */
  lua_rawseti(L, -2, (lua_Integer)l->ms);
  lua_pop(L, 1);
}

void tide__heapremove (tide_Runtime *rt, Task *t) {
  tide_TNode *n = &t->tnode;
  if (n->next == NULL) return;
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = NULL;
  if (--rt->ntimed == 0) uv_timer_stop(&rt->timer);
}

/* t is due at loop time due (ms): at the end of l, whose duration it is. */
static void timer_push (tide_Runtime *rt, tide_TimerList *l, Task *t,
                        uint64_t due) {
  tide_TNode *n = &t->tnode;
  if (n->next != NULL) tide__heapremove(rt, t);
  t->due = (due << 24) | (rt->seq++ & 0xffffff);
  l->idle = 0;
  n->next = &l->head;
  n->prev = l->head.prev;
  l->head.prev->next = n;
  l->head.prev = n;
  if (rt->ntimed++ == 0) timer_rearm(rt);
}

/* Wake the tasks that are due, in that order. They are queued, not run
** here: each runs after those due before it, and what they wake runs
** after them. */
static void timer_cb (uv_timer_t *timer) {
  tide_Runtime *rt = timer->data;
  Heap *h = &rt->heap;
  uint64_t now = uv_now(rt->loop);
  rt->depth++;
  while (h->n > 0) {
    tide_TimerList *l = h->a[0];
    Task *t;
    if (l->head.next == &l->head) {  /* empty: kept for one duration */
      if ((l->key >> 24) > now) break;
      if (l->idle) droplist(rt);     /* more, for a task that sleeps */
      else {                         /* again (a ticker) to find it */
        l->idle = 1;
        l->key = (now + l->ms) << 24;
        heap_down(h, 0);
      }
      continue;
    }
    t = task_of(l->head.next);
    if (t->due != l->key) {        /* its first task has left: re-key */
      l->key = t->due;
      heap_down(h, 0);
      continue;
    }
    if ((t->due >> 24) > now) break;
    tide__heapremove(rt, t);
    tide_wake(&t->w, 0);
  }
  rt->depth--;
  timer_rearm(rt);
  if (rt->rcount > 0) tide__runready(rt);
}

/* The longest wait the timers can time: a key keeps 40 bits of loop time
** in ms (34 years from the loop's start); a longer one is not timed at
** all and lasts until cancelled, as math.huge does. */
#define FOREVER_MS ((uint64_t)1 << 38)

/* Put the calling task (wait w) on the heap for s seconds (s > 0). */
static void timer_add (lua_State *L, tide_Runtime *rt, tide_Wait *w,
                       double s) {
  double ms = ceil(s * 1000.0);
  tide_TimerList *l;
  if (!(ms < (double)FOREVER_MS)) return;      /* math.huge, 2^53, 1e18 */
  uv_update_time(rt->loop);
  l = getlist(L, rt, (uint64_t)ms);
  timer_push(rt, l, tide__task(w), uv_now(rt->loop) + (uint64_t)ms);
}

/* For the other waits that may be timed (watch.c): the task of w is woken
** with no value after s seconds, unless woken before. */
void tide__timeradd (lua_State *L, tide_Wait *w, double s) {
  timer_add(L, tide__task(w)->rt, w, s);
}

static void timer_cancel (tide_Wait *w) {
  Task *t = tide__task(w);
  tide__heapremove(t->rt, t);
}

static void yield_cancel (tide_Wait *w) { (void)w; }

/* Wait in the ready queue: other ready tasks run first. */
static int yield_now (lua_State *L, tide_Runtime *rt) {
  tide_Wait *w = tide__waitbegin(rt, L);
  lua_settop(L, 0);
  tide__enqueue(rt, tide__task(w));
  return tide_await(L, w, yield_cancel, NULL);
}

static double checkduration (lua_State *L, int arg) {
  double s = luaL_checknumber(L, arg);
  luaL_argcheck(L, s >= 0, arg, s != s ? "duration is NaN"
                                         : "negative duration");
  return s;
}

/* tide.sleep(seconds): suspend the calling task. */
static int timer_sleep (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  double s = checkduration(L, 1);
  tide_Wait *w;
  if (s == 0) return yield_now(L, rt);
  w = tide__waitbegin(rt, L);
  lua_settop(L, 0);
  timer_add(L, rt, w, s);
  return tide_await(L, w, timer_cancel, NULL);
}

static int timer_yield (lua_State *L) {
  return yield_now(L, tide__rt(L));
}

/* Private: suspend([seconds]) for the Lua-side library: like the waits of
** sched's suspend, but woken with no values once the time is up. */
static void suspend_cancel (tide_Wait *w) { timer_cancel(w); }

static int timer_suspend (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  double s = lua_isnoneornil(L, 1) ? HUGE_VAL : checkduration(L, 1);
  tide_Wait *w = tide__waitbegin(rt, L);
  lua_settop(L, 0);
  timer_add(L, rt, w, s);
  return tide_await(L, w, suspend_cancel, TIDE_LUAWAIT);
}

/* tide.now() -> the monotonic clock in seconds, read now (not the loop's
** cached time, which stands still while a task computes or blocks). */
static int timer_now (lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

static int timer_hrtime (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_hrtime());
  return 1;
}

static const luaL_Reg timer_funcs[] = {
  {"sleep", timer_sleep},
  {"yield", timer_yield},
  {"now", timer_now},
  {"hrtime", timer_hrtime},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. */
int tide__opentimer (lua_State *L) {
  tide_Runtime *rt = lua_touserdata(L, -1);
  lua_newtable(L);                 /* the timer lists, by duration */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &rt->heap);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, timer_funcs, 1);
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, timer_suspend, 1);
  lua_setfield(L, -3, "suspend");
  return 0;
}
