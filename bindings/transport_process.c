/*
** transport_process.c: tide.process.create_subprocess and the
** SubprocessTransport it returns: asyncio's subprocess protocol
** (loop.subprocess_exec, Lib/asyncio/base_subprocess.py) on the callback
** layer of transport.c. The child is started by tide.process.spawn
** (process.c), its piped stdin, stdout and stderr given as the child's ends
** of socket pairs whose other ends are tide.Transports (pipe transports);
** each has a small protocol of its own (a table: the SubprocessTransport
** and the fd) that hands its events on to the SubprocessProtocol:
** data_received as pipe_data_received(fd, data), connection_lost as
** pipe_connection_lost(fd, err), pause_writing and resume_writing of stdin
** as they are. The Process's exit hook (process.h) calls process_exited on
** the loop's next turn; once the child has exited and every pipe is lost,
** connection_lost(err) ends it, as in asyncio. Callbacks run outside any
** task; an error in one is reported and closes this transport only (the
** child killed, its pipes closed); connection_lost gets that error.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "process.h"
#include "transport.h"

#define TIDE_STRANSPORT "tide.SubprocessTransport"
#define PIPE_ROOM (256 * 1024)   /* socket buffer of a pipe, as spawn's */

/* User values: 1 the protocol, 2 the Process, 3-5 the pipe transports of
** fds 0-2 (or nil), 6 the error of a callback, for connection_lost. */
enum { U_PROTO = 1, U_PROC, U_PIPE0, U_ERR = U_PIPE0 + 3, NUV = U_ERR };

typedef struct Sub {
  tide_Handle o;           /* o.h: a uv_idle_t, for process_exited */
  tide_TCtx *c;
  Process *p;              /* user value 2; NULL until started */
  int ref;                 /* registry[ref]: this userdata, until
                              connection_lost has been called */
  int open;                /* the pipes not yet lost, a bit per fd */
  unsigned exited : 1;     /* process_exited is due or done */
  unsigned closed : 1;     /* close(), or an error in a callback */
  unsigned finished : 1;   /* connection_lost is done */
  unsigned failed : 1;     /* a callback raised (user value 6) */
} Sub;

static Sub *checksub (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_STRANSPORT);
}

/* ---- Calling the protocol ------------------------------------------------ */

/* (name, protocol, args...): protocol[name](protocol, args...), if any;
** the name is a light userdata (nothing to allocate outside the pcall). */
static int subdo (lua_State *L) {
  const char *name = lua_touserdata(L, 1);
  if (lua_getfield(L, 2, name) == LUA_TNIL) return 0;
  lua_replace(L, 1);
  lua_call(L, lua_gettop(L) - 1, 0);
  return 0;
}

static void subclose (Sub *s);

/* Call s's protocol method name (s at index self of L) with the nargs
** values on top of L (popped), outside any task: 0, or -1 if it raised:
** the error is reported, kept for connection_lost, and s closed. */
static int subcall (lua_State *L, Sub *s, int self, const char *name,
                    int nargs) {
  int status;
  if (!lua_checkstack(L, 6)) {
    lua_pop(L, nargs);
    subclose(s);
    return -1;
  }
  lua_pushcfunction(L, subdo);
  lua_pushlightuserdata(L, (void *)name);
  lua_getiuservalue(L, self, U_PROTO);
  lua_rotate(L, -3 - nargs, 3);    /* subdo, name, protocol, args... */
  status = tide__tcall(L, s->c, name, nargs + 2, 0);
  if (status == LUA_OK) return 0;
  if (!s->failed) {
    s->failed = 1;
    lua_setiuservalue(L, self, U_ERR);
  }
  else lua_pop(L, 1);
  subclose(s);
  return -1;
}

/* The child has exited and every pipe is lost: connection_lost(err), then
** s is no longer anchored. */
static void tryfinish (lua_State *L, Sub *s, int self) {
  if (!s->exited || s->open != 0 || s->finished) return;
  s->finished = 1;
  lua_getiuservalue(L, self, U_ERR);
  subcall(L, s, self, "connection_lost", 1);
  luaL_unref(L, LUA_REGISTRYINDEX, s->ref);   /* allocates nothing */
  s->ref = LUA_NOREF;
  tide__handleclose(&s->o);
}

