/*
** tide_int.h: what the runtime's files share: the runtime, the task, the
** timer heap and the scheduler's internal calls (prefix tide__).
*/
#ifndef TIDE_INT_H
#define TIDE_INT_H

#include <stdint.h>
#include <lauxlib.h>
#include "tide.h"

#define TIDE_TASK "tide.Task"
#define TIDE_CANCELLED "tide.Cancelled"
#define TIDE_STREAM "tide.Stream"
#define TIDE_SERVER "tide.Server"
#define TIDE_FUTURE "tide.Future"

typedef struct Task Task;
typedef struct tide_WatchNode tide_WatchNode;   /* watch.c */
typedef struct tide_TimerList tide_TimerList;   /* timer.c */

/* A link in a timer list (timer.c): circular, through the list's head. */
typedef struct tide_TNode tide_TNode;
struct tide_TNode {
  tide_TNode *prev, *next;
};

enum { T_NEW, T_READY, T_RUNNING, T_WAITING, T_DONE };

/* A task's extras table (tide__pushextras): its thread, its on_done
** callbacks (a list), its Cancelled object. */
enum { TIDE_EXCO = 1, TIDE_EXCBS, TIDE_EXCANCEL };

struct tide_Wait {
  lua_State *L;            /* thread that waits: the task or a coroutine in it */
  tide_CancelF cancel;
  void *data;
  lua_KFunction k;         /* the waiter's continuation, or NULL */
  lua_KContext ctx;
  lua_State *yielder;      /* innermost thread yielding for this wait */
  int base;                /* L's stack height when it yielded */
  int nres;                /* values pushed by the waker */
};

struct Task {
  tide_Wait w;             /* first: a tide_Wait * is a Task * */
  lua_State *co;           /* kept alive by user value 1: the thread, or
                              a table of extras (tide__pushextras) */
  tide_Runtime *rt;
  union {                  /* a timed task awaits no task, nor has ended */
    Task *link;            /* next in the list of a task's awaiters, or of
                              the failed tasks (report.c) */
    uint64_t due;          /* timed: its timer's key: when to wake (loop
                              ms) << 24, then arrival */
  };
  Task *awaiters;          /* tasks awaiting this one */
  tide_WatchNode *watchers;/* the watches on it (watch.c) */
  union {                  /* a queued task is not timed */
    tide_TNode tnode;      /* in a timer list while tnode.next != NULL */
    struct {
      Task *qnext;         /* queued: the next in the ready queue */
      void *untimed;       /* tnode.next, NULL */
    };
  };
  uint32_t slot;           /* position in the live-task array + 1 */
  uint32_t gen;            /* count of finished waits (Lua-side tokens) */
  int nres;                /* results (or 2: error, traceback) when done */
  unsigned char state;
  unsigned char shield;    /* > 0: cancellation is held back */
  unsigned queued : 1;     /* in the ready queue */
  unsigned cancelreq : 1;  /* cancel() was called: every await raises */
  unsigned interrupted : 1;/* the current wait ends in an error: cut by
                              cancel(), or badwait, or wakeerr */
  unsigned failed : 1;     /* ended with an error */
  unsigned cancelled : 1;  /* ended with tide.Cancelled */
  unsigned retrieved : 1;  /* its result or error was looked at */
  unsigned hascbs : 1;     /* its extras hold on_done callbacks */
  unsigned main : 1;       /* driven by tide_call: errors go to the caller */
  unsigned badwait : 1;    /* the wait cannot go on: raise at its await */
  unsigned reported : 1;   /* its error was reported as nobody's */
  unsigned wakeerr : 1;    /* the waker's values could not be made: raise
                              the error it left, or "not enough memory" */
  unsigned kcancel : 1;    /* cancelled: the wait's k is called with
                              LUA_ERRRUN before it raises (tide__awaitkc;
                              its k clears it when woken) */
  uint32_t lockid;         /* lock.c: the task's number as a lock owner,
                              given when it first takes one (0 until then) */
};

