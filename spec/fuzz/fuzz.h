/*
** fuzz.h: what the libFuzzer harnesses of spec/fuzz share: reading typed
** values off the fuzzer's input (zeros once it runs out) and failing with
** a message (abort: libFuzzer keeps the input as a crash).
*/
#ifndef FUZZ_H
#define FUZZ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct In {
  const uint8_t *p;
  size_t n;
} In;

static inline unsigned in_u8 (In *in) {
  if (in->n == 0) return 0;
  in->n--;
  return *in->p++;
}

static inline unsigned in_u16 (In *in) {
  unsigned lo = in_u8(in);
  return lo | in_u8(in) << 8;
}

static inline uint64_t in_u64 (In *in) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < 8; i++) v |= (uint64_t)in_u8(in) << (8 * i);
  return v;
}

/* Up to n bytes of the input, pointed at; *len gets how many. */
static inline const char *in_bytes (In *in, size_t n, size_t *len) {
  const char *p = (const char *)in->p;
  if (n > in->n) n = in->n;
  in->p += n;
  in->n -= n;
  *len = n;
  return p;
}

static inline void fail (const char *fmt, ...)
  __attribute__((noreturn, format(printf, 1, 2)));

static inline void fail (const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

#endif