/* Kill the child (SIGKILL) unless it has exited or is detached. */
static void killchild (Sub *s) {
  Process *p = s->p;
  if (p != NULL && p->o.h != NULL && !p->exited && !p->detached && p->pid > 0)
    kill(p->pid, SIGKILL);
}

/* close(): the pipes are closed (what is queued dropped: the child is
** killed anyway), pipe_connection_lost follows for each. */
static void subclose (Sub *s) {
  lua_State *L = s->c->L;
  int i;
  if (s->closed) return;
  s->closed = 1;
  killchild(s);
  if (s->ref == LUA_NOREF || !lua_checkstack(L, 2)) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
  for (i = 0; i < 3; i++) {
    if (lua_getiuservalue(L, -1, U_PIPE0 + i) == LUA_TUSERDATA) {
      tide_Transport *t = lua_touserdata(L, -1);
      if (t->o.h != NULL) tide__tlost(t, 0);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* ---- The pipes' protocol ------------------------------------------------- */

/* A pipe's protocol: { SubprocessTransport, fd }; pushes the transport
** and returns it, the fd in *fd. */
static Sub *pipesub (lua_State *L, int *fd) {
  Sub *s;
  tide__checktype(L, 1, LUA_TTABLE);
  lua_rawgeti(L, 1, 2);
  *fd = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_rawgeti(L, 1, 1);
  if ((s = luaL_testudata(L, -1, TIDE_STRANSPORT)) == NULL || *fd < 0 ||
      *fd > 2)
    tide__error(L, "%s: not a subprocess pipe's protocol", tide__fname(L));
  return s;
}

/* data_received(data) -> pipe_data_received(fd, data) */
static int pp_data (lua_State *L) {
  int fd;
  Sub *s = pipesub(L, &fd);        /* 3 */
  if (s->closed) return 0;
  lua_pushinteger(L, fd);
  lua_pushvalue(L, 2);
  subcall(L, s, 3, "pipe_data_received", 2);
  return 0;
}

/* connection_lost([err]) -> pipe_connection_lost(fd, err); maybe the end */
static int pp_lost (lua_State *L) {
  int fd, top = lua_gettop(L);
  Sub *s = pipesub(L, &fd);
  int self = lua_gettop(L);
  s->open &= ~(1 << fd);
  lua_pushinteger(L, fd);
  if (top >= 2) lua_pushvalue(L, 2);
  else lua_pushnil(L);
  subcall(L, s, self, "pipe_connection_lost", 2);
  tryfinish(L, s, self);
  return 0;
}

static int pp_pause (lua_State *L) {
  int fd;
  Sub *s = pipesub(L, &fd);
  subcall(L, s, lua_gettop(L), "pause_writing", 0);
  return 0;
}

static int pp_resume (lua_State *L) {
  int fd;
  Sub *s = pipesub(L, &fd);
  subcall(L, s, lua_gettop(L), "resume_writing", 0);
  return 0;
}

static const luaL_Reg pp_methods[] = {
  {"data_received", pp_data},
  {"connection_lost", pp_lost},
  {"pause_writing", pp_pause},
  {"resume_writing", pp_resume},
  {NULL, NULL}
};

/* ---- Exit ------------------------------------------------------------------ */

/* process_exited, on the loop's turn after the child was reaped. */
static void exit_cb (uv_idle_t *h) {
  Sub *s = h->data;
  lua_State *L = s->c->L;
  int top = lua_gettop(L);
  uv_idle_stop(h);
  if (s->ref == LUA_NOREF || !lua_checkstack(L, 4)) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref);
  s->exited = 1;
  subcall(L, s, top + 1, "process_exited", 0);
  tryfinish(L, s, top + 1);
  lua_settop(L, top);
}

/* The Process's hook: its handle has closed (the child reaped, or the
** runtime closing: then nothing more is called). */
static void onexit (Process *p) {
  Sub *s = p->exitdata;
  p->onexit = NULL;
  if (s->o.h == NULL || s->c->o.h == NULL) return;
  uv_idle_start((uv_idle_t *)s->o.h, exit_cb);
}

/* ---- Starting -------------------------------------------------------------- */

/* The table for spawn from cmd (a string: run by /bin/sh -c; or a list)
** and opts (stdin, stdout, stderr: "pipe" unless given), pushed; pipe[i]
** set where a pipe is wanted. */
static void spawnargs (lua_State *L, int cmd, int opts, int pipe[3]) {
  int i, t;
  lua_newtable(L);
  t = lua_gettop(L);
  if (lua_type(L, cmd) == LUA_TSTRING) {
    lua_pushliteral(L, "/bin/sh");
    lua_rawseti(L, t, 1);
    lua_pushliteral(L, "-c");
    lua_rawseti(L, t, 2);
    lua_pushvalue(L, cmd);
    lua_rawseti(L, t, 3);
  }
  else {
    lua_Integer j, n;
    if (!lua_istable(L, cmd)) tide__typeerror(L, cmd, "string or table");
    n = luaL_len(L, cmd);
    for (j = 1; j <= n; j++) {
      lua_geti(L, cmd, j);
      lua_rawseti(L, t, j);
    }
  }
  if (!lua_isnoneornil(L, opts)) {
    tide__checktype(L, opts, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, opts)) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, t);
      }
      else lua_pop(L, 1);
    }
  }
  for (i = 0; i < 3; i++) {
    const char *v;
    lua_getfield(L, t, stdnames[i]);
    v = lua_tostring(L, -1);
    pipe[i] = lua_isnil(L, -1) ||
              (lua_type(L, -1) == LUA_TSTRING && strcmp(v, "pipe") == 0);
    lua_pop(L, 1);
    if (pipe[i]) {                 /* the fd's place, set without allocating */
      lua_pushinteger(L, -1);
      lua_setfield(L, t, stdnames[i]);
    }
  }
}