/* A Future (future.c); user values: its outcome, its on_done callbacks. */
struct tide_Future {
  tide_Runtime *rt;
  Task *awaiters;          /* tasks in await(), through Task.link */
  tide_WatchNode *watchers;/* the watches on it (watch.c) */
  tide_Future *link;       /* next in the failed futures (report.c) */
  int ref;                 /* registry: held by C (tide_newfuture), or
                              LUA_NOREF */
  int nres;                /* its results, once done */
  unsigned done : 1;
  unsigned failed : 1;     /* done with an error (or cancelled) */
  unsigned cancelled : 1;
  unsigned retrieved : 1;  /* its result or error was looked at */
  unsigned reported : 1;   /* its error was reported as nobody's */
  unsigned hascbs : 1;     /* it has on_done callbacks */
};

/* The C side of every object that owns a libuv handle starts with this. */
typedef struct tide_Handle tide_Handle;
struct tide_Handle {
  uv_handle_t *h;          /* NULL once closed; freed by libuv's close cb */
  tide_Runtime *rt;
  tide_Handle *prev, *next;        /* the runtime's open handles */
  void (*onclose) (tide_Handle *o);/* wake the object's waiters */
};

typedef struct Heap {      /* the timer lists, by their first due time */
  tide_TimerList **a;
  uint32_t n, cap;
} Heap;

struct tide_Runtime {
  lua_State *L;            /* the state tide was opened on */
  lua_State *cbL;          /* thread for on_done callbacks and reports */
  uv_loop_t *loop;
  uv_loop_t ownloop;
  int ownsloop;
  Task *current;           /* the task being resumed, or NULL */
  lua_State *cbco;         /* the thread of a callback run outside any
                              task (tide__outside), or NULL */
  int depth;               /* > 0 while the scheduler runs a task */
  int liveref;             /* registry: array of live tasks */
  uint32_t nlive;
  Task **ready;            /* unused (NULL): the ready queue is a list */
  uint32_t rhead, rcount, rcap;    /* rcount: the tasks in it */
  Task *qhead, *qtail;     /* the ready queue, through Task.qnext: queueing
                              allocates nothing, so it never fails */
  uv_idle_t idle;          /* runs the ready queue while it is not empty */
  uv_check_t check;        /* ... and after the callbacks of each poll */
  uv_prepare_t prepare;    /* reports errors nobody observed, once the
                              ready queue is empty */
  Task *failed, **failedtail;  /* ended with an error nobody observed yet */
  tide_Future *ffailed, **ffailedtail;   /* the same, of futures */
  int stopped;             /* tide_stop: the run ends once tasks have */
  int failedref;           /* registry: those tasks, kept until reported */
  uint32_t nunobserved;    /* errors reported and still not observed */
  void (*aroundreport) (int after);  /* the prompt's: hide and redraw */
  void (*onsigint) (void); /* the prompt's: Ctrl-C while it shows */
  int interrupted;         /* the signal that cancelled the main task */
  uv_timer_t timer;        /* fires the earliest entry of the heap */
  Heap heap;
  uint64_t seq;
  uint32_t ntimed;         /* tasks in the timer lists */
  uint32_t nspawned;       /* tasks spawned since a task was last resumed */
  int gcpause;             /* the collector's pause before a burst */
  int gcclass, gcminor;    /* sched.c's young floor: the heap's size class
                              (-1: off), the minor multiplier it set */
  uint32_t gcticks;        /* resumes, for the young floor's looks */
  tide_TimerList *lastlist;/* the list the last timed wait went in */
  int debug;               /* famine detection on */
  double famine;           /* seconds a resume may take before a report */
  struct tide_Watch *watch;/* debug.c's detector (and its thread), or NULL */
  int closing;
  int opened;              /* tide_open has ended: its __gc closes it */
  int registered;          /* tide_open has set package.loaded.tide */
  int exiting;             /* os.exit(status, true) was called by a task */
  int exitstatus;
  tide_Handle *handles;    /* open handles, closed by tide_close */
  struct tide_Pool *pool;  /* pool.c: the loop of thread-pool requests */
  const void *taskmt;      /* the Task metatable (also the live array's),
                              for tide__totask */
  struct tide_Http *http;  /* http_client_multi.c: curl's multi, or NULL */
};

