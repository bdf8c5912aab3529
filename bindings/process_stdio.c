/*
** process_stdio.c: the stdin, stdout and stderr of tide.process's children
** (see process.c): what spawn's options ask for, and the fds opened for a
** child before it starts: pipes (a socket pair, its parent end a Stream),
** files, the parent's fds, Streams, /dev/null; and the relay that gives a
** child as stdin a Stream that has already read ahead.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "process.h"

#define PIPE_ROOM (256 * 1024)   /* socket buffer of a process pipe */
#define RELAY_CHUNK (64 * 1024)  /* what the relay reads at a time */

/* A Stream given as the child's fd i. stdin takes its read side: what it
** has read ahead goes first, through a relay (below), and a task reading
** it would lose data to the child. stdout and stderr would pass what is
** still queued on it, which must go first: it has to be drained. */
static void checkhandoff (lua_State *L, const Check *k, int i, Stdio *s) {
  const char *why;
  size_t n;
  if (i > 0) {
    if (uv_stream_get_write_queue_size(s->stream) > 0)
      fielderror(L, k, stdnames[i], "writes are still queued on the stream "
                 "(drain it first)");
    return;
  }
  if ((why = tide__streamtake(L, -1, NULL, &n, &s->ended)) != NULL)
    fielderror(L, k, stdnames[i], why);
  if (n > 0) {
    s->kind = IO_RELAY;
    s->ref = (int)lua_rawlen(L, k->anchor) + 1;   /* anchored there next */
  }
}

/* What opts.stdin, .stdout or .stderr (i) asks for: "pipe", "inherit",
** "null", "stdout" (stderr only), a Stream, a Lua file, an fd, or a path. */
void tide__stdiocheck (lua_State *L, int opts, const Check *k, int i,
                       Stdio *s) {
  luaL_Stream *ls;
  s->kind = IO_INHERIT;
  s->fd = i;
  s->path = NULL;
  s->stream = NULL;
  s->closefd = -1;
  s->relay = NULL;
  switch (lua_getfield(L, opts, stdnames[i])) {
    case LUA_TNIL:
      break;
    case LUA_TSTRING: {
      const char *v = lua_tostring(L, -1);
      if (strcmp(v, "pipe") == 0) s->kind = IO_PIPE;
      else if (strcmp(v, "inherit") == 0) s->kind = IO_INHERIT;
      else if (strcmp(v, "null") == 0) s->kind = IO_NULL;
      else if (strcmp(v, "stdout") == 0) {
        if (i != 2) fielderror(L, k, stdnames[i], "\"stdout\" is for stderr "
                               "only (a file named so: \"./stdout\")");
        s->kind = IO_STDOUT;
      }
      else if (*v == '\0') fielderror(L, k, stdnames[i], "empty path");
      else if (haszero(L)) fielderror(L, k, stdnames[i], "zero byte in path");
      else {
        s->kind = IO_FILE;
        s->path = v;
      }
      break;
    }
    case LUA_TNUMBER:
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
          lua_tointeger(L, -1) > INT_MAX)
        fielderror(L, k, stdnames[i], "file descriptor expected");
      s->kind = IO_FD;
      s->fd = (int)lua_tointeger(L, -1);
      if (s->fd != i && fcntl(s->fd, F_GETFD) < 0)
        fielderror(L, k, stdnames[i], lua_pushfstring(L, "file descriptor %d "
                   "is not open", s->fd));
      break;
    default:
      if (luaL_testudata(L, -1, TIDE_STREAM)) {
        if ((s->stream = tide__tostream(L, -1)) == NULL)
          fielderror(L, k, stdnames[i], "closed stream");
        s->kind = IO_STREAM;
        checkhandoff(L, k, i, s);
      }
      else if ((ls = luaL_testudata(L, -1, LUA_FILEHANDLE)) != NULL) {
        if (ls->closef == NULL)
          fielderror(L, k, stdnames[i], "closed file");
        fflush(ls->f);
        s->kind = IO_FD;
        s->fd = fileno(ls->f);
      }
      else
        fielderror(L, k, stdnames[i], lua_pushfstring(L, "\"pipe\", "
                   "\"inherit\", \"null\", a path, a stream, a file or an "
                   "fd expected, got %s", luaL_typename(L, -2)));
  }
  lua_rawseti(L, k->anchor, (lua_Integer)lua_rawlen(L, k->anchor) + 1);
}

