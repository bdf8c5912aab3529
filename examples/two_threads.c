/*
** two_threads.c: two runtimes, each with its own Lua state and its own
** loop, in two threads at once. They share nothing, so they need no lock.
*/
#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>
#include <tide.h>

typedef struct Job {
  uv_thread_t thread;
  int id;
  lua_Integer result;
  int status;
} Job;

static const char *script =
  "local id = ...\n"
  "local sum = 0\n"
  "local tasks = {}\n"
  "for i = 1, 100 do\n"
  "  tasks[i] = tide.spawn(function () tide.sleep(0.001 * (i % 7)); return i * id end)\n"
  "end\n"
  "for i = 1, 100 do sum = sum + tasks[i]:await() end\n"
  "return sum\n";

static void run (void *arg) {
  Job *job = arg;
  lua_State *L = luaL_newstate();
  tide_Runtime *rt;
  luaL_openlibs(L);
  rt = tide_open(L, NULL);
  luaL_loadstring(L, script);
  lua_pushinteger(L, job->id);
  job->status = tide_call(rt, 1, 1);
  job->result = lua_tointeger(L, -1);
  tide_close(rt);
  lua_close(L);
}

int main (void) {
  Job jobs[2] = { { .id = 1 }, { .id = 2 } };
  int i, ok = 1;
  for (i = 0; i < 2; i++) uv_thread_create(&jobs[i].thread, run, &jobs[i]);
  for (i = 0; i < 2; i++) {
    uv_thread_join(&jobs[i].thread);
    printf("runtime %d: %lld\n", jobs[i].id, (long long)jobs[i].result);
    ok = ok && jobs[i].status == LUA_OK && jobs[i].result == 5050 * jobs[i].id;
  }
  return ok ? 0 : 1;
}
