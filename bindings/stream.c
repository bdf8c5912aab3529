/*
** stream.c: tide.Stream, the one stream behind TCP connections and Unix
** sockets. Reads land straight in the stream's buffer (read-ahead stops at
** a high-water mark); the read methods take what they need from it, read()
** all of it in one string. Writes of one or several strings go to the
** kernel at once as one writev and are queued only when the socket is
** full (the strings kept, not copied, for a big rest); a writer waits
** while the queue is over its high-water mark. A layer (TLS, see
** tide_int.h) may sit between the socket and the buffers: the socket's
** bytes go to it, the stream pumps its plaintext into the buffer, and
** writes go through it.
*/
#define _GNU_SOURCE              /* memmem */
#include <stdlib.h>
#include <string.h>

#include "tide_int.h"

#define READ_MIN    (64 * 1024)      /* a read offers at least this room */
#define READ_MAX    (256 * 1024)     /* ... up to this after full reads */
#define READ_HWM    (256 * 1024)     /* read-ahead stops with this much */
#define WRITE_HWM   (256 * 1024)     /* write() waits above this queued */
#define WRITE_LWM   (64 * 1024)      /* ... until the queue is below this */
#define LINE_LIMIT  (64 * 1024)      /* default limit of read_until */
#define WRITE_IOV   16               /* strings handed to one writev */

typedef struct Stream {
  tide_Handle o;           /* o.h: the uv_stream_t */
  Task *reader;            /* the task waiting to read, or NULL */
  Task *writers;           /* tasks waiting for the write queue to shrink */
  char *buf;               /* read buffer: data is buf[off .. off+len) */
  size_t off, len, cap;
  size_t rsize;            /* room the next read asks for: doubles, up to
                              READ_MAX, each time a read fills it */
  int rerr;                /* UV_EOF or a read error: the read side ended */
  int werr;                /* the error of a queued write */
  int reading;
  int nomem;               /* no memory to read into: the reader raises */
  tide_Layer *layer;       /* TLS between the socket and the buffers, or NULL */
} Stream;

#define H(s) ((uv_stream_t *)(s)->o.h)

static void layer_in (Stream *s, ssize_t nread);
static void pump (Stream *s, int force);

/* The methods and metamethods have the metatable as upvalue 1: a pointer
** comparison instead of the registry lookup of luaL_testudata on every
** call. Called from elsewhere (no such upvalue), it takes the long way. */
static Stream *checkstream (lua_State *L, int i) {
  Stream *s = lua_touserdata(L, i);
  if (s != NULL && lua_getmetatable(L, i)) {
    const void *mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    if (mt == lua_topointer(L, lua_upvalueindex(1))) return s;
  }
  return tide__checkudata(L, i, TIDE_STREAM);
}

static Stream *checkopen (lua_State *L, int i) {
  Stream *s = checkstream(L, i);
  if (s->o.h == NULL)
    tide__error(L, "%s: attempt to use a closed stream", tide__fname(L));
  return s;
}

static int pushclosed (lua_State *L) {
  luaL_pushfail(L);
  lua_pushliteral(L, "stream closed");
  lua_pushliteral(L, "ECANCELED");
  return 3;
}

/* ---- Reading ------------------------------------------------------------ */

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

static void read_stop (Stream *s) {
  if (s->reading) uv_read_stop(H(s));
  s->reading = 0;
}

static void read_cb (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  Stream *s = h->data;
  (void)buf;
  if (nread == 0) return;          /* nothing this time (EAGAIN) */
  if (s->layer) layer_in(s, nread);
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
    pump(s, 1);
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

/* ---- Writing ------------------------------------------------------------ */

/* What the socket did not take is queued. A big rest is not copied: the
** strings it lies in are pinned in the registry's pin table until the
** write callback (the strings' memory stays put while they live); a small
** rest is copied into the request, which is cheaper than pinning. */
#define PIN_MIN     (16 * 1024)

static char pinkey;        /* registry[&pinkey]: the pin table */

typedef struct WriteReq {
  uv_write_t req;
  tide_Runtime *rt;
  int ref;                 /* the pinned string or strings in the pin
                              table, or LUA_NOREF: the rest is in data */
  char data[];
} WriteReq;

static size_t queued (Stream *s) {
  return H(s)->write_queue_size;   /* uv_stream_get_write_queue_size */
}

/* Pin the value on top of L (popped) and return its reference. */
static int pin (lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pinkey) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pinkey);
  }
  lua_insert(L, -2);
  return luaL_ref(L, -2);          /* pops the value; the table is left */
}

