/*
** timer.c: tide.sleep, tide.yield, tide.now, tide.hrtime, and the timer
** heap behind them: one libuv timer for the runtime, a binary heap of
** waiting tasks ordered by when they are due (ties in arrival order).
*/
#include <math.h>
#include <stdlib.h>

#include "tide_int.h"

/* The heap key: due time in ms, then arrival, so equal deadlines keep
** their order (the low 24 bits of a sequence number break ties). */
static uint64_t key (const Task *t) {
  return t->due;
}

static void heap_set (Heap *h, uint32_t i, Task *t) {
  h->a[i] = t;
  t->heapidx = i + 1;
}

static void heap_up (Heap *h, uint32_t i) {
  Task *t = h->a[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (key(h->a[p]) <= key(t)) break;
    heap_set(h, i, h->a[p]);
    i = p;
  }
  heap_set(h, i, t);
}

static void heap_down (Heap *h, uint32_t i) {
  Task *t = h->a[i];
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && key(h->a[c + 1]) < key(h->a[c])) c++;
    if (key(t) <= key(h->a[c])) break;
    heap_set(h, i, h->a[c]);
    i = c;
  }
  heap_set(h, i, t);
}

static void timer_cb (uv_timer_t *timer);

/* Arm the loop's timer for the earliest entry, or stop it. */
static void timer_rearm (tide_Runtime *rt) {
  uint64_t now, due;
  if (rt->heap.n == 0) {
    uv_timer_stop(&rt->timer);
    return;
  }
  now = uv_now(rt->loop);
  due = key(rt->heap.a[0]) >> 24;
  uv_timer_start(&rt->timer, timer_cb, due > now ? due - now : 0, 0);
}

static int heap_push (lua_State *L, tide_Runtime *rt, Task *t, uint64_t due) {
  Heap *h = &rt->heap;
  if (h->n == h->cap) {
    uint32_t ncap = h->cap ? h->cap * 2 : 256;
    Task **a = tide__realloc(h->a, ncap * sizeof *a);
    if (a == NULL) return tide__nomem(L);
    h->a = a;
    h->cap = ncap;
  }
  t->due = (due << 24) | (rt->seq++ & 0xffffff);
  h->a[h->n] = t;
  heap_up(h, h->n++);
  if (t->heapidx == 1) timer_rearm(rt);
  return 0;
}

void tide__heapremove (tide_Runtime *rt, Task *t) {
  Heap *h = &rt->heap;
  uint32_t i = t->heapidx - 1;
  t->heapidx = 0;
  if (--h->n > i) {
    heap_set(h, i, h->a[h->n]);
    heap_up(h, i);
    heap_down(h, h->a[i]->heapidx - 1);
  }
  if (i == 0) timer_rearm(rt);
}

static void timer_cb (uv_timer_t *timer) {
  tide_Runtime *rt = timer->data;
  uint64_t now = uv_now(rt->loop);
  while (rt->heap.n > 0 && (key(rt->heap.a[0]) >> 24) <= now) {
    Task *t = rt->heap.a[0];
    t->heapidx = 0;
    if (--rt->heap.n > 0) {
      heap_set(&rt->heap, 0, rt->heap.a[rt->heap.n]);
      heap_down(&rt->heap, 0);
    }
    tide_wake(&t->w, 0);
  }
  timer_rearm(rt);
}

/* The longest wait the heap can time: its key keeps 40 bits of loop time
** in ms (34 years from the loop's start); a longer one is not timed at
** all and lasts until cancelled, as math.huge does. */
#define FOREVER_MS ((uint64_t)1 << 38)

/* Put the calling task (wait w) on the heap for s seconds (s > 0). */
static void timer_add (lua_State *L, tide_Runtime *rt, tide_Wait *w,
                       double s) {
  double ms = ceil(s * 1000.0);
  if (!(ms < (double)FOREVER_MS)) return;      /* math.huge, 2^53, 1e18 */
  uv_update_time(rt->loop);
  heap_push(L, rt, tide__task(w), uv_now(rt->loop) + (uint64_t)ms);
}

/* For the other waits that may be timed (watch.c): the task of w is woken
** with no value after s seconds, unless woken before. */
void tide__timeradd (lua_State *L, tide_Wait *w, double s) {
  timer_add(L, tide__task(w)->rt, w, s);
}

static void timer_cancel (tide_Wait *w) {
  Task *t = tide__task(w);
  if (t->heapidx) tide__heapremove(t->rt, t);
}

static void yield_cancel (tide_Wait *w) { (void)w; }

/* Wait in the ready queue: other ready tasks run first. */
static int yield_now (lua_State *L, tide_Runtime *rt) {
  tide_Wait *w = tide_wait(L);
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
  w = tide_wait(L);
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
  tide_Wait *w = tide_wait(L);
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
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, timer_funcs, 1);
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, timer_suspend, 1);
  lua_setfield(L, -3, "suspend");
  return 0;
}
