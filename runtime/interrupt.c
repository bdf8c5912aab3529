/*
** interrupt.c: SIGINT and SIGTERM as the tide command takes them, for any
** host (tide_catchsignals) and for tide.run in stock Lua. The first signal
** cancels the main task (or, once it has ended, every task) so that
** <close> variables and cleanup run; the host then exits with 128 + the
** signal's number, and tide.run in stock Lua raises "interrupted!" as
** lua5.4 does (after SIGTERM it ends the process by that signal). A second
** signal exits at once, even while the program blocks or computes. A
** script's own tide.signal wait or handler for the signal takes precedence
** (see bindings/signal.c).
**
** A task that computes without waiting cannot be cancelled, as the loop
** does not run: the signal goes on to libuv's handler as any other, and a
** POSIX timer looks every 50 ms (so no thread is needed) whether the loop
** has come back since (a prepare handle counts its turns). If it has not,
** and the loop's thread has computed for 40 ms of CPU time meanwhile (not
** blocked in a call such as posix_spawn, not descheduled on a busy
** machine: a task about to wait must never get it), a SIGINT sets a hook
** in the running task, as lua.c does, which raises "interrupted!" once
** the task has computed 10 ms more (one back from a long call and about to
** wait is cancelled there instead), and that signal is spent; a SIGTERM
** ends the program, as it does when the task has been blocked in a C call
** for a second. A signal while one is pending ends the program at once,
** and so does a SIGINT after one that was spent. Signals belong to the
** process: one runtime at a time catches them.
**
** A callback run outside any task (tide__outside: an on_done callback, a
** Protocol method) that computes is taken the same way, on its thread
** (rt->cbco), except that its "interrupted!" does not spend the SIGINT:
** the callback's error is reported, and the loop then cancels the main
** task, as a script that was not computing would be.
*/
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tide_int.h"

static tide_Runtime *catcher = NULL;        /* the runtime that has them */
static struct sigaction before[2];          /* the host's: SIGINT, SIGTERM */
static struct sigaction uv_action[2];       /* libuv's, behind laction */
static timer_t check_timer;                 /* SIGINT to laction, each 50 ms */
static int has_timer = 0;
static volatile sig_atomic_t pending = 0;   /* a signal the loop has not seen */
static lua_State *hooked = NULL;            /* where the hook waits */
static int hooked_cb;                       /* in a callback, not a task */
static int64_t hooked_cpu;                  /* CPU time at its first call */
static int spent = 0;                       /* the hook took that SIGINT */
static uv_prepare_t *turner = NULL;         /* counts the loop's turns */
static volatile unsigned turns = 0;         /* read by the timer's handler */
static unsigned pending_turn;               /* the count at the signal */
static int ticks;                           /* checks since the signal */
static clockid_t cpuclock;                  /* the loop thread's CPU time */
static int has_cpuclock = 0;
static int64_t pending_cpu;                 /* its value at the signal */

#define TICK_NS (50 * 1000 * 1000)          /* how often the timer looks */
#define COMPUTED_NS (40 * 1000 * 1000)      /* CPU time that is computing */
#define BLOCKED_TICKS 20                    /* SIGTERM ends a blocked task */
#define HOOK_GRACE_NS (10 * 1000 * 1000)    /* CPU time the hook lets pass */

#define SIGI(signum) ((signum) == SIGTERM)  /* index in the arrays */

static void exit_now (int signum) {
  _exit(128 + signum);
}

/* A second signal, not the check timer's (see laction). */
static void exit_on_signal (int signum, siginfo_t *info, void *ctx) {
  (void)ctx;
  if (info == NULL || info->si_code != SI_TIMER) exit_now(signum);
}

