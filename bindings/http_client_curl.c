/*
** http_client_curl.c: libcurl, loaded on the first request and initialised
** with tide's allocator; counted, so that the last runtime to close hands
** curl's global memory back.
*/
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"

/* Debian's libcurl4 (OpenSSL flavour) installs this soname. */
#define CURL_SONAME "libcurl.so.4"

tide_CurlApi tide__curl;

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t lock;
static const char *loaderr;      /* why libcurl could not be loaded */
static int users;                /* runtimes holding curl's global init */

static void *cu_malloc (size_t n) { return tide__malloc(n); }
static void cu_free (void *p) { tide__free(p); }
static void *cu_realloc (void *p, size_t n) { return tide__realloc(p, n); }
static void *cu_calloc (size_t n, size_t size) { return tide__calloc(n, size); }

static char *cu_strdup (const char *s) {
  size_t n = strlen(s) + 1;
  char *d = tide__malloc(n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}

/* Loaded for good (RTLD_NODELETE): OpenSSL, below it, has exit handlers. */
static void load (void) {
  void *lib;
  if (uv_mutex_init(&lock) != 0) abort();
  lib = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (lib == NULL) {
    loaderr = "cannot load " CURL_SONAME " (Debian: apt-get install libcurl4)";
    return;
  }
#define TIDE_CURLSYM(f) \
  if ((*(void **)&tide__curl.f = dlsym(lib, "curl_" #f)) == NULL) \
    loaderr = "cannot find curl_" #f " in " CURL_SONAME;
  TIDE_CURLFUNCS(TIDE_CURLSYM)
#undef TIDE_CURLSYM
}

const char *tide__curlacquire (void) {
  const char *err = NULL;
  uv_once(&once, load);
  if (loaderr != NULL) return loaderr;
  uv_mutex_lock(&lock);
  if (users == 0) {
    CURLcode rc = CU.global_init_mem(CURL_GLOBAL_DEFAULT, cu_malloc, cu_free,
                                     cu_realloc, cu_strdup, cu_calloc);
    if (rc == CURLE_OUT_OF_MEMORY) err = "not enough memory";
    else if (rc != CURLE_OK) err = "cannot initialise libcurl";
  }
  if (err == NULL) users++;
  uv_mutex_unlock(&lock);
  return err;
}

void tide__curlrelease (void) {
  uv_mutex_lock(&lock);
  if (--users == 0) CU.global_cleanup();
  uv_mutex_unlock(&lock);
}
