/*
** tls.c: tide.tls, the C side (runtime/lua/tls.lua builds connect, wrap,
** listen and serve on it): put a TLS layer (tls_engine.c) under a Stream
** as a client or a server, with verification, the host name check, SNI
** and a cached session set up; wait for its handshake; and what
** stream:tlsinfo() returns.
*/
#define _GNU_SOURCE              /* timegm */
#include <arpa/inet.h>
#include <string.h>
#include <time.h>

#include "tls.h"

static int isip (const char *name) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* A client checks the certificate against name and sends it as SNI (a
** host name, not an address); key names its cached session. 0, or -1
** when out of memory. */
static int setclient (SSL *ssl, SSL_CTX *ctx, int verify, const char *name,
                      const char *key) {
  SSL_set_connect_state(ssl);
  SSL_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  if (name != NULL && isip(name)) {
    if (verify && !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name))
      return -1;
  }
  else if (name != NULL) {
    if (!SSL_set_tlsext_host_name(ssl, name)) return -1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (verify && !SSL_set1_host(ssl, name)) return -1;
  }
  if (key != NULL && tls__conf(ctx)->cache) {
    size_t n = strlen(key) + 1;
    char *k = tide__malloc(n);
    SSL_SESSION *sess = tls__session(ctx, key);
    if (k == NULL) return -1;
    memcpy(k, key, n);
    SSL_set_ex_data(ssl, tls__sslindex(), k);    /* freed with ssl */
    if (sess != NULL) SSL_set_session(ssl, sess);
  }
  return 0;
}

/* A server's verification of client certificates, per a context's
** verify (-1: the default, none; 1: required; 2: asked for). */
void tls__serververify (SSL *ssl, int verify) {
  SSL_set_verify(ssl, verify == 1 ? SSL_VERIFY_PEER |
                 SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE :
                 verify == 2 ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
}

/* tls._wrap(stream, context, server [, name [, key [, argi]]]) -> true |
** nil, msg, code: put TLS under the stream and start the handshake (a
** client sends its hello). name: the peer's name (a client's); key: the
** session cache's key; argi: the argument the options were, in errors. */
static int tls_wrap (lua_State *L) {
  SSL_CTX *ctx = tls__checkctx(L, 2);
  int server = lua_toboolean(L, 3), verify;
  const char *name = luaL_optstring(L, 4, NULL);
  const char *key = luaL_optstring(L, 5, NULL);
  TlsConf *c = tls__conf(ctx);
  const char *why;
  tide_Layer *ly;
  SSL *ssl;
  char msg[512];
  tide__tostream(L, 1);
  if (tide__getlayer(L, 1) != NULL)
    return tide__error(L, "%s: the stream is already TLS", tide__fname(L));
  verify = c->verify < 0 ? !server : c->verify;
  if (!server && verify && name == NULL)
    return tide__argerror(L, (int)luaL_optinteger(L, 6, 2), "'servername' "
                          "expected: the name the peer's certificate must "
                          "have (or verify = false)");
  if (!server && verify && tls__trust(ctx, msg, sizeof msg) < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    lua_pushliteral(L, "ETLSCONFIG");
    return 3;
  }
  if ((ssl = SSL_new(ctx)) == NULL) {
    ERR_clear_error();
    return tide__nomem(L);
  }
  if (server) {
    SSL_set_accept_state(ssl);
    tls__serververify(ssl, verify);
  }
  else if (setclient(ssl, ctx, verify, name, key) < 0) {
    SSL_free(ssl);
    ERR_clear_error();
    return tide__nomem(L);
  }
  if ((ly = tls__newlayer(ssl)) == NULL) return tide__nomem(L);
  if ((why = tide__streamlayer(L, 1, ly)) != NULL)   /* ly freed */
    return tide__error(L, "%s: %s", tide__fname(L), why);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- stream:tlsinfo() ------------------------------------------------------ */

static void setstr (lua_State *L, const char *field, const char *v) {
  if (v == NULL) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, field);
}

static void setname (lua_State *L, const char *field, X509_NAME *name) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p;
  long n;
  if (b == NULL) return;
  X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
  n = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, (size_t)n);
  lua_setfield(L, -2, field);
  BIO_free(b);
}

