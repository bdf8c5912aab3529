/*
** alloc.c: the allocator of tide's own C memory (requests, buffers, the
** ready queue, the timer heap), which a host may replace as it replaces
** libuv's with uv_replace_allocator; the Lua state's memory comes from its
** lua_Alloc.
*/
#include <stdlib.h>

#include "tide_int.h"

static struct {
  uv_malloc_func malloc;
  uv_realloc_func realloc;
  uv_calloc_func calloc;
  uv_free_func free;
} al = { malloc, realloc, calloc, free };

TIDE_API int tide_replace_allocator (uv_malloc_func m, uv_realloc_func r,
                                     uv_calloc_func c, uv_free_func f) {
  if (m == NULL || r == NULL || c == NULL || f == NULL) return UV_EINVAL;
  al.malloc = m;
  al.realloc = r;
  al.calloc = c;
  al.free = f;
  return 0;
}

void *tide__malloc (size_t size) { return al.malloc(size); }
void *tide__calloc (size_t n, size_t size) { return al.calloc(n, size); }
void tide__free (void *p) { if (p != NULL) al.free(p); }

void *tide__realloc (void *p, size_t size) {
  return al.realloc(p, size);
}

int tide__nomem (lua_State *L) {
  lua_pushliteral(L, "not enough memory");   /* Lua's own: never allocates */
  return lua_error(L);
}
