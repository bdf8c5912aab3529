/*
** stream_read.c: the read side of tide.Stream. Reads land straight in the
** stream's buffer (read-ahead stops at a high-water mark); the read
** methods take what they need from it, read() all of it in one string.
*/
#define _GNU_SOURCE              /* memmem */
#include <stdlib.h>
#include <string.h>

#include "stream.h"

/* Room for the next read: rsize bytes (or what is left below the
** high-water mark, at least READ_MIN), after the data. A stream that keeps
** filling its reads gets bigger ones, so bulk data comes in fewer system
** calls (and leaves in fewer, when read() hands all of it on). */
static void alloc_cb (uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  Stream *s = h->data;
  size_t want = s->rsize;
  (void)suggested;
  if (s->layer) {                  /* the layer's input takes the bytes */
    *buf = s->layer->ops->room(s->layer, 0);
    return;
  }
  if (s->len + want > READ_HWM)    /* not much past the high-water mark */
    want = s->len + READ_MIN > READ_HWM ? READ_MIN : READ_HWM - s->len;
  if (s->len == 0) s->off = 0;
  if (s->off > 0 && s->off + s->len + want > s->cap) {
    memmove(s->buf, s->buf + s->off, s->len);   /* reuse the front */
    s->off = 0;
  }
  if (s->len + want > s->cap) {
    size_t ncap = s->cap ? s->cap * 2 : READ_MIN;
    char *nbuf;
    while (ncap < s->len + want) ncap *= 2;
    nbuf = tide__realloc(s->buf, ncap);
    if (nbuf == NULL) {            /* libuv reports UV_ENOBUFS */
      *buf = uv_buf_init(NULL, 0);
      return;
    }
    s->buf = nbuf;
    s->cap = ncap;
  }
  buf->base = s->buf + s->off + s->len;
  buf->len = want;
}

/* Only a task waiting to read keeps the loop alive: the read-ahead that
** goes on after it does not. */
static void hold (Stream *s, Task *reader) {
  s->reader = reader;
  if (s->o.h == NULL) return;
  if (reader) uv_ref(s->o.h);
  else uv_unref(s->o.h);
}

static void read_cb (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  Stream *s = h->data;
  (void)buf;
  if (nread == 0) return;          /* nothing this time (EAGAIN) */
  if (s->layer) tide__streamlayerin(s, nread);
  else if (nread > 0) {
    s->len += (size_t)nread;
    if ((size_t)nread == s->rsize && s->rsize < READ_MAX)
      s->rsize *= 2;               /* more is likely waiting: read more */
  }
  else if (nread == UV_ENOBUFS) {  /* alloc_cb had no memory: the data */
    s->nomem = 1;                  /* stays in the socket, for a later */
    read_stop(s);                  /* read */
  }
  else {
    s->rerr = (int)nread;          /* UV_EOF or an error */
    read_stop(s);
  }
  if (s->len >= READ_HWM) read_stop(s);
  if (s->reader) {
    Task *t = s->reader;
    hold(s, NULL);
    tide_wake(&t->w, 0);
  }
}

static void read_start (Stream *s) {
  int err;
  if (s->reading || s->rerr) return;
  err = uv_read_start(H(s), alloc_cb, read_cb);
  if (err < 0) s->rerr = err;
  else s->reading = 1;
}

/* Push k bytes from the front of the buffer and drop them from it (which
** is NULL until something arrived: no pointer arithmetic on it then). */
static void take (lua_State *L, Stream *s, size_t k) {
  lua_pushlstring(L, k > 0 ? s->buf + s->off : "", k);
  s->off += k;
  s->len -= k;
  if (s->len == 0) s->off = 0;
}

/* The read side has ended: nil at the end of the stream, else the error. */
static int pushend (lua_State *L, Stream *s, int eofmsg) {
  if (s->rerr == TIDE_ELAYER && s->layer)
    return s->layer->ops->pushfail(s->layer, L);
  if (s->rerr != UV_EOF) return tide_pushfail(L, s->rerr, NULL);
  luaL_pushfail(L);
  if (!eofmsg) return 1;
  lua_pushliteral(L, "unexpected end of stream");
  lua_pushliteral(L, "EOF");
  return 3;
}

enum { R_SOME, R_EXACT, R_UNTIL, R_LINE, R_READY };

