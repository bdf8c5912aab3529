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

TIDE_API int tide_run (tide_Runtime *rt, uv_run_mode mode) {
  if (mode != UV_RUN_DEFAULT) {
    uv_run(rt->loop, mode);
    return LUA_OK;
  }
  if (uv_run(rt->loop, UV_RUN_DEFAULT) != 0 || rt->nlive == 0)
    return LUA_OK;               /* stopped, or everything ended */
  tide__reportstuck(rt);
  return LUA_ERRRUN;
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
  luaL_traceback(L, L, msg, 1);
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
  int status = tide__protect(L, call_start, nargs + 1, 1);
  if (status != LUA_OK) return status;
  if (run_until(rt, lua_touserdata(L, -1)) != LUA_OK) {
    tide__protect(L, deadlock_msg, 1, 1);
    return LUA_ERRRUN;
  }
  status = tide__protect(L, main_results, 1, LUA_MULTRET);
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

/* ---- The Lua-side library and the bindings, on first use ----------------- */

/* Each file of the Lua-side library (runtime/lua) runs on the first use of
** a name of the tide table that it defines (its names: see embed.lua), the
** first file (tide.lua, whose helpers in the private table the others
** take) before any other; the bindings below open on the first use of the
** name each sets. Indexing the tide table, assigning a new name in it and
** pairs(tide) (which runs them all) see every name as if all had run at
** tide_open. The metamethods share six upvalues: */
#define LZ_TIDE     lua_upvalueindex(1)   /* the tide table */
#define LZ_PRIVATE  lua_upvalueindex(2)   /* the private table */
#define LZ_RT       lua_upvalueindex(3)   /* the runtime userdata */
#define LZ_STATE    lua_upvalueindex(4)   /* [part] = false while it runs, */
                                          /* true once it has */
#define LZ_GLOBALS  lua_upvalueindex(5)   /* the globals a file takes */
#define LZ_TABLES   lua_upvalueindex(6)   /* [binding] = its table, and */
                                          /* [its table] = binding */

/* The bindings opened on first use; stack: tide, private, runtime. Each
** sets a table in the tide table that keeps no reference to itself: it is
** emptied into the table made for it at tide_open, package.loaded["tide.
** <name>"] from then on (as tide__openwhere has the others there: it
** names their functions in Lua's own messages, and require finds them),
** whose __index and __pairs open it until then. */
/* tide.http: the client (http_client.c) and the server's C side. */
static int open_http (lua_State *L) {
  tide__open_http(L);
  return tide__open_http_server(L);
}

static const struct Binding {
  const char *name, *modname;
  lua_CFunction open;
} bindings[] = {
  {"dns", "tide.dns", tide__open_dns}, {"tcp", "tide.tcp", tide__open_tcp},
  {"pipe", "tide.pipe", tide__open_pipe}, {"udp", "tide.udp", tide__open_udp},
  {"process", "tide.process", tide__open_process},
  {"fs", "tide.fs", tide__open_fs}, {"http", "tide.http", open_http},
  {"tls", "tide.tls", tide__open_tls},
  {NULL, NULL, NULL}
};

static int lz_state (lua_State *L, const void *part) {
  int t = lua_rawgetp(L, LZ_STATE, part);
  int done = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return t == LUA_TNIL ? -1 : done;      /* -1: never started */
}

/* Never allocates: the state table has room for every part. */
static void lz_setstate (lua_State *L, const void *part, int state) {
  if (state < 0) lua_pushnil(L);
  else lua_pushboolean(L, state);
  lua_rawsetp(L, LZ_STATE, part);
}

/* Whether k (len bytes) is one of the space-separated words of list. */
static int hasname (const char *list, const char *k, size_t len) {
  const char *p = list;
  if (len == 0 || memchr(k, ' ', len) != NULL || strlen(k) != len) return 0;
  while ((p = strstr(p, k)) != NULL) {
    if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
      return 1;
    p += len;
  }
  return 0;
}

static const struct Binding *findbinding (const char *k, size_t len) {
  const struct Binding *b;
  for (b = bindings; b->name != NULL; b++)
    if (strlen(b->name) == len && memcmp(b->name, k, len) == 0) return b;
  return NULL;
}

/* A part failed half-way: the names it set are taken back so that the
** next use starts it afresh (allocating nothing: setting an existing key
** to nil while traversing); its error, on top, is raised again. */
static int lz_fail (lua_State *L, const void *part, const char *names) {
  lz_setstate(L, part, -1);
  lua_pushnil(L);
  while (lua_next(L, LZ_TIDE)) {
    size_t n;
    const char *k;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) continue;
    k = lua_tolstring(L, -1, &n);
    if (hasname(names, k, n)) {
      const struct Binding *b = findbinding(k, n);
      if (b != NULL) lz_setstate(L, b, -1);
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, LZ_TIDE);
    }
  }
  return lua_error(L);
}

