/*
** fs.c: tide.fs: files and directories on libuv's uv_fs_* calls, which run
** on the thread pool. One request type and one callback serve every call:
** the callback pushes what the request's type (req->fs_type) yields. A File
** or Dir shares its descriptor with the requests in flight on it (a Res),
** so closing one never pulls the descriptor from under a pool thread. The
** compositions (read_file, write_file, mkdir with parents, lines, readdir
** and scandir iterators) are in runtime/lua/fs.lua.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tide_int.h"

#define TIDE_FILE "tide.File"
#define TIDE_DIR "tide.Dir"
#define READ_CHUNK (64 * 1024)     /* read() without a size */
#define DIR_BATCH 64               /* entries per Dir:read */
#define WRITE_MAX (1u << 30)       /* bytes per write call (a uv_buf_t holds
                                      less than 4 GiB); more is a short write */

/* A descriptor shared by its Lua object and the requests in flight on it;
** closed and freed when the last of them lets go. */
typedef struct Res {
  int refs;
  uv_file fd;              /* a file, or -1 */
  uv_dir_t *dir;           /* a directory, or NULL */
  uv_dirent_t *ents;       /* where a directory's entries are read to */
  uv_loop_t *loop;
  char name[];             /* the path, for messages */
} Res;

/* The Lua side of a File or a Dir: NULL once closed. */
typedef struct Obj {
  Res *res;
} Obj;

typedef struct FsReq {
  uv_fs_t req;
  tide_Wait *w;            /* NULL once the task stopped waiting */
  Res *res;                /* the file or directory used, or NULL */
  size_t len, done;        /* write: bytes to write, bytes written */
  int64_t off;             /* write: where (-1: at the file position) */
  int excl;                /* open: creates the file (O_CREAT | O_EXCL) */
  char buf[];              /* read: the data read; write: a copy to write */
} FsReq;

/* ---- Descriptors ---------------------------------------------------------- */

/* Close what a finished open or opendir gave (never waits). */
static void closefd (uv_loop_t *loop, uv_file fd) {
  uv_fs_t c;
  uv_fs_close(loop, &c, fd, NULL);
  uv_fs_req_cleanup(&c);
}

static void closedir_now (uv_loop_t *loop, uv_dir_t *dir) {
  uv_fs_t c;
  uv_fs_closedir(loop, &c, dir, NULL);
  uv_fs_req_cleanup(&c);
}

/* Let go of x; the last one closes the descriptor. Returns the error of
** that close, or 0. */
static int res_release (Res *x) {
  int err = 0;
  if (--x->refs > 0) return 0;
  if (x->fd >= 0) {
    uv_fs_t c;
    err = uv_fs_close(x->loop, &c, x->fd, NULL);
    uv_fs_req_cleanup(&c);
  }
  if (x->dir) closedir_now(x->loop, x->dir);
  tide__free(x->ents);
  tide__free(x);
  return err;
}

/* Push a new File (fd) or Dir (dir) owning the descriptor; if that runs
** out of memory, it raises with the descriptor still the caller's. */
static void newobj (lua_State *L, uv_loop_t *loop, const char *name,
                    uv_file fd, uv_dir_t *dir) {
  Obj *o = lua_newuserdatauv(L, sizeof *o, 0);
  size_t n = strlen(name) + 1;
  Res *x;
  uv_dirent_t *ents;
  o->res = NULL;
  luaL_setmetatable(L, dir ? TIDE_DIR : TIDE_FILE);
  x = tide__malloc(sizeof *x + n);
  ents = dir ? tide__calloc(DIR_BATCH, sizeof *ents) : NULL;
  if (x == NULL || (dir && ents == NULL)) {
    tide__free(x);
    tide__free(ents);
    tide__nomem(L);
  }
  x->refs = 1;
  x->fd = fd;
  x->dir = dir;
  x->ents = ents;
  x->loop = loop;
  memcpy(x->name, name, n);
  o->res = x;
}

static int newfile (lua_State *L) {
  newobj(L, tide_getloop(L), lua_touserdata(L, 2), (uv_file)lua_tointeger(L, 1),
         NULL);
  return 1;
}

/* Push a File on fd (tty.c: the standard streams when they are files);
** fd is closed if it cannot be made. */
void tide__newfile (lua_State *L, int fd, const char *name) {
  lua_pushcfunction(L, newfile);
  lua_pushinteger(L, fd);
  lua_pushlightuserdata(L, (void *)name);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    closefd(tide_getloop(L), fd);
    lua_error(L);
  }
}