typedef struct ReadArgs {
  int mode;
  size_t n;                /* R_SOME: at most (SIZE_MAX: all there is);
                              R_EXACT: exactly; else the limit */
  const char *sep;
  size_t seplen;
} ReadArgs;

/* Push what the read asks for if the buffer holds it (or the read side has
** ended) and return the count of results; -1 when it must wait. */
static int read_try (lua_State *L, Stream *s, const ReadArgs *a) {
  const char *data = s->buf ? s->buf + s->off : NULL, *p;
  switch (a->mode) {
    case R_SOME:
      if (s->len > 0) {
        take(L, s, a->n < s->len ? a->n : s->len);
        return 1;
      }
      return s->rerr ? pushend(L, s, 0) : -1;
    case R_EXACT:
      if (s->len >= a->n) {
        take(L, s, a->n);
        return 1;
      }
      return s->rerr ? pushend(L, s, 1) : -1;
    case R_READY:                  /* the layer's handshake is done */
      if (s->layer == NULL || s->layer->ops->ready(s->layer)) {
        lua_pushboolean(L, 1);
        return 1;
      }
      return s->rerr ? pushend(L, s, 1) : -1;
    default:                       /* R_UNTIL, R_LINE */
      p = s->len >= a->seplen ? memmem(data, s->len, a->sep, a->seplen) : NULL;
      if (p != NULL && (size_t)(p - data) + a->seplen <= a->n) {
        size_t k = (size_t)(p - data);
        if (a->mode == R_LINE) {
          take(L, s, k);
          s->off += a->seplen;     /* drop the separator */
          s->len -= a->seplen;
          if (s->len == 0) s->off = 0;
        }
        else take(L, s, k + a->seplen);
        return 1;
      }
      if (s->len >= a->n) {
        luaL_pushfail(L);
        lua_pushliteral(L, "line too long");
        lua_pushliteral(L, "E2BIG");
        return 3;
      }
      if (!s->rerr) return -1;
      if (a->mode == R_LINE && s->len > 0 && s->rerr == UV_EOF) {
        take(L, s, s->len);        /* the last line, without separator */
        return 1;
      }
      return pushend(L, s, a->mode == R_UNTIL && s->len > 0);
  }
}

static void read_cancel (tide_Wait *w) {
  hold(tide_waitdata(w), NULL);
}

/* Read per a, waiting for data as needed; k re-enters after each wake,
** with s as its context (the stream stays at index 1 of the stack). */
static int read_do (lua_State *L, Stream *s, const ReadArgs *a,
                    lua_KFunction k) {
  tide_Wait *w;
  int r;
  if (s->o.h == NULL) return pushclosed(L);
  if ((r = read_try(L, s, a)) >= 0) return r;
  if (s->layer) {                  /* what the layer holds may do */
    tide__streampump(s, 1);
    if ((r = read_try(L, s, a)) >= 0) return r;
  }
  if (s->nomem) {
    s->nomem = 0;
    return tide__nomem(L);
  }
  if (s->reader != NULL)
    return tide__error(L, "%s: another task is already reading this stream",
                       tide__fname(L));
  w = tide__waitbegin(s->o.rt, L);
  read_start(s);
  if (!s->reading && (r = read_try(L, s, a)) >= 0) return r;
  hold(s, tide__task(w));
  return tide_awaitk(L, w, read_cancel, s, k, (lua_KContext)s);
}

/* Read the arguments of a read method from the stack. */
static void read_args (lua_State *L, int mode, ReadArgs *a) {
  lua_Integer n;
  a->mode = mode;
  a->sep = NULL;
  a->seplen = 0;
  switch (mode) {
    case R_SOME:
      if (lua_isnoneornil(L, 2)) {
        a->n = SIZE_MAX;
        return;
      }
      n = tide__checkinteger(L, 2);
      tide__argcheck(L, n > 0, 2, "positive size expected");
      break;
    case R_EXACT:
      n = tide__checkinteger(L, 2);
      tide__argcheck(L, n >= 0, 2, "non-negative size expected");
      break;
    default:
      a->sep = tide__checklstring(L, 2, &a->seplen);
      tide__argcheck(L, a->seplen > 0, 2, "empty separator");
      n = tide__optinteger(L, 3, LINE_LIMIT);
      tide__argcheck(L, n > 0, 3, "positive limit expected");
  }
  a->n = (size_t)n;
}

