/*
** tls.h: what the files of tide.tls share (tls.c the module, tls_context.c
** the configuration, tls_engine.c the layer under a Stream, tls_error.c
** the messages, tls_load.c OpenSSL itself). OpenSSL 3 never touches a
** socket here: the engine's BIO reads from and writes to buffers of its
** own, which stream.c fills from the socket and empties into it.
*/
#ifndef TIDE_TLS_H
#define TIDE_TLS_H

#include "tide_int.h"
#include "tls_api.h"

#define TIDE_TLSCONTEXT "tide.TlsContext"
#define TLS_SESSIONS 32          /* sessions a client context keeps */

typedef struct TlsName {         /* a certificate per server name (SNI) */
  char *name;                    /* "example.org" or "*.example.org" */
  SSL_CTX *ctx;                  /* a reference of ours */
} TlsName;

typedef struct TlsSession {      /* a client's session, to resume */
  char *key;                     /* "servername:port" or "ip:port" */
  SSL_SESSION *sess;             /* a reference of ours */
} TlsSession;

/* What tide keeps with each SSL_CTX (its ex data, freed with it). */
typedef struct TlsConf {
  unsigned char *alpn;           /* protocols, in the wire format */
  size_t alpnlen;
  TlsName *names;
  int nnames;
  TlsSession sessions[TLS_SESSIONS];
  int nextsession;               /* the slot replaced next */
  int verify;                    /* -1: the role's default; 0: no; 1: yes
                                    (a server: a client certificate is
                                    required); 2: a server asks for one */
  int cache;                     /* sessions are cached and resumed */
  int trust;                     /* 0: the system's store is loaded at the
                                    first use that needs it; 1: loaded, or
                                    cafile / capath given */
} TlsConf;

/* tls_context.c */
int tls__opencontext (lua_State *L);
SSL_CTX *tls__checkctx (lua_State *L, int i);
TlsConf *tls__conf (SSL_CTX *ctx);
int tls__trust (SSL_CTX *ctx, char *msg, size_t size);
SSL_SESSION *tls__session (SSL_CTX *ctx, const char *key);
int tls__sslindex (void);        /* SSL ex data: the session's key */

/* tls_engine.c: a layer for stream.c around ssl (which it owns from now);
** NULL when out of memory (ssl then freed). */
tide_Layer *tls__newlayer (SSL *ssl);

/* tls.c: push what stream:tlsinfo() returns for ssl; 1 */
int tls__info (SSL *ssl, lua_State *L);
void tls__serververify (SSL *ssl, int verify);  /* TlsConf's verify */

/* tls_error.c: what went wrong, after a TLS call on ssl returned ret
** (done: the handshake had finished): the message in msg, the code
** returned; clears OpenSSL's error queue. */
const char *tls__why (SSL *ssl, int ret, int done, char *msg, size_t size);
/* A field (its value: path, NULL for PEM text; pass: a password was
** given) that would not load: the message "what: why" in msg, the code
** returned. */
const char *tls__configwhy (const char *what, const char *field,
                            const char *path, int pass, char *msg,
                            size_t size);

#endif
