/*
** heap.c: the tide command's Lua allocator. Blocks of up to 1 KiB come
** from slabs of 64 KiB that each hold blocks of one size (in steps of 8
** bytes, Lua's alignment), with no header: Lua tells a block's size when
** it frees it, and a slab's header is kept apart, in its arena's record.
** glibc puts 8 to 16 bytes of header and rounding on each block (40 of
** the 1,040 bytes a task's coroutine took: its state, stack and call
** record) and spends more instructions a call. Larger blocks, and those
** glibc gave before the switch, stay glibc's; those up to 64 KiB that are
** freed are kept (1 MiB of them at most) for the next of their size. A slab that empties goes to
** a pool any size takes from; past a few, a pooled slab's pages go back
** to the system. Arenas past the first few are faulted in by one call
** rather than a trap per page (a tenth of the system time of a million
** tasks). Pages stay 4 KiB: transparent huge pages (madvise) made the
** page faults of a million tasks cost 2 to 3 s of system time where 4 KiB
** pages cost 0.5 s on the VMs measured. Sanitized builds keep
** glibc's allocator, for the sanitizer to see every block; embedding
** hosts keep their own.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tide_int.h"

#if defined(__SANITIZE_ADDRESS__)
#define TIDE_NOSLAB
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TIDE_NOSLAB
#endif
#endif

#ifndef TIDE_NOSLAB

#define STEP 8
#define MAXSMALL 1024
#define NCLASS (MAXSMALL / STEP)
#define SLAB ((uintptr_t)64 << 10)
#define ARENA ((uintptr_t)2 << 20)     /* slabs are carved from these */
#define NSLAB (ARENA / SLAB)
#define KEEP 16                        /* pooled slabs kept resident */

/* A slab's header sits in its arena's record, so that blocks fill the
** slab from its first byte (90 of a coroutine's 720-byte stacks in a
** header's room would leave 688 bytes of 64 KiB unused). */
typedef struct Slab Slab;
struct Slab {
  Slab *next, *prev;       /* in its size's list of slabs with room, or
                              in the pool (next only) */
  char *base;              /* its memory */
  void *free;              /* freed blocks, linked through their first word */
  char *bump;              /* the part never handed out starts here */
  uint32_t used, cap;      /* blocks handed out; blocks it holds */
  uint32_t cls;            /* block size / STEP - 1 */
  uint32_t released;       /* in the pool, its pages given back */
};

typedef struct Arena {
  uintptr_t key;           /* its address >> 21 */
  Slab slabs[NSLAB];
} Arena;

static Slab *avail[NCLASS];     /* slabs with room, of each size */
static Slab *pool;              /* empty slabs */
static unsigned npool;          /* ... of which resident */
static size_t page;             /* the system's page size */
static Arena *newest;           /* the arena slabs are carved from */
static unsigned carved;         /* ... slabs of it carved */
static Arena **arenas;          /* the arenas by key, open addressing */
static size_t narenas, arenacap;

static size_t arena_slot (uintptr_t key) {
  return (size_t)((key * 0x9E3779B97F4A7C15u) >> 7) & (arenacap - 1);
}

/* The header of the slab p is in, or NULL if p is not in a slab. */
static Slab *slab_of (void *p) {
  uintptr_t key = (uintptr_t)p >> 21;
  size_t i;
  if (arenacap == 0) return NULL;
  for (i = arena_slot(key); arenas[i] != NULL; i = (i + 1) & (arenacap - 1))
    if (arenas[i]->key == key)
      return &arenas[i]->slabs[((uintptr_t)p & (ARENA - 1)) / SLAB];
  return NULL;
}

static void arena_put (Arena *a) {
  size_t i = arena_slot(a->key);
  while (arenas[i] != NULL) i = (i + 1) & (arenacap - 1);
  arenas[i] = a;
  narenas++;
}