/* The Streams of ch's pipes, as user values 1-3 of its Process (on top);
** their pipes are made by tide__stdioopen. */
void tide__stdiopipes (lua_State *L, tide_Runtime *rt, Child *ch) {
  int i;
  for (i = 0; i < 3; i++) {
    if (ch->io[i].kind == IO_PIPE) {
      uv_pipe_t *h = (uv_pipe_t *)tide__newstream(L, rt, sizeof *h);
      uv_pipe_init(rt->loop, h, 0);
      ch->io[i].stream = (uv_stream_t *)h;
      lua_setiuservalue(L, -2, i + 1);
    }
  }
}

/* Make the pipe of a Stream: a socket pair, so that shutdown() on the
** child's stdin works, with room for PIPE_ROOM bytes each way (fewer wake-
** ups than the default when much goes through). 0 or a UV error. */
static int openpipe (uv_stream_t *stream, int *childfd) {
  uv_os_sock_t fds[2];
  int size = PIPE_ROOM;
  int err = uv_socketpair(SOCK_STREAM, 0, fds, UV_NONBLOCK_PIPE, 0);
  if (err < 0) return err;
  setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  if ((err = uv_pipe_open((uv_pipe_t *)stream, fds[0])) < 0) {
    close(fds[0]);
    close(fds[1]);
    return err;
  }
  *childfd = fds[1];
  return 0;
}

/* ---- The relay ------------------------------------------------------------- */

/* A Stream given as a child's stdin after it has read ahead: the child gets
** a pipe of its own, and the relay writes it the bytes the Stream holds,
** then what comes from the Stream's fd (a duplicate of it), until the end
** of that; then it closes the pipe, and the child reads EOF. While the
** child is slow to read, one chunk waits in a write and the fd is not
** read (backpressure: the writer upstream blocks, as with a direct hand-
** off). Its end of the pipe is read too, only to see the child's end close:
** a child that exits early ends the relay, which closes its duplicate as
** the child would have closed its copy. The relay is C alone, no task and
** no Lua: its two handles are in the runtime's list (tide_close ends it),
** and it is freed once both are closed and no write is in flight. */
struct Relay {
  tide_Handle src;         /* first: a poll on fd; h NULL when there is none */
  tide_Handle dst;         /* our end of the child's stdin */
  uv_poll_t *poll;         /* src.h once it is set up */
  int fd;                  /* the duplicate of the Stream's fd, or -1 */
  int sock;                /* fd is a socket: read with MSG_DONTWAIT */
  char *taken;             /* the Stream's bytes, until written */
  char *pend;              /* what is still to write */
  size_t plen;
  uv_write_t req;
  unsigned writing : 1;    /* req is in flight */
  unsigned polling : 1;
  char drop[64];           /* what the child writes to its stdin, if any */
  char buf[RELAY_CHUNK];
};

#define DSTRELAY(o) ((Relay *)((char *)(o) - offsetof(Relay, dst)))

static void relay_push (Relay *r);

/* Close what is still open; free r once nothing refers to it. Each handle's
** onclose comes back here, so closing one closes the other. */
static void relay_end (Relay *r) {
  if (r->src.h != NULL) tide__handleclose(&r->src);
  else if (r->dst.h != NULL) tide__handleclose(&r->dst);
  else if (!r->writing) {
    tide__free(r->taken);
    tide__free(r);
  }
}

static void src_onclose (tide_Handle *o) {
  Relay *r = (Relay *)o;
  if (r->fd >= 0) {
    if (r->poll != NULL) uv_poll_stop(r->poll);
    close(r->fd);
    r->fd = -1;
  }
  relay_end(r);
}

static void dst_onclose (tide_Handle *o) {
  relay_end(DSTRELAY(o));
}

