/*
** future.c: a host whose C library completes Lua waits through tide.h's
** futures. delayed(ms, value [, fail]) starts a libuv timer of the host's
** and returns a tide.Future that its callback sets (or fails) with the
** value; a task awaits it, another cancels one before the timer fires;
** then a forever task is ended by tide_stop from another C timer.
** Checks that the host's loop closes cleanly. Exit 0 on success.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "tide.h"

#define CHECK(c) do { if (!(c)) { \
  fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
  return 1; } } while (0)

typedef struct Job {
  uv_timer_t timer;
  tide_Future *f;
  char value[32];
  int fail;
} Job;

static int late = 0;          /* callbacks that found their future done */

static int push_value (lua_State *L) {
  Job *j = lua_touserdata(L, 1);
  lua_pushstring(L, j->value);
  return 1;
}

static void job_free (uv_handle_t *h) {
  free(h->data);
}

static void job_cb (uv_timer_t *t) {
  Job *j = t->data;
  int got;
  if (tide_futuredone(j->f)) late++;
  got = j->fail ? tide_seterror(j->f, push_value, j)
                : tide_setresult(j->f, push_value, j);
  if (!got) late++;
  uv_close((uv_handle_t *)t, job_free);
}

/* delayed(ms, value [, fail]) -> a Future */
static int l_delayed (lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  const char *v = luaL_checkstring(L, 2);
  Job *j = calloc(1, sizeof *j);
  if (j == NULL) return luaL_error(L, "not enough memory");
  snprintf(j->value, sizeof j->value, "%s", v);
  j->fail = lua_toboolean(L, 3);
  j->f = tide_newfuture(L);      /* raises: j is then lost, as a test may */
  uv_timer_init(tide_getloop(L), &j->timer);
  j->timer.data = j;
  uv_timer_start(&j->timer, job_cb, (uint64_t)ms, 0);
  return 1;
}

static void stop_cb (uv_timer_t *t) {
  tide_stop(t->data);
}

static const char *script =
  "local tide = require 'tide'\n"
  "out = {}\n"
  "tide.spawn(function ()\n"
  "  out[#out + 1] = delayed(10, 'hello'):await()\n"
  "  local ok, e = pcall(function () return delayed(5, 'boom', true):await() end)\n"
  "  out[#out + 1] = tostring(ok) .. ' ' .. e\n"
  "  local f = delayed(20, 'never')\n"
  "  f:cancel()\n"
  "  out[#out + 1] = f:state()\n"
  "  out[#out + 1] = tide.gather(delayed(1, 'g1'), delayed(2, 'g2'))\n"
  "end)\n";

static const char *forever =
  "local tide = require 'tide'\n"
  "tide.spawn(function ()\n"
  "  local _ <close> = setmetatable({}, {__close = function () closed = true end})\n"
  "  while true do tide.sleep(0.01) end\n"
  "end)\n";

int main (void) {
  uv_loop_t loop;
  uv_timer_t stopper;
  lua_State *L;
  tide_Runtime *rt;
  CHECK(uv_loop_init(&loop) == 0);
  L = luaL_newstate();
  luaL_openlibs(L);
  rt = tide_open(L, &loop);
  CHECK(rt != NULL);
  lua_register(L, "delayed", l_delayed);
  CHECK(luaL_dostring(L, script) == LUA_OK);
  CHECK(tide_run(rt, UV_RUN_DEFAULT) == LUA_OK);
  CHECK(tide_ntasks(rt) == 0);
  uv_run(&loop, UV_RUN_DEFAULT);     /* the cancelled one's timer fires */
  CHECK(late == 2);                  /* found done; not set */
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "concat");
  lua_getglobal(L, "out");
  lua_pushliteral(L, ",");
  lua_call(L, 2, 1);
  printf("%s\n", lua_tostring(L, -1));
  lua_settop(L, 0);
  /* a forever task, ended by tide_stop from a timer of the host's */
  CHECK(luaL_dostring(L, forever) == LUA_OK);
  uv_timer_init(&loop, &stopper);
  stopper.data = rt;
  uv_update_time(&loop);             /* due after the task has started */
  uv_timer_start(&stopper, stop_cb, 50, 0);
  CHECK(tide_run(rt, UV_RUN_DEFAULT) == LUA_OK);
  CHECK(tide_ntasks(rt) == 0);
  lua_getglobal(L, "closed");
  CHECK(lua_toboolean(L, -1));
  lua_pop(L, 1);
  uv_close((uv_handle_t *)&stopper, NULL);
  tide_close(rt);
  lua_close(L);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  printf("ok\n");
  return 0;
}
