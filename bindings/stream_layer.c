/*
** stream_layer.c: a layer (TLS, see tide_int.h) between a Stream's socket
** and its buffers: the socket's bytes go to it, the stream pumps its
** plaintext into the read buffer, and writes go through it.
*/
#include <stdlib.h>
#include <string.h>

#include "stream.h"

/* Send what the layer has to send; a failure is the write side's. */
int tide__streamflush (Stream *s) {
  const char *data;
  size_t n = s->layer->ops->output(s->layer, &data);
  int err = 0;
  if (n > 0 && s->werr == 0 && (err = tide__streamsend(s, data, n)) < 0)
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
void tide__streampump (Stream *s, int force) {
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
  tide__streamflush(s);
  if (ly->ops->room(ly, 0).len == 0) read_stop(s);
}

/* nread bytes from the socket came into the layer's room, or its end. */
void tide__streamlayerin (Stream *s, ssize_t nread) {
  if (nread != UV_ENOBUFS) s->layer->ops->input(s->layer, nread);
  if (nread < 0) read_stop(s);
  tide__streampump(s, s->reader != NULL);
}

int tide__streamlayerfail (lua_State *L, Stream *s, int err) {
  if (err == TIDE_ELAYER) return s->layer->ops->pushfail(s->layer, L);
  if (err == UV_ENOMEM) return tide__nomem(L);
  return tide_pushfail(L, err, NULL);
}

/* Write the strings at 2..n through the layer, a piece at a time (its
** output stays small); 0, or the count of results pushed for a failure. */
int tide__streamlayerwrite (lua_State *L, Stream *s, int n) {
  int i;
  for (i = 2; i <= n; i++) {
    size_t len;
    const char *data = lua_tolstring(L, i, &len);
    while (len > 0) {
      size_t k = len < READ_MIN ? len : READ_MIN;
      int err = s->layer->ops->write(s->layer, data, k);
      if (err == 0) err = tide__streamflush(s);
      if (err < 0) return tide__streamlayerfail(L, s, err);
      data += k;
      len -= k;
    }
  }
  return 0;
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
  tide__streampump(s, 0);          /* a client says hello */
  return NULL;
}

tide_Layer *tide__getlayer (lua_State *L, int i) {
  return checkstream(L, i)->layer;
}

