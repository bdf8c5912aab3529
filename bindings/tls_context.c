/*
** tls_context.c: tide.tls.context{...}, a reusable TLS configuration (an
** OpenSSL SSL_CTX): our certificate and key, what to trust, verification,
** ALPN, versions, ciphers, the session cache, and a certificate per
** server name (SNI). The system's trust store is loaded at the first use
** that needs it, and counted: OpenSSL's loading "succeeds" when it loads
** nothing.
*/
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tls.h"

static int confindex = -1, sslindex = -1;

/* ---- What tide keeps with each SSL_CTX ------------------------------------ */

static void conffree (void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                      long argl, void *argp) {
  TlsConf *c = ptr;
  int i;
  (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
  if (c == NULL) return;
  tide__free(c->alpn);
  for (i = 0; i < c->nnames; i++) {
    tide__free(c->names[i].name);
    SSL_CTX_free(c->names[i].ctx);
  }
  tide__free(c->names);
  for (i = 0; i < TLS_SESSIONS; i++) {
    tide__free(c->sessions[i].key);
    SSL_SESSION_free(c->sessions[i].sess);
  }
  tide__free(c);
}

static void keyfree (void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                     long argl, void *argp) {
  (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
  tide__free(ptr);
}

TlsConf *tls__conf (SSL_CTX *ctx) {
  return SSL_CTX_get_ex_data(ctx, confindex);
}

int tls__sslindex (void) {
  return sslindex;
}

/* ---- Sessions (a client's, per server) ------------------------------------ */

/* OpenSSL's new session: a client keeps it under the key its SSL holds. */
static int newsession_cb (SSL *ssl, SSL_SESSION *sess) {
  const char *key = SSL_get_ex_data(ssl, sslindex);
  TlsConf *c = tls__conf(SSL_get_SSL_CTX(ssl));
  TlsSession *slot = NULL;
  int i;
  if (SSL_is_server(ssl) || key == NULL || c == NULL || !c->cache ||
      !SSL_SESSION_is_resumable(sess))
    return 0;
  for (i = 0; i < TLS_SESSIONS && slot == NULL; i++)
    if (c->sessions[i].key && strcmp(c->sessions[i].key, key) == 0)
      slot = &c->sessions[i];
  if (slot == NULL) {
    size_t n = strlen(key) + 1;
    char *k = tide__malloc(n);
    if (k == NULL) return 0;
    memcpy(k, key, n);
    slot = &c->sessions[c->nextsession];
    c->nextsession = (c->nextsession + 1) % TLS_SESSIONS;
    tide__free(slot->key);
    slot->key = k;
  }
  SSL_SESSION_free(slot->sess);
  slot->sess = sess;               /* returning 1: the reference is ours */
  return 1;
}

/* The session kept for key, or NULL. */
SSL_SESSION *tls__session (SSL_CTX *ctx, const char *key) {
  TlsConf *c = tls__conf(ctx);
  int i;
  if (c == NULL || !c->cache) return NULL;
  for (i = 0; i < TLS_SESSIONS; i++)
    if (c->sessions[i].key && strcmp(c->sessions[i].key, key) == 0)
      return c->sessions[i].sess;
  return NULL;
}

/* ---- Server names and ALPN ------------------------------------------------ */

/* name matches pattern: equal (case aside), or "*.rest" for one label. */
static int namematch (const char *pattern, const char *name) {
  if (pattern[0] == '*' && pattern[1] == '.') {
    const char *dot = strchr(name, '.');
    return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
  }
  return strcasecmp(pattern, name) == 0;
}

/* The client's server name chooses the certificate: the first context
** whose name matches, else the default one. */
static int servername_cb (SSL *ssl, int *al, void *arg) {
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  TlsConf *c = arg;
  int i;
  (void)al;
  if (name == NULL) return SSL_TLSEXT_ERR_OK;
  for (i = 0; i < c->nnames; i++)
    if (namematch(c->names[i].name, name)) {
      SSL_set_SSL_CTX(ssl, c->names[i].ctx);
      tls__serververify(ssl, tls__conf(c->names[i].ctx)->verify);
      break;
    }
  return SSL_TLSEXT_ERR_OK;
}

/* A server picks the first of its protocols that the client offers; none
** in common: no ALPN (the client sees none chosen). */
static int alpn_cb (SSL *ssl, const unsigned char **out, unsigned char *outlen,
                    const unsigned char *in, unsigned int inlen, void *arg) {
  TlsConf *c = arg;
  (void)ssl;
  if (c->alpn == NULL ||
      SSL_select_next_proto((unsigned char **)out, outlen, c->alpn,
                            (unsigned)c->alpnlen, in, inlen)
        != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  return SSL_TLSEXT_ERR_OK;
}

/* ---- Trust ---------------------------------------------------------------- */

/* Whether dir holds certificates by hash ("1a2b3c4d.0"), as OpenSSL looks
** them up there. */
static int hashdir (const char *dir, size_t len) {
  char path[4096];
  struct dirent *e;
  DIR *d;
  int found = 0;
  if (len == 0 || len >= sizeof path) return 0;
  memcpy(path, dir, len);
  path[len] = '\0';
  if ((d = opendir(path)) == NULL) return 0;
  while (!found && (e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    found = strlen(n) > 9 && strspn(n, "0123456789abcdef") == 8 &&
            n[8] == '.' && strspn(n + 9, "0123456789") == strlen(n + 9);
  }
  closedir(d);
  return found;
}

/* Load the system's trust store into ctx unless done or given (cafile,
** capath): SSL_CERT_FILE or OpenSSL's default file, SSL_CERT_DIR or its
** default directories. 0, or -1 with why nothing is trusted in msg. */
int tls__trust (SSL_CTX *ctx, char *msg, size_t size) {
  TlsConf *c = tls__conf(ctx);
  const char *file, *dirs, *p;
  int n;
  if (c == NULL || c->trust) return 0;
  file = getenv(X509_get_default_cert_file_env());
  if (file == NULL) file = X509_get_default_cert_file();
  dirs = getenv(X509_get_default_cert_dir_env());
  if (dirs == NULL) dirs = X509_get_default_cert_dir();
  SSL_CTX_set_default_verify_paths(ctx);
  ERR_clear_error();               /* a missing file is no error to it */
  n = sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx)));
  for (p = dirs; n == 0 && *p; p += strcspn(p, ":"), p += *p == ':')
    n = hashdir(p, strcspn(p, ":"));
  if (n == 0) {
    snprintf(msg, size, "no trusted certificates: none in %s nor in %s "
             "(install ca-certificates, set SSL_CERT_FILE or SSL_CERT_DIR, "
             "or give cafile; verify = false turns verification off)",
             file, dirs);
    return -1;
  }
  c->trust = 1;
  return 0;
}

/* ---- Options -------------------------------------------------------------- */

typedef struct Opts {
  lua_State *L;
  int t, arg;                      /* the table, the argument it is */
  SSL_CTX *ctx;
  TlsConf *c;
  char msg[512];
  const char *code;                /* set when something failed to load */
} Opts;

static void fielderror (Opts *o, const char *field, const char *what) {
  lua_State *L = o->L;
  tide__argerror(L, o->arg, lua_pushfstring(L, "'%s': %s", field, what));
}

/* The string field name (NULL if absent), its length in *len. */
static const char *getstring (Opts *o, const char *name, size_t *len) {
  int t = lua_getfield(o->L, o->t, name);
  const char *s;
  if (t == LUA_TNIL) {
    lua_pop(o->L, 1);
    return NULL;
  }
  if (t != LUA_TSTRING) fielderror(o, name, "string expected");
  s = lua_tolstring(o->L, -1, len);
  lua_pop(o->L, 1);                /* the table keeps it */
  return s;
}

static int ispem (const char *s) {
  return strstr(s, "-----BEGIN") != NULL;
}

static int fail (Opts *o, const char *field, const char *v) {
  char what[300];
  snprintf(what, sizeof what, "%s %s", field, ispem(v) ? "(PEM)" : v);
  o->code = tls__configwhy(what, field, ispem(v) ? NULL : v,
                           getstring(o, "password", NULL) != NULL, o->msg,
                           sizeof o->msg);
  return 0;
}

/* Passwords come from the password field only, never from a prompt. */
static int password_cb (char *buf, int size, int rwflag, void *u) {
  size_t n = u ? strlen(u) : 0;
  (void)rwflag;
  if (n == 0 || n > (size_t)size) return 0;     /* none: the key fails */
  memcpy(buf, u, n);
  return (int)n;
}

/* cert (a chain: ours first) and key, as paths or PEM text. */
static int usecert (Opts *o) {
  size_t clen = 0, klen = 0;
  const char *cert = getstring(o, "cert", &clen), *key = getstring(o, "key", &klen);
  const char *pass = getstring(o, "password", NULL);
  int ok = 1;
  if (cert == NULL && key == NULL) return 1;
  if (cert == NULL || key == NULL)
    fielderror(o, cert ? "key" : "cert", "cert and key go together");
  SSL_CTX_set_default_passwd_cb_userdata(o->ctx, (void *)pass);
  if (!ispem(cert)) ok = SSL_CTX_use_certificate_chain_file(o->ctx, cert);
  else {
    BIO *b = BIO_new_mem_buf(cert, (int)clen);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    ok = x != NULL && SSL_CTX_use_certificate(o->ctx, x);
    X509_free(x);
    while (ok && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
      if (!SSL_CTX_add0_chain_cert(o->ctx, x)) {
        X509_free(x);
        ok = 0;
      }
    if (ok) ERR_clear_error();     /* the end of the text */
    BIO_free(b);
  }
  if (!ok) return fail(o, "cert", cert);
  if (!ispem(key)) ok = SSL_CTX_use_PrivateKey_file(o->ctx, key, SSL_FILETYPE_PEM);
  else {
    BIO *b = BIO_new_mem_buf(key, (int)klen);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, password_cb,
                                              (void *)pass) : NULL;
    ok = k != NULL && SSL_CTX_use_PrivateKey(o->ctx, k);
    EVP_PKEY_free(k);
    BIO_free(b);
  }
  SSL_CTX_set_default_passwd_cb_userdata(o->ctx, NULL);
  if (!ok && !(ERR_GET_LIB(ERR_peek_last_error()) == ERR_LIB_X509 &&
                ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH))
    return fail(o, "key", key);
  if (!ok || !SSL_CTX_check_private_key(o->ctx)) {
    snprintf(o->msg, sizeof o->msg, "key: it does not match the certificate");
    o->code = "ETLSCONFIG";
    ERR_clear_error();
    return 0;
  }
  return 1;
}

/* cafile (a path or PEM text) and capath: what to trust instead of the
** system's store. */
static int usetrust (Opts *o) {
  size_t len = 0;
  const char *file = getstring(o, "cafile", &len), *dir = getstring(o, "capath", NULL);
  if (file != NULL && !ispem(file) && !SSL_CTX_load_verify_file(o->ctx, file))
    return fail(o, "cafile", file);
  if (file != NULL && ispem(file)) {
    X509_STORE *st = SSL_CTX_get_cert_store(o->ctx);
    BIO *b = BIO_new_mem_buf(file, (int)len);
    X509 *x;
    int n = 0;
    while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
      n += X509_STORE_add_cert(st, x);
      X509_free(x);
    }
    BIO_free(b);
    if (n == 0) return fail(o, "cafile", file);
    ERR_clear_error();
  }
  if (dir != NULL && (access(dir, R_OK | X_OK) != 0 ||   /* else lazily */
                      !SSL_CTX_load_verify_dir(o->ctx, dir)))
    return fail(o, "capath", dir);
  o->c->trust = file != NULL || dir != NULL;
  return 1;
}

