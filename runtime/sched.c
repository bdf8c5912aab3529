/*
** sched.c: tasks. Spawning, resuming, the wait/wake protocol every awaitable
** function uses, cancellation, the ready queue, awaiting a task, and the
** reports for errors nobody retrieved and for deadlocks.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "tide_int.h"

char tide__luawait;

/* ---- The live-task array ------------------------------------------------
** Every task that has not ended sits in one registry array, so nothing that
** only C points at (a timer, a request) is collected. Removal moves the last
** entry into the hole. */

static void live_add (tide_Runtime *rt, lua_State *L, int idx) {
  Task *t = lua_touserdata(L, idx);
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, ++rt->nlive);
  lua_pop(L, 1);
  t->slot = rt->nlive;
}

static void live_remove (tide_Runtime *rt, lua_State *L, Task *t) {
  uint32_t last = rt->nlive--;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
  if (t->slot != last) {
    Task *moved;
    lua_rawgeti(L, -1, last);
    moved = lua_touserdata(L, -1);
    moved->slot = t->slot;
    lua_rawseti(L, -2, t->slot);
  }
  lua_pushnil(L);
  lua_rawseti(L, -2, last);
  lua_pop(L, 1);
  t->slot = 0;
}

/* Push the Task object of a live task. */
static void pushtask (lua_State *L, Task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->rt->liveref);
  lua_rawgeti(L, -1, t->slot);
  lua_remove(L, -2);
}

/* ---- The ready queue: a ring buffer of tasks to resume ------------------ */

static void idle_cb (uv_idle_t *h) {
  tide__runready(h->data);
}

void tide__enqueue (tide_Runtime *rt, Task *t) {
  if (t->queued) return;
  if (rt->rcount == rt->rcap) {
    uint32_t ncap = rt->rcap ? rt->rcap * 2 : 64, i;
    Task **a = malloc(ncap * sizeof *a);
    if (a == NULL) {
      fprintf(stderr, "tide: not enough memory for the ready queue\n");
      abort();
    }
    for (i = 0; i < rt->rcount; i++)
      a[i] = rt->ready[(rt->rhead + i) % rt->rcap];
    free(rt->ready);
    rt->ready = a;
    rt->rhead = 0;
    rt->rcap = ncap;
  }
  rt->ready[(rt->rhead + rt->rcount++) % rt->rcap] = t;
  t->queued = 1;
  if (rt->rcount == 1 && !rt->closing)
    uv_idle_start(&rt->idle, idle_cb);
}

static Task *dequeue (tide_Runtime *rt) {
  Task *t = rt->ready[rt->rhead];
  rt->rhead = (rt->rhead + 1) % rt->rcap;
  rt->rcount--;
  t->queued = 0;
  return t;
}

static void task_run (tide_Runtime *rt, Task *t);

/* Resume ready tasks until none is left, or until a budget is spent so that
** the loop gets to poll IO between long chains of wake-ups. */
void tide__runready (tide_Runtime *rt) {
  int budget = 4096;
  while (rt->rcount > 0 && budget-- > 0)
    task_run(rt, dequeue(rt));
  if (rt->rcount == 0)
    uv_idle_stop(&rt->idle);
}

/* ---- Errors of tasks ----------------------------------------------------- */

/* Is the value at idx a tide.Cancelled error? */
int tide__israised (lua_State *L, int idx) {
  int r;
  if (!lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, TIDE_CANCELLED);
  r = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return r;
}

/* Push the Cancelled object of task t (made on first use, with the message
** given to cancel()). */
static void pushcancelled (lua_State *L, Task *t) {
  pushtask(L, t);
  if (lua_getiuservalue(L, -1, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, -3, 2);
  }
  if (lua_getfield(L, -1, "cancel") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    luaL_setmetatable(L, TIDE_CANCELLED);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "cancel");
  }
  lua_replace(L, -3);
  lua_pop(L, 1);
}

static int raise_cancelled (lua_State *L, Task *t) {
  pushcancelled(L, t);
  return lua_error(L);
}