static Res *checkres (lua_State *L, int i, const char *tname,
                      const char *what) {
  Obj *o = tide__checkudata(L, i, tname);
  if (o->res == NULL)
    tide__error(L, "%s: attempt to use a closed %s", tide__fname(L), what);
  return o->res;
}

#define checkfile(L, i) checkres(L, i, TIDE_FILE, "file")
#define checkdir(L, i) checkres(L, i, TIDE_DIR, "directory")

/* close(), __close and __gc: the descriptor closes now, or once the
** requests in flight on it are done. */
static int obj_close (lua_State *L, const char *tname) {
  Obj *o = tide__checkudata(L, 1, tname);
  Res *x = o->res;
  int err;
  if (x == NULL) return 0;
  o->res = NULL;
  if ((err = res_release(x)) < 0) return tide_pushfail(L, err, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int obj_tostring (lua_State *L, const char *tname) {
  Obj *o = tide__checkudata(L, 1, tname);
  if (o->res == NULL) lua_pushfstring(L, "%s (closed)", tname);
  else lua_pushfstring(L, "%s (%s): %p", tname, o->res->name, (void *)o);
  return 1;
}

/* ---- Results ----------------------------------------------------------------- */

static const char *typename (uint64_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "link";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
  }
}

static const char *const direnttypes[] = {
  "unknown", "file", "directory", "link", "fifo", "socket", "char", "block"
};

static void setint (lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static void settime (lua_State *L, const char *k, uv_timespec_t t) {
  lua_pushnumber(L, (lua_Number)t.tv_sec + (lua_Number)t.tv_nsec * 1e-9);
  lua_setfield(L, -2, k);
}

static void pushstat (lua_State *L, const uv_stat_t *s) {
  lua_createtable(L, 0, 16);
  lua_pushstring(L, typename(s->st_mode));
  lua_setfield(L, -2, "type");
  setint(L, "mode", s->st_mode & 07777);
  setint(L, "size", s->st_size);
  setint(L, "nlink", s->st_nlink);
  setint(L, "uid", s->st_uid);
  setint(L, "gid", s->st_gid);
  setint(L, "dev", s->st_dev);
  setint(L, "ino", s->st_ino);
  setint(L, "rdev", s->st_rdev);
  setint(L, "blksize", s->st_blksize);
  setint(L, "blocks", s->st_blocks);
  settime(L, "atime", s->st_atim);
  settime(L, "mtime", s->st_mtim);
  settime(L, "ctime", s->st_ctim);
  settime(L, "birthtime", s->st_birthtim);
}

static void pushentry (lua_State *L, int i, const char *name,
                       uv_dirent_type_t type) {
  lua_pushstring(L, name);
  lua_rawseti(L, -2, 2 * i - 1);
  lua_pushstring(L, direnttypes[type <= UV_DIRENT_BLOCK ? type : 0]);
  lua_rawseti(L, -2, 2 * i);
}

/* scandir: { name1, type1, name2, type2, ... } */
static void pushscandir (lua_State *L, uv_fs_t *req) {
  uv_dirent_t e;
  int i = 0;
  lua_createtable(L, 2 * (int)req->result, 0);
  while (uv_fs_scandir_next(req, &e) != UV_EOF)
    pushentry(L, ++i, e.name, e.type);
}

/* readdir: the same for one batch; nil once the directory is read. */
static void pushreaddir (lua_State *L, uv_dir_t *dir, int n) {
  int i;
  if (n == 0) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 2 * n, 0);
  for (i = 0; i < n; i++)
    pushentry(L, i + 1, dir->dirents[i].name, dir->dirents[i].type);
}

/* What the request names in messages. */
static const char *reqname (FsReq *r) {
  if (r->res) return r->res->name;
  if (r->req.fs_type == UV_FS_SYMLINK) return r->req.new_path;
  return r->req.path;
}

/* Push the results of the finished request r; return their count. */
static int pushresult (lua_State *L, FsReq *r) {
  uv_fs_t *req = &r->req;
  if (req->result < 0) return tide_pushfail(L, (int)req->result, reqname(r));
  switch (req->fs_type) {
    case UV_FS_OPEN:
      newobj(L, tide_getloop(L), req->path, (uv_file)req->result, NULL);
      break;
    case UV_FS_OPENDIR:
      newobj(L, tide_getloop(L), req->path, -1, req->ptr);
      break;
    case UV_FS_READ:
      if (req->result == 0 && r->len > 0) lua_pushnil(L);   /* end of file */
      else lua_pushlstring(L, r->buf, (size_t)req->result);
      break;
    case UV_FS_STAT: case UV_FS_LSTAT: case UV_FS_FSTAT:
      pushstat(L, &req->statbuf);
      break;
    case UV_FS_READLINK: case UV_FS_REALPATH:
      lua_pushstring(L, req->ptr);
      break;
    case UV_FS_MKDTEMP:
      lua_pushstring(L, req->path);
      break;
    case UV_FS_SCANDIR:
      pushscandir(L, req);
      break;
    case UV_FS_READDIR:
      pushreaddir(L, r->res->dir, (int)req->result);
      break;
    default:
      lua_pushboolean(L, 1);
  }
  return 1;
}

/* The task stopped waiting: undo what the call made for it. */
static void drop (FsReq *r) {
  uv_fs_t *req = &r->req;
  if (req->result < 0) return;
  switch (req->fs_type) {
    case UV_FS_OPEN:               /* a file it made exclusively: remove it */
      closefd(req->loop, (uv_file)req->result);
      if (r->excl) unlink(req->path);
      break;
    case UV_FS_OPENDIR: closedir_now(req->loop, req->ptr); break;
    case UV_FS_MKDTEMP: rmdir(req->path); break;
    default: break;
  }
}

static void freereq (FsReq *r) {
  uv_fs_req_cleanup(&r->req);
  if (r->res) res_release(r->res);
  tide__free(r);
}

/* ---- The one request ------------------------------------------------------------ */

static void fs_cb (uv_fs_t *req);

/* Write what is left of a short write; 0, or the error starting it. */
static int write_more (FsReq *r) {
  size_t left = r->len - r->done;
  uv_buf_t b = uv_buf_init(r->buf + r->done,
                           (unsigned)(left < WRITE_MAX ? left : WRITE_MAX));
  uv_loop_t *loop = r->req.loop;
  uv_fs_req_cleanup(&r->req);
  return uv_fs_write(loop, &r->req, r->res->fd, &b, 1,
                     r->off < 0 ? -1 : r->off + (int64_t)r->done, fs_cb);
}

static int result_push (lua_State *L) {
  return pushresult(L, lua_touserdata(L, 1));
}

static void fs_cb (uv_fs_t *req) {
  FsReq *r = req->data;
  tide_Wait *w = r->w;
  if (req->fs_type == UV_FS_WRITE && req->result >= 0 && w != NULL) {
    r->done += (size_t)req->result;
    if (r->done < r->len) {        /* a short write: go on (0: give up) */
      int err = req->result > 0 ? write_more(r) : UV_EIO;
      if (err == 0) return;
      req->result = err;
    }
  }
  if (w != NULL) tide__poolwait(w, req->loop, -1);
  if (w == NULL || !tide_wakewith(w, result_push, r))
    drop(r);                       /* nobody took the results */
  freereq(r);                      /* before the task runs: it may read */
}                                  /* the same Dir again */

static void fs_cancel (tide_Wait *w) {
  FsReq *r = tide_waitdata(w);
  tide__poolwait(w, r->req.loop, -1);
  r->w = NULL;                     /* the callback only cleans up */
  uv_cancel((uv_req_t *)&r->req);
}

/* A request for the calling task (raises outside a task), on res if not
** NULL, with size bytes of buffer. */
static FsReq *newreq (lua_State *L, Res *res, size_t size) {
  tide_Wait *w = tide_wait(L);
  FsReq *r;
  tide__poolloop(L);               /* opened first: it may raise */
  r = tide__malloc(sizeof *r + size);
  if (r == NULL) luaL_error(L, "not enough memory");
  r->req.data = r;
  r->w = w;
  r->res = res;
  r->len = size;
  r->done = 0;
  r->off = -1;
  r->excl = 0;
  if (res) res->refs++;
  return r;
}

/* Wait for r, whose uv_fs_* call returned err. */
static int fs_waitk (lua_State *L, FsReq *r, int err, lua_KFunction k) {
  if (err < 0) {                   /* the callback will never run */
    const char *what = r->res ? r->res->name : lua_tostring(L, 1);
    lua_pushstring(L, what);       /* outlives r */
    freereq(r);
    return tide_pushfail(L, err, lua_tostring(L, -1));
  }
  tide__poolwait(r->w, r->req.loop, 1);
  return tide_awaitk(L, r->w, fs_cancel, r, k, 0);
}

#define fs_wait(L, r, err) fs_waitk(L, r, err, NULL)
#define LOOP(L) tide__poolloop(L)     /* see runtime/pool.c */
#define REQ(r) (&(r)->req)

/* A mode argument: an integer, or a string of octal digits ("644"). */
static int checkmode (lua_State *L, int i, int def) {
  lua_Integer m;
  if (lua_type(L, i) == LUA_TSTRING) {
    const char *s = lua_tostring(L, i);
    char *end;
    m = strtol(s, &end, 8);
    luaL_argcheck(L, *s != '\0' && *end == '\0', i, "octal digits expected");
  }
  else m = luaL_optinteger(L, i, def);
  luaL_argcheck(L, m >= 0 && m <= 07777, i, "mode out of range");
  return (int)m;
}

/* ---- Paths ------------------------------------------------------------------------- */

/* The calls on one path (or two), named by their libuv type. */
static int fs_stat (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_stat(LOOP(L), REQ(r), p, fs_cb));
}