static int version (Opts *o, const char *field, int def) {
  static const char *const names[] = { "1.0", "1.1", "1.2", "1.3", NULL };
  static const int versions[] = { TLS1_VERSION, TLS1_1_VERSION,
                                  TLS1_2_VERSION, TLS1_3_VERSION };
  const char *v = getstring(o, field, NULL);
  int i;
  if (v == NULL) return def;
  if (strncmp(v, "TLSv", 4) == 0) v += 4;
  for (i = 0; names[i] != NULL; i++)
    if (strcmp(v, names[i]) == 0) return versions[i];
  fielderror(o, field, "\"1.0\", \"1.1\", \"1.2\" or \"1.3\" expected");
  return 0;
}

/* alpn: a list of protocol names, in the order we prefer them. */
static void usealpn (Opts *o) {
  lua_State *L = o->L;
  size_t total = 0, len, i, n;
  unsigned char *w;
  if (lua_getfield(L, o->t, "alpn") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1)) fielderror(o, "alpn", "list of strings expected");
  n = lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, -1, (lua_Integer)i) != LUA_TSTRING)
      fielderror(o, "alpn", "list of strings expected");
    lua_tolstring(L, -1, &len);
    if (len == 0 || len > 255) fielderror(o, "alpn", "names of 1 to 255 bytes expected");
    total += len + 1;
    lua_pop(L, 1);
  }
  if (n == 0) fielderror(o, "alpn", "empty list");
  if ((w = tide__malloc(total)) == NULL) tide__nomem(L);
  o->c->alpn = w;
  o->c->alpnlen = total;
  for (i = 1; i <= n; i++) {
    const char *s;
    lua_rawgeti(L, -1, (lua_Integer)i);
    s = lua_tolstring(L, -1, &len);
    *w++ = (unsigned char)len;
    memcpy(w, s, len);
    w += len;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (SSL_CTX_set_alpn_protos(o->ctx, o->c->alpn, (unsigned)total) != 0)
    tide__nomem(L);
  SSL_CTX_set_alpn_select_cb(o->ctx, alpn_cb, o->c);
}

