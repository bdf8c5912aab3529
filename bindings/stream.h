/*
** stream.h: what the files of tide.Stream share, the one stream behind TCP
** connections and Unix sockets: the Stream itself and its sizes. The
** object, its lifetime (shutdown, close, lingering), addresses, options
** and connecting are in stream.c; the read buffer and the read methods in
** stream_read.c; writing and the write queue in stream_write.c; a layer
** (TLS, see tide_int.h) between the socket and the buffers in
** stream_layer.c.
*/
#ifndef TIDE_STREAM_H
#define TIDE_STREAM_H

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

/* The methods and metamethods have the metatable as upvalue 1: a pointer
** comparison instead of the registry lookup of luaL_testudata on every
** call. Called from elsewhere (no such upvalue), it takes the long way. */
static inline Stream *checkstream (lua_State *L, int i) {
  Stream *s = lua_touserdata(L, i);
  if (s != NULL && lua_getmetatable(L, i)) {
    const void *mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    if (mt == lua_topointer(L, lua_upvalueindex(1))) return s;
  }
  return tide__checkudata(L, i, TIDE_STREAM);
}

static inline Stream *checkopen (lua_State *L, int i) {
  Stream *s = checkstream(L, i);
  if (s->o.h == NULL)
    tide__error(L, "%s: attempt to use a closed stream", tide__fname(L));
  return s;
}

static inline int pushclosed (lua_State *L) {
  luaL_pushfail(L);
  lua_pushliteral(L, "stream closed");
  lua_pushliteral(L, "ECANCELED");
  return 3;
}

static inline void read_stop (Stream *s) {
  if (s->reading) uv_read_stop(H(s));
  s->reading = 0;
}

static inline size_t queued (Stream *s) {
  return H(s)->write_queue_size;   /* uv_stream_get_write_queue_size */
}

/* stream_read.c, stream_write.c: their methods, registered with the
** metatable as upvalue (see checkstream) by tide__open_stream */
extern const luaL_Reg tide__streamread_methods[];
extern const luaL_Reg tide__streamwrite_methods[];

/* stream_write.c: send data[0..len) at once as far as the socket takes
** it, the rest copied and queued: 0 or an error */
int tide__streamsend (Stream *s, const char *data, size_t len);

/* stream_layer.c: move the layer's plaintext into the read buffer (see
** there: force, a reader wants more); nread bytes (or the socket's end)
** came into the layer's room; send what the layer has to send (0, or the
** write side's error); write the strings at 2..n through the layer and
** push a failure of err (both: 0 or the count of results pushed) */
void tide__streampump (Stream *s, int force);
void tide__streamlayerin (Stream *s, ssize_t nread);
int tide__streamflush (Stream *s);
int tide__streamlayerwrite (lua_State *L, Stream *s, int n);
int tide__streamlayerfail (lua_State *L, Stream *s, int err);

#endif
