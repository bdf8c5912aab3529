/*
** dns.c: tide.dns: resolve(host [, opts]) and reverse(addr) on libuv's
** getaddrinfo and getnameinfo (the thread pool), and the address helpers
** the socket bindings share.
*/
#include <stdlib.h>
#include <string.h>

#include "tide_int.h"

/* Push the host (numeric) and port of sa; return 2. */
int tide__pushaddr (lua_State *L, const struct sockaddr *sa) {
  char host[INET6_ADDRSTRLEN];
  int port = 0;
  host[0] = '\0';
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, host, sizeof host);
    port = ntohs(a->sin_port);
  }
  else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}

/* Fill ss from a numeric address and a port; 0, or a UV error. */
int tide__toaddr (const char *ip, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(ip, port, (struct sockaddr_in *)ss) == 0) return 0;
  return uv_ip6_addr(ip, port, (struct sockaddr_in6 *)ss);
}

/* Read a port argument (an integer, or a string holding one, as Lua takes
** numbers). */
int tide__checkport (lua_State *L, int i) {
  lua_Integer port = tide__checkinteger(L, i);
  tide__argcheck(L, port >= 0 && port <= 65535, i, "port out of range");
  return (int)port;
}

typedef struct DnsReq {
  union {
    uv_getaddrinfo_t ai;
    uv_getnameinfo_t ni;
  } u;
  tide_Wait *w;            /* NULL once the task stopped waiting */
  char name[];             /* what was asked, for messages */
} DnsReq;

static void dns_cancel (tide_Wait *w) {
  DnsReq *r = tide_waitdata(w);
  tide__poolwait(w, r->u.ai.loop, -1);   /* ai and ni begin alike */
  r->w = NULL;
  uv_cancel((uv_req_t *)&r->u);   /* the callback still runs and frees */
}

static DnsReq *newreq (lua_State *L, tide_Wait *w, const char *name) {
  size_t n = strlen(name) + 1;
  DnsReq *r;
  tide__poolloop(L);               /* opened first: it may raise */
  if ((r = tide__malloc(sizeof *r + n)) == NULL) tide__nomem(L);
  memcpy(r->name, name, n);
  r->w = w;
  return r;
}

static const char *familyname (int family) {
  return family == AF_INET6 ? "inet6" : "inet";
}

/* Push { {addr = "1.2.3.4", family = "inet"}, ... } without repeats. */
static void pushaddrs (lua_State *L, struct addrinfo *res) {
  struct addrinfo *p;
  int n = 0;
  lua_newtable(L);
  for (p = res; p != NULL; p = p->ai_next) {
    struct addrinfo *q;
    for (q = res; q != p; q = q->ai_next)
      if (q->ai_addrlen == p->ai_addrlen &&
          memcmp(q->ai_addr, p->ai_addr, p->ai_addrlen) == 0) break;
    if (q != p) continue;          /* seen already */
    lua_createtable(L, 0, 2);
    tide__pushaddr(L, p->ai_addr);
    lua_pop(L, 1);
    lua_setfield(L, -2, "addr");
    lua_pushstring(L, familyname(p->ai_family));
    lua_setfield(L, -2, "family");
    lua_rawseti(L, -2, ++n);
  }
}

/* What a callback has, for the push function that makes the results. */
typedef struct DnsDone {
  DnsReq *r;
  int status;
  struct addrinfo *res;
  const char *host;
} DnsDone;

static int resolve_push (lua_State *L) {
  DnsDone *d = lua_touserdata(L, 1);
  if (d->status < 0) return tide_pushfail(L, d->status, d->r->name);
  pushaddrs(L, d->res);
  return 1;
}

static void resolve_cb (uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  DnsReq *r = (DnsReq *)req;
  DnsDone d = { r, status, res, NULL };
  if (r->w) {
    tide__poolwait(r->w, req->loop, -1);
    tide_wakewith(r->w, resolve_push, &d);
  }
  uv_freeaddrinfo(res);
  tide__free(r);
}

/* tide.dns.resolve(host [, {family = "inet"|"inet6"}]) ->
** { {addr =, family =}, ... } | nil, msg, code */
static int dns_resolve (lua_State *L) {
  static const char *const families[] = { "any", "inet", "inet6", NULL };
  const char *host = luaL_checkstring(L, 1);
  struct addrinfo hints;
  tide_Wait *w;
  DnsReq *r;
  int fam = 0, err;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "family");
    fam = luaL_checkoption(L, -1, "any", families);
    lua_pop(L, 1);
  }
  w = tide_wait(L);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = fam == 1 ? AF_INET : fam == 2 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  r = newreq(L, w, host);
  err = uv_getaddrinfo(tide__poolloop(L), &r->u.ai, resolve_cb, host, NULL,
                       &hints);
  if (err < 0) {
    tide__free(r);
    return tide_pushfail(L, err, host);
  }
  tide__poolwait(w, r->u.ai.loop, 1);
  return tide_await(L, w, dns_cancel, r);
}

static int reverse_push (lua_State *L) {
  DnsDone *d = lua_touserdata(L, 1);
  if (d->status < 0) return tide_pushfail(L, d->status, d->r->name);
  lua_pushstring(L, d->host);
  return 1;
}

static void reverse_cb (uv_getnameinfo_t *req, int status,
                        const char *host, const char *service) {
  DnsReq *r = (DnsReq *)req;
  DnsDone d = { r, status, NULL, host };
  (void)service;
  if (r->w) {
    tide__poolwait(r->w, req->loop, -1);
    tide_wakewith(r->w, reverse_push, &d);
  }
  tide__free(r);
}

/* tide.dns.reverse(addr) -> host name | nil, msg, code */
static int dns_reverse (lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  struct sockaddr_storage ss;
  tide_Wait *w;
  DnsReq *r;
  int err;
  if (tide__toaddr(ip, 0, &ss) < 0)
    return luaL_argerror(L, 1, "numeric IPv4 or IPv6 address expected");
  w = tide_wait(L);
  r = newreq(L, w, ip);
  err = uv_getnameinfo(tide__poolloop(L), &r->u.ni, reverse_cb,
                       (struct sockaddr *)&ss, 0);
  if (err < 0) {
    tide__free(r);
    return tide_pushfail(L, err, ip);
  }
  tide__poolwait(w, r->u.ni.loop, 1);
  return tide_await(L, w, dns_cancel, r);
}

static const luaL_Reg dns_funcs[] = {
  {"resolve", dns_resolve},
  {"reverse", dns_reverse},
  {NULL, NULL}
};

int tide__open_dns (lua_State *L) {
  luaL_newlib(L, dns_funcs);
  lua_setfield(L, -4, "dns");
  return 0;
}