static int fs_lstat (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_lstat(LOOP(L), REQ(r), p, fs_cb));
}

static int fs_unlink (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_unlink(LOOP(L), REQ(r), p, fs_cb));
}

static int fs_rmdir (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_rmdir(LOOP(L), REQ(r), p, fs_cb));
}

/* _mkdir(path [, mode]): one level; fs.lua adds parents. */
static int fs_mkdir (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  int mode = checkmode(L, 2, 0777);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_mkdir(LOOP(L), REQ(r), p, mode, fs_cb));
}

static int fs_rename (lua_State *L) {
  const char *from = luaL_checkstring(L, 1), *to = luaL_checkstring(L, 2);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_rename(LOOP(L), REQ(r), from, to, fs_cb));
}

/* copyfile(from, to [, exclusive]): exclusive fails if `to` exists. */
static int fs_copyfile (lua_State *L) {
  const char *from = luaL_checkstring(L, 1), *to = luaL_checkstring(L, 2);
  int flags = lua_toboolean(L, 3) ? UV_FS_COPYFILE_EXCL : 0;
  FsReq *r = newreq(L, NULL, 0);
  flags |= UV_FS_COPYFILE_FICLONE;         /* a reflink where it can */
  return fs_wait(L, r, uv_fs_copyfile(LOOP(L), REQ(r), from, to, flags,
                                      fs_cb));
}