static void relay_written (uv_write_t *req, int status) {
  Relay *r = req->data;
  r->writing = 0;
  if (r->src.h == NULL && r->dst.h == NULL) relay_end(r);   /* frees */
  else if (status < 0) relay_end(r);   /* EPIPE: the child is gone */
  else {
    r->plen = 0;
    relay_push(r);
  }
}

/* The source is readable: read a chunk and pass it on; at its end (or an
** error) the relay ends, all it read written. */
static void relay_read (uv_poll_t *h, int status, int events) {
  Relay *r = h->data;
  ssize_t n;
  (void)events;
  if (status < 0) {
    relay_end(r);
    return;
  }
  do n = r->sock ? recv(r->fd, r->buf, sizeof r->buf, MSG_DONTWAIT)
                 : read(r->fd, r->buf, sizeof r->buf);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n <= 0) {
    relay_end(r);
    return;
  }
  r->pend = r->buf;
  r->plen = (size_t)n;
  relay_push(r);
}

/* Write what is pending: at once if the pipe takes it, else in a write,
** with the source not polled meanwhile. Once all of it is out, poll the
** source again, or end when there is none. */
static void relay_push (Relay *r) {
  uv_stream_t *dst = (uv_stream_t *)r->dst.h;
  uv_buf_t b = uv_buf_init(r->pend, (unsigned)r->plen);
  int n = r->plen > 0 ? uv_try_write(dst, &b, 1) : 0;
  if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
  if (n < 0) {                     /* EPIPE: the child is gone */
    relay_end(r);
    return;
  }
  r->pend += n;
  r->plen -= (size_t)n;
  if (r->plen > 0) {
    b = uv_buf_init(r->pend, (unsigned)r->plen);
    if (uv_write(&r->req, dst, &b, 1, relay_written) < 0) {
      relay_end(r);
      return;
    }
    r->writing = 1;
    if (r->polling) uv_poll_stop(r->poll);
    r->polling = 0;
    return;
  }
  tide__free(r->taken);
  r->taken = NULL;
  if (r->fd < 0) relay_end(r);     /* the Stream had ended: nothing follows */
  else if (!r->polling) {
    if (uv_poll_start(r->poll, UV_READABLE, relay_read) < 0) relay_end(r);
    else r->polling = 1;
  }
}

static void drop_alloc (uv_handle_t *h, size_t size, uv_buf_t *buf) {
  Relay *r = DSTRELAY(h->data);
  (void)size;
  *buf = uv_buf_init(r->drop, sizeof r->drop);
}

/* Read on our end of the child's stdin: EOF once the child's end closed. */
static void dropped (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  if (nread < 0) relay_end(DSTRELAY(h->data));
}

