/*
** handle.c: lifetime of the libuv handles behind tide's objects (streams,
** servers, sockets). Each object's C side starts with a tide_Handle; the uv
** handle is allocated apart, since libuv owns it until the close callback,
** which only frees it. The runtime keeps a list of open handles so that
** tide_close can close what the program left open.
*/
#include <stdlib.h>

#include "tide_int.h"

static void handle_freed (uv_handle_t *h) {
  tide__free(h);
}

/* Allocate the uv handle (size bytes) and link o into the runtime's list.
** Out of memory, it raises on L, or returns NULL when L is NULL (for
** callers with memory of their own to free first). */
void *tide__handleinit (lua_State *L, tide_Runtime *rt, tide_Handle *o,
                        size_t size, void (*onclose) (tide_Handle *)) {
  uv_handle_t *h = tide__calloc(1, size);  /* UV_UNKNOWN_HANDLE until init */
  if (h == NULL) {
    if (L != NULL) tide__nomem(L);
    return NULL;
  }
  h->data = o;
  o->h = h;
  o->rt = rt;
  o->onclose = onclose;
  o->prev = NULL;
  o->next = rt->handles;
  if (rt->handles) rt->handles->prev = o;
  rt->handles = o;
  return h;
}

/* Close o's handle (once): wake its waiters through onclose, unlink it, and
** let libuv free the handle. Safe to call twice; never waits. */
void tide__handleclose (tide_Handle *o) {
  uv_handle_t *h = o->h;
  tide_Runtime *rt = o->rt;
  if (h == NULL) return;
  o->h = NULL;
  h->data = NULL;
  if (o->prev) o->prev->next = o->next;
  else rt->handles = o->next;
  if (o->next) o->next->prev = o->prev;
  o->prev = o->next = NULL;
  if (o->onclose) o->onclose(o);
  if (h->type == UV_UNKNOWN_HANDLE) tide__free(h);   /* init failed */
  else uv_close(h, handle_freed);
}

/* Hand o's open handle over to n, a new owner in the runtime's list, and
** close o as far as its users see (onclose wakes its waiters). The handle's
** data becomes NULL, so its callbacks see no object; n ends it with
** tide__handleclose, or tide_close does. */
void tide__handlemove (tide_Handle *o, tide_Handle *n) {
  tide_Runtime *rt = o->rt;
  n->h = o->h;
  n->rt = rt;
  n->onclose = NULL;
  n->prev = o->prev;
  n->next = o->next;
  if (n->prev) n->prev->next = n;
  else rt->handles = n;
  if (n->next) n->next->prev = n;
  n->h->data = NULL;
  o->h = NULL;
  o->prev = o->next = NULL;
  if (o->onclose) o->onclose(o);
}

/* Close every handle still open (tide_close). */
void tide__closehandles (tide_Runtime *rt) {
  while (rt->handles != NULL)
    tide__handleclose(rt->handles);
}

/* Wake the tasks of an intrusive waiter list (Task.link) with no values. */
void tide__wakeall (Task **list) {
  Task *t = *list;
  *list = NULL;
  while (t != NULL) {
    Task *next = t->link;
    t->link = NULL;
    tide_wake(&t->w, 0);
    t = next;
  }
}

/* Add the waiting task of w at the end of a waiter list. */
void tide__waitlist_add (Task **list, tide_Wait *w) {
  Task *t = tide__task(w), **p = list;
  while (*p != NULL) p = &(*p)->link;
  t->link = NULL;
  *p = t;
}

/* Remove the task of w from a waiter list (it was cancelled). */
void tide__waitlist_remove (Task **list, tide_Wait *w) {
  Task *t = tide__task(w), **p = list;
  while (*p != NULL && *p != t) p = &(*p)->link;
  if (*p) *p = t->link;
  t->link = NULL;
}
