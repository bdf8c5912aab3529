/* Bulk throughput client in C on libuv, the same for every echo server: one
 * connection sends MIB mebibytes in 64 KiB writes (at most 1 MiB in flight
 * to the kernel) while reading the echo; prints the echoed MiB per second,
 * from connect to the last byte back, as "bulk_mib_per_s\t<v>".
 * Usage: bulk_uv host port mib */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define CHUNK (64 * 1024)
#define IN_FLIGHT 16

static uv_tcp_t tcp;
static uv_connect_t connect_req;
static uv_write_t writes[IN_FLIGHT];
static char chunk[CHUNK], readbuf[CHUNK];
static uv_buf_t chunkbuf;
static unsigned long long total, sent, received, t0;

static void die(const char *what, int r) {
  fprintf(stderr, "bulk_uv: %s: %s\n", what, uv_strerror(r));
  exit(1);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init(readbuf, sizeof readbuf);
}

static void on_write(uv_write_t *req, int status);

static void send_chunk(uv_write_t *req) {
  int r;
  if (sent >= total) return;
  sent += CHUNK;
  if ((r = uv_write(req, (uv_stream_t *)&tcp, &chunkbuf, 1, on_write)) < 0)
    die("write", r);
}

static void on_write(uv_write_t *req, int status) {
  if (status < 0) die("write", status);
  send_chunk(req);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  if (n == 0) return;
  if (n < 0) die("read (the server closed before echoing everything)", (int)n);
  received += (unsigned long long)n;
  if (received < total) return;
  double elapsed = (uv_hrtime() - t0) / 1e9;
  printf("bulk_mib_per_s\t%.1f\n", total / 1048576.0 / elapsed);
  uv_read_stop(s);
  uv_close((uv_handle_t *)s, NULL);
}

static void on_connect(uv_connect_t *req, int status) {
  (void)req;
  if (status < 0) die("connect", status);
  uv_read_start((uv_stream_t *)&tcp, on_alloc, on_read);
  for (int i = 0; i < IN_FLIGHT; i++) send_chunk(&writes[i]);
}

int main(int argc, char **argv) {
  struct sockaddr_in addr;
  int r;
  if (argc != 4 || atoi(argv[3]) < 1) {
    fprintf(stderr, "usage: bulk_uv host port mib\n");
    return 2;
  }
  total = (unsigned long long)atoi(argv[3]) * 1048576;
  memset(chunk, 'x', sizeof chunk);
  chunkbuf = uv_buf_init(chunk, sizeof chunk);
  if ((r = uv_ip4_addr(argv[1], atoi(argv[2]), &addr)) < 0) die("address", r);
  uv_tcp_init(uv_default_loop(), &tcp);
  t0 = uv_hrtime();
  if ((r = uv_tcp_connect(&connect_req, &tcp, (struct sockaddr *)&addr, on_connect)) < 0)
    die("connect", r);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  return 0;
}
