/*
** tls_load.c: OpenSSL, opened on the first use of tide.tls (a context)
** and kept for good (RTLD_NODELETE: it has exit handlers of its own); the
** pointers of tls_api.h filled from it.
*/
#include <dlfcn.h>
#include <stdlib.h>

#include "tls.h"

#define TLS_DEFINE(f) __typeof__(tls__p_##f) tls__p_##f;
TLS_FUNCS(TLS_DEFINE)
#undef TLS_DEFINE

static uv_once_t once = UV_ONCE_INIT;
static const char *loaderr;        /* why OpenSSL could not be loaded */

static void load (void) {
  void *lib = dlopen(TLS_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (lib == NULL) {
    loaderr = "cannot load " TLS_SONAME " (Debian: apt-get install libssl3)";
    return;
  }
#define TLS_LOOKUP(f) \
  if ((*(void **)&tls__p_##f = dlsym(lib, #f)) == NULL) \
    loaderr = "cannot find " #f " in " TLS_SONAME;
  TLS_FUNCS(TLS_LOOKUP)
#undef TLS_LOOKUP
}

const char *tls__load (void) {
  uv_once(&once, load);
  return loaderr;
}
