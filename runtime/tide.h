/*
** tide.h: the public C API of tide, an async runtime for Lua 5.4 on libuv.
** Embedding (open a runtime on a lua_State, drive its loop, close it) and
** writing awaitable C functions (suspend the calling task, wake it from a
** libuv callback, be told when it is cancelled).
*/
#ifndef TIDE_H
#define TIDE_H

#include <lua.h>
#include <uv.h>

#define TIDE_VERSION "tide 0.1.0"

#ifndef TIDE_API
#define TIDE_API extern
#endif

typedef struct tide_Runtime tide_Runtime;
typedef struct tide_Wait tide_Wait;
typedef struct tide_Future tide_Future;

/* ---- Embedding ---------------------------------------------------------- */

/* Out of memory, a call below returns LUA_ERRMEM when its own allocation
** failed, or LUA_ERRRUN when the task it drives ended with the error "not
** enough memory" (a task raises it where it needed the memory); the
** message is "not enough memory" either way, and the runtime is usable
** again once memory is back. */

/* Open a runtime on L (which must have the standard libraries open when
** scripts need them). loop NULL: tide creates and owns a loop; otherwise
** tide uses the host's loop and never closes it. Sets the global `tide`
** and package.loaded.tide, and puts tide's require, in which a task can
** wait, in place of Lua's (as luaopen_tide does). Returns NULL when out of memory (or when the
** loop cannot be opened), with nothing left behind: it may be called again
** once memory is back. */
TIDE_API tide_Runtime *tide_open (lua_State *L, uv_loop_t *loop);

/* The function on top of L's stack, below nargs arguments, becomes a task.
** Pops them and pushes the Task object. Returns LUA_OK, or an error status
** (out of memory, the runtime closed) with the error in their place. */
TIDE_API int tide_spawn (tide_Runtime *rt, int nargs);

/* Drive the loop: UV_RUN_DEFAULT runs until no task is left (what no task
** waits on does not count, children still running and the host's own
** handles do; reports a deadlock, returning LUA_ERRRUN, when tasks wait on
** each other with nothing left to wake them), or until tide_stop has
** ended the run; UV_RUN_ONCE / UV_RUN_NOWAIT run one loop
** iteration (NOWAIT never blocks). Returns LUA_OK, or LUA_ERRRUN on
** deadlock. */
TIDE_API int tide_run (tide_Runtime *rt, uv_run_mode mode);

/* Load the file (NULL: stdin) and run it as a task, driving the loop until
** that task ends (other tasks may go on). Returns LUA_OK, or an error status
** with the message and traceback on top of L's stack. */
TIDE_API int tide_dofile (tide_Runtime *rt, const char *path);

/* Run the function on top of L (below nargs arguments) as a task, driving the
** loop until it ends. On LUA_OK its results replace it on the stack (nres:
** LUA_MULTRET or a count); otherwise the error, with its traceback appended
** when it is a string, is on top. Running out of memory, in the task or in
** tide, is such an error ("not enough memory"), never a panic. */
TIDE_API int tide_call (tide_Runtime *rt, int nargs, int nres);

TIDE_API uv_loop_t *tide_loop (tide_Runtime *rt);
TIDE_API lua_State *tide_state (tide_Runtime *rt);

/* Number of tasks not yet ended. */
TIDE_API size_t tide_ntasks (tide_Runtime *rt);

/* Number of task (and future) errors that nobody observed: each was
** reported on stderr (a task's with its traceback) once the loop had run
** what was ready after it, and no await, result() or on_done() has taken
** it since; and of errors raised in on_done and Protocol callbacks (each
** reported at once, with nobody to observe it). The tide command
** exits with status 1 when this is not 0 at the end. */
TIDE_API size_t tide_unobserved (tide_Runtime *rt);

/* Cancel every task still alive (their <close> variables and pcall handlers
** run), close the handles tide opened (never the host's), free everything.
** With tide's own loop the loop is closed too. Does not close L.
** Thread-pool calls (tide.work, tide.fs, tide.dns) run on a loop of tide's
** own; one still running for a cancelled task (a tide.work blocked in a C
** function, an open of a FIFO) gets 100 ms to end, then that loop is left
** open for it to end into and tide_close returns. As libuv waits for its
** pool threads at exit, tide then ends the process at exit (with glibc)
** by _exit, after fflush(NULL), with exit's status. */
TIDE_API void tide_close (tide_Runtime *rt);

