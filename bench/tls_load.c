/* TLS load client in C on OpenSSL (blocking sockets, a thread per
 * connection; poll for the bulk run), the same for every TLS echo server.
 * TLS 1.3 only, no session resumption (every handshake is a full one), the
 * server's certificate not verified (this is a load generator).
 *   tls_load handshake HOST PORT SECONDS THREADS [SERVER_PID]
 *     THREADS threads each connect, handshake, send close_notify and close,
 *     again and again, for SECONDS: prints handshakes_per_s (and, with
 *     SERVER_PID, cpu_us_per_handshake: the server's utime + stime from
 *     /proc/SERVER_PID/stat over the run, per handshake)
 *   tls_load rr HOST PORT CONNECTIONS SECONDS MSGSIZE WARMUP [SERVER_PID]
 *     CONNECTIONS kept connections each send MSGSIZE bytes and wait for
 *     their echo, again and again; WARMUP s uncounted, then SECONDS
 *     measured: rr_per_s, p50_us, p99_us, cpu_us_per_msg
 *   tls_load bulk HOST PORT MIB [SERVER_PID]
 *     one connection writes MIB MiB while reading the echo: bulk_mib_per_s,
 *     cpu_ms_per_mib */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static SSL_CTX *ctx;
static struct sockaddr_in addr;
static int server_pid;
static volatile int stop, measuring;
static double seconds, warmup;
static size_t msgsize;

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The CPU time (s) of process pid so far, or -1. */
static double cpu_seconds (int pid) {
  char path[64], buf[1024], *p;
  unsigned long ut, st;
  FILE *f;
  size_t n;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if ((f = fopen(path, "r")) == NULL) return -1;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  if ((p = strrchr(buf, ')')) == NULL ||
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
             &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void die (const char *what) {
  fprintf(stderr, "tls_load: %s: ", what);
  if (ERR_peek_error()) ERR_print_errors_fp(stderr);
  else fprintf(stderr, "%s\n", strerror(errno));
  exit(1);
}

/* A new connection, its handshake done. */
static SSL *dial (void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  SSL *ssl;
  if (fd < 0) die("socket");
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
  if ((ssl = SSL_new(ctx)) == NULL) die("SSL_new");
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) die("handshake");
  return ssl;
}

static void hangup (SSL *ssl) {
  int fd = SSL_get_fd(ssl);
  SSL_shutdown(ssl);               /* close_notify, not waiting for theirs */
  SSL_free(ssl);
  close(fd);
}

/* ---- handshakes ---------------------------------------------------------- */

static unsigned long long handshakes;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *handshaker (void *arg) {
  unsigned long long n = 0;
  (void)arg;
  while (!stop) {
    hangup(dial());
    n++;
  }
  pthread_mutex_lock(&mu);
  handshakes += n;
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void run_handshakes (int threads) {
  pthread_t *t = calloc((size_t)threads, sizeof *t);
  double t0 = now(), c0 = server_pid ? cpu_seconds(server_pid) : -1, t1, c1;
  int i;
  for (i = 0; i < threads; i++) pthread_create(&t[i], NULL, handshaker, NULL);
  usleep((useconds_t)(seconds * 1e6));
  stop = 1;
  for (i = 0; i < threads; i++) pthread_join(t[i], NULL);
  t1 = now();
  c1 = server_pid ? cpu_seconds(server_pid) : -1;
  printf("handshakes_per_s\t%.0f\n", handshakes / (t1 - t0));
  printf("handshakes\t%llu\n", handshakes);
  if (c0 >= 0 && c1 >= 0 && handshakes > 0)
    printf("cpu_us_per_handshake\t%.1f\n", (c1 - c0) * 1e6 / (double)handshakes);
  free(t);
}

/* ---- request/response ---------------------------------------------------- */

typedef struct {
  pthread_t t;
  double *lat;                     /* latencies (s) in the measured interval */
  size_t n, cap;
} Conn;

static void *requester (void *arg) {
  Conn *c = arg;
  SSL *ssl = dial();
  char *msg = malloc(msgsize), *buf = malloc(msgsize);
  memset(msg, 'x', msgsize);
  while (!stop) {
    double t0 = now();
    size_t got = 0;
    if (SSL_write(ssl, msg, (int)msgsize) <= 0) die("write");
    while (got < msgsize) {
      int k = SSL_read(ssl, buf, (int)(msgsize - got));
      if (k <= 0) die("read");
      got += (size_t)k;
    }
    if (measuring) {
      if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4096;
        c->lat = realloc(c->lat, c->cap * sizeof *c->lat);
      }
      c->lat[c->n++] = now() - t0;
    }
  }
  hangup(ssl);
  free(msg);
  free(buf);
  return NULL;
}

static int cmp (const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void run_rr (int conns) {
  Conn *c = calloc((size_t)conns, sizeof *c);
  double t0, t1, c0, c1, *all;
  size_t total = 0, k = 0;
  int i;
  for (i = 0; i < conns; i++) pthread_create(&c[i].t, NULL, requester, &c[i]);
  usleep((useconds_t)(warmup * 1e6));
  c0 = server_pid ? cpu_seconds(server_pid) : -1;
  t0 = now();
  measuring = 1;
  usleep((useconds_t)(seconds * 1e6));
  measuring = 0;
  t1 = now();
  c1 = server_pid ? cpu_seconds(server_pid) : -1;
  stop = 1;
  for (i = 0; i < conns; i++) {
    pthread_join(c[i].t, NULL);
    total += c[i].n;
  }
  all = malloc((total + 1) * sizeof *all);
  for (i = 0; i < conns; i++) {
    memcpy(all + k, c[i].lat, c[i].n * sizeof *all);
    k += c[i].n;
  }
  qsort(all, total, sizeof *all, cmp);
  printf("rr_per_s\t%.0f\n", total / (t1 - t0));
  if (total > 0) {
    printf("p50_us\t%.1f\n", all[(size_t)(0.50 * (double)(total - 1))] * 1e6);
    printf("p99_us\t%.1f\n", all[(size_t)(0.99 * (double)(total - 1))] * 1e6);
  }
  printf("requests\t%zu\n", total);
  if (c0 >= 0 && c1 >= 0 && total > 0)
    printf("cpu_us_per_msg\t%.2f\n", (c1 - c0) * 1e6 / (double)total);
}

/* ---- bulk ------------------------------------------------------------------ */

static void run_bulk (size_t mib) {
  static char wbuf[65536], rbuf[65536];
  size_t total = mib << 20, sent = 0, got = 0;
  double t0 = now(), c0 = server_pid ? cpu_seconds(server_pid) : -1, t1, c1;
  SSL *ssl = dial();
  int fd = SSL_get_fd(ssl);
  memset(wbuf, 'b', sizeof wbuf);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  while (got < total) {
    struct pollfd p = { fd, (short)(POLLIN | (sent < total ? POLLOUT : 0)), 0 };
    if (poll(&p, 1, 10000) <= 0) die("poll (stalled)");
    for (;;) {
      int n = SSL_read(ssl, rbuf, sizeof rbuf), e;
      if (n > 0) {
        got += (size_t)n;
        continue;
      }
      e = SSL_get_error(ssl, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
      die("read");
    }
    while (sent < total) {
      size_t k = total - sent < sizeof wbuf ? total - sent : sizeof wbuf;
      int n = SSL_write(ssl, wbuf, (int)k), e;
      if (n > 0) {
        sent += (size_t)n;
        continue;
      }
      e = SSL_get_error(ssl, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
      die("write");
    }
  }
  t1 = now();
  c1 = server_pid ? cpu_seconds(server_pid) : -1;
  printf("bulk_mib_per_s\t%.1f\n", (double)mib / (t1 - t0));
  if (c0 >= 0 && c1 >= 0)
    printf("cpu_ms_per_mib\t%.3f\n", (c1 - c0) * 1e3 / (double)mib);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  hangup(ssl);
}

int main (int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (argc < 5) {
    fprintf(stderr, "usage: tls_load handshake|rr|bulk HOST PORT ...\n");
    return 2;
  }
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1) die("address");
  if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (strcmp(mode, "handshake") == 0 && argc >= 6) {
    seconds = atof(argv[4]);
    server_pid = argc > 6 ? atoi(argv[6]) : 0;
    run_handshakes(atoi(argv[5]));
  }
  else if (strcmp(mode, "rr") == 0 && argc >= 8) {
    seconds = atof(argv[5]);
    msgsize = (size_t)atol(argv[6]);
    warmup = atof(argv[7]);
    server_pid = argc > 8 ? atoi(argv[8]) : 0;
    run_rr(atoi(argv[4]));
  }
  else if (strcmp(mode, "bulk") == 0) {
    server_pid = argc > 5 ? atoi(argv[5]) : 0;
    run_bulk((size_t)atol(argv[4]));
  }
  else {
    fprintf(stderr, "tls_load: bad arguments\n");
    return 2;
  }
  SSL_CTX_free(ctx);
  return 0;
}
