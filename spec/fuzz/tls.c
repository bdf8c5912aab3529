/*
** tls.c: libFuzzer harness for the TLS layer under tide.Stream
** (bindings/tls_engine.c) without a socket: the input plays the peer, or
** the network between two of them. The first byte chooses:
**   0: a server fed the input as a client's bytes, in pieces (the hello
**      parser, the record layer before any key);
**   1: a client fed the input as the server's answer to its hello;
**   2: a client and a server that finish a real handshake in memory, then
**      the input says what each writes and what happens to the client's
**      ciphertext on its way: bytes flipped, cut short, delivered in
**      pieces, close_notify, the connection's end.
** Checked at each step: a read gives bytes, 0 (more input wanted) or an
** end (UV_EOF at close_notify, TIDE_ELAYER with a message and an ETLS
** code); once the input has ended a read never asks for more (no hang);
** what the server reads is always a prefix of what the client wrote
** (a flipped or cut record is an error, never wrong data); unharmed
** traffic arrives whole; nothing leaks.
*/
#include <string.h>

#include <lualib.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "tide_int.h"
#include "../../bindings/tls.h"
#include "fuzz.h"

#define MAXDATA (1 << 20)          /* plaintext the client writes at most */
#define MAXOPS  200

static SSL_CTX *sctx, *cctx;
static lua_State *L;

/* A self-signed P-256 certificate for the server, made once. */
static void setup (void) {
  const char *err = tls__load();     /* the layer calls OpenSSL through it */
  EVP_PKEY *pk;
  X509 *x;
  X509_NAME *n;
  if (err != NULL) fail("%s", err);
  pk = EVP_EC_gen("P-256");
  x = X509_new();
  if (pk == NULL || x == NULL) fail("no key");
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, pk);
  n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                             (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, n);
  X509_sign(x, pk, EVP_sha256());
  sctx = SSL_CTX_new(TLS_server_method());
  cctx = SSL_CTX_new(TLS_client_method());
  if (!SSL_CTX_use_certificate(sctx, x) || !SSL_CTX_use_PrivateKey(sctx, pk))
    fail("cannot use the certificate");
  SSL_CTX_set_options(sctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_options(cctx, SSL_OP_NO_RENEGOTIATION);
  X509_free(x);
  EVP_PKEY_free(pk);
  L = luaL_newstate();
}

static tide_Layer *newlayer (int server) {
  SSL *ssl = SSL_new(server ? sctx : cctx);
  tide_Layer *ly;
  if (ssl == NULL) fail("SSL_new");
  if (server) SSL_set_accept_state(ssl);
  else SSL_set_connect_state(ssl);
  if ((ly = tls__newlayer(ssl)) == NULL) fail("tls__newlayer");
  return ly;
}

/* An end of a read: UV_EOF, a UV error, or TIDE_ELAYER with its message. */
static void checkend (tide_Layer *ly, int r) {
  if (r == TIDE_ELAYER) {
    const char *msg, *code;
    lua_settop(L, 0);
    if (ly->ops->pushfail(ly, L) != 3 || !lua_isnil(L, 1)) fail("pushfail");
    msg = lua_tostring(L, 2);
    code = lua_tostring(L, 3);
    if (msg == NULL || *msg == '\0' || code == NULL ||
        strncmp(code, "ETLS", 4) != 0)
      fail("an error without a message or code: %s %s", msg ? msg : "-",
           code ? code : "-");
  }
  else if (r >= 0) fail("not an end: %d", r);
}

/* Read what ly gives into out (NULL: dropped) up to cap; the last result
** (0: wants more input, < 0: the end, checked). */
static int drain (tide_Layer *ly, char *out, size_t *len, size_t cap) {
  char buf[16384];
  int r, i;
  for (i = 0; i < 10000; i++) {
    r = ly->ops->read(ly, buf, sizeof buf);
    if (r <= 0) {
      if (r < 0) checkend(ly, r);
      return r;
    }
    if (out != NULL) {
      if (*len + (size_t)r > cap) fail("more plaintext than was written");
      memcpy(out + *len, buf, (size_t)r);
    }
    if (len != NULL) *len += (size_t)r;
  }
  fail("a read that never ends");
}

