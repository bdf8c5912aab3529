/*
** main.c: the `tide` command, lua5.4's command line with every chunk (the
** script, -e, -l, LUA_INIT, each REPL input) run as a task on the loop.
** The option handling, messages and exit codes are those of lua.c from
** Lua 5.4 (Copyright (C) 1994-2022 Lua.org, PUC-Rio, MIT license), which
** this file follows closely so that the two behave alike.
*/

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lua.h"

#include "lauxlib.h"
#include "lualib.h"

#include "tide.h"
#include "tide_int.h"

#define lua_assert(c)		((void)0)


#if !defined(LUA_PROGNAME)
#define LUA_PROGNAME		"tide"
#endif

#if !defined(LUA_INIT_VAR)
#define LUA_INIT_VAR		"LUA_INIT"
#endif

#define LUA_INITVARVERSION	LUA_INIT_VAR LUA_VERSUFFIX


static const char *progname = LUA_PROGNAME;

static tide_Runtime *runtime = NULL;


/*
** SIGINT and SIGTERM: the first cancels the main task (or, once it has
** ended, every task) so that <close> variables and cleanup run, and the
** program exits with 128 + the signal's number soon after; a second one
** exits at once, even while the program blocks or computes. A script's
** own tide.signal wait or handler for the signal takes precedence (see
** bindings/signal.c).
*/
static int interrupted = 0;  /* the signal that stops the program, or 0 */

/* Cancel the task tide_call is driving; 0 if there is none. */
static int cancel_main (tide_Runtime *rt) {
  lua_State *L = rt->cbL;
  uint32_t i;
  int found = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->liveref);
  for (i = 1; i <= rt->nlive && !found; i++) {
    Task *t;
    lua_rawgeti(L, -1, i);
    t = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (t->main) found = tide__cancel(t);
  }
  lua_pop(L, 1);
  return found;
}

static void exit_now (int signum) {
  _exit(128 + signum);
}

/* A second signal, not the check timer's (see laction) */
static void exit_on_signal (int signum, siginfo_t *info, void *ctx) {
  (void)ctx;
  if (info == NULL || info->si_code != SI_TIMER) exit_now(signum);
}

