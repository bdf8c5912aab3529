/* Echo server in C on libuv: the ceiling for the echo benchmarks. Reads into
 * one shared 64 KiB buffer and writes back at once with uv_try_write; what
 * the socket does not take is copied and queued with uv_write, and reading
 * stops while more than 256 KiB waits, as the runtimes' streams do.
 * Usage: echo_uv host port (port 0 picks one); prints "port\t<n>" once
 * listening. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define HIGH_WATER (256 * 1024)

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
} write_req;

static char readbuf[64 * 1024];

static void on_close(uv_handle_t *h) { free(h); }

static void close_stream(uv_stream_t *s) {
  if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, on_close);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init(readbuf, sizeof readbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  uv_stream_t *s = req->handle;
  free(w);
  if (status < 0) {
    close_stream(s);
    return;
  }
  /* s->data marks a stream whose reading was stopped by the high water. */
  if (s->data && !uv_is_closing((uv_handle_t *)s) &&
      uv_stream_get_write_queue_size(s) < HIGH_WATER) {
    s->data = NULL;
    uv_read_start(s, on_alloc, on_read);
  }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n == 0) return;
  if (n < 0) {
    close_stream(s);
    return;
  }
  uv_buf_t data = uv_buf_init(buf->base, (unsigned)n);
  int done = uv_try_write(s, &data, 1);
  if (done == n) return;
  if (done < 0 && done != UV_EAGAIN) {
    close_stream(s);
    return;
  }
  if (done < 0) done = 0;
  /* Queue the rest in a copy: the read buffer is reused by the next read. */
  write_req *w = malloc(sizeof *w + (size_t)(n - done));
  memcpy(w + 1, buf->base + done, (size_t)(n - done));
  w->buf = uv_buf_init((char *)(w + 1), (unsigned)(n - done));
  if (uv_write(&w->req, s, &w->buf, 1, on_write) < 0) {
    free(w);
    close_stream(s);
    return;
  }
  if (uv_stream_get_write_queue_size(s) >= HIGH_WATER) {
    s->data = s;
    uv_read_stop(s);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *c = malloc(sizeof *c);
  uv_tcp_init(server->loop, c);
  c->data = NULL;
  if (uv_accept(server, (uv_stream_t *)c) < 0) {
    close_stream((uv_stream_t *)c);
    return;
  }
  uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: echo_uv host port\n");
    return 2;
  }
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int len = sizeof bound, r;
  uv_tcp_init(loop, &server);
  if ((r = uv_ip4_addr(argv[1], atoi(argv[2]), &addr)) < 0 ||
      (r = uv_tcp_bind(&server, (struct sockaddr *)&addr, 0)) < 0 ||
      (r = uv_listen((uv_stream_t *)&server, 511, on_connection)) < 0) {
    fprintf(stderr, "echo_uv: %s\n", uv_strerror(r));
    return 1;
  }
  uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
  printf("port\t%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