/* Unpinning sets existing keys only: it allocates nothing, never raises.
** Not while the state closes (rt->L is NULL then): it frees them all. */
static void unpin (tide_Runtime *rt, int ref) {
  lua_State *L = rt->cbL;
  if (rt->L == NULL || !lua_checkstack(L, 2)) return;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pinkey) == LUA_TTABLE)
    luaL_unref(L, -1, ref);
  lua_pop(L, 1);
}

static void write_cb (uv_write_t *req, int status) {
  WriteReq *r = (WriteReq *)req;
  Stream *s = req->handle->data;   /* NULL once the stream was closed */
  if (r->ref != LUA_NOREF) unpin(r->rt, r->ref);
  tide__free(r);
  if (s == NULL) return;
  if (status < 0 && s->werr == 0) s->werr = status;
  if (s->writers && (status < 0 || queued(s) <= WRITE_LWM))
    tide__wakeall(&s->writers);
}

static void write_cancel (tide_Wait *w) {
  Stream *s = tide_waitdata(w);
  tide__waitlist_remove(&s->writers, w);
}

static int write_wait (lua_State *L, Stream *s, lua_KFunction k) {
  tide_Wait *w = tide__waitbegin(s->o.rt, L);
  tide__waitlist_add(&s->writers, w);
  return tide_awaitk(L, w, write_cancel, s, k, (lua_KContext)s);
}

/* Write the nb buffers b, total bytes in all, of the strings at stack
** indices at[]: at once, as far as the socket takes them, and the rest
** queued. 0, or the count of results pushed for a failure. */
static int write_bufs (lua_State *L, Stream *s, uv_buf_t *b, const int *at,
                       int nb, size_t total) {
  size_t done = 0;
  int ref = LUA_NOREF, err, i;
  WriteReq *r;
  if (queued(s) == 0) {
    int n = uv_try_write(H(s), b, (unsigned)nb);
    if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
    if (n < 0) return tide_pushfail(L, n, NULL);
    if ((done = (size_t)n) == total) return 0;
  }
  total -= done;                   /* what is left, from b[0] on */
  for (; done >= b->len; b++, at++, nb--) done -= b->len;
  b->base += done;
  b->len -= done;
  if (total >= PIN_MIN) {
    if (nb == 1) lua_pushvalue(L, at[0]);
    else {
      lua_createtable(L, nb, 0);
      for (i = 0; i < nb; i++) {
        lua_pushvalue(L, at[i]);
        lua_rawseti(L, -2, i + 1);
      }
    }
    ref = pin(L);
    lua_pop(L, 1);                 /* the pin table */
  }
  r = tide__malloc(sizeof *r + (ref == LUA_NOREF ? total : 0));
  if (r == NULL) {
    if (ref != LUA_NOREF) unpin(s->o.rt, ref);
    return tide__nomem(L);
  }
  r->rt = s->o.rt;
  r->ref = ref;
  if (ref == LUA_NOREF) {          /* copy the rest */
    char *p = r->data;
    for (i = 0; i < nb; i++) {
      memcpy(p, b[i].base, b[i].len);
      p += b[i].len;
    }
    b[0].base = r->data;
    b[0].len = total;
    nb = 1;
  }
  if ((err = uv_write(&r->req, H(s), b, (unsigned)nb, write_cb)) < 0) {
    if (ref != LUA_NOREF) unpin(s->o.rt, ref);
    tide__free(r);
    return tide_pushfail(L, err, NULL);
  }
  return 0;
}

/* ---- A layer (TLS) between the socket and the buffers ------------------- */

