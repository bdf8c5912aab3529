/*
** sched.c: the scheduler. The live-task array, the ready queue, spawning,
** resuming a task and ending it (results, errors, on_done callbacks).
** The wait/wake protocol is in wait.c, the Task object in task.c.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "tide_int.h"

/* ---- The live-task array ------------------------------------------------
** Every task that has not ended sits in one registry array, so nothing that
** only C points at (a timer, a request) is collected. Removal moves the last
** entry into the hole. */

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
void tide__pushtask (lua_State *L, Task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->rt->liveref);
  lua_rawgeti(L, -1, t->slot);
  lua_remove(L, -2);
}

/* ---- The ready queue: a list of tasks to resume, in order -------------
** Tasks are queued from libuv callbacks, where nothing may fail, and each
** at most once; the link is in the task (a queued task is not timed, so it
** shares the timer's), so queueing allocates nothing. Once tide_close has
** closed the loop's handles, nothing is queued any more. */

static void idle_cb (uv_idle_t *h) {
  tide__runready(h->data);
}

static void check_cb (uv_check_t *h) {
  tide__runready(h->data);
}

void tide__enqueue (tide_Runtime *rt, Task *t) {
  if (t->queued || uv_is_closing((uv_handle_t *)&rt->idle)) return;
  if (tide__timed(t)) tide__heapremove(rt, t);
  t->qnext = NULL;
  if (rt->qtail != NULL) rt->qtail->qnext = t;
  else rt->qhead = t;
  rt->qtail = t;
  t->queued = 1;
  if (rt->rcount++ == 0 && !rt->closing) {
    uv_idle_start(&rt->idle, idle_cb);
    uv_check_start(&rt->check, check_cb);
  }
}

static Task *dequeue (tide_Runtime *rt) {
  Task *t = rt->qhead;
  rt->qhead = t->qnext;
  if (rt->qhead == NULL) rt->qtail = NULL;
  t->qnext = NULL;
  rt->rcount--;
  t->queued = 0;
  return t;
}

/* Resume ready tasks until none is left, or until a budget is spent so that
** the loop gets to poll IO between long chains of wake-ups. */
void tide__runready (tide_Runtime *rt) {
  int budget = 4096;
  while (rt->rcount > 0 && budget-- > 0)
    tide__taskrun(rt, dequeue(rt));
  if (rt->rcount == 0) {
    uv_idle_stop(&rt->idle);
    uv_check_stop(&rt->check);
  }
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

/* Call f(ud) on the runtime's thread in a protected call (for what runs
** where nothing may raise: libuv callbacks, ending a task); its nres
** results, or its error (out of memory), are left on top of cbL. */
int tide__pcall (tide_Runtime *rt, lua_CFunction f, void *ud, int nres) {
  lua_State *L = rt->cbL;
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, ud);
  return lua_pcall(L, 1, nres, 0);
}

/* Call fn(task) outside any task, in a protected call; report errors. */
void tide__callback (tide_Runtime *rt, lua_State *L) {
  int h = 0;
  if (lua_checkstack(L, 1)) {      /* a traceback, if there is room */
    lua_pushcfunction(L, tide__tracebackh);
    lua_insert(L, -3);
    h = lua_gettop(L) - 2;
  }
  if (tide__outside(rt, L, 1, 0, h) != LUA_OK)
    tide__callbackerror(rt, L, "an on_done callback");
  if (h) lua_remove(L, h);
}

/* Call the on_done callbacks with the task. */
static void run_callbacks (tide_Runtime *rt, Task *t) {
  lua_State *L = rt->cbL;
  lua_Integer i, n;
  tide__pushtask(L, t);
  lua_getiuservalue(L, -1, 1);     /* its extras: a list of callbacks */
  lua_rawgeti(L, -1, TIDE_EXCBS);
  lua_remove(L, -2);
  n = luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_pushvalue(L, -3);
    tide__callback(rt, L);
    lua_pushnil(L);
    lua_rawseti(L, -2, i);
  }
  lua_pop(L, 2);
}