static int calltostring (lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* Push "msg\nstack traceback:..." for the error on top of co, as lua.c's
** message handler does for the main chunk. co is dead (no call may run on
** it): a __tostring runs on L, in a protected call. */
static void pushtraceback (lua_State *L, lua_State *co) {
  const char *msg = lua_tostring(co, -1);
  if (msg == NULL) {
    int top = lua_gettop(L);
    lua_pushcfunction(L, calltostring);
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    if (luaL_getmetafield(L, -1, "__tostring") != LUA_TNIL &&
        (lua_pop(L, 1), lua_pcall(L, 1, 1, 0) == LUA_OK) &&
        lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)",
                            luaL_typename(co, -1));
    luaL_traceback(L, co, msg, 0);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return;
  }
  luaL_traceback(L, co, msg, 0);
}

/* ---- Ending a task ------------------------------------------------------- */

static void wake_awaiters (Task *t) {
  Task *a = t->awaiters;
  t->awaiters = NULL;
  while (a != NULL) {
    Task *next = a->link;
    a->link = NULL;
    tide_wake(&a->w, 0);
    a = next;
  }
}

/* Call fn(task) outside any task, in a protected call; report errors. */
static void callback (tide_Runtime *rt, lua_State *L) {
  Task *prev = rt->current;
  rt->current = NULL;
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "tide: error in an on_done callback: %s\n",
            luaL_tolstring(L, -1, NULL));
    fflush(stderr);
    lua_pop(L, 2);
  }
  rt->current = prev;
}

/* Call the on_done callbacks with the task. */
static void run_callbacks (tide_Runtime *rt, Task *t) {
  lua_State *L = rt->cbL;
  lua_Integer i, n;
  pushtask(L, t);
  lua_getiuservalue(L, -1, 2);
  n = luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_pushvalue(L, -3);
    callback(rt, L);
    lua_pushnil(L);
    lua_rawseti(L, -2, i);
  }
  lua_pop(L, 2);
}

/* The body returned or raised: keep the results (or the error and its
** traceback) on the dead coroutine's stack, and tell whoever waits. */
static void task_finish (tide_Runtime *rt, Task *t, int status, int nres) {
  lua_State *co = t->co;
  if (status == LUA_OK)
    t->nres = nres;
  else {
    lua_State *L = rt->cbL;
    Task *prev = rt->current;
    lua_checkstack(co, 2);         /* a dead thread has no free slot */
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);           /* L: error */
    if (t->cancelreq && tide__israised(L, -1))
      lua_pushnil(L);
    else
      pushtraceback(L, co);        /* L: error, traceback */
    rt->current = t;               /* its __close handlers run as it */
    if (lua_resetthread(co) != LUA_OK) {  /* a __close raised: it wins */
      lua_xmove(co, L, 1);
      lua_replace(L, -3);
    }
    rt->current = prev;
    lua_settop(co, 0);
    lua_xmove(L, co, 2);           /* co: error, traceback */
    t->failed = 1;
    t->cancelled = t->cancelreq && tide__israised(co, 1);
    t->nres = 2;
  }
  t->state = T_DONE;
  wake_awaiters(t);
  if (t->hascbs) {
    t->retrieved = 1;
    run_callbacks(rt, t);
  }
  live_remove(rt, rt->cbL, t);
}

/* A task yielded with coroutine.yield rather than by waiting on something. */
static void task_badyield (tide_Runtime *rt, Task *t, int nres) {
  lua_pop(t->co, nres);
  lua_resetthread(t->co);
  lua_settop(t->co, 0);
  luaL_where(t->co, 0);
  lua_pushliteral(t->co, "attempt to yield from outside a coroutine "
                         "(coroutine.yield called directly in a task)");
  lua_concat(t->co, 2);
  task_finish(rt, t, LUA_ERRRUN, 0);
}