/* symlink(target, path): path becomes a link to target. */
static int fs_symlink (lua_State *L) {
  const char *target = luaL_checkstring(L, 1);
  const char *p = luaL_checkstring(L, 2);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_symlink(LOOP(L), REQ(r), target, p, 0, fs_cb));
}

static int fs_readlink (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_readlink(LOOP(L), REQ(r), p, fs_cb));
}

static int fs_realpath (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_realpath(LOOP(L), REQ(r), p, fs_cb));
}

static int fs_chmod (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  int mode;
  FsReq *r;
  luaL_checkany(L, 2);
  mode = checkmode(L, 2, 0);
  r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_chmod(LOOP(L), REQ(r), p, mode, fs_cb));
}

/* utime(path, atime, mtime): times in seconds. */
static int fs_utime (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  double at = luaL_checknumber(L, 2), mt = luaL_checknumber(L, 3);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_utime(LOOP(L), REQ(r), p, at, mt, fs_cb));
}

/* _mkdtemp(template): template ends in XXXXXX (fs.lua sees to it). */
static int fs_mkdtemp (lua_State *L) {
  const char *tpl = luaL_checkstring(L, 1);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_mkdtemp(LOOP(L), REQ(r), tpl, fs_cb));
}

/* _scandir(path) -> { name1, type1, ... }: the whole directory at once. */
static int fs_scandir (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_scandir(LOOP(L), REQ(r), p, 0, fs_cb));
}