/* A pipe transport for fd i of s (at index self), its protocol made with
** the metatable at index mt; its handle not yet open. */
static tide_Transport *newpipe (lua_State *L, Sub *s, int self, int mt,
                                int i) {
  tide_Transport *t;
  uv_pipe_t *h = tide__newtransport(L, s->c, sizeof *h, TIDE_TRANSPORT);
  t = lua_touserdata(L, -1);
  uv_pipe_init(tide_getloop(L), h, 0);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, self);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, i);
  lua_rawseti(L, -2, 2);
  lua_pushvalue(L, mt);
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, 1);
  lua_setiuservalue(L, self, U_PIPE0 + i);
  return t;
}

static void subonclose (tide_Handle *o) {
  (void)o;
}

/* (s): anchor s and its pipe transports, so that nothing allocates once
** the child runs (a failure is undone by unanchor). */
static int anchor_p (lua_State *L) {
  Sub *s = lua_touserdata(L, 1);
  int i;
  for (i = 0; i < 3; i++)
    if (lua_getiuservalue(L, 1, U_PIPE0 + i) == LUA_TUSERDATA) {
      tide_Transport *t = lua_touserdata(L, -1);
      t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
      s->open |= 1 << i;
    }
    else lua_pop(L, 1);
  lua_settop(L, 1);
  s->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* s (at index self) did not start: unanchor and close it and its pipes. */
static void unstart (lua_State *L, Sub *s, int self) {
  int i;
  for (i = 0; i < 3; i++) {
    if (lua_getiuservalue(L, self, U_PIPE0 + i) == LUA_TUSERDATA) {
      tide_Transport *t = lua_touserdata(L, -1);
      luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
      t->ref = LUA_NOREF;
      tide__handleclose(&t->o);
    }
    lua_pop(L, 1);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, s->ref);
  s->ref = LUA_NOREF;
  s->open = 0;
  s->closed = s->finished = 1;
  tide__handleclose(&s->o);
}

/* spawn's error (on top) raised again: its wrong use as ours, of the
** command (argument 2) or of the options (3: "'cwd': ..."). */
static int reraise (lua_State *L) {
  static const char pre[] = "bad argument #1 to 'tide.process.spawn' (";
  const char *msg = lua_tostring(L, -1);
  size_t n;
  if (msg == NULL || strncmp(msg, pre, sizeof pre - 1) != 0)
    return lua_error(L);
  msg += sizeof pre - 1;
  n = strlen(msg);
  if (n == 0 || msg[n - 1] != ')') return lua_error(L);
  lua_pushlstring(L, msg, n - 1);
  return tide__argerror(L, *msg == '\'' ? 3 : 2, lua_tostring(L, -1));
}

/* tide.process.create_subprocess(factory, cmd [, opts]) -> transport,
** protocol | nil, msg, code. Upvalues: spawn, the pipes' metatable.
** Everything is made and anchored before the child starts: after that,
** nothing raises. */
static int create_subprocess (lua_State *L) {
  tide_TCtx *c = tide__tctx(L);
  tide_Transport *t[3] = { NULL, NULL, NULL };
  int pipe[3], child[3] = { -1, -1, -1 }, i, err = 0, status;
  Sub *s;
  uv_idle_t *idle;
  tide__checkfactory(L, 1);
  lua_settop(L, 3);
  spawnargs(L, 2, 3, pipe);        /* 4 */
  lua_pushvalue(L, 1);
  if (!tide__tfactory(L, c, 0)) return lua_error(L);   /* 5: the protocol */
  s = lua_newuserdatauv(L, sizeof *s, NUV);           /* 6 */
  memset(s, 0, sizeof *s);
  s->c = c;
  s->ref = LUA_NOREF;
  luaL_setmetatable(L, TIDE_STRANSPORT);
  idle = tide__handleinit(L, c->o.rt, &s->o, sizeof *idle, subonclose);
  uv_idle_init(tide_getloop(L), idle);
  lua_pushvalue(L, 5);
  lua_setiuservalue(L, 6, U_PROTO);
  for (i = 0; i < 3; i++)
    if (pipe[i]) t[i] = newpipe(L, s, 6, lua_upvalueindex(2), i);
  lua_pushcfunction(L, anchor_p);
  lua_pushvalue(L, 6);
  if ((status = lua_pcall(L, 1, 0, 0)) != LUA_OK) {
    unstart(L, s, 6);
    return lua_error(L);
  }
  for (i = 0; i < 3 && err == 0; i++) {   /* nothing raises from here */
    uv_os_sock_t fds[2];
    int size = PIPE_ROOM;
    if (!pipe[i]) continue;
    if ((err = uv_socketpair(SOCK_STREAM, 0, fds, UV_NONBLOCK_PIPE, 0)) < 0)
      break;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    if ((err = uv_pipe_open((uv_pipe_t *)t[i]->o.h, fds[0])) < 0) {
      close(fds[0]);
      close(fds[1]);
      break;
    }
    child[i] = fds[1];
    lua_pushinteger(L, fds[1]);
    lua_setfield(L, 4, stdnames[i]);   /* the key is there: no allocation */
  }
  if (err == 0) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 4);
    status = lua_pcall(L, 1, 3, 0);    /* 7-9: Process | nil, msg, code */
  }
  for (i = 0; i < 3; i++)
    if (child[i] >= 0) close(child[i]);
  if (err < 0 || status != LUA_OK || lua_isnil(L, 7)) {
    unstart(L, s, 6);
    if (err < 0) return tide_pushfail(L, err, NULL);
    if (status != LUA_OK) return reraise(L);
    return 3;
  }
  lua_settop(L, 7);
  s->p = lua_touserdata(L, 7);
  lua_setiuservalue(L, 6, U_PROC);
  s->p->exitdata = s;
  s->p->onexit = onexit;
  lua_pushvalue(L, 6);             /* connection_made(transport) */
  if (subcall(L, s, 6, "connection_made", 1) == 0)
    for (i = 0; i < 3; i++)
      if (t[i] != NULL && t[i]->o.h != NULL) {
        lua_getiuservalue(L, 6, U_PIPE0 + i);
        tide__tstart(L, t[i]);     /* reading (stdin: to see it close) */
      }
  lua_settop(L, 6);
  lua_pushvalue(L, 5);
  return 2;
}