/* alloc.c: tide's own C memory, from the host's allocator if it set one;
** tide__nomem raises Lua's "not enough memory" (it allocates nothing) */
void *tide__malloc (size_t size);
void *tide__calloc (size_t n, size_t size);
void *tide__realloc (void *p, size_t size);
void tide__free (void *p);
int tide__nomem (lua_State *L);

/* sched.c: spawning, running and ending tasks; the ready queue */
int tide__opensched (lua_State *L);
void tide__enqueue (tide_Runtime *rt, Task *t);
void tide__runready (tide_Runtime *rt);
void tide__taskrun (tide_Runtime *rt, Task *t);
Task *tide__spawn (tide_Runtime *rt, lua_State *L, int nargs);
void tide__pushtask (lua_State *L, Task *t);
void tide__callback (tide_Runtime *rt, lua_State *L);
int tide__pcall (tide_Runtime *rt, lua_CFunction f, void *ud, int nres);

/* lua_pcall(L, nargs, nres, h) of a script's callback outside any task
** (tide's waits refuse): L is the thread a SIGINT interrupts meanwhile
** (interrupt.c). Two pointers stored and restored: it is on hot paths. */
static inline int tide__outside (tide_Runtime *rt, lua_State *L, int nargs,
                                 int nres, int h) {
  Task *prev = rt->current;
  lua_State *pco = rt->cbco;
  int status;
  rt->current = NULL;
  rt->cbco = L;
  status = lua_pcall(L, nargs, nres, h);
  rt->current = prev;
  rt->cbco = pco;
  return status;
}
void tide__cancelall (tide_Runtime *rt);

/* task.c: the Task object; tide__pushextras pushes the table of extras
** of the Task object at idx (on_done callbacks as field cbs, Cancelled
** object as cancel, thread as co), made on first use (may raise) */
int tide__opentask (lua_State *L);
void tide__pushextras (lua_State *L, int idx);
Task *tide__checktask (lua_State *L, int i);
Task *tide__totask (tide_Runtime *rt, lua_State *L, int i);  /* faster */
void tide__pushresult (lua_State *L, Task *t);

/* wait.c: the wait/wake protocol and cancellation; tide__awaitkc is
** tide_awaitk whose k also runs (status LUA_ERRRUN) when the task is
** cancelled, and must then raise */
int tide__openwait (lua_State *L);
int tide__awaitkc (lua_State *L, tide_Wait *w, tide_CancelF cancel,
                   void *data, lua_KFunction k, lua_KContext ctx);
tide_Wait *tide__waitbegin (tide_Runtime *rt, lua_State *L);
int tide__cancel (Task *t);
void tide__interrupt (Task *t);
void tide__pushcancelled (lua_State *L, Task *t);
int tide__raisecancelled (lua_State *L, Task *t);

/* future.c: the Future object */
int tide__openfuture (lua_State *L);
tide_Future *tide__tofuture (lua_State *L, int i);   /* or NULL */
void tide__futureobserved (tide_Future *f);

/* interrupt.c: SIGINT and SIGTERM cancel the main task */
void tide__releasesignals (tide_Runtime *rt);
int tide__signalscaught (tide_Runtime *rt);

/* report.c: tracebacks, unobserved errors, deadlocks */
int tide__israised (lua_State *L, int idx);
void tide__pushtraceback (lua_State *L, lua_State *co);
const char *tide__errstring (lua_State *L, int idx, char *buf, size_t size);
void tide__reportstuck (tide_Runtime *rt);
void tide__failed (tide_Runtime *rt, Task *t);
void tide__observed (Task *t);
void tide__reportfailed (tide_Runtime *rt);
void tide__reportleft (tide_Runtime *rt);
/* f failed with nobody to look: kept (anchored by the caller) for the
** report, or reported now from L's value at idx when L is not NULL */
void tide__futurefailed (tide_Runtime *rt, tide_Future *f, lua_State *L,
                         int idx);
