/*
** transport_udp.c: asyncio's datagram endpoint (loop.create_datagram_
** endpoint, DatagramProtocol, DatagramTransport) on a uv_udp_t:
** tide.udp.create_datagram_endpoint gives a tide.DatagramTransport whose
** protocol gets datagram_received(data, host, port) and error_received
** (message, code), outside any task, as transport.c's protocols do.
*/
#include <stdlib.h>
#include <string.h>

#include "transport.h"

#define U(t) ((uv_udp_t *)(t)->o.h)

typedef struct SendReq {
  uv_udp_send_t req;
  uv_buf_t buf;
  char data[];
} SendReq;

static void alloc_cb (uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tide_Transport *t = h->data;
  (void)suggested;
  buf->base = t->c->buf;
  buf->len = sizeof t->c->buf;
}

/* error_received(message, code) (t's userdata at index self of L, or 0) */
static int error_received (lua_State *L, tide_Transport *t, int self,
                           int err) {
  t->c->err = err;
  return tide__tcallback(L, t, self, TIDE_EV_ERROR, NULL, 0);
}

static void recv_cb (uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
                     const struct sockaddr *addr, unsigned flags) {
  tide_Transport *t = h->data;
  (void)flags;                     /* UV_UDP_PARTIAL: given as it came */
  if (t == NULL) return;
  if (n < 0) {
    error_received(t->c->L, t, 0, (int)n);
    return;
  }
  if (addr == NULL) return;        /* nothing more to read now */
  t->c->addr = addr;
  tide__tcallback(t->c->L, t, 0, TIDE_EV_DGRAM, buf->base, (size_t)n);
}

int tide__udprecv (tide_Transport *t, int on) {
  if (on) return uv_udp_recv_start(U(t), alloc_cb, recv_cb);
  return uv_udp_recv_stop(U(t));
}

static void send_cb (uv_udp_send_t *req, int status) {
  tide_Transport *t = req->handle->data;   /* NULL once closed */
  tide__free(req);
  if (t == NULL) return;
  if (status < 0 && error_received(t->c->L, t, 0, status) < 0) return;
  if (t->o.h != NULL) tide__tsent(t, 0);
}

static tide_Transport *checkd (lua_State *L) {
  tide_Transport *t = lua_touserdata(L, 1);
  if (t != NULL && lua_getmetatable(L, 1)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (same) return t;
  }
  return tide__checkudata(L, 1, TIDE_DTRANSPORT);
}

/* Are a and b one address (family, address, port)? */
static int sameaddr (const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family) return 0;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return 0;
}

/* The address sendto's arguments 3, 4 name, as asyncio takes it: on an
** endpoint with a remote address, none or that one (NULL: send to it);
** on one without, an address is needed. Raises otherwise. */
static const struct sockaddr *sendaddr (lua_State *L, tide_Transport *t,
                                        struct sockaddr_storage *ss) {
  struct sockaddr_storage peer;
  int len = sizeof peer, connected;
  connected = t->o.h != NULL &&
              uv_udp_getpeername(U(t), (struct sockaddr *)&peer, &len) == 0;
  if (lua_isnoneornil(L, 3)) {
    if (!connected && t->o.h != NULL)
      tide__argerror(L, 3, "address expected (the endpoint has no "
                           "remote_host)");
    return NULL;
  }
  if (tide__toaddr(tide__checkstring(L, 3), tide__checkport(L, 4), ss) < 0)
    tide__argerror(L, 3, "numeric IPv4 or IPv6 address expected");
  if (!connected) return (struct sockaddr *)ss;
  if (!sameaddr((struct sockaddr *)ss, (struct sockaddr *)&peer))
    tide__argerror(L, 3, "must be nil or the remote address");
  return NULL;
}

/* t:sendto(data [, host, port]): one datagram, to host, port or (without
** them) to the remote address; sent at once, or queued (copied). A send
** that fails calls error_received. After close() it does nothing. */
static int d_sendto (lua_State *L) {
  tide_Transport *t = checkd(L);
  size_t len;
  const char *data = tide__checklstring(L, 2, &len);
  struct sockaddr_storage ss;
  const struct sockaddr *addr;
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  SendReq *r;
  int err;
  tide__argcheck(L, len <= 65507, 2, "datagram too long");
  addr = sendaddr(L, t, &ss);
  if (t->closing || t->o.h == NULL) return 0;
  if (uv_udp_get_send_queue_count(U(t)) == 0) {
    err = uv_udp_try_send(U(t), &b, 1, addr);
    if (err >= 0) return 0;
    if (err != UV_EAGAIN && err != UV_ENOSYS) {
      error_received(L, t, 1, err);
      return 0;
    }
  }
  if ((r = tide__malloc(sizeof *r + len)) == NULL) return tide__nomem(L);
  memcpy(r->data, data, len);
  r->buf = uv_buf_init(r->data, (unsigned)len);
  if ((err = uv_udp_send(&r->req, U(t), &r->buf, 1, addr, send_cb)) < 0) {
    tide__free(r);
    error_received(L, t, 1, err);
    return 0;
  }
  tide__tpause(L, t, 1);
  return 0;
}

