/*
** workers.c: the C side of tide.workers and tide.worker (runtime/lua/
** workers.lua). A worker gets two Unix socket pairs from its master, by
** fd numbers in its environment: TIDE_WORKER_FD, on which its listens ask
** the master for the shared socket of their address (a line each way, the
** socket as SCM_RIGHTS), one at a time and blocking, as bind is; and
** TIDE_WORKER_MSG_FD, a tide.Stream both sides, for tide.worker.send /
** recv. Messages are copied as tide.work copies values (work.c).
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "tide_int.h"

static int syncfd = -2;            /* -2: not looked at yet; -1: no master */
static int listened = 0;           /* TCP listens made outside a worker */

/* The fd of the channel to the master, or -1 when this is no worker. */
static int worker_syncfd (void) {
  if (syncfd == -2) {
    const char *s = getenv("TIDE_WORKER_FD");
    syncfd = s != NULL && *s != '\0' ? atoi(s) : -1;
    if (syncfd >= 0 && fcntl(syncfd, F_SETFD, FD_CLOEXEC) < 0) syncfd = -1;
  }
  return syncfd;
}

static int writeall (int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);   /* no SIGPIPE: EPIPE */
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -errno;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Read one line (up to cap - 1 bytes) from fd, and the fd sent with it. */
static int readline (int fd, char *buf, size_t cap, int *got) {
  size_t n = 0;
  *got = -1;
  while (n == 0 || buf[n - 1] != '\n') {
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov;
    struct msghdr m;
    struct cmsghdr *c;
    ssize_t k;
    if (n + 1 >= cap) return UV_EPROTO;
    iov.iov_base = buf + n;
    iov.iov_len = 1;               /* the fd comes with the line's first byte */
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    k = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -errno;
    if (k == 0) return UV_EOF;
    for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        memcpy(got, CMSG_DATA(c), sizeof(int));
    n += (size_t)k;
  }
  buf[n] = '\0';
  return 0;
}

/* Ask the master; its reply "ok" (with an fd or not) or "err <uv code>". */
static int ask (const char *line, int *fd) {
  char reply[256];
  int err, sfd = worker_syncfd();
  *fd = -1;
  if ((err = writeall(sfd, line, strlen(line))) < 0 ||
      (err = readline(sfd, reply, sizeof reply, fd)) < 0)
    return err;
  if (strncmp(reply, "ok", 2) == 0) return 0;
  if (*fd >= 0) close(*fd);
  *fd = -1;
  err = atoi(reply + 3);
  return err < 0 ? err : UV_EPROTO;
}

/* The first listen of a worker opens tide.worker (workers.lua), which
** takes SIGTERM to stop the worker's servers gracefully. A worker's
** shared sockets yield the CPU after each accept (tcp.c): with the
** default timer slack that short sleep lasts 50 us, capping accepts. */
static void worker_open (lua_State *L) {
  static int opened = 0;
  const char *master = getenv("TIDE_WORKER_MASTER");
  if (opened) return;
  opened = 1;
  prctl(PR_SET_TIMERSLACK, 1UL);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "tide");
  if (lua_istable(L, -1)) lua_getfield(L, -1, "worker");
  lua_settop(L, lua_gettop(L) - (lua_istable(L, -2) ? 3 : 2));
  /* A worker whose master dies (even by SIGKILL) stops as on SIGTERM. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (master != NULL && getppid() != (pid_t)atol(master))
    kill(getpid(), SIGTERM);       /* it has died already */
}

/* For tcp.c: in a worker, the master's socket for ip:port (reuseport 0)
** or a note to it of a socket of the worker's own (reuseport 1, after
** listening). Returns 1 outside workers, else 0 (*fd set for shared) or a
** UV error. */
int tide__workerlisten (lua_State *L, const char *ip, int port, int backlog,
                        unsigned flags, int reuseport, int *fd) {
  char line[128];
  int err;
  *fd = -1;
  if (worker_syncfd() < 0) {
    listened++;
    return 1;
  }
  worker_open(L);
  snprintf(line, sizeof line, "%s %d %d %u %s\n", reuseport ? "own" : "share",
           port, backlog, flags, ip);
  err = ask(line, fd);
  if (reuseport && *fd >= 0) {
    close(*fd);
    *fd = -1;
  }
  return err;
}