/* an error in an on_done or Protocol callback: reported, counted */
int tide__tracebackh (lua_State *L);
int tide__tracelevel (lua_State *L, int base);    /* where.c */
void tide__callbackerror (tide_Runtime *rt, lua_State *L, const char *what);

/* timer.c; tide__heapremove takes t out of the timers (if it is in) */
int tide__opentimer (lua_State *L);
void tide__heapremove (tide_Runtime *rt, Task *t);
#define tide__timed(t) ((t)->tnode.next != NULL)
void tide__timeradd (lua_State *L, tide_Wait *w, double s);

/* watch.c: watches on tasks for the Lua-side library */
int tide__openwatch (lua_State *L);
void tide__watched (Task *t);
void tide__futurewatched (tide_Future *f);

/* lock.c and queue.c: tide.Lock and the Guard of hold(); the queues */
int tide__openlock (lua_State *L);
int tide__openqueue (lua_State *L);

/* lazy.c: the parts of the tide table made on first use; stack: tide,
** private, runtime (as open_module has them) */
void tide__openlazy (lua_State *L);

/* coro.c */
int tide__opencoro (lua_State *L);
int tide__corowait (lua_State *L, Task *t);

/* require.c: require that a task can wait in, in place of Lua's */
int tide__openrequire (lua_State *L);

/* The Lua-side library (runtime/lua), compiled in; ends with NULL. names:
** those of the tide table that a file defines, separated by spaces (see
** runtime/lua/embed.lua); _globals: the standard globals the files use. */
typedef struct tide_LuaSource {
  const char *name, *source;
  size_t size;
  const char *names;
} tide_LuaSource;
extern const tide_LuaSource tide__luasources[];
extern const char tide__luasources_globals[];

/* repl.c and repl.lua (the tide command only): the interactive prompt */
extern const tide_LuaSource tide__replsources[];
const char *tide__replinput (tide_Runtime *rt, lua_State *L);
void tide__replinterrupt (void);

/* runtime.c */
tide_Runtime *tide__rt (lua_State *L);   /* from upvalue 1 */
int tide__protect (lua_State *L, lua_CFunction f, int nargs, int nres);

/* heap.c (the tide command only): its Lua allocator, on L */
void tide__heapadvice (lua_State *L);

/* handle.c */
void *tide__handleinit (lua_State *L, tide_Runtime *rt, tide_Handle *o,
                        size_t size, void (*onclose) (tide_Handle *));
void tide__handleclose (tide_Handle *o);
void tide__handlemove (tide_Handle *o, tide_Handle *n);
void tide__closehandles (tide_Runtime *rt);
void tide__wakeall (Task **list);
void tide__waitlist_add (Task **list, tide_Wait *w);
void tide__waitlist_remove (Task **list, tide_Wait *w);

/* pool.c: the loop that thread-pool requests (uv_queue_work, uv_fs_*,
** uv_getaddrinfo) are started on; a task starts (delta 1) or stops (-1)
** waiting on one of them; tide_close closes the loop */
uv_loop_t *tide__poolloop (lua_State *L);
void tide__poolwait (tide_Wait *w, uv_loop_t *loop, int delta);
void tide__poolclose (tide_Runtime *rt);

/* bindings: each adds its module to the tide table.
** Stack: tide table, private table, runtime userdata. */
int tide__open_stream (lua_State *L);
int tide__open_dns (lua_State *L);
int tide__open_tcp (lua_State *L);
int tide__open_server (lua_State *L);
int tide__open_pipe (lua_State *L);
int tide__open_udp (lua_State *L);
int tide__open_process (lua_State *L);
int tide__open_signal (lua_State *L);
int tide__open_fs (lua_State *L);
int tide__open_work (lua_State *L);
int tide__open_tty (lua_State *L);
int tide__open_http (lua_State *L);
int tide__open_http_server (lua_State *L);   /* into tide.http */
int tide__open_tls (lua_State *L);
int tide__open_socket (lua_State *L);   /* socket.c, for tide.socket */
int tide__listensocket (uv_loop_t *loop, uv_tcp_t *h, int family,
                        int reuseport);      /* tcp.c */
