/*
** runtime.c: a runtime's life: tide_open, tide_run, tide_call, tide_close;
** loop ownership; the `tide` module table and the Lua-side library;
** tide.run for stock Lua.
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tide_int.h"

#define TIDE_RUNTIME "tide.Runtime"

static const char rtkey = 0;     /* registry[&rtkey] = the runtime userdata */

tide_Runtime *tide__rt (lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

TIDE_API tide_Runtime *tide_runtime (lua_State *L) {
  tide_Runtime *rt;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &rtkey);
  rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return rt;
}

TIDE_API uv_loop_t *tide_loop (tide_Runtime *rt) { return rt->loop; }
TIDE_API lua_State *tide_state (tide_Runtime *rt) { return rt->L; }
TIDE_API size_t tide_ntasks (tide_Runtime *rt) { return rt->nlive; }
TIDE_API size_t tide_unobserved (tide_Runtime *rt) { return rt->nunobserved; }

TIDE_API uv_loop_t *tide_getloop (lua_State *L) {
  tide_Runtime *rt = tide_runtime(L);
  if (rt == NULL) luaL_error(L, "no tide runtime in this Lua state");
  return rt->loop;
}

TIDE_API int tide_pushfail (lua_State *L, int uverr, const char *what) {
  luaL_pushfail(L);
  if (what) lua_pushfstring(L, "%s: %s", what, uv_strerror(uverr));
  else lua_pushstring(L, uv_strerror(uverr));
  lua_pushstring(L, uv_err_name(uverr));
  return 3;
}

/* ---- Driving the loop ------------------------------------------------------ */

static void finish_leftovers (tide_Runtime *rt);

TIDE_API int tide_run (tide_Runtime *rt, uv_run_mode mode) {
  if (mode != UV_RUN_DEFAULT) {
    uv_run(rt->loop, mode);
    return LUA_OK;
  }
  if (rt->stopped ||               /* stopped in tide_call, or in this run */
      uv_run(rt->loop, UV_RUN_DEFAULT) != 0 || rt->nlive == 0 ||
      rt->stopped) {             /* stopped, or everything ended */
    if (rt->stopped) finish_leftovers(rt);
    rt->stopped = 0;
    return LUA_OK;
  }
  tide__reportstuck(rt);
  return LUA_ERRRUN;
}

TIDE_API void tide_stop (tide_Runtime *rt) {
  if (rt->closing) return;
  rt->stopped = 1;
  tide__cancelall(rt);
  uv_stop(rt->loop);
}

/* tide.stop() */
static int rt_stop (lua_State *L) {
  tide_stop(tide__rt(L));
  return 0;
}

/* The main task ended with its tide.Cancelled after tide_stop: no error,
** no results. */
static int stopped_main (tide_Runtime *rt, lua_State *L, int status) {
  if (status == LUA_OK || !rt->stopped || !tide__israised(L, -1))
    return 0;
  lua_pop(L, 1);
  return 1;
}

/* Call f with the top nargs values of L in a protected call, for the
** host's entry points: running out of memory there is a status, not a
** panic. As lua_pcall, the results or the error replace them. */
int tide__protect (lua_State *L, lua_CFunction f, int nargs, int nres) {
  if (!lua_checkstack(L, 1)) {
    lua_pop(L, nargs);
    lua_pushliteral(L, "not enough memory");   /* never allocates */
    return LUA_ERRMEM;
  }
  lua_pushcfunction(L, f);
  lua_insert(L, -(nargs + 1));
  return lua_pcall(L, nargs, nres, 0);
}

/* Run the loop until task t ends. LUA_ERRRUN on a deadlock. */
static int run_until (tide_Runtime *rt, Task *t) {
  while (t->state != T_DONE) {
    int alive = uv_run(rt->loop, UV_RUN_ONCE);
    if (t->state != T_DONE && !alive && rt->rcount == 0) {
      tide__reportstuck(rt);
      return LUA_ERRRUN;
    }
  }
  return LUA_OK;
}

