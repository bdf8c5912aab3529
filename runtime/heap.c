/*
** heap.c: the tide command's Lua allocator. It is glibc's malloc, with the
** heap advised for transparent huge pages as it grows: a million tasks
** touch a gigabyte, and on virtual machines a fault per 4 KiB page costs
** more than the tasks themselves. Embedding hosts keep their own allocator.
*/
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tide_int.h"

#define HUGE_PAGE ((uintptr_t)2 << 20)

static uintptr_t advised;        /* the heap below this is advised */

static void advise_heap (void) {
  uintptr_t top = (uintptr_t)sbrk(0);
  if (top > advised + 2 * HUGE_PAGE) {
    uintptr_t from = (advised + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    madvise((void *)from, top - from, MADV_HUGEPAGE);
    advised = top;
  }
}

static void *heap_alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud; (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  ptr = realloc(ptr, nsize);
  advise_heap();
  return ptr;
}

void tide__hugeheap (lua_State *L) {
  mallopt(M_TOP_PAD, 64 << 20);  /* grow the heap in large steps */
  advised = (uintptr_t)sbrk(0);
  lua_setallocf(L, heap_alloc, NULL);
}