int tide__sharedsocket (uv_loop_t *loop, uv_tcp_t *h, int err,
                        int fd);             /* tcp.c: a worker's */
int tide__pipepath (lua_State *L, int i);    /* pipe.c: 0, or why the
                                   path at i cannot name a Unix socket */
int tide__pipebind (uv_pipe_t *h, const char *path);  /* pipe.c: bind,
                                   replacing a socket file nobody listens on */
int tide__pushsockname (lua_State *L, uv_handle_t *h);   /* server.c */
int tide__open_transport_tcp (lua_State *L);   /* into tide.tcp */
int tide__open_transport_pipe (lua_State *L);  /* into tide.pipe */
int tide__open_transport_udp (lua_State *L);   /* into tide.udp */
int tide__open_transport_process (lua_State *L); /* into tide.process */

/* fs.c: a File on fd (which it owns), named name in messages */
void tide__newfile (lua_State *L, int fd, const char *name);

/* stream.c: a new Stream pushed, its uv handle for the caller to init;
** connecting it: start the connect with tide__connreq's request and
** tide__connected as callback, then return tide__connwait */
uv_stream_t *tide__newstream (lua_State *L, tide_Runtime *rt, size_t size);
uv_stream_t *tide__tostream (lua_State *L, int i);
void tide__streamfail (lua_State *L, int i);
uv_connect_t *tide__connreq (lua_State *L);
void tide__connected (uv_connect_t *req, int status);
int tide__connwait (lua_State *L, uv_connect_t *req, int err);

/* stream.c: hand the read side of the Stream at i on to what takes its fd
** (a child's stdin, TLS): its read-ahead stops; *len is the count of bytes
** it holds, which move out to *buf (malloc'ed, the caller's; NULL if none)
** unless buf is NULL. *ended: its read side has ended (EOF or an error),
** nothing comes after them. Returns NULL, or why it cannot be handed on
** ("closed stream", "a task is reading the stream"), nothing done. */
const char *tide__streamtake (lua_State *L, int i, char **buf, size_t *len,
                              int *ended);

/* stream.c: a layer between a Stream's socket and its buffers (TLS, see
** bindings/tls_engine.c). What the socket reads goes into the layer's room
** (input counts it, or tells the socket's end); the stream pumps plaintext
** out of it into the read buffer (read: bytes, 0 when it needs more input,
** or the end: UV_EOF at a clean close, a UV error, TIDE_ELAYER). Written
** data goes through write; what the layer has to send (output: taken,
** valid until the next call into it) goes to the socket after each call.
** shutdown puts the layer's close message in its output; pushfail pushes
** nil, message, code for TIDE_ELAYER; info pushes what stream:tlsinfo()
** returns; free ends it when the stream closes. None of them but
** pushfail and info calls Lua. */
#define TIDE_ELAYER (-0x7e1a)
typedef struct tide_Layer tide_Layer;
typedef struct tide_LayerOps {
  uv_buf_t (*room) (tide_Layer *ly, size_t atleast);  /* len 0: full */
  void (*input) (tide_Layer *ly, ssize_t n);
  int (*read) (tide_Layer *ly, char *dst, size_t size);
  int (*write) (tide_Layer *ly, const char *data, size_t len);
  int (*shutdown) (tide_Layer *ly);
  size_t (*output) (tide_Layer *ly, const char **data);
  int (*ready) (tide_Layer *ly);   /* the handshake is done */
  int (*pushfail) (tide_Layer *ly, lua_State *L);
  int (*info) (tide_Layer *ly, lua_State *L);
  void (*free) (tide_Layer *ly);
} tide_LayerOps;
struct tide_Layer {
  const tide_LayerOps *ops;
};