/* _opendir(path) -> Dir, read a batch at a time. */
static int fs_opendir (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = newreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_opendir(LOOP(L), REQ(r), p, fs_cb));
}

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
  mode = checkmode(L, 3, 0666);
  r = newreq(L, NULL, 0);
  r->excl = (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL);
  return fs_wait(L, r, uv_fs_open(LOOP(L), REQ(r), p, flags, mode, fs_cb));
}

/* ---- Files --------------------------------------------------------------------------- */

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
  uv_buf_t b;
  FsReq *r;
  tide__argcheck(L, n >= 0 && n <= INT32_MAX, 2, "size out of range");
  r = newreq(L, x, (size_t)n);
  b = uv_buf_init(r->buf, (unsigned)n);
  return fs_wait(L, r, uv_fs_read(LOOP(L), REQ(r), x->fd, &b, 1, off, fs_cb));
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
  r = newreq(L, x, len);
  memcpy(r->buf, data, len);       /* libuv may still use it after a cancel */
  r->off = off;
  lua_settop(L, 1);                /* write_k's results go above f */
  b = uv_buf_init(r->buf, (unsigned)(len < WRITE_MAX ? len : WRITE_MAX));
  return fs_waitk(L, r, uv_fs_write(LOOP(L), REQ(r), x->fd, &b, 1, off,
                                    fs_cb), write_k);
}

/* f:seek([whence [, offset]]) -> position: as Lua's file:seek ("set",
** "cur" (default) or "end"); never waits. */
static int file_seek (lua_State *L) {
  static const int modes[] = { SEEK_SET, SEEK_CUR, SEEK_END };
  static const char *const names[] = { "set", "cur", "end", NULL };
  Res *x = checkfile(L, 1);
  int whence = tide__checkoption(L, 2, "cur", names);
  lua_Integer off = tide__optinteger(L, 3, 0);
  off_t pos = lseek(x->fd, (off_t)off, modes[whence]);
  if (pos < 0) return tide_pushfail(L, uv_translate_sys_error(errno), x->name);
  lua_pushinteger(L, (lua_Integer)pos);
  return 1;
}

/* f:sync([dataonly]) -> true once the data is on disk (fsync/fdatasync). */
static int file_sync (lua_State *L) {
  Res *x = checkfile(L, 1);
  int dataonly = lua_toboolean(L, 2);
  FsReq *r = newreq(L, x, 0);
  return fs_wait(L, r, dataonly
    ? uv_fs_fdatasync(LOOP(L), REQ(r), x->fd, fs_cb)
    : uv_fs_fsync(LOOP(L), REQ(r), x->fd, fs_cb));
}

static int file_stat (lua_State *L) {
  Res *x = checkfile(L, 1);
  FsReq *r = newreq(L, x, 0);
  return fs_wait(L, r, uv_fs_fstat(LOOP(L), REQ(r), x->fd, fs_cb));
}

/* f:truncate([size]) -> true; size defaults to 0. */
static int file_truncate (lua_State *L) {
  Res *x = checkfile(L, 1);
  lua_Integer size = tide__optinteger(L, 2, 0);
  FsReq *r;
  tide__argcheck(L, size >= 0, 2, "non-negative size expected");
  r = newreq(L, x, 0);
  return fs_wait(L, r, uv_fs_ftruncate(LOOP(L), REQ(r), x->fd, size, fs_cb));
}

/* f:close() -> true | nil, msg, code; harmless once closed. Never waits. */
static int file_close (lua_State *L) {
  int n = obj_close(L, TIDE_FILE);
  if (n == 0) lua_pushboolean(L, 1);
  return n ? n : 1;
}

static int file_gc (lua_State *L) {
  obj_close(L, TIDE_FILE);
  return 0;
}

static int file_tostring (lua_State *L) {
  return obj_tostring(L, TIDE_FILE);
}

/* ---- Directories ------------------------------------------------------------------- */

/* d:read() -> { name1, type1, ... } (up to 64 entries) | nil at the end. */
static int dir_read (lua_State *L) {
  Res *x = checkdir(L, 1);
  FsReq *r;
  if (x->refs > 1)
    return tide__error(L, "%s: another task is reading this directory",
                       tide__fname(L));
  r = newreq(L, x, 0);
  x->dir->dirents = x->ents;
  x->dir->nentries = DIR_BATCH;
  return fs_wait(L, r, uv_fs_readdir(LOOP(L), REQ(r), x->dir, fs_cb));
}