/* The loop thread's CPU time in ns (async-signal-safe). */
static int64_t cputime (void) {
  struct timespec ts;
  if (!has_cpuclock || clock_gettime(cpuclock, &ts) != 0) return 0;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The Lua thread that runs: the running task's, or that of a callback run
** outside any task (tide__outside); NULL while the loop runs. */
static lua_State *running (void) {
  if (catcher == NULL) return NULL;
  return catcher->current != NULL ? catcher->current->co : catcher->cbco;
}

/* The hook: once the task has computed for HOOK_GRACE_NS more without
** waiting (a task that was blocked in a call and is about to wait is
** cancelled by the loop instead), raise "interrupted!". In a task that
** spends the signal; a callback's error is reported (it has no task to
** end), and the loop then takes the signal as usual: the program ends.
** Never where tide itself calls on a thread no script runs on. A hook
** left on a callback's thread once the loop took the signal removes
** itself (that thread may be gone by then: nothing else touches it). */
static void lstop (lua_State *L, lua_Debug *ar) {
  int64_t now = cputime();
  (void)ar;
  if (hooked == NULL) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (running() == NULL) return;
  if (hooked_cpu < 0) hooked_cpu = now;
  if (has_cpuclock && now - hooked_cpu < HOOK_GRACE_NS) return;
  lua_sethook(L, NULL, 0, 0);
  hooked = NULL;
  spent = !hooked_cb;
  luaL_error(L, "interrupted!");
}

static void arm (int on) {
  static const struct itimerspec each = {{0, TICK_NS}, {0, TICK_NS}};
  static const struct itimerspec off = {{0, 0}, {0, 0}};
  if (has_timer) timer_settime(check_timer, 0, on ? &each : &off, NULL);
}

/* Has the loop's thread been computing since the signal? */
static int computing (void) {
  return !has_cpuclock || cputime() - pending_cpu >= COMPUTED_NS;
}

/* The timer's signal: is a task or a callback still running, the loop not
** back? */
static void check_stuck (void) {
  lua_State *co = running();
  int signum = pending;
  if (signum == 0) return;
  if (co == NULL || turns != pending_turn) {
    arm(0);
    pending = 0;                     /* the loop has the signal */
    return;
  }
  ticks++;
  if (!computing() && (signum == SIGINT || ticks < BLOCKED_TICKS))
    return;                          /* blocked, or not scheduled: wait on */
  arm(0);
  if (signum != SIGINT) exit_now(signum);
  hooked = co;
  hooked_cb = catcher->current == NULL;
  hooked_cpu = -1;
  lua_sethook(co, lstop, LUA_MASKCALL | LUA_MASKCOUNT, 1000);
}

static void laction (int signum, siginfo_t *info, void *ctx) {
  struct sigaction *uv = &uv_action[SIGI(signum)];
  if (info != NULL && info->si_code == SI_TIMER) {
    check_stuck();
    return;
  }
  if (pending || hooked != NULL) exit_now(signum);
  if (running() != NULL && has_timer &&
      !tide__signaltaken(catcher, signum)) {
    pending = signum;
    pending_turn = turns;
    pending_cpu = cputime();
    ticks = 0;
    arm(1);
  }
  if (uv->sa_flags & SA_SIGINFO)
    uv->sa_sigaction(signum, info, ctx);
  else if (uv->sa_handler != SIG_DFL && uv->sa_handler != SIG_IGN)
    uv->sa_handler(signum);
}

/* The loop has the signal: 0 if the hook took it already. */
static int interrupt_seen (void) {
  if (pending) arm(0);
  pending = 0;
  if (spent) {
    spent = 0;
    return 0;
  }
  if (hooked != NULL) {              /* not fired yet: the loop acts */
    if (!hooked_cb) lua_sethook(hooked, NULL, 0, 0);
    hooked = NULL;
  }
  return 1;
}

/* Cancel the task tide_call or tide.run drives; 0 if there is none. */
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

/* The default action for SIGINT and SIGTERM while they are caught. */
static void on_interrupt (tide_Runtime *rt, int signum) {
  if (!interrupt_seen()) {           /* "interrupted!": the next one exits */
    if (!rt->onsigint) exit_on_next(rt, SIGINT);
    return;
  }
  if (signum == SIGINT && rt->onsigint) {   /* the prompt takes it */
    rt->onsigint();
    return;
  }
  rt->interrupted = signum;
  exit_on_next(rt, SIGINT);
  exit_on_next(rt, SIGTERM);
  if (!cancel_main(rt)) {
    tide__cancelall(rt);
    uv_stop(rt->loop);
  }
}

static void count_turn (uv_prepare_t *h) {
  (void)h;
  turns++;
}

static void free_turner (uv_handle_t *h) {
  free(h);
}

/* Count the turns of rt's loop, and know the CPU time of its thread. */
static void watch_turns (tide_Runtime *rt) {
  has_cpuclock = pthread_getcpuclockid(pthread_self(), &cpuclock) == 0;
  turner = malloc(sizeof *turner);
  if (turner == NULL) return;
  uv_prepare_init(rt->loop, turner);
  uv_prepare_start(turner, count_turn);
  uv_unref((uv_handle_t *)turner);
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

TIDE_API int tide_catchsignals (tide_Runtime *rt) {
  int err;
  if (catcher == rt) return 0;
  if (catcher != NULL) return UV_EBUSY;
  sigaction(SIGINT, NULL, &before[0]);
  sigaction(SIGTERM, NULL, &before[1]);
  if ((err = tide__signaldefault(rt, SIGINT, on_interrupt)) != 0 ||
      (err = tide__signaldefault(rt, SIGTERM, on_interrupt)) != 0) {
    tide__signaldefault(rt, SIGINT, NULL);
    return err;
  }
  catcher = rt;
  pending = spent = 0;
  hooked = NULL;
  watch_turns(rt);
  hook_interrupts();
  return 0;
}

/* Give SIGINT and SIGTERM back as they were before tide_catchsignals. */
void tide__releasesignals (tide_Runtime *rt) {
  if (catcher != rt) return;
  if (hooked != NULL && !hooked_cb) lua_sethook(hooked, NULL, 0, 0);
  if (has_timer) timer_delete(check_timer);
  has_timer = 0;
  if (turner != NULL) uv_close((uv_handle_t *)turner, free_turner);
  turner = NULL;
  pending = spent = 0;
  hooked = NULL;
  catcher = NULL;
  tide__signaldefault(rt, SIGINT, NULL);
  tide__signaldefault(rt, SIGTERM, NULL);
  sigaction(SIGINT, &before[0], NULL);
  sigaction(SIGTERM, &before[1], NULL);
}

int tide__signalscaught (tide_Runtime *rt) {
  return catcher == rt;
}

TIDE_API int tide_interrupted (tide_Runtime *rt) {
  return rt->interrupted;
}