/* ---- Methods --------------------------------------------------------------- */

static int st_get_pid (lua_State *L) {
  Sub *s = checksub(L, 1);
  if (s->p == NULL) return 0;
  lua_pushinteger(L, s->p->pid);
  return 1;
}

/* -> nil while it runs; code, or 128 + signal number and the signal's
** name (as Process:wait) */
static int st_get_returncode (lua_State *L) {
  Sub *s = checksub(L, 1);
  Process *p = s->p;
  const char *name;
  if (p == NULL || !p->exited) {
    lua_pushnil(L);
    return 1;
  }
  if (p->signal == 0) {
    lua_pushinteger(L, p->code);
    return 1;
  }
  lua_pushinteger(L, 128 + p->signal);
  if ((name = tide__signame(p->signal)) != NULL) lua_pushstring(L, name);
  else lua_pushinteger(L, p->signal);
  return 2;
}

/* get_pipe_transport(fd) -> the Transport of fd 0, 1 or 2, or nil */
static int st_get_pipe_transport (lua_State *L) {
  checksub(L, 1);
  lua_Integer fd = tide__checkinteger(L, 2);
  if (fd < 0 || fd > 2) return 0;
  lua_getiuservalue(L, 1, U_PIPE0 + (int)fd);
  return 1;
}