/* ---- The master's side ----------------------------------------------------- */

/* workers._pair() -> fd for the master, fd for the worker (inherited by
** the next child spawned: close it in the master once spawned). */
static int w_pair (lua_State *L) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return tide_pushfail(L, -errno, "socketpair");
  if (fcntl(sv[1], F_SETFD, 0) < 0) {
    int err = -errno;
    close(sv[0]);
    close(sv[1]);
    return tide_pushfail(L, err, "fcntl");
  }
  lua_pushinteger(L, sv[0]);
  lua_pushinteger(L, sv[1]);
  return 2;
}

/* workers._close(fd) */
static int w_close (lua_State *L) {
  close((int)luaL_checkinteger(L, 1));
  return 0;
}

/* workers._stream(fd) -> tide.Stream over the Unix socket fd. */
static int w_stream (lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1), err;
  uv_pipe_t *h = (uv_pipe_t *)tide__newstream(L, tide__rt(L), sizeof *h);
  fcntl(fd, F_SETFD, FD_CLOEXEC);  /* not for the worker's own children */
  if ((err = uv_pipe_init(tide_getloop(L), h, 0)) < 0 ||
      (err = uv_pipe_open(h, fd)) < 0) {
    tide__streamfail(L, -1);
    return tide_pushfail(L, err, "worker channel");
  }
  return 1;
}

/* workers._bind(ip, port, backlog, flags) -> fd | nil, msg, code, uverr: a
** listening socket that the master keeps and its workers accept from. */
static int w_bind (lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  int backlog = (int)luaL_checkinteger(L, 3);
  unsigned flags = (unsigned)luaL_checkinteger(L, 4);
  struct sockaddr_storage ss;
  int fd, on = 1, err;
  if (tide__toaddr(ip, port, &ss) < 0)
    return tide_pushfail(L, UV_EINVAL, ip);
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return tide_pushfail(L, -errno, "socket");
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (ss.ss_family == AF_INET6 && (flags & UV_TCP_IPV6ONLY))
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  if (bind(fd, (struct sockaddr *)&ss, ss.ss_family == AF_INET6 ?
           sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) < 0 ||
      listen(fd, backlog) < 0) {
    err = -errno;
    close(fd);
    tide_pushfail(L, err, lua_pushfstring(L, ip[0] != '[' && strchr(ip, ':')
                                          ? "[%s]:%d" : "%s:%d", ip, port));
    lua_pushinteger(L, err);
    return 4;
  }
  lua_pushinteger(L, fd);
  return 1;
}