/* The body raised the error on top of co: once its <close> variables have
** run, co holds the error and its traceback (nil for its own cancellation,
** or when there was no memory to make it). Allocates in protected calls
** only: nothing here may raise. */
static void task_error (tide_Runtime *rt, Task *t) {
  lua_State *co = t->co, *L = rt->cbL;
  Task *prev = rt->current;
  lua_xmove(co, L, 1);             /* L: error (a dead thread may have no */
  if (t->cancelreq && tide__israised(L, -1))   /* slot for a copy) */
    lua_pushnil(L);
  else
    tide__pushtraceback(L, co);    /* L: error, traceback */
  lua_pushvalue(L, -2);
  lua_xmove(L, co, 1);             /* back where it was, for the __close */
  rt->current = t;                 /* its __close handlers run as it */
  if (lua_resetthread(co) != LUA_OK) {  /* a __close raised: it wins */
    lua_xmove(co, L, 1);
    lua_replace(L, -3);
  }
  rt->current = prev;
  lua_settop(co, 0);
  lua_xmove(L, co, 2);             /* co: error, traceback */
  t->failed = 1;
  t->cancelled = tide__israised(co, 1);   /* its own, or one it let out */
  t->nres = 2;
}

/* The body returned or raised: keep the results (or the error and its
** traceback) on the dead coroutine's stack, and tell whoever waits. */
static void task_finish (tide_Runtime *rt, Task *t, int status, int nres) {
  if (status == LUA_OK)
    t->nres = nres;
  else
    task_error(rt, t);
  t->state = T_DONE;
  wake_awaiters(t);
  if (t->watchers) tide__watched(t);
  if (t->hascbs) {
    t->retrieved = 1;
    run_callbacks(rt, t);
  }
  if (t->failed) tide__failed(rt, t);
  live_remove(rt, rt->cbL, t);
}

static int badyield_msg (lua_State *L) {
  lua_pushliteral(L, "attempt to yield from outside a coroutine "
                     "(coroutine.yield called directly in a task)");
  return 1;
}

/* A task yielded with coroutine.yield rather than by waiting on something:
** it fails with that error (or "not enough memory" if it cannot be made). */
static void task_badyield (tide_Runtime *rt, Task *t, int nres) {
  lua_pop(t->co, nres);
  lua_resetthread(t->co);
  lua_settop(t->co, 0);
  tide__pcall(rt, badyield_msg, NULL, 1);
  lua_xmove(rt->cbL, t->co, 1);
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
  lua_pcall(t->co, 2, 0, 0);               /* unloaded (tide.so) */
  exit(rt->exitstatus);            /* it could not even be called */
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
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_rawsetp(L, LUA_REGISTRYINDEX, &rt->exiting);   /* may raise: first */
  rt->exiting = 1;
  return lua_yield(L, 0);                      /* to task_run */
}

static int cancelled_obj (lua_State *L) {
  tide__pushcancelled(L, lua_touserdata(L, 1));
  return 1;
}

/* A burst of spawns: the tasks one resume spawns are nearly all alive when
** it ends, so the collector's cycles over the growing heap find almost no
** garbage. Past BURST of them the collector waits for the heap to grow
** BURST_PAUSE % rather than its pause (200 %) between cycles, until the
** resume ends. */
#define BURST 1024
#define BURST_PAUSE 1000

static void burst_begin (tide_Runtime *rt, lua_State *L) {
  int pause = lua_gc(L, LUA_GCSETPAUSE, BURST_PAUSE);
  if (pause < 0) rt->nspawned = 0;     /* in a finalizer: not now */
  else rt->gcpause = pause;
}

/* The burst is over: the pause it found, unless one was set since. */
static void burst_end (tide_Runtime *rt, lua_State *L) {
  int pause = lua_gc(L, LUA_GCSETPAUSE, rt->gcpause);
  if (pause != BURST_PAUSE && pause >= 0) lua_gc(L, LUA_GCSETPAUSE, pause);
}

/* ---- The young generation's floor ---------------------------------------
** In generational mode a minor collection comes each time the program has
** allocated genminormul % (20) of the heap, and its cost hardly depends on
** the garbage: it walks every coroutine's stack and what changed since the
** last one. A small heap that takes in big short-lived strings paid it
** often: the echo server with 16 KiB messages (a heap of 130 KiB) made a
** minor collection per two messages, more instructions than the rest of
** its work outside the copy. So while the heap is under YOUNG_MIN * 5 the
** multiplier grows for a minor collection to wait for YOUNG_MIN bytes (up
** to 255 %, the most Lua keeps), and the major multiplier with it (a
** major collection comes once the heap grew that much: the young
** generation must not count as old). Looked at every 64 resumes; set when
** the heap's size class (a power of two) changes, and set back to Lua's
** 20 and 100 as the heap leaves the small classes. Setting them would
** switch a collector in incremental mode to generational: a runtime whose
** collector is found in incremental mode puts it back (after the full
** collection the switch made, once) and leaves it be. Parameters a program
** gave collectgarbage("generational") give way to these while its heap is
** small. */
#define YOUNG_MIN 1024             /* KiB */
#define GC_EVERY 64                /* resumes between looks */

