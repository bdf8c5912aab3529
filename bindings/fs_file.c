/*
** fs_file.c: tide.fs.open and File: reads (done in fs_read.c) and writes at
** the file position or at an offset, seek, sync, stat, truncate, close.
*/
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

#define READ_CHUNK (64 * 1024)     /* read() without a size */

/* The flags of an io.open-style mode: r, w, a, with + and x (exclusive);
** b is ignored. -1 if it is not one. */
static int openflags (const char *m) {
  int flags;
  switch (*m++) {
    case 'r': flags = O_RDONLY; break;
    case 'w': flags = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': flags = O_WRONLY | O_CREAT | O_APPEND; break;
    default: return -1;
  }
  for (; *m; m++) {
    if (*m == '+') flags = (flags & ~(O_RDONLY | O_WRONLY)) | O_RDWR;
    else if (*m == 'x' && (flags & O_CREAT)) flags |= O_EXCL;
    else if (*m != 'b') return -1;
  }
  return flags;
}

/* open(path [, flags [, mode]]) -> File: flags as io.open's mode ("r",
** "w", "a", "r+", "w+", "a+", with "x" to fail if it exists) or O_* bits;
** mode (default 0666, less the umask) for a file it creates. */
static int fs_open (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  int flags, mode;
  FsReq *r;
  if (lua_type(L, 2) == LUA_TNUMBER) flags = (int)luaL_checkinteger(L, 2);
  else flags = openflags(luaL_optstring(L, 2, "r"));
  luaL_argcheck(L, flags != -1, 2, "invalid mode");
  mode = tide__fsmode(L, 3, 0666);
  r = tide__fsreq(L, NULL, 0);
  r->excl = (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL);
  return fs_wait(L, r, uv_fs_open(LOOP(L), REQ(r), p, flags, mode, tide__fscb));
}

/* An offset argument: -1 (the file position) when absent. */
static int64_t optoffset (lua_State *L, int i) {
  lua_Integer off = tide__optinteger(L, i, -1);
  tide__argcheck(L, off >= -1, i, "non-negative offset expected");
  return off;
}

/* f:read([n [, offset]]) -> up to n bytes (default 64 KiB); nil at the end
** of the file. Without offset, from the file position (which it moves). */
static int file_read (lua_State *L) {
  Res *x = checkfile(L, 1);
  lua_Integer n = tide__optinteger(L, 2, READ_CHUNK);
  int64_t off = optoffset(L, 3);
  tide__argcheck(L, n >= 0 && n <= INT32_MAX, 2, "size out of range");
  return tide__fsread(L, x, (size_t)n, off);
}

static int write_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  if (lua_toboolean(L, 2)) {
    lua_settop(L, 1);
    return 1;                      /* the file, as file:write returns */
  }
  return 3;
}

/* f:write(data [, offset]) -> f, once all of data is written. Without
** offset, at the file position (the end in append mode). A write
** cancelled while it runs stops after the part being written. */
static int file_write (lua_State *L) {
  Res *x = checkfile(L, 1);
  size_t len;
  const char *data = tide__checklstring(L, 2, &len);
  int64_t off = optoffset(L, 3);
  uv_buf_t b;
  FsReq *r;
  r = tide__fsreq(L, x, len);
  memcpy(r->buf, data, len);       /* libuv may still use it after a cancel */
  r->off = off;
  tide__fsbusy(x, r);
  lua_settop(L, 1);                /* write_k's results go above f */
  b = uv_buf_init(r->buf, (unsigned)(len < WRITE_MAX ? len : WRITE_MAX));
  return tide__fswait(L, r, uv_fs_write(LOOP(L), REQ(r), x->fd, &b, 1, off,
                                        tide__fscb), write_k);
}

/* f:seek([whence [, offset]]) -> position: as Lua's file:seek ("set",
** "cur" (default) or "end"); never waits. */
static int file_seek (lua_State *L) {
  static const int modes[] = { SEEK_SET, SEEK_CUR, SEEK_END };
  static const char *const names[] = { "set", "cur", "end", NULL };
  Res *x = checkfile(L, 1);
  int whence = tide__checkoption(L, 2, "cur", names);
  lua_Integer off = tide__optinteger(L, 3, 0);
  off_t pos;
  if (whence != 1 || off != 0) tide__fsmoved(x);   /* not just asking */
  pos = lseek(x->fd, (off_t)off, modes[whence]);
  if (pos < 0) return tide_pushfail(L, uv_translate_sys_error(errno), x->name);
  lua_pushinteger(L, (lua_Integer)pos);
  return 1;
}

/* f:sync([dataonly]) -> true once the data is on disk (fsync/fdatasync). */
static int file_sync (lua_State *L) {
  Res *x = checkfile(L, 1);
  int dataonly = lua_toboolean(L, 2);
  FsReq *r = tide__fsreq(L, x, 0);
  return fs_wait(L, r, dataonly
    ? uv_fs_fdatasync(LOOP(L), REQ(r), x->fd, tide__fscb)
    : uv_fs_fsync(LOOP(L), REQ(r), x->fd, tide__fscb));
}

static int file_stat (lua_State *L) {
  Res *x = checkfile(L, 1);
  FsReq *r = tide__fsreq(L, x, 0);
  return fs_wait(L, r, uv_fs_fstat(LOOP(L), REQ(r), x->fd, tide__fscb));
}

/* f:truncate([size]) -> true; size defaults to 0. */
static int file_truncate (lua_State *L) {
  Res *x = checkfile(L, 1);
  lua_Integer size = tide__optinteger(L, 2, 0);
  FsReq *r;
  tide__argcheck(L, size >= 0, 2, "non-negative size expected");
  r = tide__fsreq(L, x, 0);
  tide__fsbusy(x, r);
  return fs_wait(L, r, uv_fs_ftruncate(LOOP(L), REQ(r), x->fd, size,
                                       tide__fscb));
}

/* f:close() -> true | nil, msg, code; harmless once closed. Never waits. */
static int file_close (lua_State *L) {
  int n = tide__fsclose(L, TIDE_FILE);
  if (n == 0) lua_pushboolean(L, 1);
  return n ? n : 1;
}

static int file_gc (lua_State *L) {
  tide__fsclose(L, TIDE_FILE);
  return 0;
}

static int file_tostring (lua_State *L) {
  return tide__fstostring(L, TIDE_FILE);
}

static const luaL_Reg file_funcs[] = {
  {"open", fs_open},
  {NULL, NULL}
};

static const luaL_Reg file_methods[] = {
  {"read", file_read},
  {"write", file_write},
  {"seek", file_seek},
  {"sync", file_sync},
  {"stat", file_stat},
  {"truncate", file_truncate},
  {"close", file_close},
  {NULL, NULL}
};

static const luaL_Reg file_meta[] = {
  {"__gc", file_gc},
  {"__close", file_gc},
  {"__tostring", file_tostring},
  {"__index", NULL},
  {NULL, NULL}
};
void tide__fsopen_file (lua_State *L) {
  tide__fsregister(L, file_funcs, TIDE_FILE, file_meta, file_methods, "File");
}
