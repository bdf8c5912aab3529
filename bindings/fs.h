/*
** fs.h: what the files of tide.fs share: a descriptor shared by its Lua
** object and the requests in flight on it (a Res), and the one request
** type whose callback pushes what each call but File:read yields (fs.c).
** The calls on paths are in fs_path.c, File in fs_file.c and its reads in
** fs_read.c, Dir in fs_dir.c, the tables they return in fs_result.c,
** Watcher in fs_watch.c.
*/
#ifndef TIDE_FS_H
#define TIDE_FS_H

#include "tide_int.h"

#define TIDE_FILE "tide.File"
#define TIDE_DIR "tide.Dir"
#define DIR_BATCH 64               /* entries per Dir:read */
#define WRITE_MAX (1u << 30)       /* bytes per write call (a uv_buf_t holds
                                      less than 4 GiB); more is a short write */


typedef struct Read Read;          /* a File's read (fs_read.c) */

/* A descriptor shared by its Lua object and the requests in flight on it;
** closed and freed when the last of them lets go. */
typedef struct Res {
  int refs;
  uv_file fd;              /* a file, or -1 */
  uv_dir_t *dir;           /* a directory, or NULL */
  uv_dirent_t *ents;       /* where a directory's entries are read to */
  uv_loop_t *loop;
  Read *ahead;             /* File: the next read, read ahead, or NULL */
  Read *spare;             /* File: a buffer kept for the next read */
  size_t seqlen;           /* File: the size of the last read at the file
                              position if it got all it asked, else 0 */
  int busy;                /* File: calls in flight that move the position
                              or change the data */
  int noahead;             /* File: never reads ahead (closed, shared with
                              other processes, not a regular file) */
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
  int busy;                /* write, truncate: counted in res->busy */
  char buf[];              /* write: a copy of the data */
} FsReq;


/* fs.c: the descriptor of the File (tname TIDE_FILE, what "file") or Dir
** at index i, raising once it is closed; close(), __close and __gc; and
** __tostring */
Res *tide__fsres (lua_State *L, int i, const char *tname, const char *what);
int tide__fsclose (lua_State *L, const char *tname);
int tide__fstostring (lua_State *L, const char *tname);

/* fs.c: let go of x; the last one closes the descriptor (returns the
** error of that close, or 0) */
int tide__fsrelease (Res *x);

#define checkfile(L, i) tide__fsres(L, i, TIDE_FILE, "file")
#define checkdir(L, i) tide__fsres(L, i, TIDE_DIR, "directory")

/* fs.c: a request for the calling task (raises outside a task), on res if
** not NULL, with size bytes of buffer; the callback every uv_fs_* call is
** given; wait for r, whose uv_fs_* call returned err, with k to run on the
** results (or NULL) */
FsReq *tide__fsreq (lua_State *L, Res *res, size_t size);
void tide__fscb (uv_fs_t *req);
int tide__fswait (lua_State *L, FsReq *r, int err, lua_KFunction k);

#define fs_wait(L, r, err) tide__fswait(L, r, err, NULL)
#define LOOP(L) tide__poolloop(L)     /* see runtime/pool.c */
#define REQ(r) (&(r)->req)

/* fs.c: a mode argument: an integer, or a string of octal digits ("644");
** add funcs to the fs table on top, with the runtime userdata (at -2) as
** their upvalue, and unless tname is NULL, a class: a metatable with its
** methods table as __index, also private[field] (private at -3) */
int tide__fsmode (lua_State *L, int i, int def);
void tide__fsregister (lua_State *L, const luaL_Reg *funcs, const char *tname,
                       const luaL_Reg *meta, const luaL_Reg *methods,
                       const char *field);

/* fs_read.c: f:read(n [, off]) on x (off -1: at the file position); the
** position or the data may change: what was read ahead is stale; r (a
** write or a truncate) is about to start: the same, and x counts it busy
** until r is freed; x's File closes: it reads ahead no more */
int tide__fsread (lua_State *L, Res *x, size_t n, int64_t off);
void tide__fsmoved (Res *x);
void tide__fsbusy (Res *x, FsReq *r);
void tide__fsreadstop (Res *x);

/* fs_result.c: what a stat, a scandir and a batch of readdir push */
void tide__fspushstat (lua_State *L, const uv_stat_t *s);
void tide__fspushscandir (lua_State *L, uv_fs_t *req);
void tide__fspushreaddir (lua_State *L, uv_dir_t *dir, int n);

/* Each registers its part of tide.fs with tide__fsregister. */
void tide__fsopen_path (lua_State *L);
void tide__fsopen_file (lua_State *L);
void tide__fsopen_dir (lua_State *L);
void tide__fsopen_watch (lua_State *L);

#endif