/* Once the loop has let go of signum, a second one ends the program. */
static void exit_on_next (tide_Runtime *rt, int signum) {
  struct sigaction sa;
  tide__signaldefault(rt, signum, NULL);
  if (sigaction(signum, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = exit_on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(signum, &sa, NULL);
  }
}

/*
** SIGINT or SIGTERM while a task computes (a busy loop the loop cannot
** preempt): the signal goes on to libuv's handler as any other, for the
** loop to act on when it next polls (on_interrupt, or the script's own
** tide.signal wait or handler). If the loop has not polled 50 ms later, a
** SIGINT raises "interrupted!" in the running task through a hook, as
** lua.c does, and that signal is spent; a SIGTERM ends the program. A
** signal while one is pending ends the program at once.
*/
static struct sigaction uv_action[2];       /* libuv's: SIGINT, SIGTERM */
static timer_t check_timer;                 /* SIGINT to laction, 50 ms on */
static int has_timer = 0;
static volatile sig_atomic_t pending = 0;   /* a signal the loop has not seen */
static uint64_t pending_since;              /* the loop's time at it */
static lua_State *hooked = NULL;            /* where the hook waits */
static int spent = 0;                       /* the hook took that SIGINT */

static void lstop (lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  hooked = NULL;
  spent = 1;
  luaL_error(L, "interrupted!");
}

/* The timer's signal: is the task still running, the loop not polled? */
static void check_stuck (void) {
  Task *t = runtime->current;
  int signum = pending;
  if (signum == 0) return;
  if (t == NULL || uv_now(tide_loop(runtime)) != pending_since) {
    pending = 0;                     /* the loop has the signal */
    return;
  }
  if (signum != SIGINT) exit_now(signum);
  hooked = t->co;
  lua_sethook(t->co, lstop,
              LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

static void laction (int signum, siginfo_t *info, void *ctx) {
  static const struct itimerspec in50ms = {{0, 0}, {0, 50 * 1000 * 1000}};
  struct sigaction *uv = &uv_action[signum == SIGTERM];
  if (info != NULL && info->si_code == SI_TIMER) {
    check_stuck();
    return;
  }
  if (pending || hooked != NULL) exit_now(signum);
  if (runtime->current != NULL && has_timer &&
      !tide__signaltaken(runtime, signum)) {
    pending = signum;
    pending_since = uv_now(tide_loop(runtime));
    timer_settime(check_timer, 0, &in50ms, NULL);
  }
  if (uv->sa_flags & SA_SIGINFO)
    uv->sa_sigaction(signum, info, ctx);
  else if (uv->sa_handler != SIG_DFL && uv->sa_handler != SIG_IGN)
    uv->sa_handler(signum);
}

/* The loop has the signal: 0 if the hook took it already. */
static int interrupt_seen (void) {
  static const struct itimerspec off = {{0, 0}, {0, 0}};
  if (pending && has_timer) timer_settime(check_timer, 0, &off, NULL);
  pending = 0;
  if (spent) {
    spent = 0;
    return 0;
  }
  if (hooked != NULL) {              /* not fired yet: the loop acts */
    lua_sethook(hooked, NULL, 0, 0);
    hooked = NULL;
  }
  return 1;
}

/* Put laction in front of the handlers libuv has installed. */
static void hook_interrupts (void) {
  struct sigaction sa;
  struct sigevent ev;
  if (sigaction(SIGINT, NULL, &uv_action[0]) != 0 ||
      sigaction(SIGTERM, NULL, &uv_action[1]) != 0) return;
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGINT;
  has_timer = timer_create(CLOCK_MONOTONIC, &ev, &check_timer) == 0;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = laction;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}


static int in_repl = 0;  /* the prompt takes SIGINT */

static void on_interrupt (tide_Runtime *rt, int signum) {
  if (!interrupt_seen()) return;
  if (signum == SIGINT && in_repl) {
    tide__replinterrupt();
    return;
  }
  interrupted = signum;
  exit_on_next(rt, SIGINT);
  exit_on_next(rt, SIGTERM);
  if (!cancel_main(rt)) {
    tide__cancelall(rt);
    uv_stop(tide_loop(rt));
  }
}


static void print_usage (const char *badoption) {
  lua_writestringerror("%s: ", progname);
  if (badoption[1] == 'e' || badoption[1] == 'l')
    lua_writestringerror("'%s' needs argument\n", badoption);
  else
    lua_writestringerror("unrecognized option '%s'\n", badoption);
  lua_writestringerror(
  "usage: %s [options] [script [args]]\n"
  "Available options are:\n"
  "  -e stat   execute string 'stat'\n"
  "  -i        enter interactive mode after executing 'script'\n"
  "  -l mod    require library 'mod' into global 'mod'\n"
  "  -l g=mod  require library 'mod' into global 'g'\n"
  "  -v        show version information\n"
  "  --version show tide's and libuv's versions and exit\n"
  "  -E        ignore environment variables\n"
  "  -W        turn warnings on\n"
  "  --        stop handling options\n"
  "  -         stop handling options and execute stdin\n"
  ,
  progname);
}


/*
** Prints an error message, adding the program name in front of it
** (if present)
*/
static void l_message (const char *pname, const char *msg) {
  if (pname) lua_writestringerror("%s: ", pname);
  lua_writestringerror("%s\n", msg);
}


/*
** Check whether 'status' is not OK and, if so, prints the error
** message on the top of the stack. It assumes that the error object
** is a string, as it was either generated by Lua or by 'msghandler'.
*/
static int report (lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL && interrupted) {  /* cancelled by SIGINT or SIGTERM */
      lua_pop(L, 1);
      return status;
    }
    if (msg == NULL) {  /* tide.Cancelled */
      msg = luaL_tolstring(L, -1, NULL);
      lua_remove(L, -2);
    }
    l_message(progname, msg);
    lua_pop(L, 1);  /* remove message */
  }
  return status;
}


/*
** Run the function below 'narg' arguments as a task, driving the loop
** until it ends. On errors the message carries the task's traceback.
*/
static int docall (lua_State *L, int narg, int nres) {
  if (interrupted) {  /* nothing more runs */
    lua_pop(L, narg + 1);
    lua_pushnil(L);
    return LUA_ERRRUN;
  }
  return tide_call(runtime, narg, nres);
}


static void print_version (void) {
  lua_writestring(LUA_COPYRIGHT, strlen(LUA_COPYRIGHT));
  lua_writeline();
}


/* tide's own '--version' (lua5.4 rejects it): -v stays lua5.4's banner. */
static void print_tideversion (void) {
  printf("%s (libuv %s)\n", TIDE_VERSION, uv_version_string());
  print_version();
}


/*
** Create the 'arg' table, which stores all arguments from the
** command line ('argv'). It should be aligned so that, at index 0,
** it has 'argv[script]', which is the script name. The arguments
** to the script (everything after 'script') go to positive indices;
** other arguments (before the script name) go to negative indices.
** If there is no script name, assume interpreter's name as base.
*/
static void createargtable (lua_State *L, char **argv, int argc, int script) {
  int i, narg;
  if (script == argc) script = 0;  /* no script name? */
  narg = argc - (script + 1);  /* number of positive indices */
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}


static int dochunk (lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}


static int dofile (lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}


static int dostring (lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}


/*
** Receives 'globname[=modname]' and runs 'globname = require(modname)'.
*/
static int dolibrary (lua_State *L, char *globname) {
  int status;
  char *modname = strchr(globname, '=');
  if (modname == NULL)  /* no explicit name? */
    modname = globname;  /* module name is equal to global name */
  else {
    *modname = '\0';  /* global name ends here */
    modname++;  /* module name starts after the '=' */
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  status = docall(L, 1, 1);  /* call 'require(modname)' */
  if (status == LUA_OK)
    lua_setglobal(L, globname);  /* globname = require(modname) */
  return report(L, status);
}


/*
** Push on the stack the contents of table 'arg' from 1 to #arg
*/
static int pushargs (lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -i);  /* remove table from the stack */
  return n;
}


static int handle_script (lua_State *L, char **argv) {
  int status;
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
    fname = NULL;  /* stdin */
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);  /* push arguments to script */
    status = docall(L, n, LUA_MULTRET);
  }
  return report(L, status);
}


