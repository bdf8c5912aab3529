/*
** fs_dir.c: reading directories: tide.fs._scandir (the whole directory at
** once) and _opendir, whose Dir reads a batch at a time (fs.lua makes
** iterators of both).
*/
#include "fs.h"

/* _scandir(path) -> { name1, type1, ... }: the whole directory at once. */
static int fs_scandir (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_scandir(LOOP(L), REQ(r), p, 0, tide__fscb));
}

/* _opendir(path) -> Dir, read a batch at a time. */
static int fs_opendir (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  FsReq *r = tide__fsreq(L, NULL, 0);
  return fs_wait(L, r, uv_fs_opendir(LOOP(L), REQ(r), p, tide__fscb));
}

/* d:read() -> { name1, type1, ... } (up to 64 entries) | nil at the end. */
static int dir_read (lua_State *L) {
  Res *x = checkdir(L, 1);
  FsReq *r;
  if (x->refs > 1)
    return tide__error(L, "%s: another task is reading this directory",
                       tide__fname(L));
  r = tide__fsreq(L, x, 0);
  x->dir->dirents = x->ents;
  x->dir->nentries = DIR_BATCH;
  return fs_wait(L, r, uv_fs_readdir(LOOP(L), REQ(r), x->dir, tide__fscb));
}

static int dir_close (lua_State *L) {
  tide__fsclose(L, TIDE_DIR);
  return 0;
}

static int dir_tostring (lua_State *L) {
  return tide__fstostring(L, TIDE_DIR);
}

static const luaL_Reg dir_funcs[] = {
  {"_scandir", fs_scandir},
  {"_opendir", fs_opendir},
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

void tide__fsopen_dir (lua_State *L) {
  tide__fsregister(L, dir_funcs, TIDE_DIR, dir_meta, dir_methods, "Dir");
}
