/*
** stream_write.c: the write side of tide.Stream. Writes of one or several
** strings go to the kernel at once as one writev and are queued only when
** the socket is full (the strings kept, not copied, for a big rest); a
** writer waits while the queue is over its high-water mark.
*/
#include <stdlib.h>
#include <string.h>

#include "stream.h"

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

/* Send data[0..len) (the layer's, valid until its next call) at once as
** far as the socket takes it, the rest copied and queued: 0 or an error. */
int tide__streamsend (Stream *s, const char *data, size_t len) {
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

/* Hand the strings at 2.. to the socket, WRITE_IOV at a time, each lot
** in one writev, without joining them first. */
static int write_k (lua_State *L, int status, lua_KContext ctx) {
  Stream *s = (Stream *)ctx;       /* checked, at index 1 */
  int n = lua_gettop(L), i = 2, r;
  (void)status;
  if (s->o.h == NULL) return pushclosed(L);
  if (s->werr) return tide_pushfail(L, s->werr, NULL);
  if (queued(s) > WRITE_HWM) return write_wait(L, s, write_k);
  if (s->layer && (r = tide__streamlayerwrite(L, s, n)) > 0) return r;
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


const luaL_Reg tide__streamwrite_methods[] = {
  {"write", stream_write},
  {"drain", stream_drain},
  {NULL, NULL}
};