/* Set up the relay for the Stream s names: the pipe (the child's end in
** s->closefd) and, unless the Stream's read side has ended, a poll on a
** duplicate of its fd; nothing runs yet. 0 or a UV error (then s->relay,
** if set, is for tide__stdiodone to undo). */
static int relay_new (lua_State *L, Stdio *s) {
  tide_Runtime *rt = tide__rt(L);
  Relay *r = tide__malloc(sizeof *r);
  uv_pipe_t *pipe;
  uv_poll_t *poll;
  uv_os_fd_t fd;
  int err, type;
  socklen_t len = sizeof type;
  if (r == NULL) return UV_ENOMEM;
  memset(r, 0, offsetof(Relay, drop));
  r->fd = -1;
  r->req.data = r;
  s->relay = r;
  pipe = tide__handleinit(NULL, rt, &r->dst, sizeof *pipe, dst_onclose);
  if (pipe == NULL) return UV_ENOMEM;
  uv_pipe_init(rt->loop, pipe, 0);
  if ((err = openpipe((uv_stream_t *)pipe, &s->closefd)) < 0) return err;
  if (s->ended) return 0;
  if ((err = uv_fileno((uv_handle_t *)s->stream, &fd)) < 0) return err;
  if ((r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
    return uv_translate_sys_error(errno);
  r->sock = getsockopt(r->fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
  poll = tide__handleinit(NULL, rt, &r->src, sizeof *poll, src_onclose);
  if (poll == NULL) {
    close(r->fd);                  /* src_onclose would, had it a handle */
    r->fd = -1;
    return UV_ENOMEM;
  }
  if ((err = uv_poll_init(rt->loop, poll, r->fd)) < 0) return err;
  r->poll = poll;
  return 0;
}

/* The child has started: the relay takes the Stream's bytes and runs. */
static void relay_start (Relay *r, char *taken, size_t n) {
  int fl;
  r->taken = r->pend = taken;
  r->plen = n;
  /* a fd the child shares may have been made blocking for it (setactions);
  ** sockets are read with MSG_DONTWAIT, anything else must not block */
  if (r->fd >= 0 && !r->sock && (fl = fcntl(r->fd, F_GETFL)) >= 0 &&
      !(fl & O_NONBLOCK))
    fcntl(r->fd, F_SETFL, fl | O_NONBLOCK);
  uv_read_start((uv_stream_t *)r->dst.h, drop_alloc, dropped);
  relay_push(r);
}

/* ch's child has started, or failed to: a relay set up for its stdin takes
** the Stream's bytes and runs, or is undone (the Stream keeps them). */
void tide__stdiodone (lua_State *L, const Check *k, Child *ch, int started) {
  Stdio *s = &ch->io[0];
  Relay *r = s->relay;
  char *taken;
  size_t n;
  int ended;
  if (r == NULL) return;
  s->relay = NULL;
  if (!started) {
    relay_end(r);
    return;
  }
  lua_rawgeti(L, k->anchor, s->ref);
  tide__streamtake(L, -1, &taken, &n, &ended);
  lua_pop(L, 1);
  relay_start(r, taken, n);
}

/* Open what the child's fd i needs; 0 or a UV error (*what: a path). */
int tide__stdioopen (lua_State *L, Child *ch, int i, const char **what) {
  Stdio *s = &ch->io[i];
  uv_stdio_container_t *c = &ch->c[i];
  int err;
  switch (s->kind) {
    case IO_NULL:
      c->flags = UV_IGNORE;        /* libuv gives the child /dev/null */
      return 0;
    case IO_STDOUT:
      *c = ch->c[1];
      return 0;
    case IO_STREAM:
      c->flags = UV_INHERIT_STREAM;
      c->data.stream = s->stream;
      return 0;
    case IO_FILE:
      s->closefd = open(s->path, i == 0 ? O_RDONLY | O_CLOEXEC :
                        O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
      if (s->closefd < 0) {
        *what = s->path;
        return uv_translate_sys_error(errno);
      }
      c->flags = UV_INHERIT_FD;
      c->data.fd = s->closefd;
      return 0;
    case IO_PIPE:
      if ((err = openpipe(s->stream, &s->closefd)) < 0) return err;
      c->flags = UV_INHERIT_FD;
      c->data.fd = s->closefd;
      return 0;
    case IO_RELAY:
      if ((err = relay_new(L, s)) < 0) return err;
      c->flags = UV_INHERIT_FD;
      c->data.fd = s->closefd;
      return 0;
    default:                       /* IO_INHERIT, IO_FD */
      c->flags = UV_INHERIT_FD;
      c->data.fd = s->fd;
      return 0;
  }
}

/* The stderr all children of a pipeline share: with "pipe", a Stream
** pushed, its child end in *fd; with a path, the file opened once (each
** child opening it would truncate what the others wrote), in *fd. Else
** false pushed, *fd left -1. 0 or a UV error (*what). */
int tide__stdioshared (lua_State *L, tide_Runtime *rt, Stdio *s, int *fd,
                       const char **what) {
  int err;
  *what = NULL;
  if (s->kind == IO_PIPE) {
    uv_pipe_t *h = (uv_pipe_t *)tide__newstream(L, rt, sizeof *h);
    uv_pipe_init(rt->loop, h, 0);
    if ((err = openpipe((uv_stream_t *)h, fd)) < 0) {
      tide__streamfail(L, -1);
      return err;
    }
    return 0;
  }
  lua_pushboolean(L, 0);
  if (s->kind == IO_FILE &&
      (*fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                  0666)) < 0) {
    *what = s->path;
    return uv_translate_sys_error(errno);
  }
  return 0;
}
