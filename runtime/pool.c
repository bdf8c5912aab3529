/*
** pool.c: the loop a runtime's thread-pool requests (tide.work, tide.fs,
** tide.dns) run on. It is a loop of its own, run from the runtime's loop
** whenever its backend fd is readable, and it keeps the runtime's loop
** alive only while a task waits on one of its requests. So a call that
** goes on running on a pool thread after its task stopped waiting (a
** cancelled tide.work stuck in a C function, an open of a FIFO) keeps no
** program alive, and tide_close waits for it a little only: then it leaves
** that loop open for the call to end into, and at exit the process does
** not wait for the pool threads (libuv joins them at exit) while one may
** still run such a call.
*/
#define _GNU_SOURCE              /* on_exit */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tide_int.h"

#define GRACE_MS 100   /* what tide_close gives the calls nobody waits for */

struct tide_Pool {
  tide_Handle o;           /* o.h: a uv_poll_t on the runtime's loop */
  uv_loop_t loop;          /* where the requests run */
  int waiting;             /* tasks waiting on its requests */
  struct tide_Pool *next;  /* the process's pool loops not closed */
};

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t lock;                /* guards pools */
static struct tide_Pool *pools = NULL;

/* ---- At exit ---------------------------------------------------------------- */

/* Does a pool loop still have requests, which a pool thread may run? */
static int pools_busy (void) {
  struct tide_Pool *p;
  int busy = 0;
  uv_mutex_lock(&lock);
  for (p = pools; p != NULL && !busy; p = p->next)
    busy = uv_loop_alive(&p->loop);
  uv_mutex_unlock(&lock);
  return busy;
}

#if defined(__GLIBC__)
/* Flush f unless another thread holds it: a pool thread stuck in a read
** of stdin holds its lock for good. */
static void flush_free (FILE *f) {
  if (ftrylockfile(f) != 0) return;
  fflush_unlocked(f);
  funlockfile(f);
}

/* libuv's destructor would wait for every pool thread, a stuck one too.
** By now lua_close has closed Lua's files; the standard streams are
** flushed unless a stuck call holds them (fflush(NULL) would wait). */
static void at_exit (int status, void *arg) {
  (void)arg;
  if (!pools_busy()) return;
  flush_free(stdout);
  flush_free(stderr);
  _exit(status);
}
#endif

static void init_once (void) {
  if (uv_mutex_init(&lock) != 0) abort();
#if defined(__GLIBC__)
  on_exit(at_exit, NULL);
#endif
}

static void pools_add (struct tide_Pool *p) {
  uv_mutex_lock(&lock);
  p->next = pools;
  pools = p;
  uv_mutex_unlock(&lock);
}

static void pools_remove (struct tide_Pool *p) {
  struct tide_Pool **q;
  uv_mutex_lock(&lock);
  for (q = &pools; *q != NULL && *q != p; q = &(*q)->next) {}
  if (*q) *q = p->next;
  uv_mutex_unlock(&lock);
}

/* ---- The pool loop ---------------------------------------------------------- */

/* Its backend fd is readable: run the callbacks of what has ended. */
static void pool_cb (uv_poll_t *h, int status, int events) {
  struct tide_Pool *p = h->data;
  (void)status; (void)events;
  if (p != NULL) uv_run(&p->loop, UV_RUN_NOWAIT);
}

static void noop (uv_idle_t *h) {
  (void)h;
}

/* Poll loop once, so that the fd the pool threads wake it with joins its
** backend fd (libuv adds fds there when it polls). 0 or a UV error. */
static int pool_poll (uv_loop_t *loop) {
  uv_idle_t idle;
  int err = uv_idle_init(loop, &idle);
  if (err == 0) err = uv_idle_start(&idle, noop);
  if (err == 0) uv_run(loop, UV_RUN_NOWAIT);
  uv_close((uv_handle_t *)&idle, NULL);
  uv_run(loop, UV_RUN_NOWAIT);       /* its close */
  return err;
}

/* Watch p's loop from rt's; 0 or a UV error (p's handle is then closed).
** Never raises: p would be lost. */
static int pool_watch (tide_Runtime *rt, struct tide_Pool *p) {
  uv_poll_t *h = tide__handleinit(NULL, rt, &p->o, sizeof *h, NULL);
  int fd = uv_backend_fd(&p->loop), err = UV_ENOTSUP;
  if (h == NULL) return UV_ENOMEM;
  if (fd < 0 || (err = uv_poll_init(rt->loop, h, fd)) < 0 ||
      (err = uv_poll_start(h, UV_READABLE, pool_cb)) < 0) {
    tide__handleclose(&p->o);
    return err;
  }
  uv_unref((uv_handle_t *)h);
  return 0;
}

/* Open rt's pool loop; NULL if it cannot be (the runtime's loop serves). */
static struct tide_Pool *pool_open (lua_State *L, tide_Runtime *rt) {
  struct tide_Pool *p = tide__calloc(1, sizeof *p);
  if (p == NULL) luaL_error(L, "not enough memory");
  uv_once(&once, init_once);
  if (uv_loop_init(&p->loop) < 0) {
    tide__free(p);
    return NULL;
  }
  if (pool_poll(&p->loop) < 0 || pool_watch(rt, p) < 0) {
    uv_loop_close(&p->loop);
    tide__free(p);
    return NULL;
  }
  pools_add(p);
  return rt->pool = p;
}

/* The loop for the thread-pool requests of L's runtime. */
uv_loop_t *tide__poolloop (lua_State *L) {
  tide_Runtime *rt = tide_runtime(L);
  if (rt == NULL) return tide_getloop(L);     /* raises */
  if (rt->pool == NULL && !rt->closing) pool_open(L, rt);
  return rt->pool ? &rt->pool->loop : rt->loop;
}

/* The task of w starts (delta 1) or stops (-1) waiting on a request of
** loop: while some task waits, the pool loop keeps the runtime's alive. */
void tide__poolwait (tide_Wait *w, uv_loop_t *loop, int delta) {
  struct tide_Pool *p = tide__task(w)->rt->pool;
  if (p == NULL || loop != &p->loop || p->o.h == NULL) return;
  p->waiting += delta;
  if (p->waiting > 0) uv_ref(p->o.h);
  else uv_unref(p->o.h);
}

/* ---- Closing ------------------------------------------------------------------ */

static void grace_over (uv_timer_t *t) {
  uv_stop(t->loop);
}

/* Run loop until its requests have ended, GRACE_MS at most (their
** callbacks only free: no task waits). 1 if none is left. */
static int drain (uv_loop_t *loop) {
  uv_timer_t t;
  uv_update_time(loop);              /* not run for a while */
  uv_timer_init(loop, &t);
  uv_timer_start(&t, grace_over, GRACE_MS, 0);
  uv_unref((uv_handle_t *)&t);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);       /* the timer's close */
  return !uv_loop_alive(loop);
}

/* From tide_close, once no task waits: close rt's pool loop, or leave it
** open while a pool thread still runs a call for it. */
void tide__poolclose (tide_Runtime *rt) {
  struct tide_Pool *p = rt->pool;
  if (p == NULL) return;
  rt->pool = NULL;
  tide__handleclose(&p->o);          /* stops watching its fd at once */
  if (!drain(&p->loop) || uv_loop_close(&p->loop) != 0)
    return;                          /* left to the call that runs */
  pools_remove(p);
  tide__free(p);
}
