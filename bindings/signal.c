/*
** signal.c: tide.signal: wait for a signal in a task, or run a function in
** a new task each time one arrives; signal names; and the host's default
** action (the tide command cancels its main task on SIGINT and SIGTERM).
** A runtime watches each signal with one uv_signal_t, a Watch, shared by
** the waiting tasks, the handlers and the default. It keeps the loop alive
** only while a task waits, and closes once nothing uses it, which gives
** the signal back its system default.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tide_int.h"

#define TIDE_SIGHANDLER "tide.SignalHandler"

#ifndef SIGPWR
#define SIGPWR 0
#endif
#ifndef SIGIO
#define SIGIO 0
#endif

#define SIGNALS(X) \
  X(SIGHUP) X(SIGINT) X(SIGQUIT) X(SIGILL) X(SIGTRAP) X(SIGABRT) \
  X(SIGBUS) X(SIGFPE) X(SIGKILL) X(SIGUSR1) X(SIGSEGV) X(SIGUSR2) \
  X(SIGPIPE) X(SIGALRM) X(SIGTERM) X(SIGCHLD) X(SIGCONT) X(SIGSTOP) \
  X(SIGTSTP) X(SIGTTIN) X(SIGTTOU) X(SIGURG) X(SIGXCPU) X(SIGXFSZ) \
  X(SIGVTALRM) X(SIGPROF) X(SIGWINCH) X(SIGIO) X(SIGPWR) X(SIGSYS)

static const struct { const char *name; int num; } signals[] = {
#define X(s) { #s, s },
  SIGNALS(X)
#undef X
  { NULL, 0 }
};

/* "SIGINT" for SIGINT; NULL for a number without a name. */
const char *tide__signame (int signum) {
  int i;
  for (i = 0; signals[i].name != NULL; i++)
    if (signals[i].num == signum && signum != 0) return signals[i].name;
  return NULL;
}

/* Push the name of signum, or its number if it has none. */
static void pushsigname (lua_State *L, int signum) {
  const char *name = tide__signame(signum);
  if (name) lua_pushstring(L, name);
  else lua_pushinteger(L, signum);
}

/* The signal at arg: a name ("SIGTERM" or "TERM") or a number; def when
** absent (def < 0: required). */
int tide__checksignal (lua_State *L, int arg, int def) {
  const char *name;
  int i;
  if (def >= 0 && lua_isnoneornil(L, arg)) return def;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer n = tide__checkinteger(L, arg);
    tide__argcheck(L, n >= 0 && n < 65, arg, "signal number out of range");
    return (int)n;
  }
  name = tide__checkstring(L, arg);
  for (i = 0; signals[i].name != NULL; i++)
    if (signals[i].num != 0 && (strcmp(name, signals[i].name) == 0 ||
                                strcmp(name, signals[i].name + 3) == 0))
      return signals[i].num;
  return tide__argerror(L, arg,
                        lua_pushfstring(L, "unknown signal '%s'", name));
}

/* ---- Watches: one uv_signal_t per signal and runtime ---------------------- */

typedef struct Watch {
  tide_Handle o;           /* o.h: the uv_signal_t */
  int signum;
  Task *waiters;           /* tasks in tide.signal.wait */
  int handlers;            /* open tide.signal.on handlers */
  tide_SignalF deflt;      /* the host's default action, or NULL */
  int busy;                /* dispatching: closing waits until the end */
} Watch;

static const char handlerskey = 0;   /* registry: { [handler] = true } */

/* A tide.signal.on handler: a userdata with the function in user value 1
** and the runtime in user value 2. While open it is anchored in a registry
** table, so that a program may drop it and the handler still runs. */
typedef struct Handler {
  int signum;              /* 0 once closed */
  tide_Runtime *rt;
} Handler;

static void watch_onclose (tide_Handle *o) {
  Watch *w = (Watch *)o;
  tide__wakeall(&w->waiters);      /* the runtime closes: they get nothing */
  tide__free(w);
}

/* The runtime's watch of signum, or NULL. */
static Watch *findwatch (tide_Runtime *rt, int signum) {
  tide_Handle *o;
  for (o = rt->handles; o != NULL; o = o->next)
    if (o->onclose == watch_onclose && ((Watch *)o)->signum == signum)
      return (Watch *)o;
  return NULL;
}

/* Close w once nothing uses it; keep the loop alive only for waiters. */
static void watch_update (Watch *w) {
  if (w->busy || w->o.h == NULL) return;
  if (w->waiters == NULL && w->handlers == 0 && w->deflt == NULL)
    tide__handleclose(&w->o);      /* frees w */
  else if (w->waiters != NULL)
    uv_ref(w->o.h);
  else
    uv_unref(w->o.h);
}