/* Put ly under the open Stream at i (what it has buffered moves into ly,
** read by it first); NULL, or why not ("a task is reading the stream",
** "the stream is already TLS"; ly is then freed). The layer of the Stream at i, or
** NULL. tide__streamready is a Lua function: (stream) waits as a read
** does until its layer is ready -> true | nil, msg, code. */
const char *tide__streamlayer (lua_State *L, int i, tide_Layer *ly);
tide_Layer *tide__getlayer (lua_State *L, int i);
int tide__streamready (lua_State *L);

/* server.c: a new Server pushed, its uv handle for the caller to init and
** bind; then tide__listen (0 or an error, the server closed) */
void *tide__newserver (lua_State *L, tide_Runtime *rt, size_t size);
int tide__listen (lua_State *L, int backlog);
void tide__serverfail (lua_State *L, int i);

/* dns.c: addresses */
int tide__pushaddr (lua_State *L, const struct sockaddr *sa);
int tide__toaddr (const char *ip, int port, struct sockaddr_storage *ss);
int tide__checkport (lua_State *L, int i);

/* signal.c: names and numbers; the host's default action for a signal
** (run when no task waits for it and no handler takes it) */
typedef void (*tide_SignalF) (tide_Runtime *rt, int signum);
const char *tide__signame (int signum);
int tide__checksignal (lua_State *L, int arg, int def);
int tide__signaldefault (tide_Runtime *rt, int signum, tide_SignalF fn);
int tide__signaltaken (tide_Runtime *rt, int signum);

/* where.c: wrong-use errors naming the function the user called (as the
** call site names it, else in full: "tide.fs.stat", "Stream:read") at the
** user's line, however deep inside tide they are found. Methods check
** their arguments with these: luaL_argerror cannot name a method called
** through pcall (module functions it finds in package.loaded). */
const char *tide__fname (lua_State *L);  /* in full, pushed */
int tide__error (lua_State *L, const char *fmt, ...);
int tide__argerror (lua_State *L, int arg, const char *extramsg);
int tide__typeerror (lua_State *L, int arg, const char *tname);
void *tide__checkudata (lua_State *L, int arg, const char *tname);
void tide__checkclass (lua_State *L, int arg, const char *tname);
lua_Integer tide__checkinteger (lua_State *L, int arg);
lua_Integer tide__optinteger (lua_State *L, int arg, lua_Integer def);
const char *tide__checklstring (lua_State *L, int arg, size_t *len);
const char *tide__optstring (lua_State *L, int arg, const char *def);
int tide__checkoption (lua_State *L, int arg, const char *def,
                       const char *const lst[]);
void tide__checktype (lua_State *L, int arg, int t);
int tide__openwhere (lua_State *L);
#define tide__checkstring(L, arg) tide__checklstring(L, (arg), NULL)
#define tide__argcheck(L, cond, arg, msg) \
  ((void)((cond) || tide__argerror(L, (arg), (msg))))

/* debug.c */
int tide__opendebug (lua_State *L);
void tide__faminebegin (tide_Runtime *rt, Task *t);
void tide__famineend (tide_Runtime *rt, Task *t);
void tide__debugclose (tide_Runtime *rt);

#define tide__task(w) ((Task *)(w))

/* work.c: values copied as tide.work copies them (for workers.c) */
void tide__encodevalues (lua_State *L, int first, int n, const char *fname);
int tide__decodevalues (lua_State *L, const char *s, size_t len);

/* workers.c: tide.workers' C side (tcp.c sets private.openworkers);
** the shared listening sockets of workers (for tcp.c) */
int tide__open_workers (lua_State *L);
int tide__workerlisten (lua_State *L, const char *ip, int port, int backlog,
                        unsigned flags, int reuseport, int *fd);

extern char tide__luawait;         /* data of the Lua-side library's waits */
#define TIDE_LUAWAIT ((void *)&tide__luawait)

#endif
