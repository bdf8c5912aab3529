/*
** http_client_multi.c: the runtime's libcurl multi handle, driven by tide's
** loop through curl's multi-socket interface: a uv_poll_t for each socket
** curl asks to watch (CURLMOPT_SOCKETFUNCTION), one uv_timer_t for the
** timeout it asks for (CURLMOPT_TIMERFUNCTION). One multi per runtime, so
** requests share curl's connection cache and DNS cache; closed by
** tide_close with the handles tide opened.
**
** No Lua runs while curl runs its callbacks: a transfer's callbacks only
** fill buffers and wake tasks with no values, which the scheduler queues
** (rt->depth is raised) and resumes once curl has returned.
*/
#include <stdlib.h>
#include <string.h>

#include "http_client.h"

#define NSPARE 64                /* easy handles kept for reuse */

typedef struct Sock {
  uv_poll_t poll;
  curl_socket_t fd;
  tide_Http *http;
  struct Sock *prev, *next;
} Sock;

/* An https origin (host:port) and its transfers: those in curl, those
** waiting their turn (see tide__httpadd). */
enum { O_UNKNOWN, O_MUX, O_SERIAL };   /* HTTP/2 or not, as answered */

struct tide_HttpOrigin {
  tide_HttpOrigin *next;
  int state;
  int nowait;              /* a connection to it failed while its version
                              was unknown: its transfers do not wait for
                              one to share (see unwait) */
  int running;             /* its transfers in curl's multi */
  tide_HttpLink *qhead, *qtail;
  char key[];
};

struct tide_Http {
  tide_Handle o;           /* o.h: the timer for curl's timeout */
  CURLM *multi;
  Sock *socks;             /* the sockets curl watches */
  tide_HttpLink *links;    /* the transfers in the multi, or queued */
  tide_HttpOrigin *origins;
  int admit;               /* an origin's queue may move (see drive) */
  CURL *spare[NSPARE];     /* easy handles for reuse, reset */
  int nspare;
  int waiting;             /* tasks waiting on transfers */
  int busy;                /* > 0 while curl runs callbacks */
  int failed;              /* a link was marked failed (see fail_link) */
  int closing;
};

/* ---- Keeping the loop alive while a task waits ---------------------------- */

static void setref (uv_handle_t *h, int on) {
  if (on) uv_ref(h);
  else uv_unref(h);
}

void tide__httpwait (tide_Http *h, int delta) {
  int was = h->waiting > 0, now;
  Sock *k;
  h->waiting += delta;
  now = h->waiting > 0;
  if (was == now || h->o.h == NULL) return;
  setref(h->o.h, now);
  for (k = h->socks; k != NULL; k = k->next)
    setref((uv_handle_t *)&k->poll, now);
}

int tide__httpbusy (tide_Http *h) { return h->busy > 0; }

/* ---- Sockets ------------------------------------------------------------ */

static void sock_freed (uv_handle_t *p) {
  tide__free(p->data);
}

static void sock_close (tide_Http *h, Sock *k) {
  if (k->prev) k->prev->next = k->next;
  else h->socks = k->next;
  if (k->next) k->next->prev = k->prev;
  uv_close((uv_handle_t *)&k->poll, sock_freed);
}

static tide_HttpLink *linkof (CURL *e) {
  char *p = NULL;
  CU.easy_getinfo(e, CURLINFO_PRIVATE, &p);
  return (tide_HttpLink *)p;
}

/* A transfer whose socket cannot be watched (out of memory) fails once
** curl has returned (a socket callback must not remove it, and one that
** returns -1 ends every transfer of the multi). */
static void fail_link (tide_Http *h, CURL *e) {
  tide_HttpLink *l = linkof(e);
  if (l != NULL) l->failed = 1;
  h->failed = 1;
}

/* curl ran out of memory while it drove the multi: a transfer among them
** may have a socket nobody watches now (curl could not record it), and
** which one is not said, so all of them fail. */
static void fail_all (tide_Http *h) {
  tide_HttpLink *l;
  for (l = h->links; l != NULL; l = l->next) l->failed = 1;
  h->failed = 1;
}

static void drive (tide_Http *h, curl_socket_t fd, int flags);
static void admit_all (tide_Http *h);

static void on_poll (uv_poll_t *p, int status, int events) {
  Sock *k = p->data;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  drive(k->http, k->fd, flags);
}

