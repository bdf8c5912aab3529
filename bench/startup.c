/* Startup time: run a command RUNS times, each to its end, with its output
 * discarded, and print the median wall time in milliseconds.
 * Usage: startup RUNS command [arg...] */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 3 || atoi(argv[1]) < 1) {
    fprintf(stderr, "usage: startup RUNS command [arg...]\n");
    return 2;
  }
  int runs = atoi(argv[1]);
  double *ms = malloc(sizeof *ms * runs);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1, 0);
  for (int i = 0; i < runs; i++) {
    pid_t pid;
    int status;
    double t0 = now_ms();
    if (posix_spawnp(&pid, argv[2], &fa, NULL, argv + 2, environ) != 0) {
      perror(argv[2]);
      return 1;
    }
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
      fprintf(stderr, "startup: %s failed\n", argv[2]);
      return 1;
    }
    ms[i] = now_ms() - t0;
  }
  qsort(ms, runs, sizeof *ms, cmp_double);
  double median = runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2;
  printf("startup_ms\t%.2f\n", median);
  free(ms);
  return 0;
}