/* bits of various argument indicators in 'args' */
#define has_error	1	/* bad option */
#define has_i		2	/* -i */
#define has_v		4	/* -v */
#define has_e		8	/* -e */
#define has_E		16	/* -E */
#define has_version	32	/* --version */


/*
** Traverses all arguments from 'argv', returning a mask with those
** needed before running any Lua code (or an error code if it finds
** any invalid argument). 'first' returns the first not-handled argument
** (either the script name or a bad argument in case of error).
*/
static int collectargs (char **argv, int *first) {
  int args = 0;
  int i;
  for (i = 1; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-')  /* not an option? */
        return args;  /* stop handling options */
    switch (argv[i][1]) {  /* else check option */
      case '-':  /* '--' */
        if (strcmp(argv[i], "--version") == 0) {  /* tide's own option */
          args |= has_version;
          break;
        }
        if (argv[i][2] != '\0')  /* extra characters after '--'? */
          return has_error;  /* invalid option */
        *first = i + 1;
        return args;
      case '\0':  /* '-' */
        return args;  /* script "name" is '-' */
      case 'E':
        if (argv[i][2] != '\0')  /* extra characters? */
          return has_error;  /* invalid option */
        args |= has_E;
        break;
      case 'W':
        if (argv[i][2] != '\0')  /* extra characters? */
          return has_error;  /* invalid option */
        break;
      case 'i':
        args |= has_i;  /* (-i implies -v) *//* FALLTHROUGH */
      case 'v':
        if (argv[i][2] != '\0')  /* extra characters? */
          return has_error;  /* invalid option */
        args |= has_v;
        break;
      case 'e':
        args |= has_e;  /* FALLTHROUGH */
      case 'l':  /* both options need an argument */
        if (argv[i][2] == '\0') {  /* no concatenated argument? */
          i++;  /* try next 'argv' */
          if (argv[i] == NULL || argv[i][0] == '-')
            return has_error;  /* no next argument or it is another option */
        }
        break;
      default:  /* invalid option */
        return has_error;
    }
  }
  *first = i;  /* no script name */
  return args;
}


/*
** Processes options 'e' and 'l', which involve running Lua code, and
** 'W', which also affects the state.
** Returns 0 if some code raises an error.
*/
static int runargs (lua_State *L, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    int option = argv[i][1];
    lua_assert(argv[i][0] == '-');  /* already checked */
    switch (option) {
      case 'e':  case 'l': {
        int status;
        char *extra = argv[i] + 2;  /* both options need an argument */
        if (*extra == '\0') extra = argv[++i];
        lua_assert(extra != NULL);
        status = (option == 'e')
                 ? dostring(L, extra, "=(command line)")
                 : dolibrary(L, extra);
        if (status != LUA_OK) return 0;
        break;
      }
      case 'W':
        lua_warning(L, "@on", 0);  /* warnings on */
        break;
    }
  }
  return 1;
}


static int handle_luainit (lua_State *L) {
  const char *name = "=" LUA_INITVARVERSION;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=" LUA_INIT_VAR;
    init = getenv(name + 1);  /* try alternative name */
  }
  if (init == NULL) return LUA_OK;
  else if (init[0] == '@')
    return dofile(L, init+1);
  else
    return dostring(L, init, name);
}


