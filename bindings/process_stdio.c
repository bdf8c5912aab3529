/*
** process_stdio.c: the stdin, stdout and stderr of tide.process's children
** (see process.c): what spawn's options ask for, and the fds opened for a
** child before it starts: pipes (a socket pair, its parent end a Stream),
** files, the parent's fds, Streams, /dev/null.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "process.h"

#define PIPE_ROOM (256 * 1024)   /* socket buffer of a process pipe */

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

/* Open what the child's fd i needs; 0 or a UV error (*what: a path). */
int tide__stdioopen (Child *ch, int i, const char **what) {
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