/* Send data[0..len) (the layer's, valid until its next call) at once as
** far as the socket takes it, the rest copied and queued: 0 or an error. */
static int send_raw (Stream *s, const char *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int n = 0, err;
  WriteReq *r;
  if (queued(s) == 0) {
    n = uv_try_write(H(s), &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
    if (n < 0) return n;
    if ((size_t)n == len) return 0;
  }
  if ((r = tide__malloc(sizeof *r + len - (size_t)n)) == NULL) return UV_ENOMEM;
  r->rt = s->o.rt;
  r->ref = LUA_NOREF;
  memcpy(r->data, data + n, len - (size_t)n);
  b = uv_buf_init(r->data, (unsigned)(len - (size_t)n));
  if ((err = uv_write(&r->req, H(s), &b, 1, write_cb)) < 0) tide__free(r);
  return err;
}

/* Send what the layer has to send; a failure is the write side's. */
static int layer_flush (Stream *s) {
  const char *data;
  size_t n = s->layer->ops->output(s->layer, &data);
  int err = 0;
  if (n > 0 && s->werr == 0 && (err = send_raw(s, data, n)) < 0)
    s->werr = err;
  return s->werr;
}

/* Room for n more bytes at the end of the read buffer (as alloc_cb). */
static int reserve (Stream *s, size_t n) {
  if (s->len == 0) s->off = 0;
  if (s->off > 0 && s->off + s->len + n > s->cap) {
    memmove(s->buf, s->buf + s->off, s->len);
    s->off = 0;
  }
  if (s->len + n > s->cap) {
    size_t ncap = s->cap ? s->cap * 2 : n;
    char *nbuf;
    while (ncap < s->len + n) ncap *= 2;
    if ((nbuf = tide__realloc(s->buf, ncap)) == NULL) return 0;
    s->buf = nbuf;
    s->cap = ncap;
  }
  return 1;
}

/* Let the layer turn its input into plaintext in the read buffer (up to
** the high-water mark, or all it can when force: a reader wants more),
** then send what it has to say (the handshake, alerts). The socket is
** not read while the layer's input is full. */
static void pump (Stream *s, int force) {
  tide_Layer *ly = s->layer;
  int n = 0;
  while (!s->rerr && (force || s->len < READ_HWM)) {
    if (!reserve(s, READ_MIN)) {
      s->nomem = 1;
      break;
    }
    n = ly->ops->read(ly, s->buf + s->off + s->len, s->cap - s->off - s->len);
    if (n <= 0) break;
    s->len += (size_t)n;
  }
  if (n < 0) {
    s->rerr = n;                   /* UV_EOF, an error, TIDE_ELAYER */
    read_stop(s);
  }
  layer_flush(s);
  if (ly->ops->room(ly, 0).len == 0) read_stop(s);
}

/* nread bytes from the socket came into the layer's room, or its end. */
static void layer_in (Stream *s, ssize_t nread) {
  if (nread != UV_ENOBUFS) s->layer->ops->input(s->layer, nread);
  if (nread < 0) read_stop(s);
  pump(s, s->reader != NULL);
}

static int layer_fail (lua_State *L, Stream *s, int err) {
  if (err == TIDE_ELAYER) return s->layer->ops->pushfail(s->layer, L);
  if (err == UV_ENOMEM) return tide__nomem(L);
  return tide_pushfail(L, err, NULL);
}

/* Write the strings at 2..n through the layer, a piece at a time (its
** output stays small); 0, or the count of results pushed for a failure. */
static int layer_write (lua_State *L, Stream *s, int n) {
  int i;
  for (i = 2; i <= n; i++) {
    size_t len;
    const char *data = lua_tolstring(L, i, &len);
    while (len > 0) {
      size_t k = len < READ_MIN ? len : READ_MIN;
      int err = s->layer->ops->write(s->layer, data, k);
      if (err == 0) err = layer_flush(s);
      if (err < 0) return layer_fail(L, s, err);
      data += k;
      len -= k;
    }
  }
  return 0;
}

/* Hand the strings at 2.. to the socket, WRITE_IOV at a time, each lot
** in one writev, without joining them first. */
static int write_k (lua_State *L, int status, lua_KContext ctx) {
  Stream *s = (Stream *)ctx;       /* checked, at index 1 */
  int n = lua_gettop(L), i = 2, r;
  (void)status;
  if (s->o.h == NULL) return pushclosed(L);
  if (s->werr) return tide_pushfail(L, s->werr, NULL);
  if (queued(s) > WRITE_HWM) return write_wait(L, s, write_k);
  if (s->layer && (r = layer_write(L, s, n)) > 0) return r;
  while (!s->layer && i <= n) {
    uv_buf_t b[WRITE_IOV];
    int at[WRITE_IOV], nb = 0;
    size_t total = 0;
    for (; i <= n && nb < WRITE_IOV; i++) {
      size_t len;
      const char *data = lua_tolstring(L, i, &len);
      if (len == 0) continue;
      b[nb].base = (char *)data;
      b[nb].len = len;
      at[nb++] = i;
      total += len;
    }
    if (nb > 0 && (r = write_bufs(L, s, b, at, nb, total)) > 0) return r;
  }
  lua_settop(L, 1);
  return 1;                        /* the stream, as file:write returns */
}

/* s:write(data, ...) -> s; waits while much is still queued. All of the
** data is taken or none: a write cancelled while waiting wrote nothing. */
static int stream_write (lua_State *L) {
  int i, n = lua_gettop(L);
  Stream *s = checkopen(L, 1);
  for (i = 2; i <= n; i++) tide__checkstring(L, i);
  return write_k(L, LUA_OK, (lua_KContext)s);
}

static int drain_k (lua_State *L, int status, lua_KContext ctx) {
  Stream *s = (Stream *)ctx;       /* checked, at index 1 */
  (void)status;
  if (s->o.h == NULL) return pushclosed(L);
  if (s->werr) return tide_pushfail(L, s->werr, NULL);
  if (queued(s) > 0) return write_wait(L, s, drain_k);
  lua_pushboolean(L, 1);
  return 1;
}

/* s:drain() -> true once everything written has been handed to the OS. */
static int stream_drain (lua_State *L) {
  Stream *s = checkopen(L, 1);
  lua_settop(L, 1);
  return drain_k(L, LUA_OK, (lua_KContext)s);
}

/* ---- Shutdown and close --------------------------------------------------- */

typedef struct ShutReq {
  uv_shutdown_t req;
  tide_Wait *w;            /* NULL once the task stopped waiting */
} ShutReq;

static int shutdown_push (lua_State *L) {
  int status = *(int *)lua_touserdata(L, 1);
  if (status < 0) return tide_pushfail(L, status, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static void shutdown_cb (uv_shutdown_t *req, int status) {
  ShutReq *r = (ShutReq *)req;
  if (r->w) tide_wakewith(r->w, shutdown_push, &status);
  tide__free(r);
}

static void shutdown_cancel (tide_Wait *w) {
  ((ShutReq *)tide_waitdata(w))->w = NULL;
}

/* s:shutdown() -> true once the queued data is sent and the write side
** closed (the peer reads EOF); reading goes on. */
static int stream_shutdown (lua_State *L) {
  Stream *s = checkopen(L, 1);
  tide_Wait *w = tide_wait(L);
  ShutReq *r;
  int err;
  if (s->layer && ((err = s->layer->ops->shutdown(s->layer)) < 0 ||
                   (err = layer_flush(s)) < 0))   /* close_notify first */
    return layer_fail(L, s, err);
  if ((r = tide__malloc(sizeof *r)) == NULL) return tide__nomem(L);
  r->w = w;
  if ((err = uv_shutdown(&r->req, H(s), shutdown_cb)) < 0) {
    tide__free(r);
    return tide_pushfail(L, err, NULL);
  }
  return tide_await(L, w, shutdown_cancel, r);
}

static void stream_onclose (tide_Handle *o) {
  Stream *s = (Stream *)o;
  s->reading = 0;
  if (s->reader) {
    Task *t = s->reader;
    s->reader = NULL;
    tide_wake(&t->w, 0);           /* it sees the stream closed */
  }
  tide__wakeall(&s->writers);
  if (s->layer) {
    s->layer->ops->free(s->layer);
    s->layer = NULL;
  }
}

/* A stream closed with writes still queued lingers: its handle passes to
** a Linger, which shuts the write side down once the queue is sent (the
** peer reads all of it, then EOF) and then closes the handle. The Linger
** stays in the runtime's handle list, so tide_close ends it in any case. */
typedef struct Linger {
  tide_Handle o;
  uv_shutdown_t req;
} Linger;

static void linger_done (uv_shutdown_t *req, int status) {
  Linger *l = req->data;
  (void)status;                    /* sent, failed or cancelled: done */
  tide__handleclose(&l->o);
  tide__free(l);
}

/* Close s for its users now; its queued writes still go out. */
static void closestream (Stream *s) {
  Linger *l;
  if (s->layer && s->o.h != NULL && !s->o.rt->closing && !s->werr &&
      s->layer->ops->shutdown(s->layer) == 0)
    layer_flush(s);                /* close_notify, as far as it goes */
  if (s->o.h == NULL || s->o.rt->closing || s->werr || queued(s) == 0 ||
      (l = tide__malloc(sizeof *l)) == NULL) {
    tide__handleclose(&s->o);
    return;
  }
  read_stop(s);
  tide__handlemove(&s->o, &l->o);
  l->req.data = l;
  if (uv_shutdown(&l->req, (uv_stream_t *)l->o.h, linger_done) < 0) {
    tide__handleclose(&l->o);      /* already shut down: close now */
    tide__free(l);
  }
}

/* s:close(): tasks waiting on the stream get nil, "stream closed"; data
** already written is still sent, then the connection closes. */
static int stream_close (lua_State *L) {
  closestream(checkstream(L, 1));
  return 0;
}

static int stream_gc (lua_State *L) {
  Stream *s = checkstream(L, 1);
  closestream(s);
  tide__free(s->buf);
  s->buf = NULL;
  s->len = s->cap = s->off = 0;
  return 0;
}

static int stream_tostring (lua_State *L) {
  Stream *s = checkstream(L, 1);
  if (s->o.h == NULL) lua_pushliteral(L, "tide.Stream (closed)");
  else lua_pushfstring(L, "tide.Stream (%s): %p",
                       uv_handle_type_name(s->o.h->type), (void *)s);
  return 1;
}

/* ---- Addresses and options ------------------------------------------------ */

static int stream_name (lua_State *L, int peer) {
  Stream *s = checkopen(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss, err;
  if (s->o.h->type == UV_TCP) {
    uv_tcp_t *t = (uv_tcp_t *)s->o.h;
    err = peer ? uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len)
               : uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len);
    if (err < 0) return tide_pushfail(L, err, NULL);
    return tide__pushaddr(L, (struct sockaddr *)&ss);
  }
  if (s->o.h->type == UV_NAMED_PIPE) {
    char path[1024];
    size_t n = sizeof path;
    err = peer ? uv_pipe_getpeername((uv_pipe_t *)s->o.h, path, &n)
               : uv_pipe_getsockname((uv_pipe_t *)s->o.h, path, &n);
    if (err < 0) return tide_pushfail(L, err, NULL);
    lua_pushlstring(L, path, n);
    return 1;
  }
  return tide_pushfail(L, UV_ENOTSUP, NULL);
}

/* s:tlsinfo() -> what TLS agreed on (see tls.c), or nil without TLS */
static int stream_tlsinfo (lua_State *L) {
  Stream *s = checkopen(L, 1);
  if (s->layer == NULL) {
    luaL_pushfail(L);
    return 1;
  }
  return s->layer->ops->info(s->layer, L);
}

/* s:getpeername() -> host, port (TCP) or path (Unix socket) */
static int stream_getpeername (lua_State *L) { return stream_name(L, 1); }
static int stream_getsockname (lua_State *L) { return stream_name(L, 0); }

/* s:setoption(name, value): "nodelay" (bool), "keepalive" (bool or
** seconds), "sndbuf" / "rcvbuf" (bytes) -> true | nil, msg, code */
static int stream_setoption (lua_State *L) {
  static const char *const names[] = {
    "nodelay", "keepalive", "sndbuf", "rcvbuf", NULL
  };
  Stream *s = checkopen(L, 1);
  int opt = tide__checkoption(L, 2, NULL, names), err, v;
  int istcp = s->o.h->type == UV_TCP;
  switch (opt) {
    case 0:
      tide__argcheck(L, istcp, 2, "a TCP option");
      err = uv_tcp_nodelay((uv_tcp_t *)s->o.h, lua_toboolean(L, 3));
      break;
    case 1:
      tide__argcheck(L, istcp, 2, "a TCP option");
      v = lua_isboolean(L, 3) || lua_isnoneornil(L, 3)
          ? 60 : (int)tide__checkinteger(L, 3);
      err = uv_tcp_keepalive((uv_tcp_t *)s->o.h,
                             lua_toboolean(L, 3), (unsigned)v);
      break;
    default:
      v = (int)tide__checkinteger(L, 3);
      tide__argcheck(L, v > 0, 3, "positive size expected");
      err = opt == 2 ? uv_send_buffer_size(s->o.h, &v)
                     : uv_recv_buffer_size(s->o.h, &v);
  }
  if (err < 0) return tide_pushfail(L, err, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- Creating streams (for tcp.c, pipe.c, server.c) ----------------------- */

/* Push a new Stream whose uv handle (size bytes) the caller initialises. */
uv_stream_t *tide__newstream (lua_State *L, tide_Runtime *rt, size_t size) {
  Stream *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->rsize = READ_MIN;
  luaL_setmetatable(L, TIDE_STREAM);
  return tide__handleinit(L, rt, &s->o, size, stream_onclose);
}

/* The uv stream of the Stream at index i. */
uv_stream_t *tide__tostream (lua_State *L, int i) {
  return H(checkstream(L, i));
}

/* The Stream at index i is done for (its handle never opened): close it. */
void tide__streamfail (lua_State *L, int i) {
  tide__handleclose(&checkstream(L, i)->o);
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

/* ---- Layers (for tls.c) ------------------------------------------------------ */

/* Put ly under the Stream at i: see tide_int.h. ly is the stream's from
** now, or freed. */
const char *tide__streamlayer (lua_State *L, int i, tide_Layer *ly) {
  Stream *s = checkstream(L, i);
  const char *why = s->o.h == NULL ? "attempt to use a closed stream"
                  : s->reader != NULL ? "a task is reading the stream"
                  : s->layer != NULL ? "the stream is already TLS" : NULL;
  if (why != NULL) {
    ly->ops->free(ly);
    return why;
  }
  if (s->len > 0) {                /* read ahead: the layer's first input */
    uv_buf_t b = ly->ops->room(ly, s->len);
    if (b.len < s->len) {
      ly->ops->free(ly);
      tide__nomem(L);
    }
    memcpy(b.base, s->buf + s->off, s->len);
    ly->ops->input(ly, (ssize_t)s->len);
    s->off = s->len = 0;
  }
  if (s->rerr) {                   /* the socket's end: the layer's now */
    ly->ops->input(ly, s->rerr);
    s->rerr = 0;
  }
  s->layer = ly;
  pump(s, 0);                      /* a client says hello */
  return NULL;
}

tide_Layer *tide__getlayer (lua_State *L, int i) {
  return checkstream(L, i)->layer;
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

/* ---- Connecting (for tcp.c and pipe.c) ----------------------------------- */

typedef struct ConnReq {
  uv_connect_t req;
  tide_Wait *w;            /* NULL until awaited, or once the task stopped */
  tide_Handle *o;          /* the stream being connected */
} ConnReq;

/* The request to start connecting the new Stream on top of L with; its
** callback is tide__connected. */
uv_connect_t *tide__connreq (lua_State *L) {
  ConnReq *r = tide__malloc(sizeof *r);
  if (r == NULL) {
    tide__streamfail(L, -1);
    tide__nomem(L);
  }
  r->w = NULL;
  r->o = &checkstream(L, -1)->o;
  return &r->req;
}

void tide__connected (uv_connect_t *req, int status) {
  ConnReq *r = (ConnReq *)req;
  if (r->w) {
    lua_pushinteger(tide_thread(r->w), status);
    tide_wake(r->w, 1);
  }
  tide__free(r);
}

static void connect_cancel (tide_Wait *w) {
  ConnReq *r = tide_waitdata(w);
  r->w = NULL;
  tide__handleclose(r->o);         /* tide__connected runs with ECANCELED */
}

static int connect_k (lua_State *L, int status, lua_KContext ctx) {
  int err = (int)lua_tointeger(L, -1);
  (void)status; (void)ctx;
  lua_pop(L, 1);
  if (err < 0) {
    tide__streamfail(L, -1);
    return tide_pushfail(L, err, lua_tostring(L, 1));
  }
  return 1;                        /* the stream */
}

/* Wait for the connect of req (err: the error starting it, or 0); the
** stream, or nil, msg (naming argument 1), code. */
int tide__connwait (lua_State *L, uv_connect_t *req, int err) {
  ConnReq *r = (ConnReq *)req;
  if (err < 0) {
    tide__free(r);
    tide__streamfail(L, -1);
    return tide_pushfail(L, err, lua_tostring(L, 1));
  }
  r->w = tide_wait(L);
  return tide_awaitk(L, r->w, connect_cancel, r, connect_k, 0);
}


static const luaL_Reg stream_methods[] = {
  {"read", stream_read},
  {"read_exactly", stream_read_exactly},
  {"read_until", stream_read_until},
  {"lines", stream_lines},
  {"write", stream_write},
  {"drain", stream_drain},
  {"shutdown", stream_shutdown},
  {"close", stream_close},
  {"getpeername", stream_getpeername},
  {"getsockname", stream_getsockname},
  {"setoption", stream_setoption},
  {"tlsinfo", stream_tlsinfo},
  {NULL, NULL}
};

static const luaL_Reg stream_meta[] = {
  {"__gc", stream_gc},
  {"__close", stream_close},
  {"__tostring", stream_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

int tide__open_stream (lua_State *L) {
  /* filled by every open: a failed one may have left it half done */
  luaL_newmetatable(L, TIDE_STREAM);
  lua_pushvalue(L, -1);            /* upvalue 1 of each: see checkstream */
  luaL_setfuncs(L, stream_meta, 1);
  luaL_newlibtable(L, stream_methods);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, stream_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  return 0;
}
