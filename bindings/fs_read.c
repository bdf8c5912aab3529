/*
** fs_read.c: File:read on the thread pool. A File read at its position in
** whole reads of one size reads the next one ahead: while the task copies
** a read into a string, a pool thread reads the next into a second buffer
** at an offset (pread), and the position moves only when a read takes it.
** What changes the position or the data through the File (a seek, a
** write, a truncate, another read at the position) makes that read stale,
** and the read it was for is done as asked. Only a task's own reads keep
** the loop alive, never a read ahead.
*/
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

#define AHEAD_MAX (4u << 20)       /* the largest read that is read ahead */
#define AHEAD_DEPTH 2              /* reads ahead at a time */

struct Read {
  uv_fs_t req;
  Res *res;                /* a reference while in flight */
  tide_Wait *w;            /* the task waiting for it, or NULL */
  size_t cap, len;         /* the size of buf; the bytes asked for */
  int64_t off;             /* where; -1: at the file position */
  Read *next;              /* ahead: the one after it */
  int ahead;               /* read ahead, at off: no task asked for it yet */
  int done;                /* ahead: ended, kept as res->ahead */
  int seq;                 /* at the position, as long as the last one */
  char buf[];
};

static void read_cb (uv_fs_t *req);

/* ---- Buffers ---------------------------------------------------------------- */

/* A read of n bytes on x (a reference), in x's spare buffer if it is large
** enough; NULL when out of memory. */
static Read *read_new (Res *x, size_t n) {
  Read *r = x->spare;
  if (r != NULL && r->cap >= n) x->spare = NULL;
  else if ((r = tide__malloc(sizeof *r + n)) == NULL) return NULL;
  else r->cap = n;
  r->req.data = r;
  r->res = x;
  r->w = NULL;
  r->len = n;
  r->off = -1;
  r->next = NULL;
  r->ahead = r->done = r->seq = 0;
  x->refs++;
  return r;
}

/* Keep r's buffer for the next read while x reads ahead (the larger of
** two), else free it. */
static void read_keep (Res *x, Read *r) {
  Read *drop = r;
  if (!x->noahead && x->ahead != NULL && r->cap <= AHEAD_MAX &&
      (x->spare == NULL || x->spare->cap < r->cap)) {
    drop = x->spare;
    x->spare = r;
  }
  tide__free(drop);
}

/* The pool is done with r: keep or free it, let go of its File. */
static void read_end (Read *r) {
  Res *x = r->res;
  uv_fs_req_cleanup(&r->req);
  read_keep(x, r);
  tide__fsrelease(x);
}

static int read_start (Read *r, uv_loop_t *loop) {
  uv_buf_t b = uv_buf_init(r->buf, (unsigned)r->len);
  return uv_fs_read(loop, &r->req, r->res->fd, &b, 1, r->off, read_cb);
}

/* ---- Reading ahead ---------------------------------------------------------- */

/* Read ahead, after x's last read ahead (or at off if none), until
** AHEAD_DEPTH reads of n bytes are; nothing more if one fails to start. */
static void ahead_fill (Res *x, uv_loop_t *loop, int64_t off, size_t n) {
  Read **p = &x->ahead;
  int depth = 0;
  for (; *p != NULL; p = &(*p)->next, depth++)
    off = (*p)->off + (int64_t)n;
  for (; depth < AHEAD_DEPTH; depth++, off += (int64_t)n) {
    Read *a = read_new(x, n);
    if (a == NULL) return;
    a->off = off;
    a->ahead = 1;
    if (read_start(a, loop) < 0) {
      read_end(a);
      return;
    }
    *p = a;
    p = &a->next;
  }
}

