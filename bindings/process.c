/*
** process.c: tide.process.spawn and the Process it returns: a child
** program whose stdin, stdout and stderr are pipes (tide.Stream), files,
** the parent's fds or /dev/null. Children start with posix_spawn (a vfork:
** no copy of the parent's page tables, twice as fast as fork from a large
** program) and are watched through a pidfd polled by the loop; without
** pidfds (Linux before 5.3), or with TIDE_SPAWN=fork, libuv's uv_spawn
** starts them and its exit callback reports. Either way the Process owns
** the handle until the exit callback reaps the child and closes it; a
** Process collected while its child runs hands the handle over to a copy
** that lives until then, so every child is reaped (a closing runtime kills
** and reaps what is left). _pipeline starts children connected stdout to
** stdin by their fds; _spawn and _pipeline serve exec and pipeline, whose
** Lua side (and the Pipeline object) is in runtime/lua/process.lua; the
** children's stdin, stdout and stderr are set up in process_stdio.c.
*/
#define _GNU_SOURCE              /* posix_spawn_file_actions_addchdir_np */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process.h"

#define TIDE_PROCESS "tide.Process"

extern char **environ;

/* How children start: posix_spawn and pidfds, or uv_spawn (see above).
** In static TLS even in tide.so: a dlopen'ed module's dynamic TLS block
** makes LeakSanitizer (gcc 12) scan a bogus range under stock lua5.4. */
static _Thread_local int usepidfd __attribute__((tls_model("initial-exec"))) = -1;

/* The handle a Process owns: a poll on its pidfd, or libuv's process. */
typedef union ProcHandle {
  uv_poll_t poll;
  uv_process_t proc;
} ProcHandle;


static Process *checkprocess (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_PROCESS);
}

/* ---- Exit and reaping ------------------------------------------------------ */

/* Stop polling p's pidfd and close it (once). */
static void closepidfd (Process *p) {
  if (p->pidfd < 0) return;
  uv_poll_stop(p->poll);           /* epoll forgets it while it is open */
  close(p->pidfd);
  p->pidfd = -1;
}

/* The child has been reaped: keep how it ended and close the handle. The
** pidfd is closed before the waiters wake (they may run at once, and find
** no fd left open); a new fd a woken task gets under its number is only
** added to epoll at the next poll, after the uv_close that follows. */
static void exited (Process *p, int code, int signum) {
  p->exited = 1;
  p->code = code;
  p->signal = signum;
  closepidfd(p);
  tide__handleclose(&p->o);
}

/* waitpid's status, as exited wants it; -1 and 0 if unknown (ECHILD:
** SIGCHLD is ignored, and the system reaped it). */
static void decode (Process *p, pid_t r, int st) {
  if (r == p->pid && WIFEXITED(st)) exited(p, WEXITSTATUS(st), 0);
  else if (r == p->pid && WIFSIGNALED(st)) exited(p, 0, WTERMSIG(st));
  else exited(p, -1, 0);
}

/* uv_spawn's exit callback. */
static void process_exit_cb (uv_process_t *h, int64_t status, int signum) {
  exited(h->data, (int)status, signum);
}

/* The pidfd is readable: the child has ended; reap it. */
static void pidfd_cb (uv_poll_t *h, int status, int events) {
  Process *p = h->data;
  pid_t r;
  int st = 0;
  (void)status; (void)events;
  do r = waitpid(p->pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r != 0) decode(p, r, st);
}

/* Kill the child and reap it now (a closing runtime, a failed start). */
static void reap (Process *p) {
  int st = 0;
  pid_t r;
  kill(p->pid, SIGKILL);
  do r = waitpid(p->pid, &st, 0);
  while (r < 0 && errno == EINTR);
  p->exited = 1;
  if (r == p->pid && WIFEXITED(st)) p->code = WEXITSTATUS(st);
  else if (r == p->pid && WIFSIGNALED(st)) p->signal = WTERMSIG(st);
  else p->signal = SIGKILL;
}