/* Send signum: true | nil, msg, code (the child has exited: ESRCH). */
static int sendsig (lua_State *L, Sub *s, int signum) {
  Process *p = s->p;
  int err;
  if (p == NULL || p->o.h == NULL || p->exited || p->pid == 0) {
    luaL_pushfail(L);
    lua_pushliteral(L, "process has exited");
    lua_pushliteral(L, "ESRCH");
    return 3;
  }
  if ((err = uv_kill(p->pid, signum)) < 0) return tide_pushfail(L, err, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int st_send_signal (lua_State *L) {
  Sub *s = checksub(L, 1);
  return sendsig(L, s, tide__checksignal(L, 2, SIGTERM));
}

static int st_terminate (lua_State *L) {
  return sendsig(L, checksub(L, 1), SIGTERM);
}

static int st_kill (lua_State *L) {
  return sendsig(L, checksub(L, 1), SIGKILL);
}

static int st_close (lua_State *L) {
  subclose(checksub(L, 1));
  return 0;
}

static int st_is_closing (lua_State *L) {
  lua_pushboolean(L, checksub(L, 1)->closed);
  return 1;
}

static int st_get_protocol (lua_State *L) {
  checksub(L, 1);
  lua_getiuservalue(L, 1, U_PROTO);
  return 1;
}

/* Collected unfinished (never started, or the runtime closing): the child
** killed; its pipes close by their own __gc. */
static int st_gc (lua_State *L) {
  Sub *s = checksub(L, 1);
  killchild(s);
  if (s->p != NULL && s->p->exitdata == s) s->p->onexit = NULL;
  tide__handleclose(&s->o);
  return 0;
}

static int st_tostring (lua_State *L) {
  Sub *s = checksub(L, 1);
  if (s->p == NULL) lua_pushliteral(L, TIDE_STRANSPORT " (not started)");
  else if (s->p->exited)
    lua_pushfstring(L, TIDE_STRANSPORT " (pid %d, exited)", s->p->pid);
  else lua_pushfstring(L, TIDE_STRANSPORT " (pid %d, running)", s->p->pid);
  return 1;
}

static const luaL_Reg st_methods[] = {
  {"get_pid", st_get_pid},
  {"get_returncode", st_get_returncode},
  {"get_pipe_transport", st_get_pipe_transport},
  {"send_signal", st_send_signal},
  {"terminate", st_terminate},
  {"kill", st_kill},
  {"close", st_close},
  {"is_closing", st_is_closing},
  {"get_protocol", st_get_protocol},
  {NULL, NULL}
};

static const luaL_Reg st_meta[] = {
  {"__gc", st_gc},
  {"__close", st_close},
  {"__tostring", st_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

/* Into tide.process (opened just before); stack: tide, private, runtime. */
int tide__open_transport_process (lua_State *L) {
  tide__open_transport(L);
  luaL_newmetatable(L, TIDE_STRANSPORT);
  luaL_setfuncs(L, st_meta, 0);
  luaL_newlib(L, st_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushliteral(L, "process");
  lua_rawget(L, -4);               /* tide.process */
  lua_getfield(L, -1, "spawn");
  lua_newtable(L);                 /* the pipes' protocols' metatable */
  luaL_newlib(L, pp_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcclosure(L, create_subprocess, 2);
  lua_setfield(L, -2, "create_subprocess");
  lua_pop(L, 1);
  return 0;
}