/* Push the table of open handlers (made on first use). */
static void pushhandlers (lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &handlerskey) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &handlerskey);
  }
}

/* (rt, signum): start a task running each handler of signum. */
static int spawn_handlers (lua_State *L) {
  tide_Runtime *rt = lua_touserdata(L, 1);
  int signum = (int)lua_tointeger(L, 2);
  pushhandlers(L);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    Handler *h = lua_touserdata(L, -2);
    lua_pop(L, 1);
    if (h->signum == signum) {
      lua_getiuservalue(L, -1, 1);
      pushsigname(L, signum);
      tide__spawn(rt, L, 1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return 0;
}

/* Start the handlers from a libuv callback, where nothing may raise. */
static void start_handlers (tide_Runtime *rt, int signum) {
  lua_State *L = rt->cbL;
  lua_pushcfunction(L, spawn_handlers);
  lua_pushlightuserdata(L, rt);
  lua_pushinteger(L, signum);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    char buf[64];
    fprintf(stderr, "tide: signal handlers not started: %s\n",
            tide__errstring(L, -1, buf, sizeof buf));
    fflush(stderr);
    lua_pop(L, 2);
  }
}

static int signame_push (lua_State *L) {
  pushsigname(L, *(int *)lua_touserdata(L, 1));
  return 1;
}

/* A signal: to the waiting tasks and the handlers, else to the default. */
static void watch_cb (uv_signal_t *h, int signum) {
  Watch *w = h->data;
  tide_Runtime *rt = w->o.rt;
  Task *t;
  if (w->waiters == NULL && w->handlers == 0) {
    if (w->deflt) w->deflt(rt, signum);
    return;
  }
  w->busy = 1;
  if (w->handlers > 0) start_handlers(rt, signum);
  rt->depth++;                     /* wakes are queued: no task runs here */
  while ((t = w->waiters) != NULL) {
    w->waiters = t->link;
    t->link = NULL;
    tide_wakewith(&t->w, signame_push, &signum);
  }
  rt->depth--;
  w->busy = 0;
  watch_update(w);
  if (rt->rcount > 0) tide__runready(rt);
}

/* The watch of signum, started if new; NULL and *err if it cannot be. */
static Watch *getwatch (lua_State *L, tide_Runtime *rt, int signum,
                        int *err) {
  Watch *w = findwatch(rt, signum);
  uv_signal_t *h;
  if (w != NULL) return w;
  if ((w = tide__calloc(1, sizeof *w)) == NULL ||
      (h = tide__handleinit(NULL, rt, &w->o, sizeof(uv_signal_t),
                            watch_onclose)) == NULL) {
    tide__free(w);
    tide__nomem(L);
    return NULL;
  }
  w->signum = signum;
  if ((*err = uv_signal_init(rt->loop, h)) == 0 &&
      (*err = uv_signal_start(h, watch_cb, signum)) == 0) {
    uv_unref((uv_handle_t *)h);
    return w;
  }
  tide__handleclose(&w->o);
  return NULL;
}

static Watch *checkwatch (lua_State *L, tide_Runtime *rt, int signum) {
  int err = 0;
  Watch *w = getwatch(L, rt, signum, &err);
  if (w == NULL) {
    const char *name = tide__signame(signum);
    if (name) luaL_error(L, "cannot watch %s: %s", name, uv_strerror(err));
    luaL_error(L, "cannot watch signal %d: %s", signum, uv_strerror(err));
  }
  return w;
}

/* Does a task wait for signum or a handler take it? */
int tide__signaltaken (tide_Runtime *rt, int signum) {
  Watch *w = findwatch(rt, signum);
  return w != NULL && (w->waiters != NULL || w->handlers > 0);
}

/* Set (or, with fn NULL, remove) the host's default action for signum: it
** runs when no task waits for the signal and no handler takes it. The
** watch does not keep the loop alive for it. 0 or a UV error. */
int tide__signaldefault (tide_Runtime *rt, int signum, tide_SignalF fn) {
  int err = 0;
  Watch *w = fn ? getwatch(rt->L, rt, signum, &err) : findwatch(rt, signum);
  if (w == NULL) return err;
  w->deflt = fn;
  watch_update(w);
  return 0;
}

/* ---- tide.signal.wait ------------------------------------------------------- */

static void sigwait_cancel (tide_Wait *tw) {
  Watch *w = tide_waitdata(tw);
  tide__waitlist_remove(&w->waiters, tw);
  watch_update(w);
}

static int sigwait_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  if (lua_gettop(L) == 0) {        /* woken by the runtime closing */
    luaL_pushfail(L);
    lua_pushliteral(L, "the tide runtime is closed");
    lua_pushliteral(L, "ECANCELED");
    return 3;
  }
  return 1;
}

