/* Request/response load client in C on libuv, the same for every echo
 * server: CONNECTIONS connections each send MSGSIZE bytes, wait for all of
 * them to come back, and send again. Once every connection is up, WARMUP
 * seconds of this are run and not counted; then SECONDS seconds are
 * measured. Prints
 *   rr_per_s        round trips (request sent, whole echo received) per second
 *   p50_us, p99_us  latency of a round trip in microseconds, from the write
 *                   of the request to the last byte of its echo (nearest rank
 *                   over every round trip finished in the measured interval)
 *   requests        round trips finished in the measured interval
 * and, when SERVER_PID is given, the server's CPU time over the measured
 * interval, from utime + stime in /proc/SERVER_PID/stat (all its threads):
 *   server_cpu_s    that CPU time in seconds
 *   cpu_us_per_msg  that CPU time in microseconds divided by the round trips
 * Usage: load_uv host port connections seconds msgsize [warmup [server_pid]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  size_t got;        /* bytes of the current response received */
  uint64_t sent;     /* uv_hrtime() when the current request was written */
} conn;

static uv_loop_t *loop;
static conn *conns;
static int nconns, connected;
static double seconds, warmup;
static size_t msgsize;
static char *msg, readbuf[64 * 1024];
static uv_buf_t msgbuf;
static uv_timer_t timer;
static unsigned long long requests;
static uint64_t t0;
static int running, measuring;
static int server_pid;
static double cpu0;
static uint32_t *lat;          /* latencies of the measured round trips, ns */
static size_t nlat, caplat;

static void die(const char *what, int r) {
  fprintf(stderr, "load_uv: %s: %s\n", what, uv_strerror(r));
  exit(1);
}

/* The CPU time (s) of process pid so far: utime + stime from /proc/pid/stat,
 * the sums over all its threads; -1 if it cannot be read. */
static double cpu_seconds(int pid) {
  char path[64], buf[1024], *p;
  unsigned long long utime, stime;
  FILE *f;
  size_t n;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if (!(f = fopen(path, "r"))) return -1;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  /* The command name (field 2) is in parentheses and may hold spaces: skip
   * past its last ')', then field 3 (state) to field 15 (stime). */
  if (!(p = strrchr(buf, ')'))) return -1;
  if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             &utime, &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static int by_value(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* The p-th quantile (0 < p <= 1) of the sorted latencies, in µs, nearest rank. */
static double quantile_us(double p) {
  size_t rank;
  if (nlat == 0) return 0;
  rank = (size_t)(p * (double)nlat + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > nlat) rank = nlat;
  return lat[rank - 1] / 1e3;
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
  c->sent = uv_hrtime();
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
  if (measuring) {
    uint64_t d = uv_hrtime() - c->sent;
    if (nlat == caplat) {
      caplat = caplat ? 2 * caplat : 1 << 16;
      if (!(lat = realloc(lat, caplat * sizeof *lat))) {
        fprintf(stderr, "load_uv: out of memory\n");
        exit(1);
      }
    }
    lat[nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    requests++;
  }
  send_request(c);
}

static void on_done(uv_timer_t *t) {
  double elapsed = (uv_hrtime() - t0) / 1e9;
  double cpu1 = server_pid ? cpu_seconds(server_pid) : -1;
  (void)t;
  running = measuring = 0;
  qsort(lat, nlat, sizeof *lat, by_value);
  printf("rr_per_s\t%.0f\n", requests / elapsed);
  printf("p50_us\t%.1f\n", quantile_us(0.50));
  printf("p99_us\t%.1f\n", quantile_us(0.99));
  printf("requests\t%llu\n", requests);
  if (server_pid && cpu0 >= 0 && cpu1 >= 0 && requests > 0) {
    printf("server_cpu_s\t%.2f\n", cpu1 - cpu0);
    printf("cpu_us_per_msg\t%.2f\n", (cpu1 - cpu0) * 1e6 / (double)requests);
  }
  fflush(stdout);
  for (int i = 0; i < nconns; i++) uv_close((uv_handle_t *)&conns[i].tcp, NULL);
  uv_close((uv_handle_t *)&timer, NULL);
}

/* The end of the warm-up: start counting. */
static void on_warm(uv_timer_t *t) {
  (void)t;
  measuring = 1;
  requests = 0;
  nlat = 0;
  if (server_pid) cpu0 = cpu_seconds(server_pid);
  t0 = uv_hrtime();
  uv_timer_start(&timer, on_done, (uint64_t)(seconds * 1000), 0);
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (status < 0) die("connect", status);
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (++connected < nconns) return;
  running = 1;
  if (warmup > 0)
    uv_timer_start(&timer, on_warm, (uint64_t)(warmup * 1000), 0);
  else
    on_warm(&timer);
  for (int i = 0; i < nconns; i++) send_request(&conns[i]);
}

int main(int argc, char **argv) {
  struct sockaddr_in addr;
  int r;
  if (argc < 6 || argc > 8) {
    fprintf(stderr,
            "usage: load_uv host port connections seconds msgsize [warmup [server_pid]]\n");
    return 2;
  }
  nconns = atoi(argv[3]);
  seconds = atof(argv[4]);
  msgsize = (size_t)atol(argv[5]);
  warmup = argc > 6 ? atof(argv[6]) : 0;
  server_pid = argc > 7 ? atoi(argv[7]) : 0;
  if (nconns < 1 || seconds <= 0 || msgsize < 1 || warmup < 0 || server_pid < 0) {
    fprintf(stderr, "load_uv: bad arguments\n");
    return 2;
  }
  if (server_pid && cpu_seconds(server_pid) < 0) {
    fprintf(stderr, "load_uv: cannot read /proc/%d/stat\n", server_pid);
    return 1;
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
  free(lat);
  return 0;
}
