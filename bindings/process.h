/*
** process.h: what process.c (children: options, starting, exit) and
** process_stdio.c (their stdin, stdout and stderr) share.
*/
#ifndef TIDE_PROCESS_H
#define TIDE_PROCESS_H

#include <string.h>

#include "tide_int.h"

typedef struct Process Process;

/* A child, as tide.Process (process.c) and the subprocess transport
** (transport_process.c) see it. */
struct Process {
  tide_Handle o;           /* o.h: the ProcHandle until the child is reaped */
  Task *waiters;           /* tasks in wait() */
  int pid;                 /* 0 until started */
  int pidfd;               /* the pidfd polled by o.h, or -1 */
  uv_poll_t *poll;         /* o.h when it polls the pidfd */
  int code, signal;        /* how it ended, once exited */
  unsigned exited : 1;
  unsigned detached : 1;
  unsigned orphan : 1;     /* a malloc'ed copy: its Process was collected */
  unsigned moving : 1;     /* the handle is being handed to an orphan */
  void (*onexit) (Process *p);  /* called when the handle closes (reaped,
                                   or the runtime closes), if set */
  void *exitdata;          /* for onexit (transport_process.c) */
};

static const char *const stdnames[] = { "stdin", "stdout", "stderr" };

/* Where the options being checked came from, for wrong-use errors: argv
** and opts are the argument numbers of the command lists and of the
** options, in spawn or in exec and pipeline (process.lua), which the
** errors name (see where.c). */
typedef struct Check {
  int argv, opts;
  int anchor;              /* stack index of a table keeping strings alive */
  lua_Integer cmd;         /* pipeline: the command's index, else 0 */
} Check;

static inline int fielderror (lua_State *L, const Check *k,
                              const char *field, const char *msg) {
  return tide__argerror(L, k->opts,
                        lua_pushfstring(L, "'%s': %s", field, msg));
}

/* Does the string on top hold a zero byte (which the system would take
** for its end)? */
static inline int haszero (lua_State *L) {
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  return strlen(s) != len;
}

/* How one of the child's fds 0-2 is set up. IO_RELAY: stdin from a Stream
** that has read ahead (see process_stdio.c). */
enum { IO_INHERIT, IO_NULL, IO_PIPE, IO_STDOUT, IO_FD, IO_STREAM, IO_FILE,
       IO_RELAY };

typedef struct Relay Relay;

typedef struct Stdio {
  int kind;
  int fd;                  /* IO_INHERIT, IO_FD: the parent's fd to give */
  const char *path;        /* IO_FILE */
  uv_stream_t *stream;     /* IO_STREAM, IO_RELAY; IO_PIPE: the parent's end */
  int closefd;             /* opened for the child, closed after the spawn */
  int ref;                 /* IO_RELAY: the Stream's index in the anchors */
  int ended;               /* IO_RELAY: its read side has ended */
  Relay *relay;            /* IO_RELAY: made by tide__stdioopen */
} Stdio;

/* One child to start. */
typedef struct Child {
  uv_process_options_t opts;
  uv_stdio_container_t c[3];
  Stdio io[3];
  Process *p;
} Child;

/* process_stdio.c: what opts[stdnames[i]] asks for, checked into s; the
** Streams of ch's pipes; the child's fd i opened into ch->c[i] before its
** start (0 or a UV error, *what naming a path); once it has started, or
** failed to, tide__stdiodone; the stderr a pipeline's children share */
void tide__stdiocheck (lua_State *L, int opts, const Check *k, int i,
                       Stdio *s);
void tide__stdiopipes (lua_State *L, tide_Runtime *rt, Child *ch);
int tide__stdioopen (lua_State *L, Child *ch, int i, const char **what);
void tide__stdiodone (lua_State *L, const Check *k, Child *ch, int started);
int tide__stdioshared (lua_State *L, tide_Runtime *rt, Stdio *s, int *fd,
                       const char **what);

#endif