/* The handle closes. The waiters are woken last: a woken task may run at
** once, drop the Process and have it collected. */
static void process_onclose (tide_Handle *o) {
  Process *p = (Process *)o;
  if (p->moving) return;
  if (!p->exited && p->pid > 0 && !p->detached) reap(p);
  closepidfd(p);
  if (p->onexit) p->onexit(p);
  if (p->orphan) tide__free(p);    /* nobody waits on an orphan */
  else tide__wakeall(&p->waiters);
}

/* p is being collected with its child still running: a copy takes over
** the handle until the exit callback. Tasks in p:wait() (only if __gc was
** called by hand) wake to an untracked child. */
static void orphan (Process *p) {
  Process *r = tide__malloc(sizeof *r);
  if (r == NULL) {                 /* reap now */
    tide__handleclose(&p->o);
    return;
  }
  *r = *p;
  r->orphan = 1;
  r->onexit = NULL;
  r->waiters = NULL;
  p->moving = 1;
  tide__handlemove(&p->o, &r->o);
  p->moving = 0;
  r->o.onclose = process_onclose;
  r->o.h->data = r;
  tide__wakeall(&p->waiters);
}

/* ---- Options ---------------------------------------------------------------- */

/* The string on top, kept alive in the anchor table; pops it. */
static const char *anchored (lua_State *L, const Check *k) {
  const char *s = lua_tostring(L, -1);
  lua_rawseti(L, k->anchor, (lua_Integer)lua_rawlen(L, k->anchor) + 1);
  return s;
}

/* The strings of the list at t (program and arguments) as a NULL-ended
** array. */
static char **checkargv (lua_State *L, int t, const Check *k) {
  lua_Integer i, n = luaL_len(L, t);
  char at[32] = "";
  char **argv;
  if (k->cmd) snprintf(at, sizeof at, "[%d]", (int)k->cmd);
  if (n < 1)
    tide__argerror(L, k->argv, lua_pushfstring(L, "program name expected%s%s",
                                            k->cmd ? " at " : "", at));
  argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0);
  lua_rawseti(L, k->anchor, (lua_Integer)lua_rawlen(L, k->anchor) + 1);
  for (i = 1; i <= n; i++) {
    int tt = lua_geti(L, t, i);
    if (tt != LUA_TSTRING && tt != LUA_TNUMBER)
      tide__argerror(L, k->argv, lua_pushfstring(L, "string expected at %s[%d], "
               "got %s", at, (int)i, luaL_typename(L, -1)));
    if (haszero(L))
      tide__argerror(L, k->argv, lua_pushfstring(L, "zero byte in the string "
               "at %s[%d]", at, (int)i));
    if (i == 1 && lua_rawlen(L, -1) == 0)
      tide__argerror(L, k->argv, lua_pushfstring(L, "program name expected%s%s"
               ", got an empty string", k->cmd ? " at " : "", at));
    argv[i - 1] = (char *)anchored(L, k);
  }
  argv[n] = NULL;
  return argv;
}

/* Add "name=value" (on top) to the environment being built in list. */
static void addenv (lua_State *L, int list) {
  lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
}

