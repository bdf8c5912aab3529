/* TLS echo server in C on libuv and OpenSSL (the ceiling of the TLS rows):
 * each connection's SSL talks to the socket through two memory BIOs, as
 * servers built on an event loop do; what it reads is written back. The
 * connection stops reading while more than 1 MiB waits to be written.
 * Usage: tls_echo_uv CERT KEY; prints "port\t<n>" once listening. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define QUEUE_HWM (1 << 20)

typedef struct {
  uv_tcp_t tcp;
  SSL *ssl;
  BIO *in, *out;                   /* socket -> SSL, SSL -> socket */
  int reading, closing;
} Conn;

typedef struct {
  uv_write_t req;
  char data[];
} Req;

static uv_loop_t *loop;
static SSL_CTX *ctx;
static char readbuf[64 * 1024], plain[64 * 1024];

static void freed (uv_handle_t *h) {
  Conn *c = h->data;
  SSL_free(c->ssl);                /* and its BIOs */
  free(c);
}

static void drop (Conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, freed);
}

static void read_cb (uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void alloc_cb (uv_handle_t *h, size_t size, uv_buf_t *b) {
  (void)h; (void)size;
  *b = uv_buf_init(readbuf, sizeof readbuf);
}

static void write_cb (uv_write_t *req, int status) {
  Conn *c = req->handle->data;
  free(req);
  if (status < 0) {
    drop(c);
    return;
  }
  if (!c->reading && !c->closing &&
      uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < QUEUE_HWM / 4) {
    c->reading = 1;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  }
}

/* Send what the SSL wrote to its output BIO: at once what the socket
** takes, the rest queued. */
static void flush (Conn *c) {
  char *p;
  long n = BIO_get_mem_data(c->out, &p);
  int w = 0;
  Req *r;
  uv_buf_t b;
  if (n <= 0 || c->closing) return;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
    b = uv_buf_init(p, (unsigned)n);
    w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w < 0) w = 0;
  }
  if (w < n) {
    r = malloc(sizeof *r + (size_t)(n - w));
    memcpy(r->data, p + w, (size_t)(n - w));
    b = uv_buf_init(r->data, (unsigned)(n - w));
    if (uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) < 0) {
      free(r);
      drop(c);
    }
  }
  (void)BIO_reset(c->out);
}

static void read_cb (uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  Conn *c = s->data;
  int k;
  if (n < 0) {
    drop(c);
    return;
  }
  BIO_write(c->in, b->base, (int)n);
  while ((k = SSL_read(c->ssl, plain, sizeof plain)) > 0) {
    SSL_write(c->ssl, plain, k);   /* memory BIOs: all of it at once */
    flush(c);
  }
  k = SSL_get_error(c->ssl, k);
  flush(c);
  if (k != SSL_ERROR_WANT_READ) {
    ERR_clear_error();
    drop(c);
    return;
  }
  if (uv_stream_get_write_queue_size(s) > QUEUE_HWM) {
    c->reading = 0;
    uv_read_stop(s);
  }
}

static void connection_cb (uv_stream_t *server, int status) {
  Conn *c;
  if (status < 0) return;
  c = calloc(1, sizeof *c);
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
    uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
    return;
  }
  c->ssl = SSL_new(ctx);
  c->in = BIO_new(BIO_s_mem());
  c->out = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(c->in, -1);
  SSL_set_bio(c->ssl, c->in, c->out);
  SSL_set_accept_state(c->ssl);
  c->reading = 1;
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int main (int argc, char **argv) {
  uv_tcp_t server;
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int len = sizeof bound;
  if (argc < 3) {
    fprintf(stderr, "usage: tls_echo_uv CERT KEY\n");
    return 2;
  }
  ctx = SSL_CTX_new(TLS_server_method());
  if (!SSL_CTX_use_certificate_chain_file(ctx, argv[1]) ||
      !SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM)) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  loop = uv_default_loop();
  uv_tcp_init(loop, &server);
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&server, (struct sockaddr *)&addr, 0);
  if (uv_listen((uv_stream_t *)&server, 511, connection_cb) < 0) return 1;
  uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
  printf("port\t%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
