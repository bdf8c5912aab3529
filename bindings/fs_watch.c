/*
** fs_watch.c: tide.fs._watch and Watcher: the events on a path, queued
** until a task reads them (fs.lua makes watch and its iterator).
*/
#include <string.h>

#include "fs.h"

#define TIDE_WATCHER "tide.Watcher"
#define EVENTS_MAX 4096            /* queued events beyond this are dropped */

typedef struct Event {
  struct Event *next;
  int what;                        /* UV_RENAME or UV_CHANGE, or an error */
  char name[];
} Event;

typedef struct Watcher {
  tide_Handle o;                   /* o.h: the uv_fs_event_t */
  Task *reader;
  Event *head, *tail;
  int count;
} Watcher;

static Watcher *checkwatcher (lua_State *L, int i) {
  return tide__checkudata(L, i, TIDE_WATCHER);
}

static void event_add (Watcher *wt, const char *name, int what) {
  size_t n = strlen(name) + 1;
  Event *e;
  if (wt->tail && wt->tail->what == what && strcmp(wt->tail->name, name) == 0)
    return;                        /* the same as the last one */
  if (wt->count >= EVENTS_MAX || (e = tide__malloc(sizeof *e + n)) == NULL)
    return;
  e->next = NULL;
  e->what = what;
  memcpy(e->name, name, n);
  if (wt->tail) wt->tail->next = e;
  else wt->head = e;
  wt->tail = e;
  wt->count++;
}

/* Push the first queued event (name, "rename" | "change"); return 2. It
** leaves the queue once pushed: a push that runs out of memory keeps it. */
static int event_pop (lua_State *L, Watcher *wt) {
  Event *e = wt->head;
  int n;
  if (e->what < 0) n = tide_pushfail(L, e->what, e->name);
  else {
    lua_pushstring(L, e->name);
    lua_pushstring(L, e->what == UV_RENAME ? "rename" : "change");
    n = 2;
  }
  wt->head = e->next;
  if (wt->head == NULL) wt->tail = NULL;
  wt->count--;
  tide__free(e);
  return n;
}

static int event_push (lua_State *L) {
  return event_pop(L, lua_touserdata(L, 1));
}

/* Only a waiting reader keeps the loop alive. */
static void reader_done (Watcher *wt) {
  wt->reader = NULL;
  if (wt->o.h) uv_unref(wt->o.h);
}

static void event_cb (uv_fs_event_t *h, const char *name, int events,
                      int status) {
  Watcher *wt = h->data;
  if (wt == NULL) return;
  if (name == NULL) name = h->path;
  if (status < 0) event_add(wt, name, status);
  else {
    if (events & UV_RENAME) event_add(wt, name, UV_RENAME);
    if (events & UV_CHANGE) event_add(wt, name, UV_CHANGE);
  }
  if (wt->reader && wt->head) {
    Task *t = wt->reader;
    reader_done(wt);
    tide_wakewith(&t->w, event_push, wt);
  }
}

static void watch_cancel (tide_Wait *w) {
  reader_done(tide_waitdata(w));
}

/* w:read() -> name, "rename" | "change": waits for the next event;
** nil, "watcher closed", "ECANCELED" once closed. */
static int watcher_read (lua_State *L) {
  Watcher *wt = checkwatcher(L, 1);
  tide_Wait *w;
  if (wt->head) return event_pop(L, wt);
  if (wt->o.h == NULL) {
    luaL_pushfail(L);
    lua_pushliteral(L, "watcher closed");
    lua_pushliteral(L, "ECANCELED");
    return 3;
  }
  if (wt->reader)
    return tide__error(L, "%s: another task is already reading this watcher",
                       tide__fname(L));
  w = tide_wait(L);
  wt->reader = tide__task(w);
  uv_ref(wt->o.h);
  lua_settop(L, 1);                /* the watcher lives while it is read */
  return tide_await(L, w, watch_cancel, wt);
}

static int closed_push (lua_State *L) {
  luaL_pushfail(L);
  lua_pushliteral(L, "watcher closed");
  lua_pushliteral(L, "ECANCELED");
  return 3;
}

static void watcher_onclose (tide_Handle *o) {
  Watcher *wt = (Watcher *)o;
  if (wt->reader) {
    Task *t = wt->reader;
    wt->reader = NULL;
    tide_wakewith(&t->w, closed_push, NULL);
  }
}

static int watcher_close (lua_State *L) {
  tide__handleclose(&checkwatcher(L, 1)->o);
  return 0;
}

static int watcher_gc (lua_State *L) {
  Watcher *wt = checkwatcher(L, 1);
  tide__handleclose(&wt->o);
  while (wt->head) {
    Event *e = wt->head;
    wt->head = e->next;
    tide__free(e);
  }
  wt->tail = NULL;
  wt->count = 0;
  return 0;
}

static int watcher_tostring (lua_State *L) {
  Watcher *wt = checkwatcher(L, 1);
  if (wt->o.h == NULL) lua_pushliteral(L, "tide.Watcher (closed)");
  else lua_pushfstring(L, "tide.Watcher (%s): %p",
                       ((uv_fs_event_t *)wt->o.h)->path, (void *)wt);
  return 1;
}

/* _watch(path [, recursive]) -> Watcher | nil, msg, code; recursive is
** ENOTSUP except on macOS and Windows. */
static int fs_watch (lua_State *L) {
  const char *p = luaL_checkstring(L, 1);
  unsigned flags = lua_toboolean(L, 2) ? UV_FS_EVENT_RECURSIVE : 0;
  Watcher *wt;
  uv_fs_event_t *h;
  int err;
#if !defined(__APPLE__) && !defined(_WIN32)
  if (flags)                       /* libuv watches subdirectories only there */
    return tide_pushfail(L, UV_ENOTSUP, p);
#endif
  wt = lua_newuserdatauv(L, sizeof *wt, 0);
  memset(wt, 0, sizeof *wt);
  luaL_setmetatable(L, TIDE_WATCHER);
  h = tide__handleinit(L, tide__rt(L), &wt->o, sizeof(uv_fs_event_t),
                       watcher_onclose);
  if ((err = uv_fs_event_init(tide_getloop(L), h)) == 0)
    err = uv_fs_event_start(h, event_cb, p, flags);
  if (err < 0) {
    tide__handleclose(&wt->o);
    return tide_pushfail(L, err, p);
  }
  uv_unref((uv_handle_t *)h);      /* see reader_done */
  return 1;
}

static const luaL_Reg watch_funcs[] = {
  {"_watch", fs_watch},
  {NULL, NULL}
};

static const luaL_Reg watcher_methods[] = {
  {"read", watcher_read},
  {"close", watcher_close},
  {NULL, NULL}
};

static const luaL_Reg watcher_meta[] = {
  {"__gc", watcher_gc},
  {"__close", watcher_close},
  {"__tostring", watcher_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

void tide__fsopen_watch (lua_State *L) {
  tide__fsregister(L, watch_funcs, TIDE_WATCHER, watcher_meta,
                   watcher_methods, "Watcher");
  luaL_getmetatable(L, TIDE_WATCHER);
  lua_setfield(L, -4, "WatcherMeta");
}