/* The child's environment from opts.env (NULL: the parent's). With
** env_extend, the parent's with opts.env over it; false removes. */
static char **checkenv (lua_State *L, int opts, const Check *k) {
  int env, list;
  lua_Integer i, n;
  char **e;
  if (lua_getfield(L, opts, "env") == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1)) fielderror(L, k, "env", "table expected");
  env = lua_gettop(L);
  lua_newtable(L);
  list = env + 1;
  lua_getfield(L, opts, "env_extend");
  if (lua_toboolean(L, -1)) {
    char **p;
    for (p = environ; *p != NULL; p++) {
      const char *eq = strchr(*p, '=');
      if (eq == NULL) continue;
      lua_pushlstring(L, *p, (size_t)(eq - *p));
      if (lua_rawget(L, env) == LUA_TNIL) {
        lua_pushstring(L, *p);
        addenv(L, list);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, env)) {
    int vt = lua_type(L, -1);
    const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                      : NULL;
    size_t klen = key ? lua_rawlen(L, -2) : 0;
    if (key == NULL || klen == 0 || strlen(key) != klen ||
        strchr(key, '=') != NULL)
      fielderror(L, k, "env", "names must be strings without '=' or zero "
                 "bytes");
    if (vt == LUA_TSTRING || vt == LUA_TNUMBER) {
      lua_pushvalue(L, -1);          /* not lua_tostring on the value: next */
      if (haszero(L))
        fielderror(L, k, "env", lua_pushfstring(L, "zero byte in the value "
                   "of %s", key));
      lua_pushfstring(L, "%s=%s", key, lua_tostring(L, -1));
      lua_remove(L, -2);
      addenv(L, list);
    }
    else if (!(vt == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
      fielderror(L, k, "env", "values must be strings, numbers or false");
    lua_pop(L, 1);
  }
  n = (lua_Integer)lua_rawlen(L, list);
  e = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *e, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    e[i - 1] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  e[n] = NULL;
  lua_rawseti(L, k->anchor, (lua_Integer)lua_rawlen(L, k->anchor) + 1);
  lua_rawseti(L, k->anchor, (lua_Integer)lua_rawlen(L, k->anchor) + 1);
  lua_pop(L, 1);                   /* env */
  return e;
}

/* Program, arguments, env, cwd and detached of ch: argv from the list at
** t, the rest from the table at opts. */
static void checkchild (lua_State *L, int t, int opts, const Check *k,
                        Child *ch) {
  char **argv = checkargv(L, t, k);
  memset(ch, 0, sizeof *ch);
  ch->opts.file = argv[0];
  ch->opts.args = argv;
  ch->opts.env = checkenv(L, opts, k);
  ch->opts.exit_cb = process_exit_cb;
  ch->opts.stdio = ch->c;
  ch->opts.stdio_count = 3;
  switch (lua_getfield(L, opts, "cwd")) {
    case LUA_TNIL: lua_pop(L, 1); break;
    case LUA_TSTRING:
      if (haszero(L)) fielderror(L, k, "cwd", "zero byte in path");
      ch->opts.cwd = anchored(L, k);
      break;
    default: fielderror(L, k, "cwd", "string expected");
  }
  lua_getfield(L, opts, "detached");
  if (lua_toboolean(L, -1)) ch->opts.flags |= UV_PROCESS_DETACHED;
  lua_pop(L, 1);
}

/* ---- Starting ------------------------------------------------------------ */

/* Push a new Process for ch, with a Stream for each pipe (user values
** 1-3); nothing is opened yet. */
static void newprocess (lua_State *L, tide_Runtime *rt, Child *ch) {
  Process *p = lua_newuserdatauv(L, sizeof *p, 3);
  memset(p, 0, sizeof *p);
  p->pidfd = -1;
  luaL_setmetatable(L, TIDE_PROCESS);
  tide__handleinit(L, rt, &p->o, sizeof(ProcHandle), process_onclose);
  p->detached = (ch->opts.flags & UV_PROCESS_DETACHED) != 0;
  ch->p = p;
  tide__stdiopipes(L, rt, ch);
}

/* ---- posix_spawn and pidfds --------------------------------------------------- */

/* Watch the child pid through a pidfd polled by p's handle; if it cannot
** be watched, it is killed and reaped, and the error returned. */
static int watch (uv_loop_t *loop, Process *p, pid_t pid) {
  uv_poll_t *h = (uv_poll_t *)p->o.h;
  int err;
  p->pid = pid;
  if ((p->pidfd = pidfd_open(pid, 0)) < 0)
    err = uv_translate_sys_error(errno);
  else if ((err = uv_poll_init(loop, h, p->pidfd)) == 0 &&
           (err = uv_poll_start(h, UV_READABLE, pidfd_cb)) == 0) {
    p->poll = h;
    return 0;
  }
  if (p->pidfd >= 0) close(p->pidfd);
  p->pidfd = -1;
  reap(p);
  return err;
}

/* The child's fds 0-2 as file actions, from the containers that
** tide__stdioopen filled. An fd below i would be read after the action for
** it replaced it: it is copied above 2 first (moved[i], closed after the
** spawn). The child's stdio must block, as programs expect: what it shares
** with the parent is made blocking (uv_spawn does the same from the child). */
static int setactions (Child *ch, posix_spawn_file_actions_t *fa,
                       int moved[3]) {
  int i, fd, fl, err = 0;
  if (ch->opts.cwd)
    err = posix_spawn_file_actions_addchdir_np(fa, ch->opts.cwd);
  for (i = 0; i < 3 && err == 0; i++) {
    uv_stdio_container_t *c = &ch->c[i];
    uv_os_fd_t sfd;
    if (c->flags == UV_IGNORE) {
      err = posix_spawn_file_actions_addopen(fa, i, "/dev/null",
                                             i == 0 ? O_RDONLY : O_RDWR, 0);
      continue;
    }
    if (!(c->flags & UV_INHERIT_STREAM)) fd = c->data.fd;
    else if (uv_fileno((uv_handle_t *)c->data.stream, &sfd) == 0) fd = sfd;
    else return EBADF;
    if ((fl = fcntl(fd, F_GETFL)) < 0) {
      if (fd == i) continue;       /* closed here: closed there too */
      return errno;
    }
    if (fl & O_NONBLOCK) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (fd == i) {                 /* inherited as it is */
      err = posix_spawn_file_actions_adddup2(fa, fd, fd);
      continue;
    }
    if (fd < i) {
      if ((moved[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) return errno;
      fd = moved[i];
    }
    err = posix_spawn_file_actions_adddup2(fa, fd, i);
  }
  return err;
}

/* Signals as libuv leaves them to a child: default actions, none blocked;
** a session of its own if detached. */
static int setattr (Child *ch, posix_spawnattr_t *a) {
  sigset_t all, none;
  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
  if (ch->opts.flags & UV_PROCESS_DETACHED) flags |= POSIX_SPAWN_SETSID;
  sigfillset(&all);
  sigemptyset(&none);
  if (posix_spawnattr_setsigdefault(a, &all) != 0 ||
      posix_spawnattr_setsigmask(a, &none) != 0)
    return EINVAL;
  return posix_spawnattr_setflags(a, flags);
}

/* The PATH of the environment env, or execvp's default when it has none. */
static const char *envpath (char **env) {
  for (; *env != NULL; env++)
    if (strncmp(*env, "PATH=", 5) == 0) return *env + 5;
  return "/bin:/usr/bin";
}

/* posix_spawnp, but searching the child's PATH rather than ours, as execvp
** does in the child after a fork (and uv_spawn): each directory in turn,
** past those where the program is missing; EACCES if one was found that
** could not run. An absolute directory is checked first without a spawn. */
static int spawnpath (pid_t *pid, Child *ch, posix_spawn_file_actions_t *fa,
                      posix_spawnattr_t *attr) {
  const char *file = ch->opts.file, *dir = envpath(ch->opts.env), *end;
  size_t flen = strlen(file);
  int err, denied = 0;
  char buf[PATH_MAX];
  for (;; dir = end + 1) {
    size_t dlen;
    end = strchr(dir, ':');
    if (end == NULL) end = dir + strlen(dir);
    dlen = (size_t)(end - dir);
    if (dlen + flen + 2 <= sizeof buf) {   /* an empty entry: the cwd */
      memcpy(buf, dir, dlen);
      buf[dlen] = '/';
      memcpy(buf + dlen + (dlen > 0), file, flen + 1);
      if (buf[0] == '/' && access(buf, F_OK) != 0) err = errno;
      else err = posix_spawn(pid, buf, fa, attr, ch->opts.args, ch->opts.env);
      if (err == 0) return 0;
      if (err == EACCES) denied = 1;
      else if (err != ENOENT && err != ENOTDIR) return err;
    }
    if (*end == '\0') break;
  }
  return denied ? EACCES : ENOENT;
}

/* Start ch's child with posix_spawn; 0 or a UV error. */
static int spawn_posix (uv_loop_t *loop, Child *ch) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int moved[3] = { -1, -1, -1 }, i, err;
  pid_t pid;
  if ((err = posix_spawn_file_actions_init(&fa)) != 0)
    return uv_translate_sys_error(err);
  if ((err = posix_spawnattr_init(&attr)) == 0) {
    if ((err = setactions(ch, &fa, moved)) == 0 &&
        (err = setattr(ch, &attr)) == 0)
      err = ch->opts.env == NULL ?
        posix_spawnp(&pid, ch->opts.file, &fa, &attr, ch->opts.args, environ) :
        strchr(ch->opts.file, '/') != NULL ?
        posix_spawn(&pid, ch->opts.file, &fa, &attr, ch->opts.args,
                    ch->opts.env) :
        spawnpath(&pid, ch, &fa, &attr);
    posix_spawnattr_destroy(&attr);
  }
  posix_spawn_file_actions_destroy(&fa);
  for (i = 0; i < 3; i++)
    if (moved[i] >= 0) close(moved[i]);
  if (err != 0) return uv_translate_sys_error(err);
  return watch(loop, ch->p, pid);
}

/* Start ch's child with uv_spawn; 0 or a UV error. */
static int spawn_uv (uv_loop_t *loop, Child *ch) {
  uv_process_t *h = (uv_process_t *)ch->p->o.h;
  int err = uv_spawn(loop, h, &ch->opts);
  if (err == 0) ch->p->pid = h->pid;
  return err;
}

/* Whether pidfds work, found out at the first spawn of each thread. */
static int checkpidfd (void) {
  if (usepidfd < 0) {
    const char *how = getenv("TIDE_SPAWN");
    int fd = how && strcmp(how, "fork") == 0 ? -1 : pidfd_open(getpid(), 0);
    usepidfd = fd >= 0;
    if (fd >= 0) close(fd);
  }
  return usepidfd;
}

/* Start ch's child; 0, or a UV error with *what naming what failed: the
** program, the cwd or a file. The fds opened for it are closed. */
static int startchild (lua_State *L, Child *ch, const char **what) {
  uv_loop_t *loop = tide_getloop(L);
  int i, err = 0;
  *what = ch->opts.file;
  for (i = 0; i < 3 && err == 0; i++) err = tide__stdioopen(L, ch, i, what);
  if (err == 0) {
    err = checkpidfd() ? spawn_posix(loop, ch) : spawn_uv(loop, ch);
    if (err == 0 && ch->p->detached)
      uv_unref(ch->p->o.h);        /* see wait_k */
    else if (err < 0 && ch->opts.cwd && access(ch->opts.cwd, X_OK) != 0)
      *what = lua_pushfstring(L, "cwd %s", ch->opts.cwd);
  }
  for (i = 0; i < 3; i++) {
    if (ch->io[i].closefd >= 0) close(ch->io[i].closefd);
    ch->io[i].closefd = -1;
  }
  return err;
}

/* ch's child did not start: close its Process (at idx) and its Streams. */
static void failchild (lua_State *L, int idx, Child *ch) {
  int i;
  for (i = 0; i < 3; i++) {
    if (lua_getiuservalue(L, idx, i + 1) == LUA_TUSERDATA)
      tide__streamfail(L, -1);
    lua_pop(L, 1);
  }
  tide__handleclose(&ch->p->o);
}

/* spawn's body: the table at 1; k says who called (see Check). */
static int spawn (lua_State *L, Check *k) {
  Child ch;
  const char *what;
  int err;
  lua_settop(L, 2);
  lua_newtable(L);                 /* 3: anchors */
  k->anchor = 3;
  checkchild(L, 1, 1, k, &ch);
  for (err = 0; err < 3; err++) tide__stdiocheck(L, 1, k, err, &ch.io[err]);
  newprocess(L, tide__rt(L), &ch); /* 4 */
  err = startchild(L, &ch, &what);
  tide__stdiodone(L, k, &ch, err == 0);
  if (err < 0) {
    failchild(L, 4, &ch);
    return tide_pushfail(L, err, what);
  }
  lua_settop(L, 4);
  return 1;
}

/* tide.process.spawn{ prog, args..., env =, env_extend =, cwd =, stdin =,
** stdout =, stderr =, detached = } -> Process | nil, msg, code */
static int process_spawn (lua_State *L) {
  Check k = { 1, 1, 0, 0 };
  luaL_checktype(L, 1, LUA_TTABLE);
  return spawn(L, &k);
}

/* process._spawn(t): spawn for exec (program and arguments in t are its
** argument 1, the options its argument 2). */
static int process_spawnfor (lua_State *L) {
  Check k = { 1, 2, 0, 0 };
  luaL_checktype(L, 1, LUA_TTABLE);
  return spawn(L, &k);
}

/* ---- Pipelines ------------------------------------------------------------- */

/* The fd of a pipe from one child to the next, or a UV error. */
static int pipefds (int fds[2]) {
  return uv_pipe(fds, 0, 0);
}

/* Stop the children of a pipeline that failed part way: those started are
** killed (and reaped by their exit callbacks), the others closed. */
static void failpipeline (lua_State *L, int list, Child *chs, lua_Integer n) {
  lua_Integer i;
  for (i = 0; i < n; i++) {
    int j;
    lua_rawgeti(L, list, i + 1);
    if (chs[i].p->pid == 0) failchild(L, lua_gettop(L), &chs[i]);
    else {
      kill(chs[i].p->pid, SIGKILL);
      for (j = 1; j <= 3; j++) {
        if (lua_getiuservalue(L, -1, j) == LUA_TUSERDATA)
          tide__streamfail(L, -1);
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
}

/* Start the children of a pipeline in turn; the pipe to the next one is
** made just before each spawn. errfd: the shared stderr's child end, or
** -1. 0 or a UV error (*what). */
static int startpipeline (lua_State *L, Child *chs, lua_Integer n,
                          int errfd, const char **what) {
  lua_Integer i;
  int prev = -1, fds[2], err = 0;
  *what = NULL;
  for (i = 0; i < n && err == 0; i++) {
    Child *ch = &chs[i];
    fds[0] = fds[1] = -1;
    if (i > 0) ch->io[0].fd = prev;
    if (i < n - 1 && (err = pipefds(fds)) < 0) break;
    if (i < n - 1) ch->io[1].fd = fds[1];
    if (errfd >= 0) ch->io[2].fd = errfd;
    err = startchild(L, ch, what);
    if (prev >= 0) close(prev);
    if (fds[1] >= 0) close(fds[1]);
    prev = fds[0];
  }
  if (prev >= 0) close(prev);
  return err;
}

/* process._pipeline(stages, opts) -> { Process }, stderr Stream or
** false | nil, msg, code, for pipeline or exec. Each child's
** stdout is the next one's stdin; opts.stdin is the first's, opts.stdout
** the last's, opts.stderr everyone's (one pipe for all with "pipe"); env,
** cwd and detached apply to each. process.lua has checked the types of
** stages and opts. */
static int process_pipeline (lua_State *L) {
  tide_Runtime *rt = tide__rt(L);
  Check k = { 1, 2, 4, 0 };
  Stdio in, out, errio;
  const char *what;
  lua_Integer i, n;
  Child *chs;
  int err, errfd = -1;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  n = luaL_len(L, 1);
  if (n < 1) tide__argerror(L, 1, "a list of commands expected");
  lua_settop(L, 3);
  lua_newtable(L);                 /* 4: anchors */
  chs = lua_newuserdatauv(L, (size_t)n * sizeof *chs, 0);   /* 5 */
  tide__stdiocheck(L, 2, &k, 0, &in);
  tide__stdiocheck(L, 2, &k, 1, &out);
  tide__stdiocheck(L, 2, &k, 2, &errio);
  for (i = 0; i < n; i++) {
    Child *ch = &chs[i];
    if (lua_geti(L, 1, i + 1) != LUA_TTABLE)
      tide__argerror(L, 1, lua_pushfstring(L, "command (a table) expected at "
               "[%d]", (int)i + 1));
    k.cmd = i + 1;
    checkchild(L, lua_gettop(L), 2, &k, ch);
    lua_pop(L, 1);
    ch->io[0] = in;
    ch->io[1] = out;
    ch->io[2] = errio;
    if (i > 0) ch->io[0].kind = IO_FD;
    if (i < n - 1) ch->io[1].kind = IO_FD;
    if (errio.kind == IO_PIPE || errio.kind == IO_FILE)
      ch->io[2].kind = IO_FD;      /* one for all, opened below */
  }
  lua_createtable(L, (int)n, 0);   /* 6: the Processes */
  for (i = 0; i < n; i++) {
    newprocess(L, rt, &chs[i]);
    lua_rawseti(L, 6, i + 1);
  }
  if ((err = tide__stdioshared(L, rt, &errio, &errfd, &what)) < 0) {   /* 7 */
    failpipeline(L, 6, chs, n);
    return tide_pushfail(L, err, what);
  }
  err = startpipeline(L, chs, n, errfd, &what);
  tide__stdiodone(L, &k, &chs[0], err == 0);
  if (errfd >= 0) close(errfd);
  if (err < 0) {
    if (errio.kind == IO_PIPE) tide__streamfail(L, 7);
    failpipeline(L, 6, chs, n);
    return tide_pushfail(L, err, what);
  }
  lua_settop(L, 7);
  return 2;
}

/* ---- Methods --------------------------------------------------------------- */

static int pushexited (lua_State *L) {
  luaL_pushfail(L);
  lua_pushliteral(L, "process has exited");
  lua_pushliteral(L, "ESRCH");
  return 3;
}

/* code, signal name: a signal's death is 128 + its number, as in sh. */
static int pushstatus (lua_State *L, Process *p) {
  const char *name;
  if (!p->exited) return tide_pushfail(L, UV_ESRCH, NULL);  /* untracked */
  if (p->signal == 0) {
    lua_pushinteger(L, p->code);
    return 1;
  }
  lua_pushinteger(L, 128 + p->signal);
  if ((name = tide__signame(p->signal)) != NULL) lua_pushstring(L, name);
  else lua_pushinteger(L, p->signal);
  return 2;
}

static void wait_cancel (tide_Wait *w) {
  Process *p = tide_waitdata(w);
  tide__waitlist_remove(&p->waiters, w);
  if (p->detached && p->waiters == NULL && p->o.h) uv_unref(p->o.h);
}

static int wait_k (lua_State *L, int status, lua_KContext ctx) {
  Process *p = checkprocess(L, 1);
  tide_Wait *w;
  (void)status; (void)ctx;
  lua_settop(L, 1);
  if (p->exited || p->o.h == NULL) return pushstatus(L, p);
  w = tide_wait(L);
  tide__waitlist_add(&p->waiters, w);
  if (p->detached) uv_ref(p->o.h);  /* otherwise it does not hold the loop */
  return tide_awaitk(L, w, wait_cancel, p, wait_k, 0);
}

/* p:wait() -> code, signal: waits for the child to exit. */
static int process_wait (lua_State *L) {
  checkprocess(L, 1);
  return wait_k(L, LUA_OK, 0);
}

/* p:kill([sig]) -> true | nil, msg, code: sends sig (default SIGTERM). */
static int process_kill (lua_State *L) {
  Process *p = checkprocess(L, 1);
  int signum = tide__checksignal(L, 2, SIGTERM), err;
  if (p->o.h == NULL || p->exited || p->pid == 0) return pushexited(L);
  if ((err = uv_kill(p->pid, signum)) < 0)
    return tide_pushfail(L, err, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* p:close(): kills the child (SIGKILL) unless it has exited or is
** detached, and closes its pipes. It is reaped when it exits. */
static int process_close (lua_State *L) {
  Process *p = checkprocess(L, 1);
  int i;
  if (p->o.h != NULL && !p->exited && !p->detached && p->pid > 0)
    kill(p->pid, SIGKILL);
  for (i = 1; i <= 3; i++) {
    if (lua_getiuservalue(L, 1, i) == LUA_TUSERDATA) {
      lua_getfield(L, -1, "close");
      lua_insert(L, -2);
      lua_call(L, 1, 0);
    }
    else lua_pop(L, 1);
  }
  return 0;
}

static int process_gc (lua_State *L) {
  Process *p = checkprocess(L, 1);
  if (p->o.h == NULL) return 0;    /* reaped, or failed to start */
  if (p->pid == 0) {               /* never started (an error on the way) */
    tide__handleclose(&p->o);
    return 0;
  }
  if (p->detached) uv_unref(p->o.h);
  else kill(p->pid, SIGKILL);
  orphan(p);
  return 0;
}

/* p.pid, p.stdin, p.stdout, p.stderr, then the methods. */
static int process_index (lua_State *L) {
  Process *p = checkprocess(L, 1);
  const char *k = lua_tostring(L, 2);
  int i;
  if (k != NULL) {
    if (strcmp(k, "pid") == 0) {
      lua_pushinteger(L, p->pid);
      return 1;
    }
    for (i = 0; i < 3; i++)
      if (strcmp(k, stdnames[i]) == 0) {
        lua_getiuservalue(L, 1, i + 1);
        return 1;
      }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int process_tostring (lua_State *L) {
  Process *p = checkprocess(L, 1);
  if (!p->exited)
    lua_pushfstring(L, "tide.Process (pid %d, running)", p->pid);
  else if (p->signal)
    lua_pushfstring(L, "tide.Process (pid %d, %s)", p->pid,
                    tide__signame(p->signal) ? tide__signame(p->signal) : "signal");
  else
    lua_pushfstring(L, "tide.Process (pid %d, exited %d)", p->pid, p->code);
  return 1;
}

static const luaL_Reg process_methods[] = {
  {"wait", process_wait},
  {"kill", process_kill},
  {"close", process_close},
  {NULL, NULL}
};

static const luaL_Reg process_meta[] = {
  {"__gc", process_gc},
  {"__close", process_close},
  {"__tostring", process_tostring},
  {NULL, NULL}
};

static const luaL_Reg process_funcs[] = {
  {"spawn", process_spawn},
  {"_spawn", process_spawnfor},
  {"_pipeline", process_pipeline},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. private.Process is
** the metatable. */
int tide__open_process (lua_State *L) {
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, process_funcs, 1);
  lua_setfield(L, -4, "process");
  /* filled by every open: a failed one may have left it half done */
  luaL_newmetatable(L, TIDE_PROCESS);
  luaL_setfuncs(L, process_meta, 0);
  luaL_newlib(L, process_methods);
  lua_pushcclosure(L, process_index, 1);
  lua_setfield(L, -2, "__index");
  lua_setfield(L, -3, "Process");
  return 0;
}