/* Take SIGINT and SIGTERM as the tide command does, until tide_close: the
** first cancels the task that tide_call, tide_dofile or tide.run drives
** (its <close> variables and pcall handlers run), or every task and the
** loop when none is driven; a second one exits the process at once with
** 128 + its number. A task that computes without waiting gets the error
** "interrupted!" raised where it runs when the loop has not picked a
** SIGINT up 50 ms later and the task has computed meanwhile, as lua5.4
** does (after a SIGTERM the process exits); a task blocked in a call, or
** about to wait, is cancelled at its wait instead. A
** task's own tide.signal wait or handler for the signal takes precedence.
** Signals belong to the process: returns 0, or UV_EBUSY when another
** runtime has them. */
TIDE_API int tide_catchsignals (tide_Runtime *rt);

/* The signal (SIGINT or SIGTERM) that cancelled the main task since
** tide_catchsignals, or 0: the host should then exit with 128 + it. */
TIDE_API int tide_interrupted (tide_Runtime *rt);

/* Replace the allocator of tide's own C memory (requests, buffers, its
** queues), as uv_replace_allocator does libuv's: with the same four
** functions, which must be thread-safe (tide.work builds its results on
** the thread pool). Call it before opening any runtime, or once every
** runtime is closed and its loop has run. Returns 0, or UV_EINVAL when one
** of them is NULL. The Lua state's memory comes from its lua_Alloc. */
TIDE_API int tide_replace_allocator (uv_malloc_func malloc_func,
                                     uv_realloc_func realloc_func,
                                     uv_calloc_func calloc_func,
                                     uv_free_func free_func);

/* Stop the run: every task is cancelled (their <close> variables and
** pcall handlers run) and the call that drives the loop returns once they
** have ended: tide_run(rt, UV_RUN_DEFAULT) with LUA_OK (even while the
** host's own handles are active), tide_call and tide.run(fn) as if the
** main function had returned nothing, tide.run() with nothing. What is
** spawned after it runs as usual. A stop while tide_call or tide_dofile
** runs also ends the tide_run(rt, UV_RUN_DEFAULT) that follows (at once,
** once the tasks have ended), as the tide command ends after a script
** that called tide.stop() even while connections or timers are open.
** Safe from anywhere: a libuv callback, a task, an on_done callback, a
** signal watcher. tide.stop() calls it. */
TIDE_API void tide_stop (tide_Runtime *rt);

/* The runtime opened on L (or a thread of it), or NULL. */
TIDE_API tide_Runtime *tide_runtime (lua_State *L);

/* The `tide` module, for require from stock Lua: opens a runtime with its
** own loop on first use, closed when the state closes. */
TIDE_API int luaopen_tide (lua_State *L);

/* ---- Writing awaitable C functions --------------------------------------
**
**   static int my_wait (lua_State *L) {
**     tide_Wait *w = tide_wait(L);          // raises unless in a task
**     Req *r = start_request(..., w);       // libuv request; r->w = w
**     if (failed) return tide_pushfail(L, err, "what");
**     return tide_await(L, w, my_cancel, r); // suspends; last statement
**   }
**   static void cb (...)     { if (r->w) tide_wakewith(r->w, push, r);
**                              free r }
**   static void my_cancel (tide_Wait *w) { Req *r = tide_waitdata(w);
**                              uv_cancel or uv_close; r->w = NULL; }
**
** A task has one wait at a time. After tide_wake, or after the cancel
** function ran, the wait belongs to tide again: never touch it after that.
*/

/* Called when the waiting task is cancelled: stop the operation and detach
** it (a late libuv callback must no longer wake w). Must not call Lua. */
typedef void (*tide_CancelF) (tide_Wait *w);

/* The calling task's wait record. Raises (before anything has started) when
** L is not inside a task, when it cannot yield here (inside a C call such
** as table.sort), or when the task has been cancelled. */
TIDE_API tide_Wait *tide_wait (lua_State *L);

