/*
** tls_engine.c: the TLS layer under a Stream (tide_int.h's tide_Layer).
** An OpenSSL SSL whose BIO reads the ciphertext that stream.c put in the
** input buffer (straight from the socket) and writes what it sends to the
** output buffer, which stream.c hands to the socket; SSL_read drives the
** handshake as well. OpenSSL never sees the socket: waiting, cancelling,
** backpressure and closing stay the Stream's.
*/
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "tls.h"

#define IN_SIZE (64 * 1024)        /* ciphertext read from the socket at most */

typedef struct Tls {
  tide_Layer ly;                   /* first: a tide_Layer * is a Tls * */
  SSL *ssl;
  char *in;                        /* ciphertext in: in[inoff .. inoff+inlen) */
  size_t inoff, inlen, incap;
  char *out;                       /* ciphertext out: out[0 .. outlen) */
  size_t outlen, outcap;
  int inend;                       /* the socket's end (UV_EOF, an error), or 0 */
  int shut;                        /* close_notify is sent */
  int fatal;                       /* the first error that ended the session
                                      (a UV error, TIDE_ELAYER), or 0 */
  int done;                        /* the handshake had finished */
  int outnomem;                    /* the output could not grow */
  const char *code;                /* of the last TIDE_ELAYER ... */
  char msg[320];                   /* ... and its message */
} Tls;

static const tide_LayerOps tls_ops;
static BIO_METHOD *method;

/* ---- The BIO: the buffers stand in for the socket -------------------------- */

static int bio_read (BIO *b, char *dst, int size) {
  Tls *t = BIO_get_data(b);
  size_t n = t->inlen < (size_t)size ? t->inlen : (size_t)size;
  BIO_clear_retry_flags(b);
  if (n == 0) {
    if (t->inend) return 0;        /* the end: OpenSSL sees EOF */
    BIO_set_retry_read(b);
    return -1;
  }
  memcpy(dst, t->in + t->inoff, n);
  t->inoff += n;
  t->inlen -= n;
  if (t->inlen == 0) t->inoff = 0;
  return (int)n;
}

static int bio_write (BIO *b, const char *data, int len) {
  Tls *t = BIO_get_data(b);
  size_t n = (size_t)len;
  BIO_clear_retry_flags(b);
  if (t->outlen + n > t->outcap) {
    size_t ncap = t->outcap ? t->outcap : 16 * 1024;
    char *nout;
    while (ncap < t->outlen + n) ncap *= 2;
    if ((nout = tide__realloc(t->out, ncap)) == NULL) {
      t->outnomem = 1;
      return -1;
    }
    t->out = nout;
    t->outcap = ncap;
  }
  memcpy(t->out + t->outlen, data, n);
  t->outlen += n;
  return len;
}

static long bio_ctrl (BIO *b, int cmd, long num, void *ptr) {
  Tls *t = BIO_get_data(b);
  (void)num; (void)ptr;
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return (long)t->inlen;
    case BIO_CTRL_WPENDING: return (long)t->outlen;
    case BIO_CTRL_EOF: return t->inend && t->inlen == 0;
    default: return 0;
  }
}

static int bio_create (BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *bio_method (void) {
  if (method == NULL) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "tide stream");
    if (m == NULL) return NULL;
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    method = m;
  }
  return method;
}

/* ---- The layer's operations ------------------------------------------------ */

static uv_buf_t tls_room (tide_Layer *ly, size_t atleast) {
  Tls *t = (Tls *)ly;
  if (t->inend) return uv_buf_init(NULL, 0);
  if (t->inoff > 0) {
    memmove(t->in, t->in + t->inoff, t->inlen);
    t->inoff = 0;
  }
  if (t->incap - t->inlen < atleast) {
    char *nin = tide__realloc(t->in, t->inlen + atleast);
    if (nin == NULL) return uv_buf_init(NULL, 0);
    t->in = nin;
    t->incap = t->inlen + atleast;
  }
  return uv_buf_init(t->in + t->inlen, (unsigned)(t->incap - t->inlen));
}

static void tls_input (tide_Layer *ly, ssize_t n) {
  Tls *t = (Tls *)ly;
  if (n > 0) t->inlen += (size_t)n;
  else if (n < 0 && t->inend == 0) t->inend = (int)n;
}