static int dir_close (lua_State *L) {
  obj_close(L, TIDE_DIR);
  return 0;
}

static int dir_tostring (lua_State *L) {
  return obj_tostring(L, TIDE_DIR);
}

/* ---- Watching ------------------------------------------------------------------------ */

#define TIDE_WATCHER "tide.Watcher"
#define EVENTS_MAX 4096            /* queued events beyond this are dropped */

typedef struct Event {
  struct Event *next;
  int what;                        /* UV_RENAME or UV_CHANGE, or an error */
  char name[];
} Event;

typedef struct Watcher {
  tide_Handle o;                   /* o.h: the uv_fs_event_t */
  Task *reader;
  Event *head, *tail;
  int count;
} Watcher;

static Watcher *checkwatcher (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_WATCHER);
}

static void event_add (Watcher *wt, const char *name, int what) {
  size_t n = strlen(name) + 1;
  Event *e;
  if (wt->tail && wt->tail->what == what && strcmp(wt->tail->name, name) == 0)
    return;                        /* the same as the last one */
  if (wt->count >= EVENTS_MAX || (e = tide__malloc(sizeof *e + n)) == NULL)
    return;
  e->next = NULL;
  e->what = what;
  memcpy(e->name, name, n);
  if (wt->tail) wt->tail->next = e;
  else wt->head = e;
  wt->tail = e;
  wt->count++;
}

/* Push the first queued event (name, "rename" | "change"); return 2. It
** leaves the queue once pushed: a push that runs out of memory keeps it. */
static int event_pop (lua_State *L, Watcher *wt) {
  Event *e = wt->head;
  int n;
  if (e->what < 0) n = tide_pushfail(L, e->what, e->name);
  else {
    lua_pushstring(L, e->name);
    lua_pushstring(L, e->what == UV_RENAME ? "rename" : "change");
    n = 2;
  }
  wt->head = e->next;
  if (wt->head == NULL) wt->tail = NULL;
  wt->count--;
  tide__free(e);
  return n;
}

static int event_push (lua_State *L) {
  return event_pop(L, lua_touserdata(L, 1));
}

/* Only a waiting reader keeps the loop alive. */
static void reader_done (Watcher *wt) {
  wt->reader = NULL;
  if (wt->o.h) uv_unref(wt->o.h);
}

static void event_cb (uv_fs_event_t *h, const char *name, int events,
                      int status) {
  Watcher *wt = h->data;
  if (wt == NULL) return;
  if (name == NULL) name = h->path;
  if (status < 0) event_add(wt, name, status);
  else {
    if (events & UV_RENAME) event_add(wt, name, UV_RENAME);
    if (events & UV_CHANGE) event_add(wt, name, UV_CHANGE);
  }
  if (wt->reader && wt->head) {
    Task *t = wt->reader;
    reader_done(wt);
    tide_wakewith(&t->w, event_push, wt);
  }
}

static void watch_cancel (tide_Wait *w) {
  reader_done(tide_waitdata(w));
}

/* w:read() -> name, "rename" | "change": waits for the next event;
** nil, "watcher closed", "ECANCELED" once closed. */
static int watcher_read (lua_State *L) {
  Watcher *wt = checkwatcher(L, 1);
  tide_Wait *w;
  if (wt->head) return event_pop(L, wt);
  if (wt->o.h == NULL) {
    luaL_pushfail(L);
    lua_pushliteral(L, "watcher closed");
    lua_pushliteral(L, "ECANCELED");
    return 3;
  }
  if (wt->reader)
    return tide__error(L, "%s: another task is already reading this watcher",
                       tide__fname(L));
  w = tide_wait(L);
  wt->reader = tide__task(w);
  uv_ref(wt->o.h);
  lua_settop(L, 1);                /* the watcher lives while it is read */
  return tide_await(L, w, watch_cancel, wt);
}

static int closed_push (lua_State *L) {
  luaL_pushfail(L);
  lua_pushliteral(L, "watcher closed");
  lua_pushliteral(L, "ECANCELED");
  return 3;
}

static void watcher_onclose (tide_Handle *o) {
  Watcher *wt = (Watcher *)o;
  if (wt->reader) {
    Task *t = wt->reader;
    wt->reader = NULL;
    tide_wakewith(&t->w, closed_push, NULL);
  }
}

