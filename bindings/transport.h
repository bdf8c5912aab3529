/*
** transport.h: the callback layer (asyncio's Transport and Protocol):
** transport.c has the transport, transport_net.c creates them (TCP and
** Unix sockets: create_server, create_connection).
*/
#ifndef TIDE_TRANSPORT_H
#define TIDE_TRANSPORT_H

#include "tide_int.h"

#define TIDE_TRANSPORT "tide.Transport"
#define TIDE_PSERVER "tide.ProtocolServer"
#define TIDE_DTRANSPORT "tide.DatagramTransport"

/* The protocol's callbacks, by number. */
enum { TIDE_EV_MADE, TIDE_EV_DATA, TIDE_EV_EOF, TIDE_EV_LOST, TIDE_EV_PAUSE,
       TIDE_EV_RESUME, TIDE_EV_DGRAM, TIDE_EV_ERROR };

typedef struct tide_TCtx tide_TCtx;
typedef struct tide_Transport tide_Transport;

/* Per runtime (made on the binding's first open): the thread the
** callbacks from libuv run on, and the registry reference of the message
** handler of every callback (transports and servers alive are anchored
** in the registry too, by reference);
** the read buffer every transport shares (a read is copied into a Lua
** string at once; as big as a Stream's largest, so that a bulk transfer
** takes as few reads); the transports whose connection_lost is due, called
** from an idle handle (o.h). */
struct tide_TCtx {
  tide_Handle o;           /* o.h: uv_idle_t */
  lua_State *L;            /* the bottom of its stack holds the message
                              handler and docall (1 and 2), for a call
                              while no function runs on it */
  int msgh, docall;        /* registry references: the message handler,
                              the function that calls a method */
  tide_Transport *lost;    /* connection_lost due, through next */
  tide_Transport **losttail;
  const char *ev;          /* the callback running, for the report */
  int evi;                 /* ... its number */
  const char *data;        /* ... and the data it gets */
  size_t len;
  const struct sockaddr *addr;   /* datagram_received's sender */
  int err;                 /* error_received's error */
  char buf[256 * 1024];
};

struct tide_Transport {
  tide_Handle o;           /* o.h: the uv_tcp_t, uv_pipe_t or uv_udp_t */
  tide_TCtx *c;
  const void *mt;          /* its metatable, for the methods' check */
  tide_Transport *next;    /* in c->lost */
  int ref;                 /* registry[ref]: this userdata, until
                              connection_lost has been called */
  int lerr;                /* what connection_lost gets: 0 (nil), a UV
                              error, or TIDE_TRAISED (user value 2) */
  size_t high, low;        /* write buffer limits */
  unsigned made : 1;       /* connection_made was called */
  unsigned reading : 1;    /* uv_read_start in effect */
  unsigned rpaused : 1;    /* pause_reading() */
  unsigned ateof : 1;      /* the peer's EOF came */
  unsigned closing : 1;    /* close() or abort(), or lost */
  unsigned eof : 1;        /* write_eof() */
  unsigned wpaused : 1;    /* pause_writing() was called */
  unsigned lostdue : 1;    /* on its way to connection_lost */
};

#define TIDE_TRAISED 1

/* transport.c: the context of the runtime (made on first use); a new
** Transport pushed (its protocol nil), its uv handle (size bytes) for the
** caller to init; start it once its protocol is set (user value 1):
** connection_made, then reading (the transport at the top of L, popped;
** L is c->L or a task's thread). */
tide_TCtx *tide__tctx (lua_State *L);
void *tide__newtransport (lua_State *L, tide_TCtx *c, size_t size,
                          const char *tname);
void tide__tstart (lua_State *L, tide_Transport *t);
/* Call t's protocol method ev (t's userdata at index self of L, or 0: from
** its anchor; data for data_received and datagram_received, c->addr and
** c->err set for the last two) outside any task: 1 if it returned a true
** value, else 0; -1 if it raised (reported, t aborted). */
int tide__tcallback (lua_State *L, tide_Transport *t, int self, int ev,
                     const char *data, size_t len);
/* The connection is over: close t's handle now; connection_lost(err) on
** the loop's next turn (err: 0, a UV error, TIDE_TRAISED). */
void tide__tlost (tide_Transport *t, int err);
/* Push t's peer (peer) or local address: host, port or a path; 0 if none. */
int tide__tpushname (lua_State *L, tide_Transport *t, int peer);
/* Call fn (on L's top, popped) with nargs arguments below it, outside any
** task, not able to wait; LUA_OK with its nres results, or the error
** (reported as a callback's: ev names it) */
int tide__tcall (lua_State *L, tide_TCtx *c, const char *ev, int nargs,
                 int nres);
/* What a write or send request's callback does after it (t open). */
void tide__tsent (tide_Transport *t, int status);
/* Above the high mark: pause_writing (t's userdata at index i of L). */
void tide__tpause (lua_State *L, tide_Transport *t, int i);
/* The metatable tname: the methods of every transport and own. */
void tide__tmetatable (lua_State *L, const char *tname, const luaL_Reg *own);
/* transport_udp.c: start (on) or stop receiving datagrams: 0 or an error */
int tide__udprecv (tide_Transport *t, int on);
/* transport_net.c: call the factory (on top of L, popped) outside any
** task: its protocol pushed, or the error pushed and 0; report: report
** the error as a callback's, else leave it for the caller to raise. */
int tide__tfactory (lua_State *L, tide_TCtx *c, int report);
/* transport_net.c: argument i must be a factory: a function, or a value
** with a __call metamethod (raises). */
void tide__checkfactory (lua_State *L, int i);
/* transport.c: report the message on top of L as an error in the
** callback ev (left on the stack). */
void tide__treport (tide_TCtx *c, lua_State *L, const char *ev);
int tide__open_transport (lua_State *L);

#endif
