/*
** http_client_error.c: why a transfer of tide.http failed (http_client.c),
** as nil, message, code: curl's result and message, the system's error of
** a failed connect, the timeouts and TLS failures named as tide names them.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_transfer.h"

/* ---- Errors --------------------------------------------------------------- */

/* curl's message, its first letter lowered when its first word is an
** ordinary one ("Could not resolve host: x"; "URL ..." and "OpenSSL ..."
** stay as they are). */
static const char *curlmsg (lua_State *L, Transfer *t) {
  const char *m = t->errbuf[0] ? t->errbuf : CU.easy_strerror(t->result);
  const char *p = m + 1;
  char first[2] = { 0, 0 };
  first[0] = m[0];
  if (m[0] >= 'A' && m[0] <= 'Z') {
    while (*p >= 'a' && *p <= 'z') p++;
    if (!(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9'))
      first[0] = (char)(m[0] - 'A' + 'a');
  }
  return lua_pushfstring(L, "%s%s", first, m[0] ? m + 1 : "");
}

static int fail (lua_State *L, const char *msg, const char *code) {
  luaL_pushfail(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 3;
}

/* The name of errno e as libuv gives it ("ECONNREFUSED"), or def. */
static const char *errname (long e, const char *def) {
  return e > 0 ? uv_err_name(uv_translate_sys_error((int)e)) : def;
}

static int fail_connect (lua_State *L, Transfer *t) {
  char host[256];
  unsigned port;
  const char *what = "";
  const char *why = t->oserr > 0
      ? uv_strerror(uv_translate_sys_error((int)t->oserr))
      : "could not connect";
  if (sscanf(t->errbuf, "Failed to connect to %255s port %u", host,
             &port) == 2)
    what = lua_pushfstring(L, ": %s port %d", host, (int)port);
  return fail(L, lua_pushfstring(L, "%s%s", why, what),
              errname(t->oserr, "ECONNREFUSED"));
}

/* Seconds as a person writes them: "5", "0.25". */
static const char *secs (lua_State *L, double s) {
  char buf[32];
  snprintf(buf, sizeof buf, "%g", s);
  return lua_pushstring(L, buf);
}

static int fail_timeout (lua_State *L, Transfer *t) {
  const char *e = t->errbuf;
  if (strncmp(e, "Operation too slow", 18) == 0)
    return fail(L, lua_pushfstring(L, "too slow: less than %d bytes/s for "
                                   "%d s", (int)t->lslimit, (int)t->lstime),
                "ETIMEDOUT");
  if (strncmp(e, "Connection timed out", 20) == 0 ||
      strncmp(e, "SSL connection timeout", 22) == 0 ||
      strncmp(e, "Failed to connect", 17) == 0 ||
      strncmp(e, "Resolving timed out", 19) == 0) {
    if (t->ctimeout > 0)
      return fail(L, lua_pushfstring(L, "connect timed out after %s s",
                                     secs(L, t->ctimeout)),
                  "ETIMEDOUT");
    return fail(L, curlmsg(L, t), "ETIMEDOUT");
  }
  if (t->timeout > 0)
    return fail(L, lua_pushfstring(L, "timed out after %s s",
                                   secs(L, t->timeout)),
                "ETIMEDOUT");
  return fail(L, curlmsg(L, t), "ETIMEDOUT");
}

static int fail_tls (lua_State *L, Transfer *t) {
  static const char prefix[] = "SSL certificate problem: ";
  const char *e = t->errbuf;
  if (t->result == CURLE_PEER_FAILED_VERIFICATION) {
    if (strncmp(e, prefix, sizeof prefix - 1) == 0) e += sizeof prefix - 1;
    else if (strncmp(e, "SSL: ", 5) == 0) e += 5;
    return fail(L, lua_pushfstring(L, "certificate verify failed: %s", e),
                "ECERT");
  }
  return fail(L, lua_pushfstring(L, "TLS: %s", curlmsg(L, t)), "ETLS");
}

/* Push nil, message, code for a transfer that failed. */
int tide__http_pushfail (lua_State *L, Transfer *t) {
  switch (t->result) {
  case CURLE_OUT_OF_MEMORY:
    return tide__nomem(L);
  case CURLE_WRITE_ERROR:
    if (t->nomem) return tide__nomem(L);
    break;
  case CURLE_ABORTED_BY_CALLBACK:
    return fail(L, "the transfer was cancelled", "ECANCELED");
  case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
    return fail(L, curlmsg(L, t), "EAI_NONAME");
  case CURLE_COULDNT_CONNECT:
    return fail_connect(L, t);
  case CURLE_OPERATION_TIMEDOUT:
    return fail_timeout(L, t);
  case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE: case CURLE_USE_SSL_FAILED:
  case CURLE_SSL_ISSUER_ERROR: case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS: case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED: case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED: case CURLE_SSL_ENGINE_INITFAILED:
    return fail_tls(L, t);
  case CURLE_TOO_MANY_REDIRECTS:
    return fail(L, lua_pushfstring(L, "too many redirects (%s)",
                                   curlmsg(L, t)), "ETOOMANYREDIRECTS");
  case CURLE_RECV_ERROR: case CURLE_SEND_ERROR:
    if (strncmp(t->errbuf, "CONNECT tunnel failed", 21) == 0 ||
        strncmp(t->errbuf, "Proxy CONNECT aborted", 21) == 0)
      return fail(L, lua_pushfstring(L, "proxy: %s", t->errbuf), "EPROXY");
    return fail(L, curlmsg(L, t), errname(t->oserr, "ECONNRESET"));
  case CURLE_PROXY:
    return fail(L, lua_pushfstring(L, "proxy: %s", curlmsg(L, t)), "EPROXY");
  case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
  case CURLE_WEIRD_SERVER_REPLY: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
  case CURLE_BAD_CONTENT_ENCODING: case CURLE_HTTP3:
    return fail(L, curlmsg(L, t), "EPROTO");
  case CURLE_URL_MALFORMAT: case CURLE_UNSUPPORTED_PROTOCOL:
    return fail(L, curlmsg(L, t), "EINVAL");
  default:
    break;
  }
  return fail(L, curlmsg(L, t), "EIO");
}
