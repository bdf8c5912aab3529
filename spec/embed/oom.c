/*
** oom.c: tide when memory runs out. A host whose allocator (the Lua
** state's lua_Alloc and tide's own, set with tide_replace_allocator) fails
** the Nth allocation ("once"), the Nth and the next ("twice": Lua collects
** and tries again once), or every one from the Nth on ("from"; "end": also
** while tide_close and lua_close run), running spec/embed/oom.lua. A run
** ends cleanly when it does not crash, abort or hang; ends in an error
** status or the script's end; once memory is back (but for "end"), the
** runtime (or a new one, if tide_open failed) runs tasks again; and after
** lua_close no byte of Lua's, no block of tide's and no descriptor is
** left.
**
**   oom count SCRIPT               allocations of a run that never fails
**   oom run MODE N SCRIPT          one run, with stderr, for debugging
**   oom sweep MODE FROM TO STEP SCRIPT
**                                  every N from FROM to TO by STEP, in a
**                                  child process restarted after a crash;
**                                  prints what it tried and how many runs
**                                  ended cleanly
**
** -l before the command: the runtime runs on a loop of the host's.
*/
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "tide.h"

#define HANG_SECONDS 60          /* a run taking longer has hung */

enum { NONE, ONCE, TWICE, FROM, END };
static const char *const modenames[] = {
  "none", "once", "twice", "from", "end", NULL
};

static int mode;
static unsigned long failat;
static unsigned long nalloc;     /* allocations so far (atomic) */
static int failing;              /* 0 once memory is back (atomic) */
static long luabytes;            /* Lua's memory in use */
static long tideblocks;          /* tide's blocks in use (atomic) */
static int hostloop;             /* -l */
static int dowatch;              /* run: OOM_WATCHDOG is heeded */
static char dir[64];             /* the script's directory */

/* ---- The failing allocators --------------------------------------------- */

static int fail_now (void) {
  unsigned long n = __atomic_add_fetch(&nalloc, 1, __ATOMIC_RELAXED);
  if (!__atomic_load_n(&failing, __ATOMIC_RELAXED)) return 0;
  if (mode == ONCE) return n == failat;
  if (mode == TWICE) return n == failat || n == failat + 1;
  return n >= failat;
}

/* Growing counts as an allocation; shrinking and freeing never fail. */
static void *lalloc (void *ud, void *p, size_t osize, size_t nsize) {
  size_t old = p ? osize : 0;
  void *q;
  (void)ud;
  if (nsize == 0) {
    free(p);
    luabytes -= (long)old;
    return NULL;
  }
  if (nsize > old && fail_now()) return NULL;
  if ((q = realloc(p, nsize)) != NULL) luabytes += (long)nsize - (long)old;
  return q;
}

static void count_block (void *p, long d) {
  if (p != NULL) __atomic_add_fetch(&tideblocks, d, __ATOMIC_RELAXED);
}

static void *t_malloc (size_t n) {
  void *p = fail_now() ? NULL : malloc(n);
  count_block(p, 1);
  return p;
}

static void *t_calloc (size_t n, size_t size) {
  void *p = fail_now() ? NULL : calloc(n, size);
  count_block(p, 1);
  return p;
}

static void *t_realloc (void *p, size_t n) {
  void *q = fail_now() ? NULL : realloc(p, n);
  if (p == NULL) count_block(q, 1);
  return q;
}

static void t_free (void *p) {
  count_block(p, -1);
  free(p);
}

/* ---- One run ------------------------------------------------------------ */

static int panic (lua_State *L) {
  fprintf(stderr, "PANIC: %s\n", lua_tostring(L, -1));
  abort();
  return 0;
}

static int countfds (void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (d == NULL) return -1;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n;
}

static int rm_entry (const char *path, const struct stat *st, int flag,
                     struct FTW *ftw) {
  (void)st; (void)flag;
  if (ftw->level > 0) remove(path);
  return 0;
}

static int openlibs (lua_State *L) {
  luaL_openlibs(L);
  return 0;
}

/* () -> the script, loaded, and its arguments: dir, pid */
static int load_script (lua_State *L) {
  if (luaL_loadfile(L, lua_touserdata(L, 1)) != LUA_OK) return lua_error(L);
  lua_pushstring(L, dir);
  lua_pushinteger(L, getpid());
  return 3;
}

/* What the runtime must do once memory is back, run with tide_dofile. */
static const char check[] =
  "local t = tide.spawn(function () tide.sleep(0.001) return 40 end)\n"
  "local a, b = tide.gather(function () return 1 end,\n"
  "                         function () tide.yield() return 1 end)\n"
  "local q = tide.Queue()\n"
  "q:put(a)\n"
  "local s <close> = assert(tide.tcp.listen('127.0.0.1', 0))\n"
  "assert(t:await() + q:get() + b == 42)\n";