static int watcher_close (lua_State *L) {
  tide__handleclose(&checkwatcher(L, 1)->o);
  return 0;
}

static int watcher_gc (lua_State *L) {
  Watcher *wt = checkwatcher(L, 1);
  tide__handleclose(&wt->o);
  while (wt->head) {
    Event *e = wt->head;
    wt->head = e->next;
    tide__free(e);
  }
  wt->tail = NULL;
  wt->count = 0;
  return 0;
}

static int watcher_tostring (lua_State *L) {
  Watcher *wt = checkwatcher(L, 1);
  if (wt->o.h == NULL) lua_pushliteral(L, "tide.Watcher (closed)");
  else lua_pushfstring(L, "tide.Watcher (%s): %p",
                       ((uv_fs_event_t *)wt->o.h)->path, (void *)wt);
  return 1;
}

/* _watch(path [, recursive]) -> Watcher | nil, msg, code; recursive is
** ENOTSUP except on macOS and Windows. */
static int fs_watch (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  unsigned flags = lua_toboolean(L, 2) ? UV_FS_EVENT_RECURSIVE : 0;
  Watcher *wt;
  uv_fs_event_t *h;
  int err;
#if !defined(__APPLE__) && !defined(_WIN32)
  if (flags)                       /* libuv watches subdirectories only there */
    return tide_pushfail(L, UV_ENOTSUP, p);
#endif
  wt = lua_newuserdatauv(L, sizeof *wt, 0);
  memset(wt, 0, sizeof *wt);
  luaL_setmetatable(L, TIDE_WATCHER);
  h = tide__handleinit(L, tide__rt(L), &wt->o, sizeof(uv_fs_event_t),
                       watcher_onclose);
  if ((err = uv_fs_event_init(tide_getloop(L), h)) == 0)
    err = uv_fs_event_start(h, event_cb, p, flags);
  if (err < 0) {
    tide__handleclose(&wt->o);
    return tide_pushfail(L, err, p);
  }
  uv_unref((uv_handle_t *)h);      /* see reader_done */
  return 1;
}

/* ---- Registration ------------------------------------------------------------------ */

static const luaL_Reg fs_funcs[] = {
  {"open", fs_open},
  {"stat", fs_stat},
  {"lstat", fs_lstat},
  {"unlink", fs_unlink},
  {"rmdir", fs_rmdir},
  {"rename", fs_rename},
  {"copyfile", fs_copyfile},
  {"symlink", fs_symlink},
  {"readlink", fs_readlink},
  {"realpath", fs_realpath},
  {"chmod", fs_chmod},
  {"utime", fs_utime},
  {"_mkdir", fs_mkdir},
  {"_mkdtemp", fs_mkdtemp},
  {"_scandir", fs_scandir},
  {"_opendir", fs_opendir},
  {"_watch", fs_watch},
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

static const luaL_Reg dir_methods[] = {
  {"read", dir_read},
  {"close", dir_close},
  {NULL, NULL}
};

static const luaL_Reg dir_meta[] = {
  {"__gc", dir_close},
  {"__close", dir_close},
  {"__tostring", dir_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg watcher_methods[] = {
  {"read", watcher_read},
  {"close", watcher_close},
  {NULL, NULL}
};

static const luaL_Reg watcher_meta[] = {
  {"__gc", watcher_gc},
  {"__close", watcher_close},
  {"__tostring", watcher_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

/* A metatable with its methods table as __index, also private[field]. */
static void newclass (lua_State *L, const char *tname, const luaL_Reg *meta,
                      const luaL_Reg *methods, const char *field) {
  luaL_newmetatable(L, tname);
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, field);      /* private.File: fs.lua adds to it */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* Stack: tide table, private table, runtime userdata. */
int tide__open_fs (lua_State *L) {
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, fs_funcs, 1);
  lua_setfield(L, -4, "fs");
  lua_pushvalue(L, -2);            /* private */
  newclass(L, TIDE_FILE, file_meta, file_methods, "File");
  newclass(L, TIDE_DIR, dir_meta, dir_methods, "Dir");
  newclass(L, TIDE_WATCHER, watcher_meta, watcher_methods, "Watcher");
  luaL_getmetatable(L, TIDE_WATCHER);
  lua_setfield(L, -2, "WatcherMeta");
  lua_pop(L, 1);
  return 0;
}