/*
** {==================================================================
** Read-Eval-Print Loop (REPL)
** ===================================================================
*/

/* whether the standard input is a terminal (lua runs interactively) */
#define lua_stdin_is_tty()	isatty(0)


/*
** Do the REPL: runtime/lua/repl.lua as a task, on the line input of
** repl.c; background tasks run while it waits for input.
*/
static void doREPL (lua_State *L) {
  const tide_LuaSource *src = &tide__replsources[0];
  const char *err;
  int status;
  const char *oldprogname = progname;
  progname = NULL;  /* no 'progname' on errors in interactive mode */
  lua_settop(L, 0);
  status = luaL_loadbufferx(L, src->source, src->size, "=repl", "b");
  if (status == LUA_OK) {
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "tide");
    lua_remove(L, -2);
    if ((err = tide__replinput(runtime, L)) != NULL) {
      l_message(oldprogname, err);
      lua_settop(L, 0);
      return;
    }
    in_repl = 1;  /* Ctrl-C is the prompt's */
    status = tide_call(runtime, 2, 0);
    in_repl = 0;
  }
  report(L, status);
  lua_settop(L, 0);  /* clear stack */
  progname = oldprogname;
}

/* }================================================================== */


/*
** Main body of stand-alone interpreter (to be called in protected mode).
** Reads the options and handles them all.
*/
static int pmain (lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script;
  int args = collectargs(argv, &script);
  luaL_checkversion(L);  /* check that interpreter has correct version */
  if (argv[0] && argv[0][0]) progname = argv[0];
  if (args == has_error) {  /* bad arg? */
    print_usage(argv[script]);  /* 'script' has index of bad arg. */
    return 0;
  }
  if (args & has_version) {  /* option '--version'? */
    print_tideversion();
    lua_pushboolean(L, 1);  /* nothing else runs */
    return 1;
  }
  if (args & has_v)  /* option '-v'? */
    print_version();
  if (args & has_E) {  /* option '-E'? */
    lua_pushboolean(L, 1);  /* signal for libraries to ignore env. vars. */
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);  /* open standard libraries */
  runtime = tide_open(L, NULL);
  if (runtime == NULL)
    return luaL_error(L, "cannot open the tide runtime");
  tide__signaldefault(runtime, SIGINT, on_interrupt);
  tide__signaldefault(runtime, SIGTERM, on_interrupt);
  hook_interrupts();
  createargtable(L, argv, argc, script);  /* create table 'arg' */
  lua_gc(L, LUA_GCGEN, 0, 0);  /* GC in generational mode */
  if (!(args & has_E)) {  /* no option '-E'? */
    if (handle_luainit(L) != LUA_OK)  /* run LUA_INIT */
      return 0;  /* error running LUA_INIT */
  }
  if (!runargs(L, argv, script))  /* execute arguments -e and -l */
    return 0;  /* something failed */
  if (script < argc &&  /* execute main script (if there is one) */
      handle_script(L, argv + script) != LUA_OK)
    return 0;
  if (interrupted)
    return 0;
  if (args & has_i) {  /* -i option? */
    doREPL(L);  /* do read-eval-print loop; its end ends the program */
    lua_pushboolean(L, 1);
    return 1;
  }
  else if (script == argc && !(args & (has_e | has_v))) {  /* no arguments? */
    if (lua_stdin_is_tty()) {  /* running in interactive mode? */
      print_version();
      doREPL(L);
      lua_pushboolean(L, 1);
      return 1;
    }
    else dofile(L, NULL);  /* executes stdin as a file */
  }
  if (tide_run(runtime, UV_RUN_DEFAULT) != LUA_OK)  /* the other tasks */
    return 0;
  lua_pushboolean(L, 1);  /* signal no errors */
  return 1;
}


int main (int argc, char **argv) {
  int status, result;
  lua_State *L = luaL_newstate();  /* create state */
  if (L == NULL) {
    l_message(argv[0], "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  tide__hugeheap(L);
  lua_pushcfunction(L, &pmain);  /* to call 'pmain' in protected mode */
  lua_pushinteger(L, argc);  /* 1st argument */
  lua_pushlightuserdata(L, argv); /* 2nd argument */
  status = lua_pcall(L, 2, 1, 0);  /* do the call */
  result = lua_toboolean(L, -1);  /* get result */
  report(L, status);
  if (runtime != NULL) tide_close(runtime);
  lua_close(L);
  if (interrupted) return 128 + interrupted;
  return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}