/* A task of the host's, spawned with tide_spawn. */
static int host_task (lua_State *L) {
  lua_createtable(L, 0, 4);
  return 1;
}

static int pcall_c (lua_State *L, lua_CFunction f, void *ud, int nres) {
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, ud);
  return lua_pcall(L, 1, nres, 0);
}

/* Write the chunk s in the file name of dir; its path, or NULL. */
static const char *writefile (const char *name, const char *s, char *path,
                              size_t size) {
  FILE *f;
  snprintf(path, size, "%s/%s", dir, name);
  if ((f = fopen(path, "w")) == NULL) return NULL;
  if (fputs(s, f) < 0) {
    fclose(f);
    return NULL;
  }
  return fclose(f) == 0 ? path : NULL;
}

/* tide_dofile on a file of its own, memory failing as it may. */
static void run_file (lua_State *L, tide_Runtime *rt) {
  char path[96];
  if (writefile("small.lua", "tide.sleep(0) return 1\n", path, sizeof path)
      && tide_dofile(rt, path) != LUA_OK)
    lua_pop(L, 1);
}

/* What the script ended with: 0 "done", 1 out of memory, 2 another error. */
static int outcome;
static char message[160];

static void run_script (lua_State *L, tide_Runtime *rt, const char *script) {
  const char *msg;
  int status;
  lua_pushcfunction(L, host_task);
  tide_spawn(rt, 0);               /* the Task, or the error: a status */
  lua_pop(L, 1);
  status = pcall_c(L, load_script, (void *)script, 3);
  if (status == LUA_OK) status = tide_call(rt, 2, 1);
  run_file(L, rt);
  msg = lua_tostring(L, -1);
  if (status == LUA_OK && msg != NULL && strcmp(msg, "done") == 0)
    outcome = 0;
  else if (msg != NULL && strstr(msg, "not enough memory") != NULL)
    outcome = 1;
  else {
    outcome = 2;
    snprintf(message, sizeof message, "%.*s", msg ? (int)strcspn(msg, "\n")
             : 12, msg ? msg : "(no message)");
  }
  lua_pop(L, 1);
}

/* With memory back, the runtime runs tasks again. */
static int check_runtime (lua_State *L, tide_Runtime *rt, char *why) {
  char path[96];
  if (writefile("check.lua", check, path, sizeof path) == NULL) {
    snprintf(why, 200, "cannot write %s", path);
    return 0;
  }
  if (tide_dofile(rt, path) == LUA_OK) {
    tide_run(rt, UV_RUN_NOWAIT);   /* what the script left may go on */
    return 1;
  }
  snprintf(why, 200, "the runtime fails once memory is back: %s",
           lua_tostring(L, -1));
  lua_pop(L, 1);
  return 0;
}

/* -l run, with OOM_WATCHDOG set: after that many seconds, show the tasks
** and the handles that keep the loop alive (memory is back by then). */
static lua_State *watchedL;

static void show_handle (uv_handle_t *h, void *arg) {
  (void)arg;
  fprintf(stderr, "handle %s%s%s\n", uv_handle_type_name(h->type),
          uv_is_active(h) ? " active" : "", uv_has_ref(h) ? " ref" : "");
}

static void watchdog_cb (uv_timer_t *t) {
  __atomic_store_n(&failing, 0, __ATOMIC_RELAXED);
  (void)luaL_dostring(watchedL, "for _, t in ipairs(tide.tasks()) do "
                "io.stderr:write(t:traceback(tostring(t)), '\\n') end");
  uv_walk(t->loop, show_handle, NULL);
}

static uv_timer_t dog;

static void watchdog (uv_loop_t *loop, lua_State *L) {
  const char *s = getenv("OOM_WATCHDOG");
  if (s == NULL || !hostloop) return;
  watchedL = L;
  uv_timer_init(loop, &dog);
  uv_timer_start(&dog, watchdog_cb, (uint64_t)atoi(s) * 1000, 0);
  uv_unref((uv_handle_t *)&dog);
}

static tide_Runtime *open_tide (lua_State *L, uv_loop_t *loop) {
  return tide_open(L, hostloop ? loop : NULL);
}