/* The function below nargs arguments on L becomes the main task: the one
** tide_call or tide.run drives until it ends. Pushes its Task object. */
static Task *spawn_main (tide_Runtime *rt, lua_State *L, int nargs) {
  Task *t;
  if (rt->depth > 0 || rt->current)
    tide__error(L, "cannot drive the loop from inside a task or a callback");
  t = tide__spawn(rt, L, nargs);
  t->main = 1;
  return t;
}

static int deadlock_msg (lua_State *L) {
  lua_pushliteral(L, "deadlock: the main task waits and nothing is left "
                     "that could wake it");
  return 1;
}

/* (Task) -> the results of the main task, which has ended, or its error
** raised. */
static int main_results (lua_State *L) {
  Task *t = lua_touserdata(L, 1);
  t->retrieved = 1;
  if (t->failed) {
    lua_pushvalue(t->co, 1);
    lua_xmove(t->co, L, 1);
    return lua_error(L);
  }
  tide__pushresult(L, t);
  return t->nres;
}

/* The function below nargs arguments on L runs as a task to its end. On
** LUA_OK its results are pushed (all of them); otherwise the error is. */
static int call_main (tide_Runtime *rt, lua_State *L, int nargs) {
  Task *t = spawn_main(rt, L, nargs);
  int status = run_until(rt, t);
  if (status != LUA_OK) {
    lua_pop(L, 1);
    deadlock_msg(L);
    return status;
  }
  lua_pushcfunction(L, main_results);
  lua_insert(L, -2);
  return lua_pcall(L, 1, LUA_MULTRET, 0);
}

/* The message handler of tide_call, as lua.c's: the traceback is taken
** where the error is raised, before <close> variables run; an object with
** a __tostring gives its string. tide.Cancelled goes through as it is. */
static int msghandler (lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (tide__israised(L, 1)) return 1;
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, tide__tracelevel(L, 1));
  return 1;
}

static int traced_k (lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  return lua_gettop(L) - 1;
}

/* traced(f, ...): f(...) under msghandler (which sits in slot 1). */
static int traced (lua_State *L) {
  lua_pushcfunction(L, msghandler);
  lua_insert(L, 1);
  return traced_k(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 1, 0,
                                traced_k), 0);
}

/* (f, args...) -> the Task of traced(f, args...), the main task */
static int call_start (lua_State *L) {
  lua_pushcfunction(L, traced);
  lua_insert(L, 1);
  spawn_main(tide_runtime(L), L, lua_gettop(L) - 1);
  return 1;
}

/* What allocates runs in protected calls (the start, the results); the
** Task object stays on L's stack while the loop runs. */
TIDE_API int tide_call (tide_Runtime *rt, int nargs, int nres) {
  lua_State *L = rt->L;
  int base = lua_gettop(L) - nargs - 1;
  int status;
  rt->stopped = 0;                 /* a tide_stop before it is spent */
  status = tide__protect(L, call_start, nargs + 1, 1);
  if (status != LUA_OK) return status;
  if (run_until(rt, lua_touserdata(L, -1)) != LUA_OK) {
    tide__protect(L, deadlock_msg, 1, 1);
    return LUA_ERRRUN;
  }
  status = tide__protect(L, main_results, 1, LUA_MULTRET);
  if (stopped_main(rt, L, status)) status = LUA_OK;
  if (status == LUA_OK && nres != LUA_MULTRET)
    lua_settop(L, base + nres);
  return status;
}

/* (path) -> the loaded chunk or the message, and the status of the load
** (luaL_loadfile pushes the chunk name outside any protected call) */
static int load_file (lua_State *L) {
  lua_pushinteger(L, luaL_loadfile(L, lua_touserdata(L, 1)));
  return 2;
}

TIDE_API int tide_dofile (tide_Runtime *rt, const char *path) {
  lua_State *L = rt->L;
  int status;
  lua_pushlightuserdata(L, (void *)path);
  status = tide__protect(L, load_file, 1, 2);
  if (status != LUA_OK) return status;
  status = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (status != LUA_OK) return status;
  return tide_call(rt, 0, 0);
}