static void settime (lua_State *L, const char *field, const ASN1_TIME *at) {
  struct tm tm;
  if (at == NULL || !ASN1_TIME_to_tm(at, &tm)) return;
  lua_pushinteger(L, (lua_Integer)timegm(&tm));
  lua_setfield(L, -2, field);
}

/* The DNS names and IP addresses of x, as a list. */
static void setsan (lua_State *L, X509 *x) {
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  int i, n = 0;
  lua_newtable(L);
  for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
    GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    if (g->type == GEN_DNS) {
      ASN1_STRING *s = g->d.dNSName;
      lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(s),
                      (size_t)ASN1_STRING_length(s));
    }
    else if (g->type == GEN_IPADD) {
      char ip[INET6_ADDRSTRLEN];
      int len = ASN1_STRING_length(g->d.iPAddress);
      if ((len != 4 && len != 16) ||
          inet_ntop(len == 4 ? AF_INET : AF_INET6,
                    ASN1_STRING_get0_data(g->d.iPAddress), ip, sizeof ip) == NULL)
        continue;
      lua_pushstring(L, ip);
    }
    else continue;
    lua_rawseti(L, -2, ++n);
  }
  GENERAL_NAMES_free(gens);
  lua_setfield(L, -2, "san");
}

static void setpeer (lua_State *L, SSL *ssl) {
  X509 *x = SSL_get0_peer_certificate(ssl);
  if (x == NULL) return;
  lua_createtable(L, 0, 5);
  setname(L, "subject", X509_get_subject_name(x));
  setname(L, "issuer", X509_get_issuer_name(x));
  setsan(L, x);
  settime(L, "not_before", X509_get0_notBefore(x));
  settime(L, "not_after", X509_get0_notAfter(x));
  lua_setfield(L, -2, "peer");
}

/* What stream:tlsinfo() returns (stream.c asks the layer): { protocol,
** cipher, alpn, servername, resumed, verified, verify_error (the chain's
** verification failure, also unverified), peer = { subject, issuer, san,
** not_before, not_after } }. */
int tls__info (SSL *ssl, lua_State *L) {
  const unsigned char *alpn;
  unsigned alpnlen;
  lua_createtable(L, 0, 8);
  setstr(L, "protocol", SSL_get_version(ssl));
  setstr(L, "cipher", SSL_get_cipher_name(ssl));
  SSL_get0_alpn_selected(ssl, &alpn, &alpnlen);
  if (alpnlen > 0) {
    lua_pushlstring(L, (const char *)alpn, alpnlen);
    lua_setfield(L, -2, "alpn");
  }
  setstr(L, "servername", SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
  lua_pushboolean(L, SSL_session_reused(ssl));
  lua_setfield(L, -2, "resumed");
  lua_pushboolean(L, SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE &&
                  SSL_get0_peer_certificate(ssl) != NULL &&
                  SSL_get_verify_result(ssl) == X509_V_OK);
  lua_setfield(L, -2, "verified");
  if (SSL_get0_peer_certificate(ssl) != NULL &&   /* checked in any mode */
      SSL_get_verify_result(ssl) != X509_V_OK)
    setstr(L, "verify_error",
           X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
  setpeer(L, ssl);
  return 1;
}

/* tls._iscontext(x) -> whether x is a tide.tls.context */
static int tls_iscontext (lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, TIDE_TLSCONTEXT) != NULL);
  return 1;
}

static const luaL_Reg tls_funcs[] = {
  {"_wrap", tls_wrap},
  {"_iscontext", tls_iscontext},
  {"_handshake", tide__streamready},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. */
int tide__open_tls (lua_State *L) {
  lua_newtable(L);
  luaL_setfuncs(L, tls_funcs, 0);
  tls__opencontext(L);
  lua_setfield(L, -4, "tls");
  return 0;
}
