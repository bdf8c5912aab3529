/*
** http_server.h: what the files of tide.http.serve share: the request
** parser (http_server_parser.c) and the responses (http_server.c).
*/
#ifndef TIDE_HTTP_SERVER_H
#define TIDE_HTTP_SERVER_H

#include "tide_int.h"

#define TIDE_HTTPPARSER "tide.HttpParser"

/* http_server_parser.c: register tide.HttpParser, push its constructor */
void tide__open_httpparser (lua_State *L);

#endif
