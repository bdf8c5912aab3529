/*
** debug.c: famine detection (TIDE_DEBUG=1 or tide.debug(true)): a task that
** runs too long without waiting starves every other task; say which one
** and where. A hook on calls, returns and every 1000 instructions notes
** where the task is and catches a long run in the act; a watchdog thread
** reports a task still stuck where no hook runs (in a blocking C call such
** as os.execute or io.read); the check after the resume catches the rest.
** Also tide.handles, the count of open handles.
*/
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tide_int.h"

#define WHERE   (LUA_IDSIZE + 16)   /* "source:line" */
#define WHAT    64                  /* what the task calls: "os.execute" */
#define NNAMES  128                 /* C functions named so far, at most */
#define GRACE   10000000u           /* ns: if the hook ran this recently, the
                                       task runs Lua code: the hook reports */
#define MAXWAIT 1000000000u         /* ns: the watchdog looks at least this often */

typedef struct Name {
  lua_CFunction f;
  char name[WHAT];                  /* "" if no module has it */
} Name;

/* A runtime's famine detector. The watchdog thread touches nothing else
** and never the Lua API: it reads seen atomically, the fields "under mu"
** with mu held. The loop's thread writes those with mu held too, so it may
** read them without, except early (the only one both threads write). */
typedef struct tide_Watch tide_Watch;
struct tide_Watch {
  uv_mutex_t mu;
  uv_cond_t cv;
  uv_thread_t thread;
  _Atomic uint64_t seen;            /* ns: the hook's last event */
  /* under mu */
  int stop;                         /* the thread is to end */
  int idle;                         /* the thread waits for a resume */
  int running;                      /* a resume is being timed */
  int early;                        /* this resume has been reported */
  uint64_t start, limit;            /* ns: the resume began; the threshold */
  const void *task;
  int main;
  char where[WHERE], what[WHAT];    /* the last call to a C function seen */
  /* the loop's thread only */
  int started;                      /* the thread runs */
  int timing;                       /* between faminebegin and famineend */
  int full;                         /* reported with its traceback */
  lua_CFunction lastf;              /* where[] and what[] are of a call to */
  const void *lastcaller;           /* lastf from lastcaller at lastline */
  int lastline;
  int nnames;
  Name names[NNAMES];
};

/* ---- The watchdog thread -------------------------------------------------- */

/* Say that the task is still stuck. With mu held: keeps the order of the
** reports (the hook's report after the resume waits for this one). */
static void watch_report (tide_Watch *w, uint64_t ns) {
  char line[128 + 64 + WHERE + WHAT + 64], who[64];   /* room for all */
  int n;
  if (w->main) snprintf(who, sizeof who, "the main task");
  else snprintf(who, sizeof who, "a task (tide.Task: %p)", w->task);
  n = snprintf(line, sizeof line, "tide: %s has run %.3f s without yielding "
               "(still running), blocking every other task", who,
               (double)ns / 1e9);
  if (w->where[0] != '\0')
    n += snprintf(line + n, sizeof line - n, "; last seen at %s", w->where);
  if (w->what[0] != '\0')
    snprintf(line + n, sizeof line - n, w->where[0] != '\0' ?
             " (in a call to %s)" : "; last seen in a call to %s", w->what);
  fprintf(stderr, "%s\n", line);
  fflush(stderr);
}

/* Sleep until a resume has run longer than the threshold; report it unless
** the hook still runs (it reports in the act) or the resume has ended. */
static void watch_run (void *arg) {
  tide_Watch *w = arg;
  uv_mutex_lock(&w->mu);
  while (!w->stop) {
    uint64_t now = uv_hrtime(), ran, quiet, wait = 0;
    if (!w->running || w->early) {
      w->idle = 1;
      uv_cond_wait(&w->cv, &w->mu);
      w->idle = 0;
      continue;
    }
    ran = now - w->start;
    quiet = now - atomic_load_explicit(&w->seen, memory_order_relaxed);
    if (ran < w->limit) wait = w->limit - ran;
    if (quiet < GRACE && wait < GRACE - quiet) wait = GRACE - quiet;
    if (wait > 0) {
      uv_cond_timedwait(&w->cv, &w->mu, wait < MAXWAIT ? wait : MAXWAIT);
      continue;
    }
    w->early = 1;
    watch_report(w, ran);
  }
  uv_mutex_unlock(&w->mu);
}

/* Start the thread (allocating the detector the first time); 0 if the
** detector cannot be had. Without the thread, the hook still reports. */
static int watch_start (tide_Runtime *rt) {
  tide_Watch *w = rt->watch;
  sigset_t all, old;
  int err;
  if (w == NULL) {
    w = tide__calloc(1, sizeof *w);
    if (w == NULL) return 0;
    if (uv_mutex_init(&w->mu) != 0) {
      tide__free(w);
      return 0;
    }
    if (uv_cond_init(&w->cv) != 0) {
      uv_mutex_destroy(&w->mu);
      tide__free(w);
      return 0;
    }
    rt->watch = w;
  }
  if (w->started || rt->closing) return 1;
  w->stop = 0;                      /* no thread: nobody else reads it */
  sigfillset(&all);                 /* signals are for the loop's thread */
  pthread_sigmask(SIG_SETMASK, &all, &old);
  err = uv_thread_create(&w->thread, watch_run, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err == 0) w->started = 1;
  else fprintf(stderr, "tide: famine watchdog not started: %s\n",
               uv_strerror(err));
  return 1;
}