/* The continuations of the read methods; ctx is the stream, checked. */
static int read_some_k (lua_State *L, int status, lua_KContext ctx) {
  ReadArgs a;
  (void)status;
  read_args(L, R_SOME, &a);
  return read_do(L, (Stream *)ctx, &a, read_some_k);
}

static int read_exactly_k (lua_State *L, int status, lua_KContext ctx) {
  ReadArgs a;
  (void)status;
  read_args(L, R_EXACT, &a);
  return read_do(L, (Stream *)ctx, &a, read_exactly_k);
}

static int read_until_k (lua_State *L, int status, lua_KContext ctx) {
  ReadArgs a;
  (void)status;
  read_args(L, R_UNTIL, &a);
  return read_do(L, (Stream *)ctx, &a, read_until_k);
}

/* s:read([n]) -> what is there (at least 1 byte; at most n), nil at EOF. */
static int stream_read (lua_State *L) {
  return read_some_k(L, LUA_OK, (lua_KContext)checkopen(L, 1));
}

/* s:read_exactly(n) -> n bytes; nil, msg, "EOF" if the stream ends first
** (the bytes read stay in the buffer). */
static int stream_read_exactly (lua_State *L) {
  return read_exactly_k(L, LUA_OK, (lua_KContext)checkopen(L, 1));
}

/* s:read_until(sep [, max]) -> data up to and including sep. */
static int stream_read_until (lua_State *L) {
  return read_until_k(L, LUA_OK, (lua_KContext)checkopen(L, 1));
}

/* The iterator of s:lines(). */
static int lines_k (lua_State *L, int status, lua_KContext ctx) {
  Stream *s = lua_touserdata(L, lua_upvalueindex(1));
  ReadArgs a = { R_LINE, LINE_LIMIT, "\n", 1 };
  int r;
  (void)status; (void)ctx;
  lua_settop(L, 0);
  r = read_do(L, s, &a, lines_k);
  if (r == 3) return luaL_error(L, "%s", lua_tostring(L, -2));
  return r;
}

static int lines_iter (lua_State *L) {
  return lines_k(L, LUA_OK, 0);
}

/* s:lines() -> an iterator over the lines, without "\n"; the last line
** may lack it. Read errors (and a line over 64 KiB) raise. */
static int stream_lines (lua_State *L) {
  checkopen(L, 1);
  lua_settop(L, 1);
  lua_pushcclosure(L, lines_iter, 1);
  return 1;
}

/* ---- Handing the read side on ---------------------------------------------- */

/* For process_stdio.c (a child's stdin) and whatever else takes the fd:
** stop the read-ahead, and count or move out what it read; see tide_int.h. */
const char *tide__streamtake (lua_State *L, int i, char **buf, size_t *len,
                              int *ended) {
  Stream *s = checkstream(L, i);
  if (buf != NULL) *buf = NULL;
  *len = 0;
  *ended = 0;
  if (s->o.h == NULL) return "closed stream";
  if (s->reader != NULL) return "a task is reading the stream";
  if (s->layer != NULL) return "a TLS stream";
  read_stop(s);                    /* what comes next is the taker's */
  *len = s->len;
  *ended = s->rerr != 0;
  if (buf != NULL && s->len > 0) {
    if (s->off > 0) memmove(s->buf, s->buf + s->off, s->len);
    *buf = s->buf;
    s->buf = NULL;
    s->off = s->len = s->cap = 0;
  }
  return NULL;
}

/* The continuation of tide__streamready; ctx is the stream, checked. */
static int ready_k (lua_State *L, int status, lua_KContext ctx) {
  ReadArgs a = { R_READY, 0, NULL, 0 };
  (void)status;
  return read_do(L, (Stream *)ctx, &a, ready_k);
}

/* (stream) -> true once its layer is ready | nil, msg, code */
int tide__streamready (lua_State *L) {
  Stream *s = checkopen(L, 1);
  lua_settop(L, 1);
  return ready_k(L, LUA_OK, (lua_KContext)s);
}

const luaL_Reg tide__streamread_methods[] = {
  {"read", stream_read},
  {"read_exactly", stream_read_exactly},
  {"read_until", stream_read_until},
  {"lines", stream_lines},
  {NULL, NULL}
};
