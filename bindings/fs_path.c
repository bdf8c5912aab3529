/*
** fs_path.c: the tide.fs calls on one path (or two), named by their libuv
** type: stat, lstat, unlink, rmdir, mkdir, rename, copyfile, symlink,
** readlink, realpath, chmod, utime, mkdtemp.
*/
#include "fs.h"

/* The calls on one path (or two), named by their libuv type. */
static int fs_stat (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_stat(LOOP(L), REQ(r), p, tide__fscb));
}

static int fs_lstat (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_lstat(LOOP(L), REQ(r), p, tide__fscb));
}

static int fs_unlink (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_unlink(LOOP(L), REQ(r), p, tide__fscb));
}

static int fs_rmdir (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_rmdir(LOOP(L), REQ(r), p, tide__fscb));
}

/* _mkdir(path [, mode]): one level; fs.lua adds parents. */
static int fs_mkdir (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  int mode = tide__fsmode(L, 2, 0777);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_mkdir(LOOP(L), REQ(r), p, mode, tide__fscb));
}

static int fs_rename (lua_State *L) {
  const char *from = luaL_checkstring(L, 1), *to = luaL_checkstring(L, 2);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_rename(LOOP(L), REQ(r), from, to, tide__fscb));
}

/* copyfile(from, to [, exclusive]): exclusive fails if `to` exists. */
static int fs_copyfile (lua_State *L) {
  const char *from = luaL_checkstring(L, 1), *to = luaL_checkstring(L, 2);
  int flags = lua_toboolean(L, 3) ? UV_FS_COPYFILE_EXCL : 0;
  FsReq *r = tide__fsreq(L, NULL, 0);
  flags |= UV_FS_COPYFILE_FICLONE;         /* a reflink where it can */
  return fs_wait(L, r, uv_fs_copyfile(LOOP(L), REQ(r), from, to, flags,
                                      tide__fscb));
}

/* symlink(target, path): path becomes a link to target. */
static int fs_symlink (lua_State *L) {
  const char *target = luaL_checkstring(L, 1);
  const char *p = luaL_checkstring(L, 2);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_symlink(LOOP(L), REQ(r), target, p, 0,
                                     tide__fscb));
}

static int fs_readlink (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_readlink(LOOP(L), REQ(r), p, tide__fscb));
}

static int fs_realpath (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_realpath(LOOP(L), REQ(r), p, tide__fscb));
}

static int fs_chmod (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  int mode;
  FsReq *r;
  luaL_checkany(L, 2);
  mode = tide__fsmode(L, 2, 0);
  r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_chmod(LOOP(L), REQ(r), p, mode, tide__fscb));
}

/* utime(path, atime, mtime): times in seconds. */
static int fs_utime (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  double at = luaL_checknumber(L, 2), mt = luaL_checknumber(L, 3);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_utime(LOOP(L), REQ(r), p, at, mt, tide__fscb));
}

/* _mkdtemp(template): template ends in XXXXXX (fs.lua sees to it). */
static int fs_mkdtemp (lua_State *L) {
  const char *tpl = luaL_checkstring(L, 1);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_mkdtemp(LOOP(L), REQ(r), tpl, tide__fscb));
}

static const luaL_Reg path_funcs[] = {
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
  {NULL, NULL}
};

void tide__fsopen_path (lua_State *L) {
  tide__fsregister(L, path_funcs, NULL, NULL, NULL, NULL);
}