/* Cancel the tasks that are left and let them end, within reason. */
static void finish_leftovers (tide_Runtime *rt) {
  int rounds = 1000;
  tide__cancelall(rt);
  while (rt->nlive > 0 && rounds-- > 0) {
    int alive = uv_run(rt->loop, UV_RUN_ONCE);
    if (!alive && rt->rcount == 0) break;
  }
}

/* After a signal cancelled tide.run's main task: SIGINT raises
** "interrupted!" as lua5.4 does; SIGTERM ends the process by that signal,
** now that cleanup has run. */
static int interrupted_error (lua_State *L, int signum) {
  if (signum == SIGTERM) {
    signal(SIGTERM, SIG_DFL);
    raise(SIGTERM);
  }
  lua_pushliteral(L, "interrupted!");
  return lua_error(L);
}

/* Private: run(fn, ...) from outside any task: fn as the main task, the loop
** until it ends, with SIGINT and SIGTERM cancelling it unless the host took
** them; then the tasks it left are cancelled and reported. */
static int rt_runmain (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  uint32_t left;
  int status, n, caught, signum;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  caught = !tide__signalscaught(rt) && tide_catchsignals(rt) == 0;
  status = call_main(rt, L, lua_gettop(L) - 1);
  if (stopped_main(rt, L, status)) status = LUA_OK;
  if (rt->stopped) finish_leftovers(rt);
  rt->stopped = 0;
  left = rt->nlive;
  if (left > 0) {
    fprintf(stderr, "tide.run: %u task%s still running at the end; "
            "cancelling\n", (unsigned)left, left == 1 ? " was" : "s were");
    finish_leftovers(rt);
  }
  signum = rt->interrupted;
  if (caught) {
    tide__releasesignals(rt);
    rt->interrupted = 0;
  }
  if (caught && signum != 0) return interrupted_error(L, signum);
  if (status != LUA_OK) return lua_error(L);
  n = lua_gettop(L);
  return n;
}

/* Private: run() from outside any task: the loop until tide.stop(), a
** signal (SIGINT, SIGTERM: caught unless the host took them) or until
** nothing is left that could run; then the tasks left are cancelled and
** have ended. Returns nothing, or the name of the signal. */
static int rt_runforever (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  int caught, signum;
  if (rt->depth > 0 || rt->current)
    return tide__error(L, "%s: cannot drive the loop from inside a task or "
                          "a callback", tide__fname(L));
  caught = !tide__signalscaught(rt) && tide_catchsignals(rt) == 0;
  rt->stopped = 0;
  while (!rt->stopped && !rt->interrupted) {
    int alive = uv_run(rt->loop, UV_RUN_ONCE);
    if (!alive && rt->rcount == 0 && !rt->stopped && !rt->interrupted) {
      if (rt->nlive == 0) break;           /* nothing could ever run */
      tide__reportstuck(rt);
      break;
    }
  }
  finish_leftovers(rt);
  rt->stopped = 0;
  signum = rt->interrupted;
  if (caught) {
    tide__releasesignals(rt);
    rt->interrupted = 0;
  }
  if (signum == 0) return 0;
  lua_pushstring(L, signum == SIGTERM ? "SIGTERM" : "SIGINT");
  return 1;
}

/* ---- Opening and closing ------------------------------------------------ */

static void count_closed (uv_handle_t *h) {
  int *n = h->data;
  (*n)--;
}

static void close_own (uv_handle_t *h, void *arg) {
  int *n = arg;
  if (uv_is_closing(h)) return;
  h->data = n;
  (*n)++;
  uv_close(h, count_closed);
}

