/*
** tty.c: the standard streams as tide objects (tide.stdin, tide.stdout,
** tide.stderr, made on first use by runtime/lua/fs.lua): a Stream on a
** terminal (uv_tty_t), a pipe or a socket, a File on a file. Each works on
** a duplicate of the fd, so closing it leaves fds 0-2 to print and io.
** Writing to a pipe stays blocking, as print's writes are, since the two
** share the pipe's open file; a pipe read from is made non-blocking, and
** its flags are put back when the state closes.
*/
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "tide_int.h"

#define TIDE_FDFLAGS "tide.FdFlags"

static const char *const names[] = { "<stdin>", "<stdout>", "<stderr>" };

typedef struct Restore {
  int fd, flags;           /* fd's file status flags before, or fd -1 */
} Restore;

static int restore_gc (lua_State *L) {
  Restore *r = tide__checkudata(L, 1, TIDE_FDFLAGS);
  if (r->fd >= 0) fcntl(r->fd, F_SETFL, r->flags);
  r->fd = -1;
  return 0;
}

/* Put fd's flags back when the state closes: a userdata in the registry,
** which is collected at the end. */
static void restore_at_close (lua_State *L, int fd) {
  Restore *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->fd = fd;
  r->flags = fcntl(fd, F_GETFL);
  luaL_setmetatable(L, TIDE_FDFLAGS);
  luaL_ref(L, LUA_REGISTRYINDEX);
}

/* A duplicate of fd (made close-on-exec), or an error. */
static int dupfd (int fd) {
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  return dup < 0 ? uv_translate_sys_error(errno) : dup;
}

/* Push a Stream on a duplicate of fd; 0, or an error. What may run out of
** memory comes before the duplicate, which would leak. */
static int openstream (lua_State *L, int fd, uv_handle_type type) {
  tide_Runtime *rt = tide__rt(L);
  uv_loop_t *loop = tide_getloop(L);
  uv_stream_t *h;
  int err, dup;
  if (type != UV_TTY && fd == 0) restore_at_close(L, fd);
  h = tide__newstream(L, rt, type == UV_TTY ? sizeof(uv_tty_t)
                           : type == UV_TCP ? sizeof(uv_tcp_t)
                           : sizeof(uv_pipe_t));
  if ((err = dup = dupfd(fd)) >= 0) {
    switch (type) {
      case UV_TTY:
        err = uv_tty_init(loop, (uv_tty_t *)h, dup, 0);
        break;
      case UV_TCP:
        if ((err = uv_tcp_init(loop, (uv_tcp_t *)h)) == 0)
          err = uv_tcp_open((uv_tcp_t *)h, dup);
        break;
      default:
        if ((err = uv_pipe_init(loop, (uv_pipe_t *)h, 0)) == 0 &&
            (err = uv_pipe_open((uv_pipe_t *)h, dup)) == 0 && fd > 0)
          uv_stream_set_blocking(h, 1);
    }
    if (err < 0) close(dup);
  }
  if (err < 0) tide__streamfail(L, -1);
  return err < 0 ? err : 0;
}

/* stdio(fd) -> Stream | File | nil (fd not open), msg, code */
static int tty_stdio (lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  uv_handle_type type;
  int dup, err;
  luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "0, 1 or 2 expected");
  type = uv_guess_handle((int)fd);
  if (type == UV_UNKNOWN_HANDLE)
    return tide_pushfail(L, UV_EBADF, names[fd]);
  if (type == UV_UDP)
    return tide_pushfail(L, UV_ENOTSUP, names[fd]);
  if (type == UV_FILE) {            /* it closes dup if it cannot be made */
    if ((dup = dupfd((int)fd)) < 0) return tide_pushfail(L, dup, names[fd]);
    tide__newfile(L, dup, names[fd]);
    return 1;
  }
  if ((err = openstream(L, (int)fd, type)) < 0)
    return tide_pushfail(L, err, names[fd]);
  return 1;
}

/* Stack: tide table, private table, runtime userdata. */
int tide__open_tty (lua_State *L) {
  if (luaL_newmetatable(L, TIDE_FDFLAGS)) {
    lua_pushcfunction(L, restore_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, tty_stdio, 1);
  lua_setfield(L, -3, "stdio");
  return 0;
}
