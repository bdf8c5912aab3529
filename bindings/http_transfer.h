/*
** http_transfer.h: what http_client.c and http_client_error.c share: the
** Transfer, one request and its response, and the failure of one.
*/
#ifndef TIDE_HTTP_TRANSFER_H
#define TIDE_HTTP_TRANSFER_H

#include "http_client.h"

typedef struct Buf {
  char *p;
  size_t off, len, cap;    /* unread: p[off .. len) */
} Buf;

typedef struct Transfer {
  tide_HttpLink l;         /* first: curl's side (the easy handle) */
  tide_Http *h;            /* the multi; NULL once the transfer ended */
  tide_Wait *w;            /* the task waiting, or NULL */
  int waitfor;
  int state;
  int stream;              /* the body is read as it comes: backpressure */
  int follow;              /* curl follows redirects */
  int hasloc;              /* the current header block has a Location */
  int recvpaused, sendpaused;
  int upneed;              /* curl waits for more of the request body */
  int upend;               /* the request body has ended */
  int cut;                 /* ended by a cancel or close */
  int kept;                /* a Response has it: __close leaves it */
  int nomem;               /* a callback ran out of memory */
  CURLcode result;
  long oserr;              /* errno of a failed connect, send or receive */
  long status, version;
  double timeout, ctimeout;          /* seconds, for messages */
  long lslimit, lstime;
  const char *up;          /* the request body chunk (user value 2) */
  size_t uplen, upoff;
  struct curl_slist *headers;
  char *url;               /* after redirects */
  Buf head;                /* the final header block */
  Buf body;
  char errbuf[CURL_ERROR_SIZE];
} Transfer;

/* Push nil, message, code for a transfer that failed (http_client_error.c). */
int tide__http_pushfail (lua_State *L, Transfer *t);

#endif