/* Suspend the task. It resumes with the values the waker pushed, which this
** call returns to Lua, or raises tide.Cancelled here if cancelled. Use as
** `return tide_await(L, w, cancel, data);`. */
TIDE_API int tide_await (lua_State *L, tide_Wait *w, tide_CancelF cancel,
                         void *data);

/* As tide_await, but on wake-up calls k(L, LUA_YIELD, ctx) with the values
** pushed on top of the stack as it was, and returns what k returns. */
TIDE_API int tide_awaitk (lua_State *L, tide_Wait *w, tide_CancelF cancel,
                          void *data, lua_KFunction k, lua_KContext ctx);

TIDE_API void *tide_waitdata (tide_Wait *w);

/* The thread to push results on before tide_wake: only values that need
** no memory (nil, booleans, numbers, light userdata), since a push that
** runs out of memory there cannot be caught. */
TIDE_API lua_State *tide_thread (tide_Wait *w);

/* Wake the task with the nres values pushed on tide_thread(w). */
TIDE_API void tide_wake (tide_Wait *w, int nres);

/* Wake the task with the values that push returns, called with ud (a light
** userdata) as its argument in a protected call on a thread of tide's:
** from a libuv callback, values that need memory go this way. If push
** raises (out of memory), the task's wait raises that error instead. The
** task runs once the callback has returned, which may still clean up.
** Returns 1 when the task got the values; 0 when push raised or the task
** no longer waited: the caller then undoes what the values would have
** handed over (a descriptor, a file). */
TIDE_API int tide_wakewith (tide_Wait *w, lua_CFunction push, void *ud);

/* ---- Futures: completing a Lua wait from C ------------------------------
**
**   static int lib_fetch (lua_State *L) {       // tide.Future for Lua code
**     Job *j = start_job(...);
**     j->f = tide_newfuture(L);                 // pushed; held for C
**     return 1;                                 // Lua: j:await()
**   }
**   static int push (lua_State *L) {            // the values, in a
**     Job *j = lua_touserdata(L, 1);            // protected call
**     lua_pushlstring(L, j->data, j->len);
**     return 1;
**   }
**   static void job_cb (Job *j) { tide_setresult(j->f, push, j); free j }
**
** A future is held for C from tide_newfuture until tide_setresult,
** tide_seterror or tide_releasefuture: it is not collected meanwhile and
** the pointer stays valid; after one of them, never touch it again. Lua
** may cancel it meanwhile (tide_futuredone then says so): C still ends its
** hold with one of the three. All of them before tide_close. */

/* Push a new pending tide.Future on L and return it, held for C. Raises
** (out of memory, no runtime open on L). */
TIDE_API tide_Future *tide_newfuture (lua_State *L);

/* Set its result to the values push(ud) returns, called as tide_wakewith
** calls it: from a libuv callback (or anywhere outside a Lua call on the
** runtime's thread of callbacks); tasks in f:await() wake with them, its
** on_done callbacks run now. If push raises (out of memory), the future
** fails with that error. Returns 1 when the future got the values; 0 when
** push raised, or the future was already done (cancelled) or not held. The
** hold ends. */
TIDE_API int tide_setresult (tide_Future *f, lua_CFunction push, void *ud);

/* As tide_setresult, the future failing with the first value push returns
** (its error: a message, say), or with that of push's own failure. */
TIDE_API int tide_seterror (tide_Future *f, lua_CFunction push, void *ud);

/* Whether the future is done (Lua cancelled it, say): C may then stop the
** work whose result it waited for. */
TIDE_API int tide_futuredone (tide_Future *f);

/* End C's hold without setting it (the work was abandoned); a pending
** future stays pending for Lua, which may cancel or set it. */
TIDE_API void tide_releasefuture (tide_Future *f);

/* The loop of the runtime that L belongs to (raises if none). */
TIDE_API uv_loop_t *tide_getloop (lua_State *L);

/* Push nil, "<what>: <message>" (or just the message when what is NULL),
** and libuv's error name ("ECONNREFUSED"); return 3. */
TIDE_API int tide_pushfail (lua_State *L, int uverr, const char *what);

#endif