/* (tide, private, runtime, binding, its table): open it, into its table. */
static int open_binding (lua_State *L) {
  const struct Binding *b = lua_touserdata(L, 4);
  lua_insert(L, 1);                      /* table, tide, private, runtime */
  lua_settop(L, 4);
  b->open(L);
  if (lua_getfield(L, 2, b->name) == LUA_TTABLE && !lua_rawequal(L, -1, 1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_setfield(L, 2, b->name);
  }
  lua_pushnil(L);
  lua_setmetatable(L, 1);
  return 0;
}

static void lz_open (lua_State *L, const struct Binding *b) {
  lz_setstate(L, b, 1);
  lua_pushcfunction(L, open_binding);
  lua_pushvalue(L, LZ_TIDE);
  lua_pushvalue(L, LZ_PRIVATE);
  lua_pushvalue(L, LZ_RT);
  lua_pushlightuserdata(L, (void *)b);
  lua_rawgetp(L, LZ_TABLES, b);
  if (lua_pcall(L, 5, 0, 0) != LUA_OK) lz_fail(L, b, b->name);
}

/* Run a file of the library with the tide and private tables, its globals
** those of tide_open while it runs (the standard functions it keeps in
** locals), the live ones afterwards. */
static void lz_run (lua_State *L, const tide_LuaSource *s) {
  char chunkname[64];
  int status, fn;
  if (s != tide__luasources && lz_state(L, tide__luasources) < 0)
    lz_run(L, tide__luasources);
  lz_setstate(L, s, 0);
  snprintf(chunkname, sizeof chunkname, "=%s", s->name);
  status = luaL_loadbufferx(L, s->source, s->size, chunkname, "b");
  if (status != LUA_OK) lz_fail(L, s, s->names);
  fn = lua_gettop(L);
  lua_pushvalue(L, LZ_GLOBALS);
  lua_setupvalue(L, fn, 1);
  lua_pushvalue(L, fn);
  lua_pushvalue(L, LZ_TIDE);
  lua_pushvalue(L, LZ_PRIVATE);
  status = lua_pcall(L, 2, 0, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_setupvalue(L, fn, 1);
  if (status != LUA_OK) lz_fail(L, s, s->names);   /* the error on top */
  lua_pop(L, 1);
  lz_setstate(L, s, 1);
}

/* Run or open what defines the name at idx (a string) and has not
** started; 0 if none. A file that extends a binding's table opens it as
** it takes it (through lz_index): then, if the file fails, the binding
** is opened again with it on the next use. */
static int lz_load (lua_State *L, int idx) {
  const tide_LuaSource *s;
  size_t len;
  const char *k = lua_tolstring(L, idx, &len);
  const struct Binding *b = findbinding(k, len);
  int found = 0;
  for (s = tide__luasources; s->name != NULL; s++) {
    if (hasname(s->names, k, len) && lz_state(L, s) < 0) {
      lz_run(L, s);
      found = 1;
    }
  }
  if (b != NULL && lz_state(L, b) < 0) {
    lz_open(L, b);
    found = 1;
  }
  return found;
}

static void lz_checkmodule (lua_State *L) {
  if (!lua_rawequal(L, 1, LZ_TIDE)) tide__typeerror(L, 1, "the tide module");
}

/* tide.__index(tide, k) */
static int lz_index (lua_State *L) {
  lz_checkmodule(L);
  lua_settop(L, 2);
  if (lua_type(L, 2) == LUA_TSTRING && lz_load(L, 2))
    lua_gettable(L, 1);                  /* through a file's own __index */
  else lua_rawget(L, 1);
  return 1;
}

/* tide.__newindex(tide, k, v): what defines k runs first, as it would
** have at tide_open (unless k is the name of a binding being opened,
** which sets it). */
static int lz_newindex (lua_State *L) {
  lz_checkmodule(L);
  lua_settop(L, 3);
  if (lua_type(L, 2) == LUA_TSTRING) {
    size_t len;
    const char *k = lua_tolstring(L, 2, &len);
    const struct Binding *b = findbinding(k, len);
    if (b == NULL || lz_state(L, b) < 0) lz_load(L, 2);
  }
  lua_rawset(L, 1);
  return 0;
}

static int lz_next (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

/* tide.__pairs(tide): everything runs first. */
static int lz_pairs (lua_State *L) {
  const struct Binding *b;
  const tide_LuaSource *s;
  lz_checkmodule(L);
  for (s = tide__luasources; s->name != NULL; s++)
    if (lz_state(L, s) < 0) lz_run(L, s);
  for (b = bindings; b->name != NULL; b++)
    if (lz_state(L, b) < 0) lz_open(L, b);
  lua_pushcfunction(L, lz_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

static const luaL_Reg lz_meta[] = {
  {"__index", lz_index},
  {"__newindex", lz_newindex},
  {"__pairs", lz_pairs},
  {NULL, NULL}
};

/* The table of a binding not opened yet (from package.loaded) at 1: open
** it (as tide.<name> does), which leaves it a plain table. */
static void lz_opentable (lua_State *L) {
  const struct Binding *b;
  lua_pushvalue(L, 1);
  b = lua_rawget(L, LZ_TABLES) == LUA_TLIGHTUSERDATA ? lua_touserdata(L, -1)
                                                     : NULL;
  if (b == NULL) tide__typeerror(L, 1, "a table of the tide module");
  lua_getfield(L, LZ_TIDE, b->name);
  lua_pop(L, 2);
}

/* tide.<name>.__index(t, k) */
static int lz_tableindex (lua_State *L) {
  lua_settop(L, 2);
  lz_opentable(L);
  lua_gettable(L, 1);
  return 1;
}

/* tide.<name>.__pairs(t) */
static int lz_tablepairs (lua_State *L) {
  lua_settop(L, 1);
  lz_opentable(L);
  lua_pushcfunction(L, lz_next);
  lua_insert(L, 1);
  lua_pushnil(L);
  return 3;
}

static const luaL_Reg lz_tablemeta[] = {
  {"__index", lz_tableindex},
  {"__pairs", lz_tablepairs},
  {NULL, NULL}
};

/* The globals the files use, as they are now; the others from _G. */
static void pushglobals (lua_State *L) {
  const char *p = tide__luasources_globals;
  int n = 1;
  while ((p = strchr(p, ' ')) != NULL) p++, n++;
  p = tide__luasources_globals;
  lua_createtable(L, 0, n);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  while (*p) {
    size_t len = strcspn(p, " ");
    lua_pushlstring(L, p, len);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    lua_rawset(L, -4);
    p += len + (p[len] == ' ');
  }
  lua_createtable(L, 0, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
}

/* The bindings' tables, each also package.loaded["tide.<name>"], with
** the metatable at mt; pushes [binding] = table and [table] = binding. */
static void pushtables (lua_State *L, int mt) {
  const struct Binding *b;
  int n = 0;
  for (b = bindings; b->name != NULL; b++) n++;
  lua_createtable(L, 0, 2 * n);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  for (b = bindings; b->name != NULL; b++) {
    lua_newtable(L);
    lua_pushvalue(L, mt);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -4, b);
    lua_pushvalue(L, -1);
    lua_pushlightuserdata(L, (void *)b);
    lua_rawset(L, -5);
    lua_setfield(L, -2, b->modname);
  }
  lua_pop(L, 1);
}

/* Stack: tide, private, runtime. The metatables of the tide table and of
** the bindings' tables, their functions sharing the LZ_ upvalues. */
static void open_lazy (lua_State *L) {
  int n = 0, i, tm, m, base = lua_gettop(L) - 2;
  const struct Binding *b;
  const tide_LuaSource *s;
  luaL_checkstack(L, 24, NULL);
  for (b = bindings; b->name != NULL; b++) n++;
  for (s = tide__luasources; s->name != NULL; s++) n++;
  lua_createtable(L, 0, 2);
  tm = lua_gettop(L);
  lua_createtable(L, 0, 3);
  m = lua_gettop(L);
  lua_pushvalue(L, base);                      /* LZ_TIDE */
  lua_pushvalue(L, base + 1);                  /* LZ_PRIVATE */
  lua_pushvalue(L, base + 2);                  /* LZ_RT */
  lua_createtable(L, 0, n);                    /* LZ_STATE */
  pushglobals(L);                              /* LZ_GLOBALS */
  pushtables(L, tm);                           /* LZ_TABLES */
  lua_pushvalue(L, tm);
  for (i = 1; i <= 6; i++) lua_pushvalue(L, m + i);
  luaL_setfuncs(L, lz_tablemeta, 6);
  lua_pop(L, 1);
  lua_pushvalue(L, m);
  for (i = 1; i <= 6; i++) lua_pushvalue(L, m + i);
  luaL_setfuncs(L, lz_meta, 6);
  lua_setmetatable(L, base);
  lua_settop(L, base + 2);
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
  tide__opencoro(L);
  tide__openwhere(L);
  open_lazy(L);
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