/* workers._reply(sockfd, line [, fd]) -> true | nil, msg, code: a reply
** on a worker's channel, with fd (SCM_RIGHTS) if given. The channel is
** non-blocking (a tide.Stream reads it); replies are short and one at a
** time, so it has room, but wait a little if not. */
static int w_reply (lua_State *L) {
  int sock = (int)luaL_checkinteger(L, 1);
  size_t len;
  const char *line = luaL_checklstring(L, 2, &len);
  int fd = (int)luaL_optinteger(L, 3, -1), tries = 0;
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov;
  struct msghdr m;
  memset(&m, 0, sizeof m);
  memset(cbuf, 0, sizeof cbuf);
  iov.iov_base = (void *)line;
  iov.iov_len = len;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (fd >= 0) {
    struct cmsghdr *c;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  for (;;) {
    ssize_t k = sendmsg(sock, &m, MSG_NOSIGNAL);
    if (k == (ssize_t)len) break;
    if (k >= 0) return tide_pushfail(L, UV_EPROTO, "worker channel");
    if (errno == EINTR) continue;
    if (errno == EAGAIN && tries++ < 50) {
      struct pollfd p = { sock, POLLOUT, 0 };
      poll(&p, 1, 20);
      continue;
    }
    return tide_pushfail(L, -errno, "worker channel");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* workers._pid() -> this process's id */
static int w_pid (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* workers._exepath() -> the path of this program */
static int w_exepath (lua_State *L) {
  char buf[4096];
  size_t n = sizeof buf;
  int err = uv_exepath(buf, &n);
  if (err < 0) return tide_pushfail(L, err, "exepath");
  lua_pushlstring(L, buf, n);
  return 1;
}

/* workers._encode(what, ...) -> string: the values as tide.work copies
** them; what names the caller in errors. */
static int w_encode (lua_State *L) {
  const char *what = luaL_checkstring(L, 1);
  tide__encodevalues(L, 2, lua_gettop(L) - 1, what);
  return 1;
}

/* workers._decode(s) -> the values encoded in s */
static int w_decode (lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return tide__decodevalues(L, s, len);
}

/* workers._quiesce(server) -> true once the server's socket takes no more
** connections into this process (libuv watches it no more), false while
** libuv holds one accepted that server:accept has not taken yet. Then
** closing the server drops no connection: those in the shared queue go to
** the other workers. (libuv has no call to stop listening without closing;
** its Unix stream holds at most one accepted fd, and while it does it does
** not watch the socket.) */
static int w_quiesce (lua_State *L) {
  tide_Handle *o = luaL_checkudata(L, 1, TIDE_SERVER);
  uv_stream_t *st = (uv_stream_t *)o->h;
  uv_os_fd_t fd;
  if (st == NULL || uv_fileno((uv_handle_t *)st, &fd) < 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (st->accepted_fd != -1) {
    lua_pushboolean(L, 0);
    return 1;
  }
  epoll_ctl(uv_backend_fd(st->loop), EPOLL_CTL_DEL, fd, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* workers._cancelall(): cancel every task (a worker's end, after grace) */
static int w_cancelall (lua_State *L) {
  tide__cancelall(tide__rt(L));
  return 0;
}

/* workers._interrupt(signum): this worker stops on signum as any tide
** program does on SIGINT or SIGTERM: its main task's cancellation is no
** error, and it exits with 128 + signum (runtime/main.c). */
static int w_interrupt (lua_State *L) {
  tide__rt(L)->interrupted = (int)luaL_checkinteger(L, 1);
  return 0;
}

/* workers._note(line): a line to the master that wants no reply (a worker
** says it got a stop signal of its own) */
static int w_note (lua_State *L) {
  const char *line = luaL_checkstring(L, 1);
  if (worker_syncfd() >= 0) writeall(worker_syncfd(), line, strlen(line));
  return 0;
}

/* workers._parallelism() -> the CPUs this process may run on */
static int w_parallelism (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_available_parallelism());
  return 1;
}

/* workers._listened() -> whether this process listened on TCP already */
static int w_listened (lua_State *L) {
  lua_pushboolean(L, listened > 0);
  return 1;
}

static const luaL_Reg workers_funcs[] = {
  {"_interrupt", w_interrupt},
  {"_note", w_note},
  {"_parallelism", w_parallelism},
  {"_listened", w_listened},
  {"_pair", w_pair},
  {"_close", w_close},
  {"_stream", w_stream},
  {"_bind", w_bind},
  {"_reply", w_reply},
  {"_exepath", w_exepath},
  {"_pid", w_pid},
  {"_encode", w_encode},
  {"_decode", w_decode},
  {"_quiesce", w_quiesce},
  {"_cancelall", w_cancelall},
  {NULL, NULL}
};

/* private.openworkers() -> the table of the functions above, made when
** workers.lua runs (not with tide.tcp, which most programs use alone). */
static int w_open (lua_State *L) {
  lua_newtable(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  luaL_setfuncs(L, workers_funcs, 1);
  return 1;
}

/* Stack: tide table, private table, runtime userdata. Sets
** private.openworkers. */
int tide__open_workers (lua_State *L) {
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, w_open, 1);
  lua_setfield(L, -3, "openworkers");
  return 0;
}