/* Close the handles tide opened and, with its own loop, the loop; free the
** C memory. */
static void close_uv (tide_Runtime *rt) {
  int pending = 0;
  tide__debugclose(rt);
  tide__poolclose(rt);
  tide__closehandles(rt);
  uv_idle_stop(&rt->idle);
  uv_check_stop(&rt->check);
  close_own((uv_handle_t *)&rt->idle, &pending);
  close_own((uv_handle_t *)&rt->check, &pending);
  close_own((uv_handle_t *)&rt->timer, &pending);
  close_own((uv_handle_t *)&rt->prepare, &pending);
  if (rt->ownsloop)
    uv_walk(rt->loop, close_own, &pending);
  while (pending > 0)
    uv_run(rt->loop, UV_RUN_NOWAIT);
  if (rt->ownsloop)                /* requests still in flight (connect, */
    uv_run(rt->loop, UV_RUN_DEFAULT);  /* write) end; their callbacks only free */
  if (rt->ownsloop) uv_loop_close(rt->loop);
  tide__free(rt->ready);
  tide__free(rt->heap.a);
  rt->ready = NULL;
  rt->heap.a = NULL;
  rt->rhead = rt->rcount = rt->rcap = rt->heap.n = rt->heap.cap = 0;
}

/* Drop the runtime's entries in the registry (existing keys: nothing is
** allocated). */
static void close_lua (lua_State *L, tide_Runtime *rt) {
  luaL_unref(L, LUA_REGISTRYINDEX, rt->liveref);
  luaL_unref(L, LUA_REGISTRYINDEX, rt->failedref);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &rtkey);
}

TIDE_API void tide_close (tide_Runtime *rt) {
  lua_State *L = rt->L;
  if (rt->closing) return;
  if (L != NULL) finish_leftovers(rt);
  tide__reportfailed(rt);
  tide__releasesignals(rt);
  rt->closing = 1;
  close_uv(rt);
  if (L != NULL) close_lua(L, rt);
}

/* When the state closes with the runtime still open: tasks are not resumed
** any more, their operations are stopped and the loop is closed. Only the
** collector may call it: inside a finalizer lua_gc answers -1 (Lua 5.4.4). */
static int rt_gc (lua_State *L) {
  tide_Runtime *rt = tide__checkudata(L, 1, TIDE_RUNTIME);
  if (lua_gc(L, LUA_GCISRUNNING) != -1)
    return tide__error(L, "%s: the runtime ends with its Lua state, "
                          "not by hand", tide__fname(L));
  if (rt->opened && !rt->closing) {
    uint32_t i;
    tide__reportleft(rt);
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
    for (i = 1; i <= rt->nlive; i++) {
      Task *t;
      lua_rawgeti(L, -1, i);
      t = lua_touserdata(L, -1);
      if (t->state == T_WAITING && t->w.cancel) {
        tide_CancelF cancel = t->w.cancel;
        t->w.cancel = NULL;
        cancel(&t->w);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    rt->L = NULL;
    tide_close(rt);
  }
  return 0;
}

/* Build the module table: the C parts that every program uses at once,
** the rest on first use. */
static void open_module (lua_State *L, tide_Runtime *rt) {
  lua_newtable(L);                             /* tide */
  lua_newtable(L);                             /* private */
  lua_pushlightuserdata(L, rt);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &rtkey);   /* the runtime userdata */
  lua_remove(L, -2);
  tide__opensched(L);
  tide__opentimer(L);
  tide__openwatch(L);
  tide__openfuture(L);
  tide__openlock(L);
  tide__openqueue(L);
  tide__opendebug(L);
  tide__open_stream(L);
  tide__open_server(L);
  tide__open_signal(L);
  tide__open_work(L);
  tide__open_tty(L);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, rt_runmain, 1);
  lua_setfield(L, -3, "runmain");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, rt_runforever, 1);
  lua_setfield(L, -3, "runforever");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, rt_stop, 1);
  lua_setfield(L, -4, "stop");
  tide__opencoro(L);
  tide__openrequire(L);
  tide__openwhere(L);
  tide__openlazy(L);
  lua_pop(L, 2);                               /* tide */
  lua_pushliteral(L, TIDE_VERSION);
  lua_setfield(L, -2, "_VERSION");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "tide");
  lua_pop(L, 2);
}

/* Open /dev/null on fds 0, 1 and 2 where they are closed: a loop opened
** without them would take them for its own fds, which libuv refuses to
** close (an assertion), and tide.stdin would be one of them. */
static void stdfds_open (void) {
  int fd;
  for (fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
      if (n >= 0 && n != fd) {     /* fd was the lowest free one: n == fd */
        dup2(n, fd);
        close(n);
      }
    }
  }
}

