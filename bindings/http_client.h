/*
** http_client.h: what the HTTP client's files share: libcurl, loaded on
** first use (http_client_curl.c), the runtime's multi handle on tide's
** loop (http_client_multi.c) and the transfers it drives (http_client.c).
*/
#ifndef TIDE_HTTP_CLIENT_H
#define TIDE_HTTP_CLIENT_H

#define CURL_DISABLE_TYPECHECK     /* calls go through pointers, not names */
#include <curl/curl.h>

#include "tide_int.h"

/* ---- libcurl, loaded with dlopen on the first request -------------------
** so that a program that makes no request neither loads libcurl (and the
** thirty libraries it brings) nor links with it; its memory comes from
** tide's allocator (curl_global_init_mem). */

#define TIDE_CURLFUNCS(X) \
  X(global_init_mem) X(global_cleanup) X(version_info) \
  X(easy_init) X(easy_cleanup) X(easy_reset) X(easy_setopt) \
  X(easy_getinfo) X(easy_pause) X(easy_strerror) \
  X(multi_init) X(multi_cleanup) X(multi_setopt) X(multi_add_handle) \
  X(multi_remove_handle) X(multi_socket_action) X(multi_info_read) \
  X(multi_assign) X(slist_append) X(slist_free_all)

#define TIDE_CURLFIELD(f) __typeof__(curl_##f) *f;
typedef struct tide_CurlApi { TIDE_CURLFUNCS(TIDE_CURLFIELD) } tide_CurlApi;
#undef TIDE_CURLFIELD

extern tide_CurlApi tide__curl;
#define CU tide__curl

/* Load libcurl and initialise it (once per process, counted): NULL, or
** why it cannot be had. tide__curlrelease undoes one tide__curlacquire. */
const char *tide__curlacquire (void);
void tide__curlrelease (void);

/* ---- The runtime's multi handle (http_client_multi.c) ------------------ */

typedef struct tide_Http tide_Http;

/* What a transfer gives the multi: its easy handle, its place in the
** multi's list of transfers, and what to call when curl has finished it
** (done) or when the multi closes under it (with result CURLE_ABORTED_BY_
** CALLBACK: the runtime is closing). */
typedef struct tide_HttpOrigin tide_HttpOrigin;

typedef struct tide_HttpLink {
  CURL *easy;              /* NULL once finished */
  tide_Http *http;         /* NULL when not in a multi */
  struct tide_HttpLink *prev, *next;
  int failed;              /* its socket could not be watched */
  void (*done) (struct tide_HttpLink *l, CURLcode result);
  /* set by tide__httpadd: */
  tide_HttpOrigin *origin; /* the origin it counts against, or NULL */
  int queued;              /* waiting its turn, not yet in curl's multi */
  struct tide_HttpLink *qnext;
  uint64_t since;          /* when it was added (loop time, ms) */
  long timeout_ms;         /* its CURLOPT_TIMEOUT_MS (0: none) */
} tide_HttpLink;

/* The runtime's multi, opened on first use; raises when it cannot be. */
tide_Http *tide__http (lua_State *L);

/* A new easy handle (recycled when one is free), or NULL. */
CURL *tide__httpeasy (tide_Http *h);

/* Start l->easy in the multi: 0, or a CURLMcode. origin: "host:port" of
** an https URL whose transfer may speak HTTP/2 (else NULL). Until that
** origin is known not to speak HTTP/2, at most TIDE_HTTP_MUXMAX of its
** transfers are in curl at once, the others wait their turn in order
** (their timeout counts the wait): curl, finding its connection's streams
** all taken, would open a connection for each transfer over the limit
** rather than wait for a stream. */
int tide__httpadd (tide_Http *h, tide_HttpLink *l, const char *origin);

/* curl's streams per HTTP/2 connection (its CURLMOPT_MAX_CONCURRENT_STREAMS
** default, and the least most servers allow). */
#define TIDE_HTTP_MUXMAX 100

/* The HTTP version (CURLINFO_HTTP_VERSION) of l's response: whether its
** origin multiplexes. Safe in curl's callbacks. */
void tide__httpversion (tide_HttpLink *l, long version);

/* Take l out of its multi at once (a transfer not finished is cut, its
** connection closed unless HTTP/2 shares it) and keep or free its easy
** handle; nothing is called back. Safe on a link not in a multi. */
void tide__httpremove (tide_HttpLink *l);

/* A task starts (delta 1) or stops (-1) waiting on a transfer: the multi
** keeps the loop alive only while one waits. */
void tide__httpwait (tide_Http *h, int delta);

/* True while curl runs callbacks (no Lua may run then). */
int tide__httpbusy (tide_Http *h);

/* After a call into curl outside its socket actions (curl_easy_pause on
** l, which returned rc): finish the transfers whose sockets could not be
** watched, and l if curl ran out of memory. */
void tide__httpsettle (tide_Http *h, tide_HttpLink *l, int rc);

#endif
