/*
** compute.c: a C module with an awaitable, cancellable function, written
** with tide.h's three moves. compute.primes(n) counts the primes below n
** by trial division on libuv's thread pool, so the loop and the other tasks
** go on meanwhile.
**   local compute = require "compute"
**   print(compute.primes(3000000))  -- waits; other tasks keep running
** Build it as a module the tide command loads (it takes the tide and Lua
** API from the command):
**   cc -shared -fPIC $(pkg-config --cflags tide) -o compute.so compute.c
*/
#include <stdlib.h>

#include <lauxlib.h>
#include <tide.h>

typedef struct PrimesReq {
  uv_work_t req;
  tide_Wait *w;            /* NULL once the task stopped waiting */
  long n;
  long result;
  int status;              /* the thread pool's: < 0 if it failed */
} PrimesReq;

static long primes (long n) {
  long count = 0, i, d;
  for (i = 2; i < n; i++) {
    for (d = 2; d * d <= i && i % d != 0; d++) {}
    if (d * d > i) count++;
  }
  return count;
}

static void work (uv_work_t *req) {      /* on a pool thread: no Lua here */
  PrimesReq *r = req->data;
  r->result = primes(r->n);
}

/* The task's results, made by tide_wakewith in a protected call: if
** memory runs out there, the waiting task raises instead. */
static int primes_push (lua_State *L) {
  PrimesReq *r = lua_touserdata(L, 1);
  if (r->status < 0) return tide_pushfail(L, r->status, "primes");
  lua_pushinteger(L, r->result);
  return 1;
}

static void after_work (uv_work_t *req, int status) {  /* on the loop */
  PrimesReq *r = req->data;
  r->status = status;
  if (r->w != NULL)                      /* the task still waits */
    tide_wakewith(r->w, primes_push, r);
  free(r);                               /* cancelled or not, done with it */
}

/* The waiting task was cancelled: drop the request. uv_cancel stops it if
** no thread has taken it yet; otherwise after_work drops the result. */
static void primes_cancel (tide_Wait *w) {
  PrimesReq *r = tide_waitdata(w);
  r->w = NULL;
  uv_cancel((uv_req_t *)&r->req);
}

static int compute_primes (lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  tide_Wait *w;
  PrimesReq *r;
  int err;
  luaL_argcheck(L, n >= 0 && n <= 1000000000, 1, "0 to 1e9 expected");
  w = tide_wait(L);                      /* raises unless inside a task */
  if ((r = malloc(sizeof *r)) == NULL) return luaL_error(L, "out of memory");
  r->req.data = r;
  r->w = w;
  r->n = (long)n;
  err = uv_queue_work(tide_getloop(L), &r->req, work, after_work);
  if (err < 0) {
    free(r);
    return tide_pushfail(L, err, "primes");
  }
  return tide_await(L, w, primes_cancel, r);
}

int luaopen_compute (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"primes", compute_primes},
    {NULL, NULL}
  };
  luaL_newlib(L, funcs);
  return 1;
}
