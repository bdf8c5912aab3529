/*
** udp.c: tide.udp: datagram sockets on numeric addresses. bind gives a
** Socket with send, recv, connect (a default peer), broadcast and multicast
** options. Host names are resolved in runtime/lua/net.lua.
*/
#include <stdlib.h>
#include <string.h>

#include "tide_int.h"

#define TIDE_UDP "tide.UdpSocket"
#define DGRAM_MAX (64 * 1024)

typedef struct Socket {
  tide_Handle o;           /* o.h: the uv_udp_t */
  Task *reader;            /* the task waiting in recv, or NULL */
  char *buf;               /* where datagrams land, DGRAM_MAX bytes */
  int connected;
} Socket;

#define U(s) ((uv_udp_t *)(s)->o.h)

static Socket *checksocket (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_UDP);
}

static Socket *checkopen (lua_State *L, int i) {
  Socket *s = checksocket(L, i);
  if (s->o.h == NULL)
    tide__error(L, "%s: attempt to use a closed socket", tide__fname(L));
  return s;
}

static int pushok (lua_State *L, int err) {
  if (err < 0) return tide_pushfail(L, err, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* Read an (ip, port) pair at i, i+1 into ss; raises on a bad address. */
static void checkaddr (lua_State *L, int i, struct sockaddr_storage *ss) {
  const char *ip = tide__checkstring(L, i);
  if (tide__toaddr(ip, tide__checkport(L, i + 1), ss) < 0)
    tide__argerror(L, i, "numeric IPv4 or IPv6 address expected");
}

/* ---- Receiving ------------------------------------------------------------ */

static void alloc_cb (uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  Socket *s = h->data;
  (void)suggested;
  *buf = uv_buf_init(s->buf, DGRAM_MAX);
}

typedef struct Datagram {
  ssize_t nread;
  const uv_buf_t *buf;
  const struct sockaddr *addr;
} Datagram;

static int datagram_push (lua_State *L) {
  const Datagram *d = lua_touserdata(L, 1);
  if (d->nread < 0) return tide_pushfail(L, (int)d->nread, NULL);
  lua_pushlstring(L, d->buf->base, (size_t)d->nread);
  return 1 + tide__pushaddr(L, d->addr);
}

static void recv_cb (uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                     const struct sockaddr *addr, unsigned flags) {
  Socket *s = h->data;
  Task *t = s->reader;
  Datagram d = { nread, buf, addr };
  (void)flags;
  if (t == NULL || (nread == 0 && addr == NULL)) return;  /* nothing yet */
  s->reader = NULL;
  uv_udp_recv_stop(h);
  tide_wakewith(&t->w, datagram_push, &d);
}

static void recv_cancel (tide_Wait *w) {
  Socket *s = tide_waitdata(w);
  s->reader = NULL;
  if (s->o.h) uv_udp_recv_stop(U(s));
}

/* sock:recv() -> data, host, port | nil, msg, code */
static int udp_recv (lua_State *L) {
  Socket *s = checkopen(L, 1);
  tide_Wait *w;
  int err;
  if (s->reader != NULL)
    return tide__error(L, "%s: another task is already receiving on this "
                          "socket", tide__fname(L));
  w = tide_wait(L);
  if (s->buf == NULL && (s->buf = tide__malloc(DGRAM_MAX)) == NULL)
    return luaL_error(L, "not enough memory");
  if ((err = uv_udp_recv_start(U(s), alloc_cb, recv_cb)) < 0)
    return tide_pushfail(L, err, NULL);
  s->reader = tide__task(w);
  lua_settop(L, 0);
  return tide_await(L, w, recv_cancel, s);
}

/* ---- Sending -------------------------------------------------------------- */

typedef struct SendReq {
  uv_udp_send_t req;
  tide_Wait *w;            /* NULL once the task stopped waiting */
  char data[];
} SendReq;

static int sent_push (lua_State *L) {
  return pushok(L, *(int *)lua_touserdata(L, 1));
}

static void send_cb (uv_udp_send_t *req, int status) {
  SendReq *r = (SendReq *)req;
  if (r->w) tide_wakewith(r->w, sent_push, &status);
  tide__free(r);
}

static void send_cancel (tide_Wait *w) {
  ((SendReq *)tide_waitdata(w))->w = NULL;   /* the datagram still goes */
}

/* sock:_send(data [, ip, port]) -> true | nil, msg, code. Sent at once if
** the socket takes it, else queued until it does. */
static int udp_send (lua_State *L) {
  Socket *s = checkopen(L, 1);
  size_t len;
  const char *data = tide__checklstring(L, 2, &len);
  struct sockaddr_storage ss;
  const struct sockaddr *to = NULL;
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  tide_Wait *w;
  SendReq *r;
  int err;
  if (!lua_isnoneornil(L, 3)) {
    checkaddr(L, 3, &ss);
    to = (const struct sockaddr *)&ss;
  }
  else if (!s->connected)
    return tide__argerror(L, 3,
                          "address expected (the socket is not connected)");
  tide__argcheck(L, len <= DGRAM_MAX, 2, "datagram too long");
  w = tide_wait(L);
  err = uv_udp_try_send(U(s), &b, 1, to);
  if (err >= 0) return pushok(L, 0);
  if (err != UV_EAGAIN) return tide_pushfail(L, err, NULL);
  if ((r = tide__malloc(sizeof *r + len)) == NULL)
    return luaL_error(L, "not enough memory");
  memcpy(r->data, data, len);
  b = uv_buf_init(r->data, (unsigned)len);
  r->w = w;
  if ((err = uv_udp_send(&r->req, U(s), &b, 1, to, send_cb)) < 0) {
    tide__free(r);
    return tide_pushfail(L, err, NULL);
  }
  lua_settop(L, 0);
  return tide_await(L, w, send_cancel, r);
}

/* ---- Addresses and options -------------------------------------------------- */

/* sock:_connect(ip, port) -> true | nil, msg, code: the default peer;
** only its datagrams are received. */
static int udp_connect (lua_State *L) {
  Socket *s = checkopen(L, 1);
  struct sockaddr_storage ss;
  int err;
  checkaddr(L, 2, &ss);
  if (s->connected) uv_udp_connect(U(s), NULL);
  err = uv_udp_connect(U(s), (const struct sockaddr *)&ss);
  s->connected = err == 0;
  return pushok(L, err);
}

static int udp_name (lua_State *L, int peer) {
  Socket *s = checkopen(L, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int err = peer ? uv_udp_getpeername(U(s), (struct sockaddr *)&ss, &len)
                 : uv_udp_getsockname(U(s), (struct sockaddr *)&ss, &len);
  if (err < 0) return tide_pushfail(L, err, NULL);
  return tide__pushaddr(L, (struct sockaddr *)&ss);
}

/* sock:getsockname() / getpeername() -> host, port */
static int udp_getsockname (lua_State *L) { return udp_name(L, 0); }
static int udp_getpeername (lua_State *L) { return udp_name(L, 1); }

/* sock:setoption(name, value): "broadcast" (bool), "ttl" (1-255),
** "multicast_ttl" (0-255), "multicast_loop" (bool), "multicast_interface"
** (address), "sndbuf" / "rcvbuf" (bytes) -> true | nil, msg, code */
static int udp_setoption (lua_State *L) {
  static const char *const names[] = {
    "broadcast", "ttl", "multicast_ttl", "multicast_loop",
    "multicast_interface", "sndbuf", "rcvbuf", NULL
  };
  Socket *s = checkopen(L, 1);
  int opt = tide__checkoption(L, 2, NULL, names), v;
  switch (opt) {
    case 0: return pushok(L, uv_udp_set_broadcast(U(s), lua_toboolean(L, 3)));
    case 1:
      return pushok(L, uv_udp_set_ttl(U(s), (int)tide__checkinteger(L, 3)));
    case 2:
      v = (int)tide__checkinteger(L, 3);
      return pushok(L, uv_udp_set_multicast_ttl(U(s), v));
    case 3:
      return pushok(L, uv_udp_set_multicast_loop(U(s), lua_toboolean(L, 3)));
    case 4:
      return pushok(L, uv_udp_set_multicast_interface(
                         U(s), tide__checkstring(L, 3)));
    default:
      v = (int)tide__checkinteger(L, 3);
      tide__argcheck(L, v > 0, 3, "positive size expected");
      return pushok(L, opt == 5 ? uv_send_buffer_size(s->o.h, &v)
                                : uv_recv_buffer_size(s->o.h, &v));
  }
}

static int membership (lua_State *L, uv_membership m) {
  Socket *s = checkopen(L, 1);
  const char *group = tide__checkstring(L, 2);
  const char *iface = tide__optstring(L, 3, NULL);
  return pushok(L, uv_udp_set_membership(U(s), group, iface, m));
}

/* sock:join(group [, interface]) / sock:leave(...) -> true | nil, msg, code */
static int udp_join (lua_State *L) { return membership(L, UV_JOIN_GROUP); }
static int udp_leave (lua_State *L) { return membership(L, UV_LEAVE_GROUP); }

/* ---- Lifetime --------------------------------------------------------------- */

static int closed_push (lua_State *L) {
  luaL_pushfail(L);
  lua_pushliteral(L, "socket closed");
  lua_pushliteral(L, "ECANCELED");
  return 3;
}

static void socket_onclose (tide_Handle *o) {
  Socket *s = (Socket *)o;
  if (s->reader) {
    Task *t = s->reader;
    s->reader = NULL;
    tide_wakewith(&t->w, closed_push, NULL);
  }
}

static int udp_close (lua_State *L) {
  tide__handleclose(&checksocket(L, 1)->o);
  return 0;
}

static int udp_gc (lua_State *L) {
  Socket *s = checksocket(L, 1);
  tide__handleclose(&s->o);
  tide__free(s->buf);
  s->buf = NULL;
  return 0;
}

static int udp_tostring (lua_State *L) {
  Socket *s = checksocket(L, 1);
  if (s->o.h == NULL) lua_pushliteral(L, "tide.UdpSocket (closed)");
  else lua_pushfstring(L, "tide.UdpSocket: %p", (void *)s);
  return 1;
}

/* udp._bind(ip, port [, reuseaddr]) -> Socket | nil, msg, code */
static int udp_bind (lua_State *L) {
  struct sockaddr_storage ss;
  unsigned flags = lua_toboolean(L, 3) ? UV_UDP_REUSEADDR : 0;
  Socket *s;
  int err;
  checkaddr(L, 1, &ss);
  s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, TIDE_UDP);
  tide__handleinit(L, tide__rt(L), &s->o, sizeof(uv_udp_t), socket_onclose);
  if ((err = uv_udp_init(tide_getloop(L), U(s))) == 0)
    err = uv_udp_bind(U(s), (const struct sockaddr *)&ss, flags);
  if (err < 0) {
    tide__handleclose(&s->o);
    return tide_pushfail(L, err, lua_pushfstring(L, "%s:%d",
                         lua_tostring(L, 1), (int)lua_tointeger(L, 2)));
  }
  return 1;
}

static const luaL_Reg udp_methods[] = {
  {"recv", udp_recv},
  {"_send", udp_send},
  {"_connect", udp_connect},
  {"getsockname", udp_getsockname},
  {"getpeername", udp_getpeername},
  {"setoption", udp_setoption},
  {"join", udp_join},
  {"leave", udp_leave},
  {"close", udp_close},
  {NULL, NULL}
};

static const luaL_Reg udp_meta[] = {
  {"__gc", udp_gc},
  {"__close", udp_close},
  {"__tostring", udp_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. The methods table
** is private.UdpSocket too, for net.lua to add send and connect. */
int tide__open_udp (lua_State *L) {
  lua_newtable(L);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, udp_bind, 1);
  lua_setfield(L, -2, "_bind");
  lua_setfield(L, -4, "udp");
  /* filled by every open: a failed one may have left it half done */
  luaL_newmetatable(L, TIDE_UDP);
  luaL_setfuncs(L, udp_meta, 0);
  luaL_newlib(L, udp_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -5, "UdpSocket");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  return 0;
}