/* tide.signal.wait(sig) -> the signal's name, once it arrives */
static int signal_wait (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  int signum = tide__checksignal(L, 1, -1);
  tide_Wait *tw = tide_wait(L);
  Watch *w = checkwatch(L, rt, signum);
  tide__waitlist_add(&w->waiters, tw);
  watch_update(w);
  lua_settop(L, 0);
  return tide_awaitk(L, tw, sigwait_cancel, w, sigwait_k, 0);
}

/* ---- tide.signal.on ------------------------------------------------------------ */

static Handler *checkhandler (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_SIGHANDLER);
}

/* Stop h (once); with unanchor, also drop it from the registry table. */
static void handler_stop (lua_State *L, Handler *h, int unanchor) {
  Watch *w;
  int signum = h->signum;
  if (signum == 0) return;
  h->signum = 0;
  if (unanchor) {
    pushhandlers(L);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  if ((w = findwatch(h->rt, signum)) != NULL) {
    w->handlers--;
    watch_update(w);
  }
}

static int handler_close (lua_State *L) {
  handler_stop(L, checkhandler(L, 1), 1);
  return 0;
}

static int handler_gc (lua_State *L) {
  handler_stop(L, checkhandler(L, 1), 0);
  return 0;
}

static int handler_tostring (lua_State *L) {
  Handler *h = checkhandler(L, 1);
  if (h->signum == 0) lua_pushliteral(L, "tide.SignalHandler (closed)");
  else lua_pushfstring(L, "tide.SignalHandler (%s): %p",
                       tide__signame(h->signum), (void *)h);
  return 1;
}

/* tide.signal.on(sig, fn) -> handler: fn(name) runs in a new task each
** time the signal arrives, until handler:close(). It does not keep the
** program running. */
static int signal_on (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  int signum = tide__checksignal(L, 1, -1);
  Handler *h;
  Watch *w;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  h = lua_newuserdatauv(L, sizeof *h, 2);
  h->signum = 0;
  h->rt = rt;
  luaL_setmetatable(L, TIDE_SIGHANDLER);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 3, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setiuservalue(L, 3, 2);
  w = checkwatch(L, rt, signum);
  pushhandlers(L);
  lua_pushvalue(L, 3);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  h->signum = signum;
  w->handlers++;
  watch_update(w);
  return 1;
}

/* tide.signal.kill(pid, sig) -> true | nil, msg, code; a negative pid is
** a process group (0 and -1, everything, are refused). */
static int signal_kill (lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  int signum = tide__checksignal(L, 2, SIGTERM), err;
  luaL_argcheck(L, pid != 0 && pid != -1 && pid == (int)pid, 1,
                "process id expected");
  if ((err = uv_kill((int)pid, signum)) < 0) return tide_pushfail(L, err, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg signal_funcs[] = {
  {"wait", signal_wait},
  {"on", signal_on},
  {"kill", signal_kill},
  {NULL, NULL}
};

static const luaL_Reg handler_methods[] = {
  {"close", handler_close},
  {NULL, NULL}
};

static const luaL_Reg handler_meta[] = {
  {"__gc", handler_gc},
  {"__close", handler_close},
  {"__tostring", handler_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. Writing to a pipe
** or socket whose reader has gone must fail with EPIPE rather than kill
** the program, so SIGPIPE is ignored unless the host set its own handler
** (children get the default back when they start). A SIGCHLD ignored by
** whoever started the program (or SA_NOCLDWAIT) would let the system reap
** children before tide reads their status: it gets its default back. */
int tide__open_signal (lua_State *L) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  if (sigaction(SIGCHLD, NULL, &sa) == 0 && (sa.sa_handler == SIG_IGN ||
      (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL &&
       (sa.sa_flags & SA_NOCLDWAIT)))) {
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
  }
  /* filled by every open: a failed one may have left it half done */
  luaL_newmetatable(L, TIDE_SIGHANDLER);
  luaL_setfuncs(L, handler_meta, 0);
  luaL_newlib(L, handler_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, signal_funcs, 1);
  lua_setfield(L, -4, "signal");
  return 0;
}