/* The address at opts[hostkey], opts[portkey] in ss: 1, or 0 if none. */
static int optaddr (lua_State *L, int opts, const char *hostkey,
                    const char *portkey, struct sockaddr_storage *ss) {
  const char *host;
  lua_Integer port;
  if (lua_isnoneornil(L, opts)) return 0;
  lua_getfield(L, opts, hostkey);
  lua_getfield(L, opts, portkey);
  if (lua_isnil(L, -2)) {
    lua_pop(L, 2);
    return 0;
  }
  host = lua_tostring(L, -2);
  port = lua_tointeger(L, -1);
  if (host == NULL || port < 0 || port > 65535 ||
      tide__toaddr(host, (int)port, ss) < 0)
    tide__argerror(L, opts, lua_pushfstring(L, "'%s' and '%s': a numeric "
                   "address and a port expected", hostkey, portkey));
  lua_pop(L, 2);
  return 1;
}

static int optflag (lua_State *L, int opts, const char *name) {
  int v;
  if (lua_isnoneornil(L, opts)) return 0;
  lua_getfield(L, opts, name);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* tide.udp.create_datagram_endpoint(host, port, factory [, {remote_host =,
** remote_port =, reuseaddr =, broadcast =}]) -> transport, protocol |
** nil, msg, code. Numeric addresses; port 0 picks a free one. */
static int udp_create_datagram_endpoint (lua_State *L) {
  const char *host = tide__checkstring(L, 1);
  int port = tide__checkport(L, 2), err, remote;
  tide_TCtx *c = lua_touserdata(L, lua_upvalueindex(2));
  struct sockaddr_storage ss, rs;
  tide_Transport *t;
  uv_udp_t *h;
  tide__checkfactory(L, 3);
  if (!lua_isnoneornil(L, 4)) tide__checktype(L, 4, LUA_TTABLE);
  if (tide__toaddr(host, port, &ss) < 0)
    return tide__argerror(L, 1, "numeric IPv4 or IPv6 address expected");
  remote = optaddr(L, 4, "remote_host", "remote_port", &rs);
  lua_settop(L, 4);
  h = tide__newtransport(L, c, sizeof *h, TIDE_DTRANSPORT);   /* 5 */
  t = lua_touserdata(L, 5);
  if ((err = uv_udp_init_ex(tide_getloop(L), h, ss.ss_family)) < 0 ||
      (err = uv_udp_bind(h, (struct sockaddr *)&ss,
                         optflag(L, 4, "reuseaddr") ? UV_UDP_REUSEADDR
                                                    : 0)) < 0 ||
      (optflag(L, 4, "broadcast") && (err = uv_udp_set_broadcast(h, 1)) < 0) ||
      (remote && (err = uv_udp_connect(h, (struct sockaddr *)&rs)) < 0)) {
    tide__handleclose(&t->o);
    return tide_pushfail(L, err, lua_pushfstring(L, "%s:%d", host, port));
  }
  lua_pushvalue(L, 3);
  if (!tide__tfactory(L, c, 0)) {
    tide__handleclose(&t->o);
    return lua_error(L);
  }
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 5, 1);      /* 6: the protocol */
  lua_pushvalue(L, 5);
  t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 5);
  tide__tstart(L, t);
  lua_settop(L, 6);
  return 2;
}

static const luaL_Reg d_methods[] = {
  {"sendto", d_sendto},
  {NULL, NULL}
};

static const luaL_Reg udp_funcs[] = {
  {"create_datagram_endpoint", udp_create_datagram_endpoint},
  {NULL, NULL}
};

/* Into tide.udp; stack: tide, private, runtime. */
int tide__open_transport_udp (lua_State *L) {
  tide__open_transport(L);
  tide__tmetatable(L, TIDE_DTRANSPORT, d_methods);
  lua_getfield(L, -3, "udp");
  lua_pushvalue(L, -2);
  lua_pushlightuserdata(L, tide__tctx(L));
  luaL_setfuncs(L, udp_funcs, 2);
  lua_pop(L, 1);
  return 0;
}
