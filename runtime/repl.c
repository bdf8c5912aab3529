/*
** repl.c: the line input of the tide command's interactive prompt. On a
** terminal, libedit's callback interface driven by the loop (a uv_poll on
** stdin: no thread, no busy polling), with history and completion; through
** a pipe, plain lines read as they come. Ctrl-C cancels the input that is
** running, or abandons the line being typed. The prompt itself (compile,
** run as a task, print) is runtime/lua/repl.lua, run as a task. libedit
** is loaded when a prompt starts on a terminal: the command's other runs
** never link it, nor the libraries it needs.
*/
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "tide_int.h"

#define HISTORY_MAX 1000
#define PLAIN_MAX   (1024 * 1024)    /* longest line read through a pipe */

typedef struct Input {
  tide_Runtime *rt;
  uv_poll_t poll;          /* stdin readable */
  int open;                /* poll not closed yet */
  tide_Wait *reader;       /* the prompt task waiting for a line, or NULL */
  int tty;                 /* line editing (else plain lines) */
  int editing;             /* libedit's handler is installed */
  int taskref;             /* the input running now (registry), or LUA_NOREF */
  char *plain;             /* plain mode: bytes read, not yet a line */
  size_t plainlen;
  int eof;
  int pollable;            /* stdin can be watched (not a regular file) */
  char history[4096];      /* the history file, or "" */
} Input;

static Input in;

/* ---- libedit, loaded on first use ----------------------------------------- */

#ifndef TIDE_EDITLIB
#define TIDE_EDITLIB "libedit.so.2"      /* the Makefile gives its soname */
#endif

#define EDIT_SYMBOLS(X) \
  X(add_history) X(read_history) X(write_history) X(stifle_history) \
  X(rl_callback_handler_install) X(rl_callback_handler_remove) \
  X(rl_callback_read_char) X(rl_completion_matches) \
  X(rl_forced_update_display) X(rl_readline_name) \
  X(rl_attempted_completion_function) X(rl_attempted_completion_over) \
  X(rl_basic_word_break_characters) X(rl_completion_append_character)

/* A pointer to each (ed.add_history(line), *ed.rl_readline_name = ...) */
static struct {
#define EDIT_FIELD(s) __typeof__(s) *s;
  EDIT_SYMBOLS(EDIT_FIELD)
#undef EDIT_FIELD
  int loaded;
} ed;