/* Give ly n bytes of input (as the socket would, into its room), reading
** as it fills; the last read's result. */
static int feed (tide_Layer *ly, const char *p, size_t n, char *out,
                 size_t *len, size_t cap) {
  int r = 0;
  while (n > 0) {
    uv_buf_t b = ly->ops->room(ly, 0);
    size_t k = n < b.len ? n : b.len;
    if (b.len == 0) fail("no room for input");
    memcpy(b.base, p, k);
    ly->ops->input(ly, (ssize_t)k);
    p += k;
    n -= k;
    if ((r = drain(ly, out, len, cap)) < 0) return r;
  }
  return r;
}

/* The input has ended: a read must say so now. */
static int end (tide_Layer *ly, int how, char *out, size_t *len, size_t cap) {
  int r;
  ly->ops->input(ly, how);
  r = drain(ly, out, len, cap);
  if (r == 0) fail("a read wants more input after the end");
  return r;
}

/* Append what ly has to send to the buffer t (of tlen bytes, cap tcap). */
static void take (tide_Layer *ly, char **t, size_t *tlen, size_t *tcap) {
  const char *p;
  size_t n = ly->ops->output(ly, &p);
  if (n == 0) return;
  if (*tlen + n > *tcap) {
    *tcap = (*tlen + n) * 2;
    if ((*t = realloc(*t, *tcap)) == NULL) fail("no memory");
  }
  memcpy(*t + *tlen, p, n);
  *tlen += n;
}

/* Modes 0 and 1: the input, in pieces, as the peer's bytes. */
static void garbage (In *in, int server) {
  tide_Layer *ly = newlayer(server);
  int r = 0;
  if (!server) drain(ly, NULL, NULL, 0);      /* the client's hello */
  while (in->n > 0 && r >= 0) {
    size_t n, k = 1 + in_u8(in) * 4;
    const char *p = in_bytes(in, k, &n);
    r = feed(ly, p, n, NULL, NULL, 0);
    { const char *o; ly->ops->output(ly, &o); }   /* alerts: dropped */
  }
  if (r >= 0) end(ly, in_u8(in) & 1 ? UV_ECONNRESET : UV_EOF, NULL, NULL, 0);
  ly->ops->free(ly);
}

typedef struct Pipe {              /* the client's ciphertext on its way */
  char *t;
  size_t len, cap, off;            /* delivered: t[0 .. off) */
  int harmed;                      /* a byte flipped or bytes cut */
} Pipe;

