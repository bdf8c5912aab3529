/* Request/response load client in C on libuv, the same for every echo
 * server: CONNECTIONS connections each send MSGSIZE bytes, wait for all of
 * them to come back, and send again, for SECONDS seconds counted from the
 * moment every connection is up. Prints "rr_per_s\t<requests per second>".
 * Usage: load_uv host port connections seconds msgsize */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  size_t got;        /* bytes of the current response received */
} conn;

static uv_loop_t *loop;
static conn *conns;
static int nconns, connected;
static double seconds;
static size_t msgsize;
static char *msg, readbuf[64 * 1024];
static uv_buf_t msgbuf;
static uv_timer_t timer;
static unsigned long long requests, t0;
static int running;

static void die(const char *what, int r) {
  fprintf(stderr, "load_uv: %s: %s\n", what, uv_strerror(r));
  exit(1);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init(readbuf, sizeof readbuf);
}

static void on_write(uv_write_t *req, int status) {
  (void)req;
  if (status < 0 && running) die("write", status);
}

static void send_request(conn *c) {
  int r;
  c->got = 0;
  if ((r = uv_write(&c->write, (uv_stream_t *)&c->tcp, &msgbuf, 1, on_write)) < 0)
    die("write", r);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *c = (conn *)s;
  (void)buf;
  if (n == 0) return;
  if (n < 0) {
    if (running) die("read", (int)n);
    return;
  }
  c->got += (size_t)n;
  if (c->got < msgsize || !running) return;
  if (c->got > msgsize) {
    fprintf(stderr, "load_uv: more bytes than were sent\n");
    exit(1);
  }
  requests++;
  send_request(c);
}

static void on_time(uv_timer_t *t) {
  double elapsed = (uv_hrtime() - t0) / 1e9;
  (void)t;
  running = 0;
  printf("rr_per_s\t%.0f\n", requests / elapsed);
  fflush(stdout);
  for (int i = 0; i < nconns; i++) uv_close((uv_handle_t *)&conns[i].tcp, NULL);
  uv_close((uv_handle_t *)&timer, NULL);
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (status < 0) die("connect", status);
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (++connected < nconns) return;
  running = 1;
  t0 = uv_hrtime();
  uv_timer_start(&timer, on_time, (uint64_t)(seconds * 1000), 0);
  for (int i = 0; i < nconns; i++) send_request(&conns[i]);
}

int main(int argc, char **argv) {
  struct sockaddr_in addr;
  int r;
  if (argc != 6) {
    fprintf(stderr, "usage: load_uv host port connections seconds msgsize\n");
    return 2;
  }
  nconns = atoi(argv[3]);
  seconds = atof(argv[4]);
  msgsize = (size_t)atol(argv[5]);
  if (nconns < 1 || seconds <= 0 || msgsize < 1) {
    fprintf(stderr, "load_uv: bad arguments\n");
    return 2;
  }
  if ((r = uv_ip4_addr(argv[1], atoi(argv[2]), &addr)) < 0) die("address", r);
  loop = uv_default_loop();
  msg = malloc(msgsize);
  memset(msg, 'x', msgsize);
  msgbuf = uv_buf_init(msg, (unsigned)msgsize);
  conns = calloc((size_t)nconns, sizeof *conns);
  uv_timer_init(loop, &timer);
  for (int i = 0; i < nconns; i++) {
    uv_tcp_init(loop, &conns[i].tcp);
    conns[i].connect.data = &conns[i];
    if ((r = uv_tcp_connect(&conns[i].connect, &conns[i].tcp,
                            (struct sockaddr *)&addr, on_connect)) < 0)
      die("connect", r);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  free(conns);
  free(msg);
  return 0;
}