/* os.exit(status, true) in a task: its pending <close> variables run, with
** no error, as lua5.4 runs the main chunk's; then the state is closed and
** the process exits. */
static void task_exit (tide_Runtime *rt, Task *t) {
  rt->current = t;
  lua_resetthread(t->co);
  lua_rawgetp(t->co, LUA_REGISTRYINDEX, &rt->exiting);  /* Lua's os.exit: */
  lua_pushinteger(t->co, rt->exitstatus);  /* it does not return here, to */
  lua_pushboolean(t->co, 1);               /* code that lua_close may have */
  lua_call(t->co, 2, 0);                   /* unloaded (tide.so) */
}

static int os_exit (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  Task *t = rt->current;
  if (!lua_toboolean(L, 2) || t == NULL || t->co != L) {
    lua_pushvalue(L, lua_upvalueindex(2));     /* Lua's own */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
  }
  if (lua_isboolean(L, 1))
    rt->exitstatus = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else
    rt->exitstatus = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  rt->exiting = 1;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_rawsetp(L, LUA_REGISTRYINDEX, &rt->exiting);
  return lua_yield(L, 0);                      /* to task_run */
}

static void task_run (tide_Runtime *rt, Task *t) {
  lua_State *co = t->co;
  int nargs = 0, nres, status, timed = rt->debug;
  Task *prev = rt->current;
  if (t->state == T_DONE) return;
  if (t->state == T_NEW) {
    nargs = t->w.nres;
    if (t->cancelreq) {            /* cancelled before it started */
      lua_settop(co, 0);
      pushcancelled(co, t);
      rt->depth++;
      task_finish(rt, t, LUA_ERRRUN, 0);
      rt->depth--;
      return;
    }
  }
  else if (t->state == T_WAITING) { /* after tide.yield() */
    t->w.nres = 0;
    t->w.cancel = NULL;
    t->gen++;
  }
  else if (t->w.L == co)
    nargs = t->w.nres;
  t->state = T_RUNNING;
  rt->current = t;
  rt->depth++;
  if (timed) tide__faminebegin(rt, t);
  status = lua_resume(co, NULL, nargs, &nres);
  if (timed) tide__famineend(rt, t);
  rt->current = prev;
  if (status == LUA_YIELD) {
    if (rt->exiting) task_exit(rt, t);
    else if (t->state == T_RUNNING) task_badyield(rt, t, nres);
  }
  else
    task_finish(rt, t, status, nres);
  rt->depth--;
}

/* ---- Spawning ------------------------------------------------------------ */

/* L: function, nargs arguments -> the Task object. */
Task *tide__spawn (tide_Runtime *rt, lua_State *L, int nargs) {
  Task *t;
  lua_State *co;
  if (rt->closing) luaL_error(L, "spawn: the tide runtime is closed");
  t = lua_newuserdatauv(L, sizeof(Task), 2);
  memset(t, 0, sizeof *t);
  t->rt = rt;
  luaL_setmetatable(L, TIDE_TASK);
  co = lua_newthread(L);
  t->co = co;
  lua_setiuservalue(L, -2, 1);
  lua_rotate(L, -(nargs + 2), 1);   /* Task, function, arguments */
  if (!lua_checkstack(co, nargs + 1))
    luaL_error(L, "too many arguments to spawn");
  lua_xmove(L, co, nargs + 1);
  t->state = T_NEW;
  t->w.nres = nargs;
  live_add(rt, L, -1);
  tide__enqueue(rt, t);
  return t;
}

TIDE_API int tide_spawn (tide_Runtime *rt, int nargs) {
  luaL_checktype(rt->L, -(nargs + 1), LUA_TFUNCTION);
  tide__spawn(rt, rt->L, nargs);
  return LUA_OK;
}

static int sched_spawn (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  tide__spawn(tide__rt(L), L, lua_gettop(L) - 1);
  return 1;
}

static int sched_current (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  if (rt->current == NULL) lua_pushnil(L);
  else pushtask(L, rt->current);
  return 1;
}

/* ---- The wait/wake protocol ---------------------------------------------- */