/* Room in the set for one more arena; 0 when out of memory. */
static int arena_reserve (void) {
  Arena **old = arenas;
  size_t oldcap = arenacap, i;
  if (2 * (narenas + 1) <= arenacap) return 1;
  arenas = calloc(oldcap ? 2 * oldcap : 64, sizeof *arenas);
  if (arenas == NULL) {
    arenas = old;
    return 0;
  }
  arenacap = oldcap ? 2 * oldcap : 64;
  narenas = 0;
  for (i = 0; i < oldcap; i++)
    if (old[i] != NULL) arena_put(old[i]);
  free(old);
  return 1;
}

/* A new arena, aligned to its size, to carve slabs from. */
static int new_arena (void) {
  char *p, *m;
  Arena *a;
  if (!arena_reserve() || (a = malloc(sizeof *a)) == NULL) return 0;
  p = mmap(NULL, 2 * ARENA, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    free(a);
    return 0;
  }
  m = (char *)(((uintptr_t)p + ARENA - 1) & ~(ARENA - 1));
  if (m > p) munmap(p, (size_t)(m - p));
  munmap(m + ARENA, (size_t)(p + 2 * ARENA - (m + ARENA)));
  a->key = (uintptr_t)m >> 21;
  arena_put(a);
#ifdef MADV_POPULATE_WRITE
  if (narenas > 4)                 /* past the first few (startup stays */
    madvise(m, ARENA, MADV_POPULATE_WRITE);   /* lean): fault it all in */
#endif
  newest = a;
  carved = 0;
  return 1;
}

static void list_add (Slab **l, Slab *s) {
  s->prev = NULL;
  s->next = *l;
  if (*l) (*l)->prev = s;
  *l = s;
}

static void list_remove (Slab **l, Slab *s) {
  if (s->prev) s->prev->next = s->next;
  else *l = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
}

/* A slab for blocks of class c, made the first with room; NULL when out
** of memory. */
static Slab *new_slab (unsigned c) {
  Slab *s = pool;
  size_t size = (c + 1) * STEP;
  if (s != NULL) {
    pool = s->next;
    if (!s->released) npool--;
  }
  else {
    if ((newest == NULL || carved == NSLAB) && !new_arena()) return NULL;
    s = &newest->slabs[carved];
    s->base = (char *)(newest->key << 21) + carved * SLAB;
    carved++;
  }
  s->free = NULL;
  s->bump = s->base;
  s->used = 0;
  s->cap = (uint32_t)(SLAB / size);
  s->cls = c;
  s->released = 0;
  list_add(&avail[c], s);
  return s;
}

static void *small_alloc (size_t nsize) {
  unsigned c = (unsigned)((nsize - 1) / STEP);
  Slab *s = avail[c];
  void *p;
  if (s == NULL && (s = new_slab(c)) == NULL) return NULL;
  if (s->free != NULL) {
    p = s->free;
    s->free = *(void **)p;
  }
  else {
    p = s->bump;
    s->bump += (c + 1) * STEP;
  }
  if (++s->used == s->cap) list_remove(&avail[c], s);
  return p;
}

/* Put an empty slab in the pool; past KEEP, without its pages. */
static void to_pool (Slab *s) {
  if (npool >= KEEP && page <= SLAB) {
    madvise(s->base, SLAB, MADV_DONTNEED);
    s->released = 1;
  }
  else {
    s->released = 0;
    npool++;
  }
  s->next = pool;
  pool = s;
}

static void small_free (Slab *s, void *p) {
  unsigned c = s->cls;
  *(void **)p = s->free;
  s->free = p;
  if (s->used-- == s->cap) list_add(&avail[c], s);
  else if (s->used == 0 && (s->prev != NULL || s->next != NULL)) {
    list_remove(&avail[c], s);     /* empty, and not its size's only one */
    to_pool(s);
  }
}

