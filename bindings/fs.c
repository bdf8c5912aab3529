/*
** fs.c: tide.fs: files and directories on libuv's uv_fs_* calls, which run
** on the thread pool. One request type and one callback serve every call
** but File:read (fs_read.c): the callback pushes what the request's type
** (req->fs_type) yields. A File or Dir shares its descriptor with the
** requests in flight on it (a Res), so closing one never pulls the
** descriptor from under a pool thread. The calls themselves are in
** fs_path.c, fs_file.c, fs_dir.c and fs_watch.c (see fs.h); the
** compositions (read_file, write_file, mkdir with parents, lines, readdir
** and scandir iterators) are in runtime/lua/fs.lua.
*/
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

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
int tide__fsrelease (Res *x) {
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
  memset(x, 0, sizeof *x);
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
  ((Obj *)lua_touserdata(L, -1))->res->noahead = 1;   /* shared with other */
  return 1;                                           /* processes */
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

Res *tide__fsres (lua_State *L, int i, const char *tname,
                  const char *what) {
  Obj *o = tide__checkudata(L, i, tname);
  if (o->res == NULL)
    tide__error(L, "%s: attempt to use a closed %s", tide__fname(L), what);
  return o->res;
}

/* close(), __close and __gc: the descriptor closes now, or once the
** requests in flight on it are done. */
int tide__fsclose (lua_State *L, const char *tname) {
  Obj *o = tide__checkudata(L, 1, tname);
  Res *x = o->res;
  int err;
  if (x == NULL) return 0;
  o->res = NULL;
  tide__fsreadstop(x);
  if ((err = tide__fsrelease(x)) < 0) return tide_pushfail(L, err, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

int tide__fstostring (lua_State *L, const char *tname) {
  Obj *o = tide__checkudata(L, 1, tname);
  if (o->res == NULL) lua_pushfstring(L, "%s (closed)", tname);
  else lua_pushfstring(L, "%s (%s): %p", tname, o->res->name, (void *)o);
  return 1;
}

/* ---- Results ----------------------------------------------------------------- */

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
    case UV_FS_STAT: case UV_FS_LSTAT: case UV_FS_FSTAT:
      tide__fspushstat(L, &req->statbuf);
      break;
    case UV_FS_READLINK: case UV_FS_REALPATH:
      lua_pushstring(L, req->ptr);
      break;
    case UV_FS_MKDTEMP:
      lua_pushstring(L, req->path);
      break;
    case UV_FS_SCANDIR:
      tide__fspushscandir(L, req);
      break;
    case UV_FS_READDIR:
      tide__fspushreaddir(L, r->res->dir, (int)req->result);
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
  if (r->busy) r->res->busy--;
  if (r->res) tide__fsrelease(r->res);
  tide__free(r);
}

/* ---- The one request ------------------------------------------------------------ */

/* Write what is left of a short write; 0, or the error starting it. */
static int write_more (FsReq *r) {
  size_t left = r->len - r->done;
  uv_buf_t b = uv_buf_init(r->buf + r->done,
                           (unsigned)(left < WRITE_MAX ? left : WRITE_MAX));
  uv_loop_t *loop = r->req.loop;
  uv_fs_req_cleanup(&r->req);
  return uv_fs_write(loop, &r->req, r->res->fd, &b, 1,
                     r->off < 0 ? -1 : r->off + (int64_t)r->done,
                     tide__fscb);
}

static int result_push (lua_State *L) {
  return pushresult(L, lua_touserdata(L, 1));
}

void tide__fscb (uv_fs_t *req) {
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
FsReq *tide__fsreq (lua_State *L, Res *res, size_t size) {
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
  r->busy = 0;
  if (res) res->refs++;
  return r;
}

/* Wait for r, whose uv_fs_* call returned err. */
int tide__fswait (lua_State *L, FsReq *r, int err, lua_KFunction k) {
  if (err < 0) {                   /* the callback will never run */
    const char *what = r->res ? r->res->name : lua_tostring(L, 1);
    lua_pushstring(L, what);       /* outlives r */
    freereq(r);
    return tide_pushfail(L, err, lua_tostring(L, -1));
  }
  tide__poolwait(r->w, r->req.loop, 1);
  return tide_awaitk(L, r->w, fs_cancel, r, k, 0);
}

/* A mode argument: an integer, or a string of octal digits ("644"). */
int tide__fsmode (lua_State *L, int i, int def) {
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

/* ---- Registration ------------------------------------------------------------------ */

/* Add funcs to the fs table on top, with the runtime userdata (at -2) as
** their upvalue; and unless tname is NULL, a class: a metatable with its
** methods table as __index, also private[field] (private at -3). */
void tide__fsregister (lua_State *L, const luaL_Reg *funcs, const char *tname,
                       const luaL_Reg *meta, const luaL_Reg *methods,
                       const char *field) {
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, funcs, 1);
  if (tname == NULL) return;
  lua_pushvalue(L, -3);            /* private */
  luaL_newmetatable(L, tname);
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, field);      /* private.File: fs.lua adds to it */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 2);
}

/* Stack: tide table, private table, runtime userdata. */
int tide__open_fs (lua_State *L) {
  lua_newtable(L);
  tide__fsopen_path(L);
  tide__fsopen_file(L);
  tide__fsopen_dir(L);
  tide__fsopen_watch(L);
  lua_setfield(L, -4, "fs");
  return 0;
}