/* The loop (its own unless given one) and the runtime's handles, all
** set up at once: rt->loop is set once they are. */
static void open_loop (lua_State *L, tide_Runtime *rt, uv_loop_t *loop) {
  if (loop == NULL) {
    int err;
    stdfds_open();
    if ((err = uv_loop_init(&rt->ownloop)) != 0)
      luaL_error(L, "tide: cannot open a loop: %s", uv_strerror(err));
    rt->ownsloop = 1;
    loop = &rt->ownloop;
  }
  uv_idle_init(loop, &rt->idle);
  rt->idle.data = rt;
  uv_check_init(loop, &rt->check);
  rt->check.data = rt;
  uv_timer_init(loop, &rt->timer);
  rt->timer.data = rt;
  uv_prepare_init(loop, &rt->prepare);
  rt->prepare.data = rt;
  rt->failedtail = &rt->failed;
  rt->ffailedtail = &rt->ffailed;
  rt->loop = loop;
}

/* The runtime userdata, registered: from here on open_undo finds it. Its
** __gc does nothing to a runtime that was never opened. */
static tide_Runtime *new_runtime (lua_State *L) {
  tide_Runtime *rt = lua_newuserdatauv(L, sizeof *rt, 0);
  memset(rt, 0, sizeof *rt);
  rt->liveref = rt->failedref = LUA_NOREF;
  luaL_newmetatable(L, TIDE_RUNTIME);  /* filled by every open: one that */
  lua_pushcfunction(L, rt_gc);         /* failed may have left it empty */
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &rtkey);
  return rt;
}

/* (loop, setglobal) -> the runtime, opened */
static int open_protected (lua_State *L) {
  tide_Runtime *rt;
  uv_loop_t *loop = lua_touserdata(L, 1);
  int setglobal = lua_toboolean(L, 2);
  lua_settop(L, 0);
  rt = new_runtime(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  rt->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  rt->cbL = lua_newthread(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &rt->cbL);
  lua_newtable(L);
  rt->liveref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  rt->failedref = luaL_ref(L, LUA_REGISTRYINDEX);
  open_loop(L, rt, loop);
  open_module(L, rt);              /* ends with package.loaded.tide set */
  rt->registered = 1;
  if (setglobal) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "tide");
    lua_setglobal(L, "tide");
    lua_pop(L, 1);
  }
  rt->opened = 1;
  lua_pushlightuserdata(L, rt);
  return 1;
}

/* tide_open failed half-way: take back what it did, allocating nothing, so
** that the state keeps no half-open runtime and a new tide_open starts
** afresh. (What else it set up, the coroutine functions, package.loaded
** entries, is replaced by the next open.) */
static void open_undo (lua_State *L, tide_Runtime *rt) {
  rt->closing = 1;
  if (rt->loop != NULL) close_uv(rt);
  close_lua(L, rt);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &rt->cbL);
  if (rt->registered) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setfield(L, -2, "tide");
    lua_pop(L, 1);
  }
}

static tide_Runtime *open_runtime (lua_State *L, uv_loop_t *loop,
                                   int setglobal) {
  tide_Runtime *rt = tide_runtime(L);
  if (rt != NULL) return rt;
  lua_pushcfunction(L, open_protected);
  lua_pushlightuserdata(L, loop);
  lua_pushboolean(L, setglobal);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    fprintf(stderr, "tide: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    if ((rt = tide_runtime(L)) != NULL) open_undo(L, rt);
    return NULL;
  }
  rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return rt;
}

TIDE_API tide_Runtime *tide_open (lua_State *L, uv_loop_t *loop) {
  return open_runtime(L, loop, 1);
}

/* require "tide" in stock Lua: no global, as modules do. */
TIDE_API int luaopen_tide (lua_State *L) {
  if (open_runtime(L, NULL, 0) == NULL)
    return luaL_error(L, "tide: cannot open the runtime");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "tide");
  return 1;
}