/* The name of the running C function, for error messages: from the call
** site, or else from a tide module's table ("tide.sleep", "tide.fs.stat").
** Leaves one value on the stack (which keeps the name alive until the
** error is raised). */
static const char *fname (lua_State *L) {
  static const char *const mods[] = { "tide", "tide.fs", NULL };
  lua_Debug ar;
  const char *name = "?";
  int m;
  if (!lua_getstack(L, 0, &ar)) return name;
  if (lua_getinfo(L, "nf", &ar) && ar.name) return ar.name;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  for (m = 0; mods[m] != NULL && name[0] == '?'; m++) {
    if (lua_getfield(L, -1, mods[m]) == LUA_TTABLE) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        if (lua_rawequal(L, -1, -5) && lua_type(L, -2) == LUA_TSTRING) {
          name = lua_pushfstring(L, "%s.%s", mods[m], lua_tostring(L, -2));
          lua_replace(L, -6);        /* keep the string alive below */
          lua_pop(L, 2);
          break;
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return name;
}

static tide_Wait *wait_begin (tide_Runtime *rt, lua_State *L) {
  Task *t = rt ? rt->current : NULL;
  if (t == NULL)
    luaL_error(L, "'%s' must be called inside a task "
                  "(use tide.run or tide.spawn)", fname(L));
  if (rt->closing)
    luaL_error(L, "'%s': the tide runtime is closed", fname(L));
  if (!lua_isyieldable(L))
    luaL_error(L, "'%s' cannot wait inside a C call such as table.sort, "
                  "string.gsub or require", fname(L));
  if (t->cancelreq && !t->shield)
    raise_cancelled(L, t);
  t->w.L = L;
  t->w.nres = 0;
  return &t->w;
}

TIDE_API tide_Wait *tide_wait (lua_State *L) {
  return wait_begin(tide_runtime(L), L);
}

static int await_k (lua_State *L, int status, lua_KContext ctx) {
  tide_Wait *w = (tide_Wait *)ctx;
  Task *t = tide__task(w);
  (void)status;
  if (t->interrupted) {
    t->interrupted = 0;
    if (t->badwait) {
      t->badwait = 0;
      return luaL_error(L, "cannot wait in a coroutine resumed inside a C "
                           "call such as table.sort or string.gsub");
    }
    return raise_cancelled(L, t);
  }
  if (w->k) return w->k(L, LUA_YIELD, w->ctx);
  return lua_gettop(L) - w->base;
}

TIDE_API int tide_awaitk (lua_State *L, tide_Wait *w, tide_CancelF cancel,
                          void *data, lua_KFunction k, lua_KContext ctx) {
  w->cancel = cancel;
  w->data = data;
  w->k = k;
  w->ctx = ctx;
  w->base = lua_gettop(L);
  w->yielder = L;
  tide__task(w)->state = T_WAITING;
  return lua_yieldk(L, 0, (lua_KContext)w, await_k);
}

TIDE_API int tide_await (lua_State *L, tide_Wait *w, tide_CancelF cancel,
                         void *data) {
  return tide_awaitk(L, w, cancel, data, NULL, 0);
}

TIDE_API void *tide_waitdata (tide_Wait *w) { return w->data; }
TIDE_API lua_State *tide_thread (tide_Wait *w) { return w->L; }

TIDE_API void tide_wake (tide_Wait *w, int nres) {
  Task *t = tide__task(w);
  tide_Runtime *rt = t->rt;
  if (t->state != T_WAITING) {     /* not waiting any more: drop the values */
    lua_pop(w->L, nres);
    return;
  }
  w->nres = nres;
  w->cancel = NULL;
  if (t->heapidx) tide__heapremove(rt, t);
  t->gen++;
  t->state = T_READY;
  if (rt->depth > 0 || rt->closing)
    tide__enqueue(rt, t);
  else {                           /* from a libuv callback: resume now */
    task_run(rt, t);
    if (rt->rcount > 0) tide__runready(rt);
  }
}

/* ---- Cancellation -------------------------------------------------------- */

/* Cut the task's current wait: stop the operation, resume it to raise. */
void tide__interrupt (Task *t) {
  tide_CancelF cancel = t->w.cancel;
  t->w.cancel = NULL;
  t->interrupted = 1;
  if (cancel) cancel(&t->w);
  t->gen++;
  t->state = T_READY;
  tide__enqueue(t->rt, t);
}

/* Ask t to stop: its current or next wait raises tide.Cancelled (values
** already handed to it by a wake are still delivered first). Returns 0 if
** the task had already ended. */
int tide__cancel (Task *t) {
  if (t->state == T_DONE) return 0;
  t->cancelreq = 1;
  if (t->state == T_WAITING && !t->shield) tide__interrupt(t);
  return 1;
}

static int task_cancel (lua_State *L) {
  Task *t = tide__checktask(L, 1);
  if (!lua_isnoneornil(L, 2) && t->state != T_DONE && !t->cancelreq) {
    luaL_checkstring(L, 2);
    pushcancelled(L, t);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "message");
    lua_pop(L, 1);
  }
  lua_pushboolean(L, tide__cancel(t));
  return 1;
}

/* ---- Task methods ---------------------------------------------------------- */

Task *tide__checktask (lua_State *L, int i) {
  return luaL_checkudata(L, i, TIDE_TASK);
}

/* Push the results of an ended task, or raise its error. */
static int task_results (lua_State *L, Task *t) {
  lua_State *co = t->co;
  int i;
  t->retrieved = 1;
  if (t->failed) {
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
    return lua_error(L);
  }
  luaL_checkstack(L, t->nres, "too many results");
  luaL_checkstack(co, t->nres, "too many results");
  for (i = 1; i <= t->nres; i++)
    lua_pushvalue(co, i);
  lua_xmove(co, L, t->nres);
  return t->nres;
}

static void unlink_awaiter (Task *me) {
  Task *t = tide__task(me->w.data), **p = &t->awaiters;
  while (*p != NULL && *p != me) p = &(*p)->link;
  if (*p) *p = me->link;
  me->link = NULL;
}

static void await_cancel (tide_Wait *w) {
  unlink_awaiter(tide__task(w));
  tide__cancel(w->data);           /* cancelling the awaiter cancels the task */
}

static void shieldawait_cancel (tide_Wait *w) {
  unlink_awaiter(tide__task(w));
}

static int await_done (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return task_results(L, tide__checktask(L, 1));
}

static int awaittask (lua_State *L, tide_CancelF cancel) {
  Task *t = tide__checktask(L, 1), *me;
  tide_Wait *w;
  lua_settop(L, 1);
  if (t->state == T_DONE) return task_results(L, t);
  w = wait_begin(t->rt, L);
  me = tide__task(w);
  if (me == t) return luaL_error(L, "a task cannot await itself");
  me->link = t->awaiters;
  t->awaiters = me;
  return tide_awaitk(L, w, cancel, t, await_done, 0);
}

static int task_await (lua_State *L) {
  return awaittask(L, await_cancel);
}

/* Await t; if the awaiting task is cancelled, t goes on. */
static int sched_shieldawait (lua_State *L) {
  return awaittask(L, shieldawait_cancel);
}

static int task_done (lua_State *L) {
  lua_pushboolean(L, tide__checktask(L, 1)->state == T_DONE);
  return 1;
}

static int task_cancelled (lua_State *L) {
  lua_pushboolean(L, tide__checktask(L, 1)->cancelled);
  return 1;
}

/* task:result() -> true, results... | false, err; raises if not done. */
static int task_result (lua_State *L) {
  Task *t = tide__checktask(L, 1);
  lua_State *co = t->co;
  if (t->state != T_DONE)
    return luaL_error(L, "task:result: the task has not ended");
  t->retrieved = 1;
  lua_pushboolean(L, !t->failed);
  if (t->failed) {
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
    return 2;
  }
  return 1 + task_results(L, t);
}

/* task:on_done(fn): fn(task) once the task ends (now, if it has). */
static int task_on_done (lua_State *L) {
  Task *t = tide__checktask(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (t->state == T_DONE) {
    lua_State *cbL = t->rt->cbL;
    t->retrieved = 1;
    lua_settop(L, 2);
    lua_pushvalue(L, 1);
    lua_xmove(L, cbL, 2);          /* cbL: fn, task */
    callback(t->rt, cbL);
    return 0;
  }
  if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  t->hascbs = 1;
  return 0;
}

/* A task in a <close> variable is cancelled when the scope ends. */
static int task_close (lua_State *L) {
  tide__cancel(tide__checktask(L, 1));
  return 0;
}

static const char *const statenames[] = {
  "pending", "ready", "running", "waiting", "done"
};

static const char *task_statename (Task *t) {
  if (t->state != T_DONE) return statenames[t->state];
  return t->cancelled ? "cancelled" : t->failed ? "failed" : "done";
}

static int task_tostring (lua_State *L) {
  Task *t = tide__checktask(L, 1);
  lua_pushfstring(L, "tide.Task: %p (%s)", (void *)t, task_statename(t));
  return 1;
}

static int task_state (lua_State *L) {
  lua_pushstring(L, task_statename(tide__checktask(L, 1)));
  return 1;
}

/* task:traceback([msg]) -> where the task is (waits), as debug.traceback */
static int task_traceback (lua_State *L) {
  Task *t = tide__checktask(L, 1);
  const char *msg = luaL_optstring(L, 2, NULL);
  if (t->state == T_DONE || t->co == NULL) {
    lua_pushstring(L, msg ? msg : "stack traceback:\n\t(the task has ended)");
    return 1;
  }
  luaL_traceback(L, t->co, msg, 0);
  return 1;
}

/* An error nobody awaited is reported when its task is collected. */
static int task_gc (lua_State *L) {
  Task *t = lua_touserdata(L, 1);
  if (t->state == T_DONE && t->failed && !t->cancelled && !t->retrieved &&
      !t->main) {
    const char *tb = lua_tostring(t->co, 2);
    fprintf(stderr, "tide: error in a task nobody awaited: %s\n",
            tb ? tb : "?");
    fflush(stderr);
  }
  return 0;
}

/* ---- Lua-side waits: what the library written in Lua builds on ----------
** token() -> task, gen    names the wait the calling task is about to do
** suspend([s])            (timer.c) waits until wake(task, gen, ...) and
**                         returns ..., or returns nothing after s seconds
** wake(task, gen, ...)    -> true if the task was still in that wait
** shield(delta)           holds back (or releases) the caller's cancellation
** canwait()               whether the caller may wait (see below)
*/

static int sched_token (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  if (rt->current == NULL)
    return luaL_error(L, "'%s' must be called inside a task "
                         "(use tide.run or tide.spawn)", "token");
  pushtask(L, rt->current);
  lua_pushinteger(L, rt->current->gen);
  return 2;
}

static int sched_wake (lua_State *L) {
  Task *t = tide__checktask(L, 1);
  lua_Integer gen = luaL_checkinteger(L, 2);
  int n = lua_gettop(L) - 2;
  if (t->state != T_WAITING || t->gen != (uint32_t)gen ||
      t->w.data != TIDE_LUAWAIT) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (!lua_checkstack(t->w.L, n))
    return luaL_error(L, "too many values to wake");
  lua_xmove(L, t->w.L, n);
  t->rt->depth++;                  /* through the ready queue, never now: */
  tide_wake(&t->w, n);             /* the waker's Lua code goes on first */
  t->rt->depth--;
  lua_pushboolean(L, 1);
  return 1;
}

static int sched_shield (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  Task *t = rt->current;
  lua_Integer d = luaL_checkinteger(L, 1);
  if (t == NULL) return luaL_error(L, "shield: not inside a task");
  t->shield = (unsigned char)(t->shield + d);
  return 0;
}

/* ---- Reports ------------------------------------------------------------- */

/* Nothing can wake the tasks that are left: show where each one waits. */
void tide__reportstuck (tide_Runtime *rt) {
  lua_State *L = rt->cbL;
  uint32_t i;
  fprintf(stderr, "tide: deadlock: %u task%s waiting and nothing left that "
          "could wake %s\n", (unsigned)rt->nlive, rt->nlive == 1 ? "" : "s",
          rt->nlive == 1 ? "it" : "them");
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
  for (i = 1; i <= rt->nlive; i++) {
    Task *t;
    const char *name;
    lua_rawgeti(L, -1, i);
    t = lua_touserdata(L, -1);
    name = luaL_tolstring(L, -1, NULL);
    luaL_traceback(L, t->co, NULL, 0);
    fprintf(stderr, "%s is stuck; %s\n", name, lua_tostring(L, -1));
    lua_pop(L, 3);
  }
  lua_pop(L, 1);
  fflush(stderr);
}

/* Cancel every live task. */
void tide__cancelall (tide_Runtime *rt) {
  lua_State *L = rt->cbL;
  uint32_t i, n = rt->nlive;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
  for (i = 1; i <= n && i <= rt->nlive; i++) {
    lua_rawgeti(L, -1, i);
    tide__cancel(lua_touserdata(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void tide__pushresult (lua_State *L, Task *t) {
  int n = task_results(L, t);
  (void)n;
}

/* ---- Registration ------------------------------------------------------- */

static const luaL_Reg task_methods[] = {
  {"await", task_await},
  {"cancel", task_cancel},
  {"done", task_done},
  {"cancelled", task_cancelled},
  {"result", task_result},
  {"on_done", task_on_done},
  {"state", task_state},
  {"traceback", task_traceback},
  {NULL, NULL}
};

static const luaL_Reg task_meta[] = {
  {"__gc", task_gc},
  {"__close", task_close},
  {"__tostring", task_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

/* tide.tasks() -> a list of the tasks that have not ended. */
static int sched_tasks (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  uint32_t i;
  lua_createtable(L, (int)rt->nlive, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
  for (i = 1; i <= rt->nlive; i++) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -3, i);
  }
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg sched_funcs[] = {
  {"spawn", sched_spawn},
  {"current", sched_current},
  {"tasks", sched_tasks},
  {NULL, NULL}
};

/* canwait() -> whether the caller could wait here (not inside a C call
** such as table.sort) */
static int sched_canwait (lua_State *L) {
  lua_pushboolean(L, lua_isyieldable(L));
  return 1;
}

static const luaL_Reg sched_private[] = {
  {"canwait", sched_canwait},
  {"token", sched_token},
  {"wake", sched_wake},
  {"shield", sched_shield},
  {"shieldawait", sched_shieldawait},
  {NULL, NULL}
};

static int cancelled_tostring (lua_State *L) {
  lua_getfield(L, 1, "message");
  if (lua_isstring(L, -1))
    lua_pushfstring(L, "cancelled: %s", lua_tostring(L, -1));
  else
    lua_pushliteral(L, "cancelled");
  return 1;
}

/* Stack: tide table, private table, runtime userdata. */
int tide__opensched (lua_State *L) {
  tide_Runtime *rt = lua_touserdata(L, -1);
  uv_idle_init(rt->loop, &rt->idle);
  rt->idle.data = rt;
  if (luaL_newmetatable(L, TIDE_TASK)) {
    luaL_setfuncs(L, task_meta, 0);
    luaL_newlib(L, task_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_setfield(L, -3, "Task");     /* private.Task: the metatable */
  if (luaL_newmetatable(L, TIDE_CANCELLED)) {
    lua_pushcfunction(L, cancelled_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, TIDE_CANCELLED);
    lua_setfield(L, -2, "__name");
  }
  lua_setfield(L, -4, "Cancelled");
  lua_pushvalue(L, -2);            /* private table, runtime as upvalue */
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, sched_private, 1);
  lua_pop(L, 1);
  lua_pushvalue(L, -3);            /* tide table, runtime as upvalue */
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, sched_funcs, 1);
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_OSLIBNAME) == LUA_TTABLE) {
    if (lua_getfield(L, -1, "exit") == LUA_TFUNCTION) {
      lua_pushvalue(L, -4);        /* os.exit(runtime, Lua's os.exit) */
      lua_insert(L, -2);
      lua_pushcclosure(L, os_exit, 2);
      lua_setfield(L, -2, "exit");
    }
    else lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return 0;
}
