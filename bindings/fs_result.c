/*
** fs_result.c: the tables tide.fs calls return: a stat, and the entries of
** a directory (scandir whole, or a batch of Dir:read).
*/
#include <sys/stat.h>

#include "fs.h"

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

void tide__fspushstat (lua_State *L, const uv_stat_t *s) {
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
void tide__fspushscandir (lua_State *L, uv_fs_t *req) {
  uv_dirent_t e;
  int i = 0;
  lua_createtable(L, 2 * (int)req->result, 0);
  while (uv_fs_scandir_next(req, &e) != UV_EOF)
    pushentry(L, ++i, e.name, e.type);
}

/* readdir: the same for one batch; nil once the directory is read. */
void tide__fspushreaddir (lua_State *L, uv_dir_t *dir, int n) {
  int i;
  if (n == 0) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 2 * n, 0);
  for (i = 0; i < n; i++)
    pushentry(L, i + 1, dir->dirents[i].name, dir->dirents[i].type);
}