/* After a whole read at the position as long as the last one: read the
** next ones ahead, if x is a regular file whose position is known. */
static void ahead_begin (Res *x, uv_loop_t *loop, size_t n) {
  struct stat st;
  off_t pos;
  if (x->noahead || x->ahead != NULL || x->busy > 0 || n > AHEAD_MAX) return;
  if (fstat(x->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
      (pos = lseek(x->fd, 0, SEEK_CUR)) < 0) {
    x->noahead = 1;
    return;
  }
  ahead_fill(x, loop, pos, n);
}

/* The reads ahead from *p on no longer fit: each is freed once ended, or
** ends stale (its task, if one waits, reads as asked). */
static void ahead_cut (Read **p) {
  Read *a = *p;
  *p = NULL;
  while (a != NULL) {
    Read *next = a->next;
    a->next = NULL;
    if (a->done) tide__free(a);
    else if (a->w == NULL) uv_cancel((uv_req_t *)&a->req);
    a = next;
  }
}

/* Stop reading ahead: drop every read ahead, and the spare buffer. */
static void ahead_drop (Res *x) {
  ahead_cut(&x->ahead);
  tide__free(x->spare);
  x->spare = NULL;
}

/* Where a is in x's reads ahead, or NULL if it was dropped. */
static Read **ahead_find (Res *x, Read *a) {
  Read **p = &x->ahead;
  while (*p != NULL && *p != a) p = &(*p)->next;
  return *p ? p : NULL;
}

/* x's first read ahead, a, is taken: the position moves past it, and one
** more is read ahead. */
static void ahead_take (Res *x, Read *a, uv_loop_t *loop) {
  int64_t end = a->off + (int64_t)a->len;
  x->ahead = a->next;
  a->next = NULL;
  lseek(x->fd, (off_t)end, SEEK_SET);
  ahead_fill(x, loop, end, a->len);
}

/* Does x's first read ahead serve a read of n bytes at the position? */
static int ahead_fits (Res *x, size_t n) {
  Read *a = x->ahead;
  return a->w == NULL && a->len == n && x->busy == 0 &&
         lseek(x->fd, 0, SEEK_CUR) == (off_t)a->off;
}

/* ---- Ending ----------------------------------------------------------------- */

/* Push the result of r. */
static int read_push (lua_State *L) {
  Read *r = lua_touserdata(L, 1);
  ssize_t got = r->req.result;
  if (got < 0) return tide_pushfail(L, (int)got, r->res->name);
  if (got == 0 && r->len > 0) lua_pushnil(L);      /* end of file */
  else lua_pushlstring(L, r->buf, (size_t)got);
  return 1;
}

static void plain_cb (Read *r) {
  Res *x = r->res;
  tide_Wait *w = r->w;
  int whole = r->len > 0 && r->req.result == (ssize_t)r->len;
  if (r->off < 0) {
    x->busy--;
    x->seqlen = whole ? r->len : 0;
  }
  if (w != NULL) {
    tide__poolwait(w, r->req.loop, -1);
    if (whole && r->seq) ahead_begin(x, r->req.loop, r->len);
    tide_wakewith(w, read_push, r);  /* copies while the next is read */
  }
  read_end(r);
}

/* The read ahead a ended stale or short while its task waits: read as
** the task asked instead. */
static void ahead_retry (Res *x, Read *a) {
  uv_loop_t *loop = a->req.loop;
  int err;
  uv_fs_req_cleanup(&a->req);
  a->ahead = 0;
  a->off = -1;
  a->seq = x->seqlen == a->len;
  x->busy++;
  if ((err = read_start(a, loop)) < 0) {
    a->req.result = err;
    plain_cb(a);
  }
}

static void ahead_cb (Read *a) {
  Res *x = a->res;
  tide_Wait *w = a->w;
  Read **p = ahead_find(x, a);
  int fits = p != NULL && a->req.result == (ssize_t)a->len;
  if (w == NULL) {
    if (!fits) {                   /* short, failed or stale: it and those */
      if (p != NULL) {             /* after it go */
        ahead_cut(&a->next);
        *p = NULL;
      }
      read_end(a);
      return;
    }
    uv_fs_req_cleanup(&a->req);    /* kept for a read to take */
    a->done = 1;
    tide__fsrelease(x);
    return;
  }
  if (!fits || x->busy > 0) {      /* its task reads as asked */
    if (p != NULL) ahead_drop(x);
    ahead_retry(x, a);
    return;
  }
  tide__poolwait(w, a->req.loop, -1);
  ahead_take(x, a, a->req.loop);
  tide_wakewith(w, read_push, a);  /* copies while the next are read */
  read_end(a);
}

static void read_cb (uv_fs_t *req) {
  Read *r = req->data;
  if (r->ahead) ahead_cb(r);
  else plain_cb(r);
}

/* A task stopped waiting: a read ahead goes on for the next read; a read
** of its own is cancelled if it has not begun. */
static void read_cancel (tide_Wait *w) {
  Read *r = tide_waitdata(w);
  tide__poolwait(w, r->req.loop, -1);
  r->w = NULL;
  if (!r->ahead) uv_cancel((uv_req_t *)&r->req);
}

/* ---- Reads ------------------------------------------------------------------ */

/* Read n bytes at off (-1: the position) as asked. */
static int read_plain (lua_State *L, Res *x, size_t n, int64_t off) {
  tide_Wait *w = tide_wait(L);
  uv_loop_t *loop = tide__poolloop(L);       /* opened first: it may raise */
  Read *r = read_new(x, n);
  int err;
  if (r == NULL) return luaL_error(L, "not enough memory");
  r->w = w;
  r->off = off;
  if (off < 0) {
    r->seq = x->seqlen == n;
    x->busy++;
  }
  if ((err = read_start(r, loop)) < 0) {
    if (off < 0) x->busy--;
    read_end(r);
    return tide_pushfail(L, err, x->name);
  }
  tide__poolwait(w, loop, 1);
  return tide_awaitk(L, w, read_cancel, r, NULL, 0);
}

/* Take x's read ahead, or wait for it. */
static int read_ahead (lua_State *L, Res *x) {
  tide_Wait *w = tide_wait(L);
  Read *a = x->ahead;
  if (!a->done) {
    a->w = w;
    tide__poolwait(w, a->req.loop, 1);
    return tide_awaitk(L, w, read_cancel, a, NULL, 0);
  }
  lua_pushlstring(L, a->buf, a->len);  /* may raise: a stays ahead */
  ahead_take(x, a, tide__poolloop(L));
  read_keep(x, a);
  return 1;
}

int tide__fsread (lua_State *L, Res *x, size_t n, int64_t off) {
  if (off < 0 && x->ahead != NULL) {
    if (ahead_fits(x, n)) return read_ahead(L, x);
    ahead_drop(x);
  }
  return read_plain(L, x, n, off);
}

/* ---- What else the File does ------------------------------------------------ */

/* The position or the data may change: what was read ahead is stale. */
void tide__fsmoved (Res *x) {
  x->seqlen = 0;
  if (x->ahead != NULL) ahead_drop(x);
}

void tide__fsbusy (Res *x, FsReq *r) {
  tide__fsmoved(x);
  x->busy++;
  r->busy = 1;
}

void tide__fsreadstop (Res *x) {
  x->noahead = 1;
  tide__fsmoved(x);
}
