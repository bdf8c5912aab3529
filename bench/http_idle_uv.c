/*
** http_idle_uv.c: open N kept-alive HTTP connections to a server and
** leave them idle, for the memory each costs the server. At most 100
** connect at once; each sends one GET and reads its answer (one
** "Hello, World!" of 13 bytes); once all N have had theirs it prints
** "ready" and keeps them open until killed (or for 120 s).
**   http_idle_uv HOST PORT N
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define INFLIGHT 100

typedef struct Conn {
  uv_tcp_t tcp;
  uv_connect_t req;
  uv_write_t w;
  size_t got;
  char tail[16];
} Conn;

static struct sockaddr_in addr;
static int total, started, answered;
static uv_loop_t *loop;
static uv_timer_t timer;
static char request[128];

static void start_one (void);

static void die (const char *what, int err) {
  fprintf(stderr, "http_idle_uv: %s: %s\n", what, uv_strerror(err));
  exit(1);
}

static void alloc_cb (uv_handle_t *h, size_t size, uv_buf_t *b) {
  static char buf[65536];
  (void)h; (void)size;
  *b = uv_buf_init(buf, sizeof buf);
}

static void read_cb (uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  Conn *c = s->data;
  size_t keep;
  if (n < 0) die("read", (int)n);
  /* the last bytes seen: the answer ends with the body */
  keep = (size_t)n < sizeof c->tail - 1 ? (size_t)n : sizeof c->tail - 1;
  memmove(c->tail, c->tail + keep, sizeof c->tail - 1 - keep);
  memcpy(c->tail + sizeof c->tail - 1 - keep, b->base + n - keep, keep);
  c->got += (size_t)n;
  if (memcmp(c->tail + sizeof c->tail - 14, "Hello, World!", 13) == 0) {
    uv_read_stop(s);
    if (++answered == total) {
      printf("ready\n");
      fflush(stdout);
    }
    else start_one();
  }
}

static void write_cb (uv_write_t *w, int status) {
  if (status < 0) die("write", status);
  (void)w;
}

static void connect_cb (uv_connect_t *r, int status) {
  Conn *c = r->data;
  uv_buf_t b = uv_buf_init(request, (unsigned)strlen(request));
  if (status < 0) die("connect", status);
  c->tcp.data = c;
  uv_write(&c->w, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void start_one (void) {
  Conn *c;
  int e;
  if (started == total) return;
  started++;
  if ((c = calloc(1, sizeof *c)) == NULL) die("calloc", UV_ENOMEM);
  uv_tcp_init(loop, &c->tcp);
  c->req.data = c;
  if ((e = uv_tcp_connect(&c->req, &c->tcp, (struct sockaddr *)&addr,
                          connect_cb)) < 0)
    die("connect", e);
}

static void timer_cb (uv_timer_t *t) {
  (void)t;
  exit(0);
}

int main (int argc, char **argv) {
  int i;
  if (argc != 4) {
    fprintf(stderr, "usage: http_idle_uv HOST PORT N\n");
    return 2;
  }
  loop = uv_default_loop();
  uv_ip4_addr(argv[1], atoi(argv[2]), &addr);
  total = atoi(argv[3]);
  snprintf(request, sizeof request,
           "GET / HTTP/1.1\r\nHost: %s:%s\r\n\r\n", argv[1], argv[2]);
  for (i = 0; i < INFLIGHT; i++) start_one();
  uv_timer_init(loop, &timer);
  uv_timer_start(&timer, timer_cb, 120000, 0);
  return uv_run(loop, UV_RUN_DEFAULT);
}