/* The runtime, the script, and the check; 0 and why if not clean. */
static int run_lua (lua_State *L, uv_loop_t *loop, const char *script,
                    char *why) {
  tide_Runtime *rt;
  int ok;
  lua_atpanic(L, panic);
  if (pcall_c(L, openlibs, NULL, 0) != LUA_OK) {
    lua_pop(L, 1);
    outcome = 1;
    if (mode == END) return 1;
    __atomic_store_n(&failing, 0, __ATOMIC_RELAXED);
    if (pcall_c(L, openlibs, NULL, 0) != LUA_OK) {
      snprintf(why, 200, "luaL_openlibs fails once memory is back");
      return 0;
    }
  }
  if (dowatch) watchdog(loop, L);
  if (mode == END) {               /* memory never comes back */
    if ((rt = open_tide(L, loop)) == NULL) outcome = 1;
    else {
      run_script(L, rt, script);
      tide_close(rt);
    }
    return 1;
  }
  if ((rt = open_tide(L, loop)) != NULL) run_script(L, rt, script);
  else {
    outcome = 1;
    __atomic_store_n(&failing, 0, __ATOMIC_RELAXED);
    if ((rt = open_tide(L, loop)) == NULL) {
      snprintf(why, 200, "tide_open fails once memory is back");
      return 0;
    }
  }
  __atomic_store_n(&failing, 0, __ATOMIC_RELAXED);
  ok = check_runtime(L, rt, why);
  tide_close(rt);
  return ok;
}

/* One run, failing per mode at failat; 1 if it ended cleanly, else 0 and
** why. */
static int run (const char *script, char *why) {
  int fds = countfds(), ok = 1;
  uv_loop_t loop;
  lua_State *L;
  nalloc = 0;
  luabytes = tideblocks = 0;
  __atomic_store_n(&failing, mode != NONE, __ATOMIC_RELAXED);
  if (hostloop && uv_loop_init(&loop) != 0) {
    snprintf(why, 200, "uv_loop_init failed");
    return 0;
  }
  if ((L = lua_newstate(lalloc, NULL)) == NULL) outcome = 1;
  else {
    ok = run_lua(L, &loop, script, why);
    lua_close(L);
  }
  __atomic_store_n(&failing, 0, __ATOMIC_RELAXED);
  if (hostloop) {
    if (watchedL) uv_close((uv_handle_t *)&dog, NULL);
    watchedL = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);  /* late callbacks of the thread pool */
    if (ok && uv_loop_close(&loop) != 0) {
      snprintf(why, 200, "the host's loop has handles of tide left");
      uv_walk(&loop, show_handle, NULL);
      ok = 0;
    }
  }
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  if (ok && (luabytes != 0 || tideblocks != 0)) {
    snprintf(why, 200, "leak: %ld bytes of Lua's, %ld blocks of tide's",
             luabytes, tideblocks);
    ok = 0;
  }
  if (ok && countfds() != fds) {
    snprintf(why, 200, "leak: %d descriptors", countfds() - fds);
    ok = 0;
  }
  return ok;
}

/* ---- Sweeping N in child processes -------------------------------------- */

typedef struct Record {
  unsigned long n;
  int done;                /* 0: starting N; 1: N ended */
  int clean;
  int outcome;
  char why[200];
} Record;

static void setup_child (const char *log) {
  int null = open("/dev/null", O_RDWR), fd;
  dup2(null, 0);
  dup2(null, 1);
  close(null);
  if ((fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0) {
    dup2(fd, 2);
    close(fd);
  }
}

/* A run that never fails, first: what libuv opens once for the process
** (the signal pipe) is not a leak of the runs after. */
static void warmup (const char *script) {
  int m = mode;
  char why[200];
  mode = NONE;
  run(script, why);
  mode = m;
}

static void child (int out, unsigned long n, unsigned long to,
                   unsigned long step, const char *script) {
  warmup(script);
  for (; n <= to; n += step) {
    Record r;
    memset(&r, 0, sizeof r);
    r.n = n;
    if (write(out, &r, sizeof r) != sizeof r) _exit(3);
    failat = n;
    r.why[0] = '\0';
    r.clean = run(script, r.why);
    r.outcome = outcome;
    if (r.clean && outcome == 2) snprintf(r.why, sizeof r.why, "%s", message);
    r.done = 1;
    if (write(out, &r, sizeof r) != sizeof r) _exit(3);
  }
  close(out);
  exit(0);
}

static void show_log (const char *log) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "tail -n 25 %s >&2", log);
  if (system(cmd) != 0) fprintf(stderr, "(no log)\n");
}

typedef struct Sweep {
  unsigned long tried, clean, outcomes[3];
  int failed;              /* a child ended badly after its last N */
} Sweep;

/* Errors other than "not enough memory" are shown (the first few): some
** are expected, such as a libuv call failing with ENOMEM. */
static void record (Sweep *sw, const Record *r) {
  sw->tried++;
  if (!r->clean)
    printf("N=%lu %s: %s\n", r->n, modenames[mode], r->why);
  else {
    sw->clean++;
    if (++sw->outcomes[r->outcome] <= 10 && r->outcome == 2)
      printf("N=%lu %s: (clean) the script raised: %s\n", r->n,
             modenames[mode], r->why);
  }
  fflush(stdout);
}