/* servernames: { [name] = context }, for a server's SNI. */
static void usenames (Opts *o) {
  lua_State *L = o->L;
  int n = 0;
  if (lua_getfield(L, o->t, "servernames") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1)) fielderror(o, "servernames", "table expected");
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    SSL_CTX **sub = luaL_testudata(L, -1, TIDE_TLSCONTEXT);
    if (lua_type(L, -2) != LUA_TSTRING || sub == NULL)
      fielderror(o, "servernames", "{ [name] = tide.tls.context } expected");
    if (*sub == NULL) fielderror(o, "servernames", "a closed tide.TlsContext");
    n++;
    lua_pop(L, 1);
  }
  if (n == 0) {
    lua_pop(L, 1);
    return;
  }
  o->c->names = tide__calloc((size_t)n, sizeof(TlsName));
  if (o->c->names == NULL) tide__nomem(L);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    size_t len;
    const char *name = lua_tolstring(L, -2, &len);
    TlsName *tn = &o->c->names[o->c->nnames];
    SSL_CTX *sub = *(SSL_CTX **)lua_touserdata(L, -1);
    if ((tn->name = tide__malloc(len + 1)) == NULL) tide__nomem(L);
    memcpy(tn->name, name, len + 1);
    SSL_CTX_up_ref(sub);
    tn->ctx = sub;
    o->c->nnames++;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  SSL_CTX_set_tlsext_servername_callback(o->ctx, servername_cb);
  SSL_CTX_set_tlsext_servername_arg(o->ctx, o->c);
}