static void young_floor (tide_Runtime *rt, lua_State *L) {
  int kb = lua_gc(L, LUA_GCCOUNT), class = 0, least, minor;
  if (kb < 0) return;              /* in a finalizer: not now */
  while (kb >> class) class++;     /* kb < 2^class */
  if (class == rt->gcclass) return;
  rt->gcclass = class;
  least = class > 0 ? 1 << (class - 1) : 0;
  minor = least <= YOUNG_MIN * 100 / 255 ? 255 : YOUNG_MIN * 100 / least;
  if (minor < 20) minor = 20;
  if (minor == (rt->gcminor ? rt->gcminor : 20)) return;
  rt->gcminor = minor;
  if (lua_gc(L, LUA_GCGEN, minor, minor + 80) == LUA_GCINC) {
    lua_gc(L, LUA_GCINC, 0, 0, 0);
    rt->gcclass = -1;              /* never again */
  }
}

void tide__taskrun (tide_Runtime *rt, Task *t) {
  lua_State *co = t->co;
  int nargs = 0, nres, status, timed = rt->debug;
  Task *prev = rt->current;
  if (t->state == T_DONE) return;
  if (t->state == T_NEW) {
    nargs = t->w.nres;
    if (t->cancelreq) {            /* cancelled before it started */
      lua_settop(co, 0);
      tide__pcall(rt, cancelled_obj, t, 1);   /* or "not enough memory" */
      lua_xmove(rt->cbL, co, 1);
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
  if (++rt->gcticks % GC_EVERY == 0 && rt->gcclass >= 0)
    young_floor(rt, rt->cbL);
  if (rt->nspawned >= BURST) burst_end(rt, rt->cbL);
  rt->nspawned = 0;
  if (status == LUA_YIELD) {
    if (rt->exiting) task_exit(rt, t);
    else if (t->state == T_RUNNING) task_badyield(rt, t, nres);
  }
  else
    task_finish(rt, t, status, nres);
  rt->depth--;
}

/* ---- Spawning ------------------------------------------------------------ */

/* L: function, nargs arguments -> the Task object. Whatever may run out of
** memory (the objects, its slot in the live array) comes before the task
** counts as live. The live array's
** metatable is the Task metatable, at hand for the new object. */
Task *tide__spawn (tide_Runtime *rt, lua_State *L, int nargs) {
  Task *t;
  lua_State *co;
  if (rt->closing) luaL_error(L, "spawn: the tide runtime is closed");
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
  t = lua_newuserdatauv(L, sizeof(Task), 1);
  memset(t, 0, sizeof *t);
  t->rt = rt;
  lua_getmetatable(L, -2);
  lua_setmetatable(L, -2);
  co = lua_newthread(L);
  t->co = co;
  lua_setiuservalue(L, -2, 1);     /* function, arguments, live, Task */
  lua_rotate(L, -(nargs + 3), 2);  /* live, Task, function, arguments */
  if (!lua_checkstack(co, nargs + 1))
    luaL_error(L, "too many arguments to spawn");
  lua_xmove(L, co, nargs + 1);
  lua_pushvalue(L, -1);            /* filled before it is counted */
  lua_rawseti(L, -3, (lua_Integer)rt->nlive + 1);
  t->slot = ++rt->nlive;
  lua_remove(L, -2);
  t->state = T_NEW;
  t->w.nres = nargs;
  tide__enqueue(rt, t);
  if (++rt->nspawned == BURST) burst_begin(rt, L);
  return t;
}

static int spawn_protected (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  tide__spawn(tide_runtime(L), L, lua_gettop(L) - 1);
  return 1;
}

TIDE_API int tide_spawn (tide_Runtime *rt, int nargs) {
  return tide__protect(rt->L, spawn_protected, nargs + 1, 1);
}

static int sched_spawn (lua_State *L) {
  tide__checktype(L, 1, LUA_TFUNCTION);
  tide__spawn(tide__rt(L), L, lua_gettop(L) - 1);
  return 1;
}

static int sched_current (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  if (rt->current == NULL) lua_pushnil(L);
  else tide__pushtask(L, rt->current);
  return 1;
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


/* Stack: tide table, private table, runtime userdata. */
int tide__opensched (lua_State *L) {
  tide__opentask(L);
  tide__openwait(L);
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