/* Read the child's records; the N it is at, if it stopped inside one,
** else 0. */
static unsigned long follow (Sweep *sw, int in, pid_t pid, const char *log) {
  unsigned long at = 0;
  struct pollfd p;
  Record r;
  int st;
  p.fd = in;
  p.events = POLLIN;
  for (;;) {
    if (poll(&p, 1, HANG_SECONDS * 1000) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      printf("N=%lu %s: hung\n", at, modenames[mode]);
      show_log(log);
      return at;
    }
    if (read(in, &r, sizeof r) != sizeof r) break;
    if (!r.done) at = r.n;
    else {
      at = 0;
      record(sw, &r);
    }
  }
  waitpid(pid, &st, 0);
  if (at != 0) {
    printf("N=%lu %s: crashed (%s %d)\n", at, modenames[mode],
           WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st)
           ? WTERMSIG(st) : WEXITSTATUS(st));
    show_log(log);
  }
  else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    printf("%s: a child ended with status %d (a leak at exit?)\n",
           modenames[mode], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    show_log(log);
    sw->failed = 1;
  }
  return at;
}

static int sweep (unsigned long from, unsigned long to, unsigned long step,
                  const char *script) {
  Sweep sw;
  char log[] = "/tmp/tide-oom-log-XXXXXX";
  unsigned long n = from;
  int fd = mkstemp(log);
  memset(&sw, 0, sizeof sw);
  if (fd >= 0) close(fd);
  while (n <= to) {
    int io[2];
    pid_t pid;
    unsigned long at;
    fflush(stdout);
    if (pipe(io) != 0 || (pid = fork()) < 0) return 2;
    if (pid == 0) {
      close(io[0]);
      setup_child(log);
      child(io[1], n, to, step, script);
    }
    close(io[1]);
    at = follow(&sw, io[0], pid, log);
    close(io[0]);
    if (at == 0) break;
    sw.tried++;
    n = at + step;
  }
  unlink(log);
  printf("oom %s, %s loop: tried %lu, ended cleanly %lu (the script ended "
         "%lu, out of memory %lu, another error %lu)\n", modenames[mode],
         hostloop ? "the host's" : "tide's", sw.tried, sw.clean,
         sw.outcomes[0], sw.outcomes[1], sw.outcomes[2]);
  return sw.clean == sw.tried && !sw.failed ? 0 : 1;
}

/* ---- main --------------------------------------------------------------- */

static int usage (void) {
  fprintf(stderr, "usage: oom [-l] count SCRIPT | run MODE N SCRIPT | "
          "sweep MODE FROM TO STEP SCRIPT\n");
  return 2;
}

static int getmode (const char *s) {
  int i;
  for (i = 1; modenames[i] != NULL; i++)
    if (strcmp(s, modenames[i]) == 0) return i;
  return -1;
}

int main (int argc, char **argv) {
  char why[200] = "";
  int i = 1;
  strcpy(dir, "/tmp/tide-oom-XXXXXX");
  if (argc > 1 && strcmp(argv[1], "-l") == 0) hostloop = 1, i++;
  if (argc - i < 2 || mkdtemp(dir) == NULL) return usage();
  tide_replace_allocator(t_malloc, t_realloc, t_calloc, t_free);
  if (strcmp(argv[i], "count") == 0 && argc - i == 2) {
    warmup(argv[i + 1]);
    i = run(argv[i + 1], why);
    printf("%lu\n", nalloc);
    if (!i || outcome != 0)
      fprintf(stderr, "oom: the run failed: %s%s\n", why, message);
    rmdir(dir);
    return i && outcome == 0 ? 0 : 1;
  }
  if (strcmp(argv[i], "run") == 0 && argc - i == 4 &&
      (mode = getmode(argv[i + 1])) > 0) {
    failat = strtoul(argv[i + 2], NULL, 10);
    warmup(argv[i + 3]);
    dowatch = 1;
    i = run(argv[i + 3], why);
    printf("%s (outcome %d%s%s)\n", i ? "clean" : why, outcome,
           outcome == 2 ? ": " : "", outcome == 2 ? message : "");
    rmdir(dir);
    return i ? 0 : 1;
  }
  if (strcmp(argv[i], "sweep") == 0 && argc - i == 6 &&
      (mode = getmode(argv[i + 1])) > 0) {
    int r = sweep(strtoul(argv[i + 2], NULL, 10),
                  strtoul(argv[i + 3], NULL, 10),
                  strtoul(argv[i + 4], NULL, 10), argv[i + 5]);
    rmdir(dir);
    return r;
  }
  rmdir(dir);
  return usage();
}