static void useverify (Opts *o) {
  lua_State *L = o->L;
  int t = lua_getfield(L, o->t, "verify");
  if (t == LUA_TNIL) o->c->verify = -1;
  else if (t == LUA_TBOOLEAN) o->c->verify = lua_toboolean(L, -1);
  else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "optional") == 0)
    o->c->verify = 2;
  else fielderror(o, "verify", "boolean or \"optional\" expected");
  lua_pop(L, 1);
}

static void usecache (Opts *o) {
  int t = lua_getfield(o->L, o->t, "session_cache");
  if (t != LUA_TNIL && t != LUA_TBOOLEAN) fielderror(o, "session_cache", "boolean expected");
  o->c->cache = t == LUA_TNIL || lua_toboolean(o->L, -1);
  lua_pop(o->L, 1);
  if (o->c->cache) {
    SSL_CTX_set_session_cache_mode(o->ctx, SSL_SESS_CACHE_CLIENT |
      SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(o->ctx, newsession_cb);
  }
  else {
    SSL_CTX_set_session_cache_mode(o->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(o->ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(o->ctx, 0);
  }
}

/* Apply the options; 0 (with o->msg, o->code) when something would not
** load. Wrong fields raise. */
static int configure (Opts *o) {
  const char *ciphers = getstring(o, "ciphers", NULL);
  const char *suites = getstring(o, "ciphersuites", NULL);
  int min = version(o, "min_version", TLS1_2_VERSION);
  int max = version(o, "max_version", 0);
  useverify(o);
  usecache(o);
  usealpn(o);
  usenames(o);
  if (!SSL_CTX_set_min_proto_version(o->ctx, min) ||
      !SSL_CTX_set_max_proto_version(o->ctx, max))
    fielderror(o, "min_version", "a range of versions expected");
  if (ciphers && !SSL_CTX_set_cipher_list(o->ctx, ciphers)) return fail(o, "ciphers", ciphers);
  if (suites && !SSL_CTX_set_ciphersuites(o->ctx, suites)) return fail(o, "ciphersuites", suites);
  return usecert(o) && usetrust(o);
}

/* ---- The Lua object -------------------------------------------------------- */

SSL_CTX *tls__checkctx (lua_State *L, int i) {
  SSL_CTX *ctx = *(SSL_CTX **)tide__checkudata(L, i, TIDE_TLSCONTEXT);
  if (ctx == NULL)                 /* its __gc was called by hand */
    tide__error(L, "%s: attempt to use a closed tide.TlsContext",
                tide__fname(L));
  return ctx;
}

/* OpenSSL is loaded and set up at the first context (tls_load.c):
** OPENSSL_init_ssl first, so that its global state is freed at exit (an
** ex data index alone would set it up without that). */
static void init (lua_State *L) {
  const char *err = tls__load();
  if (err != NULL) tide__error(L, "%s: %s", tide__fname(L), err);
  if (confindex >= 0) return;
  OPENSSL_init_ssl(0, NULL);
  sslindex = SSL_get_ex_new_index(0, NULL, NULL, NULL, keyfree);
  confindex = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, conffree);
}

/* tls._context(opts, argi) -> context | nil, msg, code; argi: the
** argument opts is to the function the user called. */
static int tls_context (lua_State *L) {
  Opts o;
  SSL_CTX **box;
  init(L);
  memset(&o, 0, sizeof o);
  o.L = L;
  o.t = 1;
  o.arg = (int)luaL_optinteger(L, 2, 1);
  tide__checktype(L, 1, LUA_TTABLE);
  box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, TIDE_TLSCONTEXT);
  if ((o.ctx = SSL_CTX_new(TLS_method())) == NULL) return tide__nomem(L);
  *box = o.ctx;
  if ((o.c = tide__calloc(1, sizeof *o.c)) == NULL) return tide__nomem(L);
  SSL_CTX_set_ex_data(o.ctx, confindex, o.c);   /* freed with the ctx */
  SSL_CTX_set_options(o.ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_session_id_context(o.ctx, (const unsigned char *)"tide", 4);
  SSL_CTX_set_default_passwd_cb(o.ctx, password_cb);
  SSL_CTX_set_read_ahead(o.ctx, 1);
  if (!configure(&o)) {
    luaL_pushfail(L);
    lua_pushstring(L, o.msg);
    lua_pushstring(L, o.code);
    return 3;
  }
  return 1;
}

static int context_gc (lua_State *L) {
  SSL_CTX **box = tide__checkudata(L, 1, TIDE_TLSCONTEXT);
  if (*box != NULL) SSL_CTX_free(*box);
  *box = NULL;
  return 0;
}

static int context_tostring (lua_State *L) {
  SSL_CTX **box = tide__checkudata(L, 1, TIDE_TLSCONTEXT);
  lua_pushfstring(L, "tide.TlsContext: %p", (void *)*box);
  return 1;
}

static const luaL_Reg context_meta[] = {
  {"__gc", context_gc},
  {"__tostring", context_tostring},
  {"__index", NULL},               /* no methods: its fields read nil */
  {NULL, NULL}
};

/* Stack: the tls table. */
int tls__opencontext (lua_State *L) {
  luaL_newmetatable(L, TIDE_TLSCONTEXT);
  luaL_setfuncs(L, context_meta, 0);
  lua_newtable(L);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, tls_context);
  lua_setfield(L, -2, "_context");
  return 0;
}