/* NULL once loaded, else why not. */
static const char *edit_load (void) {
  void *lib, *p;
  if (ed.loaded) return NULL;
  if ((lib = dlopen(TIDE_EDITLIB, RTLD_NOW | RTLD_LOCAL)) == NULL)
    return dlerror();
#define EDIT_LOAD(s) \
  if ((p = dlsym(lib, #s)) == NULL) return dlerror(); \
  memcpy(&ed.s, &p, sizeof p);
  EDIT_SYMBOLS(EDIT_LOAD)
#undef EDIT_LOAD
  ed.loaded = 1;
  return NULL;
}

/* ---- Handing a line to the waiting task ------------------------------------ */

static void stop_reading (void) {
  if (in.pollable) uv_poll_stop(&in.poll);
  if (in.editing) ed.rl_callback_handler_remove();
  in.editing = 0;
}

typedef struct Line {
  const char *line;
  size_t len;
  int interrupted;
} Line;

static int line_push (lua_State *L) {
  const Line *l = lua_touserdata(L, 1);
  if (l->interrupted) lua_pushboolean(L, 0);
  else if (l->line == NULL) lua_pushnil(L);
  else lua_pushlstring(L, l->line, l->len);
  return 1;
}

/* Wake the reader with the line (len bytes), nil (end of input) or false
** (Ctrl-C). */
static void deliver (const char *line, size_t len, int interrupted) {
  tide_Wait *w = in.reader;
  Line l = { line, len, interrupted };
  if (w == NULL) return;
  in.reader = NULL;
  stop_reading();
  tide_wakewith(w, line_push, &l);
}

static void on_line (char *line) {   /* libedit: a line, or NULL at EOF */
  if (line == NULL) fputs("\n", stdout);
  deliver(line, line ? strlen(line) : 0, 0);
  free(line);
}

/* Plain mode: push the first whole line of the buffer (echoed, so that a
** transcript reads as on a terminal), or nil at the end of input; 0 if
** more must be read first. */
static int plain_ready (void) {
  return in.eof || in.plainlen > PLAIN_MAX ||
         (in.plainlen && memchr(in.plain, '\n', in.plainlen) != NULL);
}

static int plain_take (lua_State *T) {
  char *nl = in.plainlen ? memchr(in.plain, '\n', in.plainlen) : NULL;
  size_t n;
  if (!plain_ready()) return 0;
  if (nl == NULL && in.plainlen == 0) {
    fputs("\n", stdout);
    fflush(stdout);
    lua_pushnil(T);
    return 1;
  }
  n = nl ? (size_t)(nl - in.plain) : in.plainlen;
  fwrite(in.plain, 1, n, stdout);
  fputs("\n", stdout);
  fflush(stdout);
  lua_pushlstring(T, in.plain, n);
  n = nl ? n + 1 : n;
  memmove(in.plain, in.plain + n, in.plainlen - n);
  in.plainlen -= n;
  return 1;
}

/* Read what stdin has (a file: what comes next) into the buffer. */
static void plain_fill (void) {
  char *p = realloc(in.plain, in.plainlen + 65536);
  ssize_t n;
  if (p == NULL) n = 0;
  else {
    in.plain = p;
    n = read(0, in.plain + in.plainlen, 65536);
  }
  if (n <= 0) in.eof = 1;
  else in.plainlen += (size_t)n;
}

static int plain_push (lua_State *L) {
  return plain_take(L);
}

static void plain_read (void) {
  tide_Wait *w = in.reader;
  plain_fill();
  if (w && plain_ready()) {
    in.reader = NULL;
    stop_reading();
    tide_wakewith(w, plain_push, NULL);
  }
}

static void poll_cb (uv_poll_t *h, int status, int events) {
  (void)h; (void)events;
  if (status < 0) deliver(NULL, 0, 0);
  else if (in.tty) ed.rl_callback_read_char();
  else plain_read();
}

/* ---- Completion: globals, and fields after '.' and ':' -------------------- */

/* Push the value that the dotted path s[0..n) names, from the globals. */
static int pushpath (lua_State *L, const char *s, size_t n) {
  size_t i = 0;
  lua_pushglobaltable(L);
  while (i < n) {
    size_t j = i;
    while (j < n && s[j] != '.' && s[j] != ':') j++;
    if (!lua_istable(L, -1)) return 0;
    lua_pushlstring(L, s + i, j - i);
    lua_gettable(L, -2);
    lua_remove(L, -2);
    i = j + 1;
  }
  return 1;
}

/* The table whose keys complete after the value on top (its own for '.',
** its metatable's __index for ':'), replacing it; 0 if none. */
static int fieldtable (lua_State *L, int method) {
  if (method || !lua_istable(L, -1)) {
    if (!luaL_getmetafield(L, -1, "__index")) return 0;
    lua_remove(L, -2);
  }
  return lua_istable(L, -1);
}

static char **matches;         /* the candidates for the current word */
static size_t nmatches;

static void addmatch (const char *prefix, size_t plen, const char *key) {
  char **m = realloc(matches, (nmatches + 1) * sizeof *m);
  char *s = malloc(plen + strlen(key) + 1);
  if (m == NULL || s == NULL) {
    free(s);
    if (m) matches = m;
    return;
  }
  matches = m;
  memcpy(s, prefix, plen);
  strcpy(s + plen, key);
  matches[nmatches++] = s;
}

/* Names that start "__" (metamethods, a class's __index and __name) are
** not offered after ':', nor after '.' unless the word typed starts so.
** A table's __pairs runs first (the tide table's runs the library files
** not yet run, whose names it then holds). (text) */
static int collect_protected (lua_State *L) {
  const char *text = lua_touserdata(L, 1);
  const char *sep = strpbrk(text, ".:"), *last = NULL, *word;
  size_t plen;
  int nometa;
  while (sep) { last = sep; sep = strpbrk(sep + 1, ".:"); }
  word = last ? last + 1 : text;
  plen = (size_t)(word - text);
  nometa = last && (*last == ':' || strncmp(word, "__", 2) != 0);
  if (last ? pushpath(L, text, plen - 1) && fieldtable(L, *last == ':')
           : (lua_pushglobaltable(L), 1)) {
    if (luaL_getmetafield(L, -1, "__pairs") != LUA_TNIL) {
      lua_pushvalue(L, -2);
      lua_call(L, 1, 0);
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      const char *key;
      lua_pop(L, 1);
      if (lua_type(L, -1) != LUA_TSTRING) continue;
      key = lua_tostring(L, -1);
      if (strncmp(key, word, strlen(word)) == 0 &&
          !(nometa && strncmp(key, "__", 2) == 0))
        addmatch(text, plen, key);
    }
  }
  return 0;
}

/* Errors (of an __index or __pairs on the way) leave no match. */
static void collect (const char *text) {
  lua_State *L = in.rt->cbL;
  int top = lua_gettop(L);
  if (lua_checkstack(L, 2)) {
    lua_pushcfunction(L, collect_protected);
    lua_pushlightuserdata(L, (void *)text);
    lua_pcall(L, 1, 0, 0);
  }
  lua_settop(L, top);
}

static char *generator (const char *text, int state) {
  if (state == 0) {
    while (nmatches > 0) free(matches[--nmatches]);
    collect(text);
  }
  return nmatches > 0 ? matches[--nmatches] : NULL;
}

static char **complete (const char *text, int start, int end) {
  (void)start; (void)end;
  *ed.rl_attempted_completion_over = 1;  /* never file names */
  return ed.rl_completion_matches(text, generator);
}

/* ---- Ctrl-C ------------------------------------------------------------------ */

/* The command hands the prompt its SIGINT: cancel the input that runs,
** or drop the line being typed. */
void tide__replinterrupt (void) {
  lua_State *L = in.rt->cbL;
  if (in.taskref != LUA_NOREF) {         /* an input runs: cancel it */
    lua_rawgeti(L, LUA_REGISTRYINDEX, in.taskref);
    tide__cancel(tide__checktask(L, -1));
    lua_pop(L, 1);
  }
  else if (in.reader) {                  /* at the prompt: drop the line */
    fputs("^C\n", stdout);
    fflush(stdout);
    deliver(NULL, 0, 1);
  }
}

/* ---- The functions repl.lua uses ------------------------------------------- */

/* readline(prompt) -> line | nil (end of input) | false (Ctrl-C) */
static void readline_cancel (tide_Wait *w) {
  (void)w;
  in.reader = NULL;
  stop_reading();
}

static int l_readline (lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  tide_Wait *w = tide_wait(L);
  if (in.reader != NULL) return luaL_error(L, "readline: already reading");
  lua_settop(L, 0);
  if (in.tty) {
    ed.rl_callback_handler_install(prompt, on_line);
    in.editing = 1;
  }
  else {
    fputs(prompt, stdout);
    fflush(stdout);
    if (plain_take(L)) return 1;         /* a line was there already */
    if (!in.pollable) {                  /* a file: reading does not wait */
      do plain_fill(); while (!plain_take(L));
      return 1;
    }
  }
  if (uv_poll_start(&in.poll, UV_READABLE, poll_cb) < 0) {
    stop_reading();
    lua_pushnil(L);
    return 1;                            /* stdin unusable: end of input */
  }
  in.reader = w;
  return tide_await(L, w, readline_cancel, NULL);
}

static int l_addhistory (lua_State *L) {
  const char *line = luaL_checkstring(L, 1);
  if (in.tty && line[0] != '\0') {
    ed.add_history(line);
    if (in.history[0]) ed.write_history(in.history);
  }
  return 0;
}

/* running(task | nil): the input Ctrl-C cancels */
static int l_running (lua_State *L) {
  luaL_unref(L, LUA_REGISTRYINDEX, in.taskref);
  lua_settop(L, 1);
  in.taskref = lua_isnil(L, 1) ? LUA_NOREF : luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* hide() before output while the prompt shows: the edited line is cleared;
** show() after it: the prompt and line are drawn again. */
static int l_hide (lua_State *L) {
  (void)L;
  if (in.editing) {
    fputs("\r\033[K", stdout);
    fflush(stdout);
  }
  return 0;
}

static int l_show (lua_State *L) {
  (void)L;
  if (in.editing) {
    fflush(stdout);
    ed.rl_forced_update_display();
  }
  return 0;
}

/* Around tide's own reports on stderr (errors nobody observed). */
static void around_report (int after) {
  if (after) l_show(NULL);
  else l_hide(NULL);
}

static void closed_cb (uv_handle_t *h) { (void)h; }

/* The end of the session: handles closed, the terminal as it was. */
static int l_finish (lua_State *L) {
  (void)L;
  stop_reading();
  in.rt->aroundreport = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, in.taskref);
  in.taskref = LUA_NOREF;
  if (in.open) {
    uv_close((uv_handle_t *)&in.poll, closed_cb);
    in.open = 0;
  }
  while (nmatches > 0) free(matches[--nmatches]);
  free(matches);
  free(in.plain);
  matches = NULL;
  in.plain = NULL;
  return 0;
}

static void history_open (void) {
  const char *home = getenv("HOME");
  in.history[0] = '\0';
  if (!in.tty || home == NULL) return;
  snprintf(in.history, sizeof in.history, "%s/.tide_history", home);
  ed.stifle_history(HISTORY_MAX);
  ed.read_history(in.history);
}

/* Push the table of line-input functions for repl.lua; NULL message on
** success, else why the prompt cannot start. */
const char *tide__replinput (tide_Runtime *rt, lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"readline", l_readline},
    {"addhistory", l_addhistory},
    {"running", l_running},
    {"hide", l_hide},
    {"show", l_show},
    {"finish", l_finish},
    {NULL, NULL}
  };
  const char *err;
  memset(&in, 0, sizeof in);
  in.rt = rt;
  in.taskref = LUA_NOREF;
  in.tty = isatty(0);
  if (in.tty && (err = edit_load()) != NULL) return err;
  rt->aroundreport = around_report;
  in.pollable = in.open = uv_poll_init(rt->loop, &in.poll, 0) == 0;
  if (!in.pollable && in.tty) return "cannot watch the standard input";
  if (in.tty) {
    *ed.rl_readline_name = "tide";
    *ed.rl_attempted_completion_function = complete;
    *ed.rl_basic_word_break_characters = " \t\n\"'`@$><=;|&{(,+-*/%^~#[]";
    *ed.rl_completion_append_character = '\0';
    history_open();
  }
  luaL_newlib(L, funcs);
  lua_pushboolean(L, in.tty);
  lua_setfield(L, -2, "tty");
  return NULL;
}