/* ---- Medium blocks --------------------------------------------------------
** Blocks over MAXSMALL up to MAXMED are glibc's, but one that is freed is
** kept, in a list by its size class (four a power of two), for the next
** block of that class it is big enough for: the strings a program reads
** from a socket and writes back come and go at one size, and a trip
** through glibc's bins cost 320 instructions a 16 KiB block (a malloc and
** a free). What is kept is at most MEDKEEP bytes; a block is filed by
** the size Lua had it for (glibc's block holds at least that, also one
** it gave before the switch), and taken for a size no larger. */

#define MAXMED ((size_t)64 << 10)
#define MEDKEEP ((size_t)1 << 20)
#define NMED 24                    /* classes from MAXSMALL to MAXMED */

typedef struct Med {
  struct Med *next;
  size_t size;                     /* what Lua had it for */
} Med;

static Med *med[NMED];
static size_t medkept;             /* bytes kept in med[] */

/* The class of n bytes, MAXSMALL < n <= MAXMED: (1024, 1280] is 0,
** (1280, 1536] 1, ... (48 KiB, 64 KiB] 23. */
static unsigned med_class (size_t n) {
  unsigned b = 64 - (unsigned)__builtin_clzll((unsigned long long)(n - 1));
  return (b - 11) * 4 + (unsigned)((n - 1) >> (b - 3)) - 4;
}

static void *med_alloc (size_t n) {
  Med **l = &med[med_class(n)], *m = *l;
  if (m != NULL && m->size >= n) {
    *l = m->next;
    medkept -= m->size;
    return m;
  }
  return malloc(n);
}

static void med_free (void *p, size_t size) {
  Med *m = p;
  if (size <= MAXSMALL || medkept + size > MEDKEEP) {
    free(p);
    return;
  }
  m->size = size;
  m->next = med[med_class(size)];
  med[med_class(size)] = m;
  medkept += size;
}

/* Out of memory: what is kept goes back to glibc first. */
static void med_flush (void) {
  unsigned c;
  for (c = 0; c < NMED; c++)
    while (med[c] != NULL) {
      Med *m = med[c];
      med[c] = m->next;
      free(m);
    }
  medkept = 0;
}

static void *big_alloc (size_t n) {
  void *p = n <= MAXMED ? med_alloc(n) : malloc(n);
  if (p == NULL && medkept > 0) {
    med_flush();
    p = malloc(n);
  }
  return p;
}

static void big_free (void *p, size_t osize) {
  if (osize <= MAXMED) med_free(p, osize);
  else free(p);
}

static void *heap_alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  void *p;
  Slab *s;
  (void)ud;
  if (ptr == NULL) {               /* osize tells the kind of object */
    if (nsize == 0) return NULL;
    return nsize <= MAXSMALL ? small_alloc(nsize) : big_alloc(nsize);
  }
  s = osize <= MAXSMALL ? slab_of(ptr) : NULL;
  if (nsize == 0) {
    if (s) small_free(s, ptr);
    else big_free(ptr, osize);
    return NULL;
  }
  if (s && nsize <= MAXSMALL && (nsize - 1) / STEP == s->cls)
    return ptr;
  if (!s && nsize > MAXSMALL) {
    if ((p = realloc(ptr, nsize)) == NULL && medkept > 0) {
      med_flush();
      p = realloc(ptr, nsize);
    }
    return p;
  }
  p = nsize <= MAXSMALL ? small_alloc(nsize) : big_alloc(nsize);
  if (p == NULL) return NULL;
  memcpy(p, ptr, osize < nsize ? osize : nsize);
  if (s) small_free(s, ptr);
  else big_free(ptr, osize);
  return p;
}

void tide__heapadvice (lua_State *L) {
  long ps = sysconf(_SC_PAGESIZE);
  page = ps > 0 ? (size_t)ps : SLAB + 1;
  lua_setallocf(L, heap_alloc, NULL);
}

#else

void tide__heapadvice (lua_State *L) {
  (void)L;
}

#endif