/* The error of a call that returned ret: a UV error, or TIDE_ELAYER with
** the message and code kept. */
static int fail (Tls *t, int ret) {
  unsigned long e = ERR_peek_error();
  if (t->fatal) {                  /* the first error stays the error */
    ERR_clear_error();
    return t->fatal;
  }
  if (t->outnomem) {
    ERR_clear_error();
    return t->fatal = UV_ENOMEM;
  }
  /* the socket failed (a reset): say that rather than "unexpected EOF" */
  if (t->inend < 0 && t->inend != UV_EOF && t->inlen == 0 &&
      (e == 0 || ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
    ERR_clear_error();
    return t->fatal = t->inend;
  }
  if (!t->done) {                  /* finished in this very call? */
    unsigned char fin[64];
    t->done = SSL_get_peer_finished(t->ssl, fin, sizeof fin) > 0;
  }
  t->code = tls__why(t->ssl, ret, t->done, t->msg, sizeof t->msg);
  return t->fatal = TIDE_ELAYER;
}

static int tls_read (tide_Layer *ly, char *dst, size_t size) {
  Tls *t = (Tls *)ly;
  int n;
  if (t->fatal) return t->fatal;
  ERR_clear_error();
  n = SSL_read(t->ssl, dst, size > INT_MAX ? INT_MAX : (int)size);
  if (n > 0) return n;
  if (!t->done) t->done = SSL_is_init_finished(t->ssl);
  switch (SSL_get_error(t->ssl, n)) {
    case SSL_ERROR_WANT_READ: return 0;
    case SSL_ERROR_ZERO_RETURN: return UV_EOF;     /* close_notify */
    default: return fail(t, n);
  }
}

static int tls_write (tide_Layer *ly, const char *data, size_t len) {
  Tls *t = (Tls *)ly;
  size_t written;
  if (t->fatal) return t->fatal;  /* a read or write failed: that again */
  if (t->shut) return UV_EPIPE;
  if (!SSL_is_init_finished(t->ssl)) {
    t->code = "ETLS";
    snprintf(t->msg, sizeof t->msg, "the TLS handshake has not finished");
    return TIDE_ELAYER;
  }
  ERR_clear_error();
  if (SSL_write_ex(t->ssl, data, len, &written) == 1) return 0;
  return fail(t, 0);
}

/* Put close_notify in the output, once, if the session is sound; a
** broken session's error. */
static int tls_shutdown (tide_Layer *ly) {
  Tls *t = (Tls *)ly;
  if (t->fatal) return t->fatal;
  if (t->shut || !SSL_is_init_finished(t->ssl)) return 0;
  t->shut = 1;
  ERR_clear_error();
  if (SSL_shutdown(t->ssl) < 0) {
    if (t->outnomem) return fail(t, -1);
    ERR_clear_error();             /* the peer's close crossed ours: fine */
  }
  return 0;
}

static size_t tls_output (tide_Layer *ly, const char **data) {
  Tls *t = (Tls *)ly;
  size_t n = t->outlen;
  *data = t->out;
  t->outlen = 0;
  return n;
}

static int tls_ready (tide_Layer *ly) {
  return SSL_is_init_finished(((Tls *)ly)->ssl);
}

static int tls_pushfail (tide_Layer *ly, lua_State *L) {
  Tls *t = (Tls *)ly;
  luaL_pushfail(L);
  lua_pushstring(L, t->msg);
  lua_pushstring(L, t->code ? t->code : "ETLS");
  return 3;
}

static int tls_info (tide_Layer *ly, lua_State *L) {
  return tls__info(((Tls *)ly)->ssl, L);
}

static void tls_free (tide_Layer *ly) {
  Tls *t = (Tls *)ly;
  SSL_free(t->ssl);                /* and its BIO */
  tide__free(t->in);
  tide__free(t->out);
  tide__free(t);
}

static const tide_LayerOps tls_ops = {
  tls_room, tls_input, tls_read, tls_write, tls_shutdown, tls_output,
  tls_ready, tls_pushfail, tls_info, tls_free
};

/* A layer around ssl, which it owns from now on; NULL when out of memory
** (ssl freed then). */
tide_Layer *tls__newlayer (SSL *ssl) {
  BIO_METHOD *m = bio_method();
  Tls *t = tide__calloc(1, sizeof *t);
  BIO *bio = NULL;
  if (t == NULL || m == NULL || (t->in = tide__malloc(IN_SIZE)) == NULL ||
      (bio = BIO_new(m)) == NULL) {
    if (t) tide__free(t->in);
    tide__free(t);
    SSL_free(ssl);
    return NULL;
  }
  t->ly.ops = &tls_ops;
  t->ssl = ssl;
  t->incap = IN_SIZE;
  BIO_set_data(bio, t);
  SSL_set_bio(ssl, bio, bio);
  return &t->ly;
}