/* Mode 2. */
static void traffic (In *in) {
  tide_Layer *c = newlayer(0), *s = newlayer(1);
  Pipe p = { NULL, 0, 0, 0, 0 };
  char *back = NULL, *wrote = malloc(MAXDATA), *got = malloc(MAXDATA);
  size_t blen = 0, bcap = 0, nwrote = 0, ngot = 0;
  int i, r = 0, shut = 0, ended = 0;
  for (i = 0; i < 20 && !(c->ops->ready(c) && s->ops->ready(s)); i++) {
    drain(c, NULL, NULL, 0);
    take(c, &p.t, &p.len, &p.cap);
    if (feed(s, p.t, p.len, NULL, NULL, 0) < 0) fail("server handshake");
    p.len = 0;
    take(s, &back, &blen, &bcap);
    if (feed(c, back, blen, NULL, NULL, 0) < 0) fail("client handshake");
    blen = 0;
  }
  if (!c->ops->ready(c) || !s->ops->ready(s)) fail("no handshake");
  take(c, &p.t, &p.len, &p.cap);          /* what the client has left */
  feed(s, p.t, p.len, got, &ngot, MAXDATA);
  p.len = p.off = 0;
  for (i = 0; i < MAXOPS && in->n > 0 && !ended && r >= 0; i++) {
    unsigned op = in_u8(in) % 7, v = in_u16(in);
    switch (op) {
      case 0: {                             /* the client writes */
        size_t n = 1 + v % 20000, j;
        if (shut || nwrote + n > MAXDATA) break;
        for (j = 0; j < n; j++) wrote[nwrote + j] = (char)(nwrote + j + v);
        if (c->ops->write(c, wrote + nwrote, n) != 0) fail("client write");
        nwrote += n;
        take(c, &p.t, &p.len, &p.cap);
        break;
      }
      case 1:                               /* a byte flipped on the way */
        if (p.len > p.off) {
          p.t[p.off + v % (p.len - p.off)] ^= (char)(1 + in_u8(in) % 255);
          p.harmed = 1;
        }
        break;
      case 2:                               /* cut short */
        if (p.len > p.off) {
          p.len = p.off + v % (p.len - p.off);
          p.harmed = 1;
        }
        break;
      case 3: {                             /* some of it arrives */
        size_t n = p.len - p.off;
        if (n > (size_t)v + 1) n = (size_t)v + 1;
        r = feed(s, p.t + p.off, n, got, &ngot, MAXDATA);
        p.off += n;
        break;
      }
      case 4:                               /* close_notify */
        if (!shut) {
          shut = 1;
          if (c->ops->shutdown(c) != 0) fail("shutdown");
          take(c, &p.t, &p.len, &p.cap);
        }
        break;
      case 5:                               /* all arrives, then the end */
        r = feed(s, p.t + p.off, p.len - p.off, got, &ngot, MAXDATA);
        p.off = p.len;
        if (r >= 0) r = end(s, UV_EOF, got, &ngot, MAXDATA);
        if (!p.harmed && shut && r != UV_EOF)
          fail("close_notify did not end the stream cleanly: %d", r);
        if (!p.harmed && !shut && r != TIDE_ELAYER)
          fail("an end without close_notify was not an error: %d", r);
        ended = 1;
        break;
      default: {                            /* the server answers */
        char msg[64];
        size_t n = 1 + v % sizeof msg, cgot = 0;
        char cbuf[sizeof msg];
        memset(msg, 'a' + v % 26, n);
        if (s->ops->write(s, msg, n) != 0) break;   /* it may have failed */
        take(s, &back, &blen, &bcap);
        if (feed(c, back, blen, cbuf, &cgot, sizeof cbuf) < 0 && !shut)
          fail("the client could not read the server");
        if (!shut && (cgot != n || memcmp(cbuf, msg, n) != 0))
          fail("the client read %zu bytes, not the %zu sent", cgot, n);
        blen = 0;
      }
    }
    if (ngot > nwrote || memcmp(got, wrote, ngot) != 0)
      fail("the server read what was not written (%zu of %zu)", ngot, nwrote);
  }
  if (!p.harmed && r >= 0 && !ended) {      /* the rest arrives whole */
    r = feed(s, p.t + p.off, p.len - p.off, got, &ngot, MAXDATA);
    if (r < 0 && !(shut && r == UV_EOF)) fail("unharmed traffic failed: %d", r);
    if (ngot != nwrote || memcmp(got, wrote, ngot) != 0)
      fail("the server read %zu bytes of %zu", ngot, nwrote);
  }
  c->ops->free(c);
  s->ops->free(s);
  free(p.t);
  free(back);
  free(wrote);
  free(got);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  In in = { data, size };
  if (sctx == NULL) setup();
  switch (in_u8(&in) % 3) {
    case 0: garbage(&in, 1); break;
    case 1: garbage(&in, 0); break;
    default: traffic(&in);
  }
  ERR_clear_error();
  return 0;
}