static void watch_stop (tide_Watch *w) {
  if (w == NULL || !w->started) return;
  uv_mutex_lock(&w->mu);
  w->stop = 1;
  uv_cond_signal(&w->cv);
  uv_mutex_unlock(&w->mu);
  uv_thread_join(&w->thread);
  w->started = 0;
}

/* From tide_close: no thread, no detector. */
void tide__debugclose (tide_Runtime *rt) {
  tide_Watch *w = rt->watch;
  rt->debug = 0;
  if (w == NULL) return;
  watch_stop(w);
  uv_cond_destroy(&w->cv);
  uv_mutex_destroy(&w->mu);
  tide__free(w);
  rt->watch = NULL;
}

/* ---- The hook ------------------------------------------------------------ */

/* Function on top: its name in a loaded module ("os.execute", "print"). */
static int globalname (lua_State *L, char *buf) {
  int top = lua_gettop(L), found = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  while (!found && lua_next(L, top + 1)) {       /* module name, module */
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
      lua_pushnil(L);
      while (lua_next(L, top + 3)) {             /* key, value */
        if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, top)) {
          const char *mod = lua_tostring(L, top + 2);
          const char *key = lua_tostring(L, -2);
          if (strcmp(mod, LUA_GNAME) == 0) snprintf(buf, WHAT, "%s", key);
          else snprintf(buf, WHAT, "%s.%s", mod, key);
          found = 1;
          lua_pop(L, 2);
          break;
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  return found;
}

/* The name of C function f, being called (ar: the hook's): its module's
** name for it, found once and kept, or else the call site's. */
static void cname (lua_State *L, lua_Debug *ar, tide_Watch *w,
                   lua_CFunction f, char *buf) {
  unsigned i = (unsigned)(((uintptr_t)f >> 4) % NNAMES);
  Name *n = NULL;
  buf[0] = '\0';
  while (w->names[i].f != NULL) {
    if (w->names[i].f == f) {
      n = &w->names[i];
      break;
    }
    i = (i + 1) % NNAMES;
  }
  if (n == NULL && w->nnames < NNAMES * 3 / 4) {
    n = &w->names[i];
    n->f = f;
    lua_getinfo(L, "f", ar);
    if (!globalname(L, n->name)) n->name[0] = '\0';
    lua_pop(L, 1);
    w->nnames++;
  }
  if (n != NULL && n->name[0] != '\0')
    memcpy(buf, n->name, WHAT);
  else if (lua_getinfo(L, "n", ar) && ar->name != NULL)
    snprintf(buf, WHAT, "%s '%s'", *ar->namewhat ? ar->namewhat : "function",
             ar->name);
}

/* On a call to a C function: note it, and the innermost Lua line, for
** the watchdog (it is there while the call blocks). Skipped when they are
** those noted last. */
static void note (lua_State *L, lua_Debug *ar, tide_Watch *w) {
  lua_Debug up;
  lua_CFunction f;
  const void *caller = NULL;
  int level = 1, lua = 0;
  char where[WHERE], what[WHAT];
  lua_getinfo(L, "f", ar);
  f = lua_tocfunction(L, -1);
  lua_pop(L, 1);
  if (f == NULL) return;            /* a Lua function: no hook misses it */
  while (lua_getstack(L, level++, &up)) {
    lua_getinfo(L, "fl", &up);
    lua = !lua_iscfunction(L, -1);
    caller = lua_topointer(L, -1);
    lua_pop(L, 1);
    if (lua) break;
  }
  if (!lua) {                       /* no Lua function below */
    caller = NULL;
    up.currentline = -1;
  }
  if (f == w->lastf && caller == w->lastcaller &&
      up.currentline == w->lastline) return;
  w->lastf = f;
  w->lastcaller = caller;
  w->lastline = up.currentline;
  where[0] = '\0';
  if (lua) {
    lua_getinfo(L, "S", &up);
    snprintf(where, WHERE, "%s:%d", up.short_src, up.currentline);
  }
  cname(L, ar, w, f, what);
  uv_mutex_lock(&w->mu);
  memcpy(w->where, where, sizeof where);
  memcpy(w->what, what, sizeof what);
  uv_mutex_unlock(&w->mu);
}

/* (co) -> its traceback (past this function when co runs it) */
static int traceback_of (lua_State *L) {
  lua_State *co = lua_touserdata(L, 1);
  luaL_traceback(L, co, NULL, co == L ? 1 : 0);
  return 1;
}

/* In a protected call: after a resume, nothing may raise. */
static void report (lua_State *L, lua_State *co, uint64_t ns,
                    const char *how) {
  int ok;
  lua_pushcfunction(L, traceback_of);
  lua_pushlightuserdata(L, co);
  ok = lua_pcall(L, 1, 1, 0) == LUA_OK;
  fprintf(stderr, "tide: a task %s %.3f s without yielding, blocking every "
          "other task, at:\n%s\n", how, (double)ns / 1e9,
          ok ? lua_tostring(L, -1) : "(no memory left to tell where)");
  fflush(stderr);
  lua_pop(L, 1);
}

static void famine_hook (lua_State *L, lua_Debug *ar) {
  tide_Runtime *rt = tide_runtime(L);
  tide_Watch *w = rt != NULL && rt->debug ? rt->watch : NULL;
  uint64_t now;
  if (w == NULL || !w->timing) {    /* left on a thread after a timed resume */
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  now = uv_hrtime();
  atomic_store_explicit(&w->seen, now, memory_order_relaxed);
  if (ar->event == LUA_HOOKCALL) note(L, ar, w);
  if (!w->full && now - w->start >= w->limit) {
    w->full = 1;
    uv_mutex_lock(&w->mu);
    w->early = 1;                   /* the watchdog has nothing to add */
    uv_mutex_unlock(&w->mu);
    report(L, L, now - w->start, "has run");
  }
}

/* ---- Timing a resume ------------------------------------------------------ */

void tide__faminebegin (tide_Runtime *rt, Task *t) {
  tide_Watch *w = rt->watch;
  uint64_t limit = rt->famine < 1e9 ? (uint64_t)(rt->famine * 1e9)
                                    : UINT64_MAX;
  if (w == NULL) return;
  w->timing = 1;
  w->full = 0;
  w->lastf = NULL;
  uv_mutex_lock(&w->mu);
  if (w->idle || limit < w->limit) uv_cond_signal(&w->cv);
  w->start = uv_hrtime();
  atomic_store_explicit(&w->seen, w->start, memory_order_relaxed);
  w->limit = limit;
  w->running = 1;
  w->early = 0;
  w->task = t;
  w->main = t->main;
  w->where[0] = w->what[0] = '\0';
  uv_mutex_unlock(&w->mu);
  lua_sethook(t->co, famine_hook,
              LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1000);
}

void tide__famineend (tide_Runtime *rt, Task *t) {
  tide_Watch *w = rt->watch;
  uint64_t ns;
  if (!rt->debug) lua_sethook(t->co, NULL, 0, 0);
  if (w == NULL) return;
  w->timing = 0;
  uv_mutex_lock(&w->mu);
  w->running = 0;
  uv_mutex_unlock(&w->mu);
  ns = uv_hrtime() - w->start;
  if (!rt->debug || w->full || ns < w->limit) return;
  if (lua_status(t->co) == LUA_YIELD)
    report(rt->cbL, t->co, ns, "ran");
  else {
    fprintf(stderr, "tide: a task ran %.3f s without yielding, blocking "
            "every other task, and then ended\n", (double)ns / 1e9);
    fflush(stderr);
  }
}

/* ---- tide.debug ------------------------------------------------------------ */

/* Debug mode on or off: the watchdog runs exactly while it is on. */
static int setdebug (tide_Runtime *rt, int on) {
  if (on && !watch_start(rt)) return 0;
  if (!on) watch_stop(rt->watch);
  rt->debug = on;
  return 1;
}

/* tide.debug([on [, seconds]]) -> on, seconds */
static int debug_set (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  if (!lua_isnone(L, 1)) {
    if (!lua_isnoneornil(L, 2)) {
      double s = luaL_checknumber(L, 2);
      luaL_argcheck(L, s >= 0, 2, "negative duration");
      rt->famine = s;
    }
    if (!setdebug(rt, lua_toboolean(L, 1)))
      return luaL_error(L, "debug: not enough memory");
  }
  lua_pushboolean(L, rt->debug);
  lua_pushnumber(L, rt->famine);
  return 2;
}

static void count_handle (uv_handle_t *h, void *arg) {
  (void)h;
  (*(lua_Integer *)arg)++;
}

/* tide.handles() -> open, loop: the handles of tide's objects still open
** (rt->handles), and every handle of the loop (tide's own and those still
** closing included): a leak check for long runs. */
static int debug_handles (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  tide_Handle *o;
  lua_Integer open = 0, all = 0;
  for (o = rt->handles; o != NULL; o = o->next) open++;
  uv_walk(rt->loop, count_handle, &all);
  lua_pushinteger(L, open);
  lua_pushinteger(L, all);
  return 2;
}

/* Stack: tide table, private table, runtime userdata. */
int tide__opendebug (lua_State *L) {
  tide_Runtime *rt = lua_touserdata(L, -1);
  const char *env = getenv("TIDE_DEBUG");
  rt->famine = 0.1;
  if (env != NULL && *env != '\0' && strcmp(env, "0") != 0 &&
      !setdebug(rt, 1))
    fprintf(stderr, "tide: TIDE_DEBUG: not enough memory\n");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, debug_set, 1);
  lua_setfield(L, -4, "debug");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, debug_handles, 1);
  lua_setfield(L, -4, "handles");
  return 0;
}