static Sock *sock_open (tide_Http *h, curl_socket_t fd) {
  Sock *k = tide__malloc(sizeof *k);
  if (k == NULL) return NULL;
  if (uv_poll_init_socket(h->o.rt->loop, &k->poll, fd) < 0) {
    tide__free(k);
    return NULL;
  }
  k->poll.data = k;
  k->fd = fd;
  k->http = h;
  k->prev = NULL;
  k->next = h->socks;
  if (h->socks) h->socks->prev = k;
  h->socks = k;
  if (h->waiting == 0) uv_unref((uv_handle_t *)&k->poll);
  return k;
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl asks, or stop. */
static int on_socket (CURL *e, curl_socket_t fd, int what, void *userp,
                      void *sockp) {
  tide_Http *h = userp;
  Sock *k = sockp;
  int events = 0;
  if (h->closing) return 0;
  if (what == CURL_POLL_REMOVE) {
    if (k != NULL) {
      CU.multi_assign(h->multi, fd, NULL);
      sock_close(h, k);
    }
    return 0;
  }
  if (k == NULL) {
    if ((k = sock_open(h, fd)) == NULL) {
      fail_link(h, e);
      return 0;
    }
    CU.multi_assign(h->multi, fd, k);
  }
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  if (uv_poll_start(&k->poll, events, on_poll) < 0) fail_link(h, e);
  return 0;
}

/* ---- The timer ---------------------------------------------------------- */

static void on_timeout (uv_timer_t *t) {
  drive(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: call back in ms milliseconds, or never (-1). */
static int on_timer (CURLM *multi, long ms, void *userp) {
  tide_Http *h = userp;
  (void)multi;
  if (h->closing || h->o.h == NULL) return 0;
  if (ms < 0) uv_timer_stop((uv_timer_t *)h->o.h);
  else uv_timer_start((uv_timer_t *)h->o.h, on_timeout, (uint64_t)ms, 0);
  return 0;
}

/* ---- Driving curl --------------------------------------------------------- */

/* Hand each finished transfer to its owner; then those whose sockets could
** not be watched. */
static void unwait (tide_Http *h, tide_HttpOrigin *o);

/* Did the transfer end before its request could go (no connection, or
** none that worked) while its origin's HTTP version is unknown and its
** transfers wait for a connection to share? */
static int nowhere (tide_HttpLink *l, CURLcode rc) {
  curl_off_t pre = 0;
  if (rc == CURLE_OK || l->origin == NULL || l->origin->state != O_UNKNOWN ||
      l->origin->nowait)
    return 0;
  CU.easy_getinfo(l->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
  return pre == 0;
}

static void finished (tide_Http *h) {
  CURLMsg *msg;
  int left;
  while ((msg = CU.multi_info_read(h->multi, &left)) != NULL) {
    CURLcode rc = msg->data.result;
    tide_HttpLink *l;
    if (msg->msg != CURLMSG_DONE) continue;
    if ((l = linkof(msg->easy_handle)) != NULL) {
      tide_HttpOrigin *o = nowhere(l, rc) ? l->origin : NULL;
      l->done(l, rc);
      if (o != NULL && !h->closing) unwait(h, o);
    }
  }
  while (h->failed) {
    tide_HttpLink *l;
    h->failed = 0;
    for (l = h->links; l != NULL; l = l->next)
      if (l->failed) {
        l->done(l, CURLE_OUT_OF_MEMORY);
        h->failed = 1;             /* the list changed: look again */
        break;
      }
  }
}

/* Let curl act on fd (or on its timeout), then run the tasks it woke. */
static void drive (tide_Http *h, curl_socket_t fd, int flags) {
  tide_Runtime *rt;
  int running;
  if (h == NULL || h->closing) return;
  rt = h->o.rt;
  rt->depth++;
  h->busy++;
  if (CU.multi_socket_action(h->multi, fd, flags, &running) ==
      CURLM_OUT_OF_MEMORY)
    fail_all(h);
  h->busy--;
  finished(h);
  while (h->admit) admit_all(h);
  rt->depth--;
  if (rt->depth == 0 && rt->rcount > 0) tide__runready(rt);
}

void tide__httpsettle (tide_Http *h, tide_HttpLink *l, int rc) {
  if (rc == CURLE_OUT_OF_MEMORY) {
    l->failed = 1;
    h->failed = 1;
  }
  if (h->failed) finished(h);
  while (h->admit) admit_all(h);
}

/* ---- Transfers ---------------------------------------------------------- */

CURL *tide__httpeasy (tide_Http *h) {
  if (h->nspare > 0) return h->spare[--h->nspare];
  return CU.easy_init();
}

/* The origin named key, made if new (NULL when out of memory: its
** transfers then go to curl at once). */
static tide_HttpOrigin *origin_get (tide_Http *h, const char *key) {
  tide_HttpOrigin *o;
  size_t n;
  for (o = h->origins; o != NULL; o = o->next)
    if (strcmp(o->key, key) == 0) return o;
  n = strlen(key) + 1;
  if ((o = tide__malloc(sizeof *o + n)) == NULL) return NULL;
  o->state = O_UNKNOWN;
  o->nowait = 0;
  o->running = 0;
  o->qhead = o->qtail = NULL;
  memcpy(o->key, key, n);
  o->next = h->origins;
  h->origins = o;
  return o;
}

static int hasroom (tide_HttpOrigin *o) {
  return o->state == O_SERIAL || o->running < TIDE_HTTP_MUXMAX;
}

/* l goes into curl: its timeout less the time it has waited, and without
** waiting for a connection to share if its origin is not to be waited
** for. 0, or l failed (out of memory) and finished() will say so. */
static int start (tide_Http *h, tide_HttpLink *l) {
  tide_HttpOrigin *o = l->origin;
  if (l->timeout_ms > 0) {
    uint64_t waited = uv_now(h->o.rt->loop) - l->since;
    long left = (uint64_t)l->timeout_ms > waited
                ? l->timeout_ms - (long)waited : 1;
    CU.easy_setopt(l->easy, CURLOPT_TIMEOUT_MS, left);
  }
  if (o->nowait) CU.easy_setopt(l->easy, CURLOPT_PIPEWAIT, 0L);
  if (CU.multi_add_handle(h->multi, l->easy) == CURLM_OK) return 0;
  o->running--;
  l->origin = NULL;
  l->failed = 1;
  h->failed = 1;
  return -1;
}

/* A transfer of o ended before its request could go while o's version is
** unknown. o's others in curl wait for a connection to share
** (CURLOPT_PIPEWAIT), and curl wakes one of them each time a connection
** fails, so that N of them would try one after another (N times the
** connect timeout against an origin that never answers). Those that have
** not started go back into curl without waiting, each connecting on its
** own, and so do o's next ones until a transfer learns o's version. */
static void unwait (tide_Http *h, tide_HttpOrigin *o) {
  tide_HttpLink *l;
  o->nowait = 1;
  for (l = h->links; l != NULL; l = l->next) {
    curl_off_t pre = 0;
    if (l->origin != o || l->queued || l->easy == NULL) continue;
    CU.easy_getinfo(l->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
    if (pre > 0) continue;
    CU.multi_remove_handle(h->multi, l->easy);
    start(h, l);
  }
}

/* Hand o's waiting transfers to curl while there is room; the time each
** waited comes off its timeout. One that curl refuses (out of memory)
** fails when finished() next runs. Not in curl's callbacks. */
static void admit (tide_Http *h, tide_HttpOrigin *o) {
  while (o->qhead != NULL && hasroom(o)) {
    tide_HttpLink *l = o->qhead;
    if ((o->qhead = l->qnext) == NULL) o->qtail = NULL;
    l->qnext = NULL;
    l->queued = 0;
    o->running++;
    start(h, l);
  }
}

static void admit_all (tide_Http *h) {
  tide_HttpOrigin *o;
  h->admit = 0;
  for (o = h->origins; o != NULL; o = o->next) admit(h, o);
  if (h->failed) finished(h);
}

void tide__httpversion (tide_HttpLink *l, long version) {
  tide_HttpOrigin *o = l->origin;
  if (o == NULL) return;
  if (version != CURL_HTTP_VERSION_NONE) o->nowait = 0;
  if (version >= CURL_HTTP_VERSION_2_0) o->state = O_MUX;
  else if (version != CURL_HTTP_VERSION_NONE && o->state != O_SERIAL) {
    o->state = O_SERIAL;           /* no streams to wait for */
    if (o->qhead != NULL && l->http != NULL) l->http->admit = 1;
  }
}

int tide__httpadd (tide_Http *h, tide_HttpLink *l, const char *origin) {
  CURLMcode rc;
  tide_HttpOrigin *o = NULL;
  CU.easy_setopt(l->easy, CURLOPT_PRIVATE, (char *)l);
  l->failed = 0;
  l->http = h;
  l->prev = NULL;
  l->next = h->links;
  if (h->links) h->links->prev = l;
  h->links = l;
  l->origin = NULL;
  l->queued = 0;
  l->qnext = NULL;
  l->since = uv_now(h->o.rt->loop);
  if (origin != NULL && (o = origin_get(h, origin)) != NULL) {
    l->origin = o;
    if (!hasroom(o) || o->qhead != NULL) {    /* its turn comes later */
      l->queued = 1;
      if (o->qtail) o->qtail->qnext = l;
      else o->qhead = l;
      o->qtail = l;
      return 0;
    }
    o->running++;
    if (o->nowait) CU.easy_setopt(l->easy, CURLOPT_PIPEWAIT, 0L);
  }
  if ((rc = CU.multi_add_handle(h->multi, l->easy)) != CURLM_OK) {
    tide__httpremove(l);
    return (int)rc;
  }
  return 0;
}

/* The easy handle back to the spares (reset), or freed. */
static void easy_free (tide_Http *h, CURL *e) {
  if (h != NULL && !h->closing && h->nspare < NSPARE) {
    CU.easy_reset(e);
    h->spare[h->nspare++] = e;
  }
  else
    CU.easy_cleanup(e);
}

void tide__httpremove (tide_HttpLink *l) {
  tide_Http *h = l->http;
  if (h != NULL) {
    tide_HttpOrigin *o = l->origin;
    if (l->prev) l->prev->next = l->next;
    else h->links = l->next;
    if (l->next) l->next->prev = l->prev;
    l->prev = l->next = NULL;
    l->http = NULL;
    l->origin = NULL;
    if (l->queued) {               /* out of its origin's queue */
      tide_HttpLink **pp = &o->qhead, *prev = NULL;
      while (*pp != l) {
        prev = *pp;
        pp = &(*pp)->qnext;
      }
      *pp = l->qnext;
      if (o->qtail == l) o->qtail = prev;
      l->qnext = NULL;
      l->queued = 0;
    }
    else {
      if (l->easy) CU.multi_remove_handle(h->multi, l->easy);
      if (o != NULL) {
        o->running--;
        if (o->qhead != NULL && !h->closing) h->admit = 1;
      }
    }
  }
  if (l->easy) {
    easy_free(h, l->easy);
    l->easy = NULL;
  }
}

/* ---- Opening and closing -------------------------------------------------- */

/* The runtime closes: cut every transfer, close the sockets, free curl. */
static void http_close (tide_Handle *o) {
  tide_Http *h = (tide_Http *)o;
  h->closing = 1;
  while (h->links != NULL) {
    tide_HttpLink *l = h->links;
    tide__httpremove(l);
    l->done(l, CURLE_ABORTED_BY_CALLBACK);
  }
  while (h->socks != NULL) sock_close(h, h->socks);
  while (h->origins != NULL) {
    tide_HttpOrigin *o = h->origins;
    h->origins = o->next;
    tide__free(o);
  }
  while (h->nspare > 0) CU.easy_cleanup(h->spare[--h->nspare]);
  CU.multi_cleanup(h->multi);
  tide__curlrelease();
  h->o.rt->http = NULL;
  tide__free(h);
}

static tide_Http *http_open (lua_State *L, tide_Runtime *rt) {
  const char *err = tide__curlacquire();
  tide_Http *h;
  uv_timer_t *t;
  if (err != NULL) {
    if (strcmp(err, "not enough memory") == 0) tide__nomem(L);
    tide__error(L, "%s: %s", tide__fname(L), err);
  }
  if ((h = tide__calloc(1, sizeof *h)) == NULL ||
      (h->multi = CU.multi_init()) == NULL) {
    tide__free(h);
    tide__curlrelease();
    tide__nomem(L);
  }
  t = tide__handleinit(NULL, rt, &h->o, sizeof *t, http_close);
  if (t == NULL) {
    CU.multi_cleanup(h->multi);
    tide__free(h);
    tide__curlrelease();
    tide__nomem(L);
  }
  uv_timer_init(rt->loop, t);
  uv_unref((uv_handle_t *)t);
  t->data = h;
  CU.multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  CU.multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  CU.multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  CU.multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  rt->http = h;
  return h;
}

tide_Http *tide__http (lua_State *L) {
  tide_Runtime *rt = tide_runtime(L);
  if (rt == NULL || rt->closing)
    tide__error(L, "'%s': the tide runtime is closed", tide__fname(L));
  return rt->http != NULL ? rt->http : http_open(L, rt);
}
