/*
** cli.c: libFuzzer harness for the option handling of the tide command.
** runtime/main.c is compiled in (its main renamed); the input is an argv
** (strings split at zero bytes). collectargs must agree with a model of
** lua5.4's command line (lua.c 5.4, plus tide's --version); the usage
** message for a bad option must be lua5.4's; runargs must run the -e and
** -l options in order, each with its own argument, stop at the first that
** fails, and turn warnings on for -W; the arg table must be lua.c's. The
** chunks are not run: -e loads a stand-in that records its text, and
** require is a stand-in that records the module's name.
*/
#include <stdarg.h>
#include <string.h>

#include "fuzz.h"

static char errout[16384];         /* what main.c wrote to stderr */
static size_t errlen;

static void fuzz_errout (const char *fmt, ...) {
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(errout + errlen, sizeof errout - errlen, fmt, ap);
  va_end(ap);
  if (n > 0) errlen += (size_t)n < sizeof errout - errlen
                       ? (size_t)n : sizeof errout - errlen - 1;
}

#define lua_writestringerror(s, p) fuzz_errout((s), (p))
#include <lauxlib.h>

static int fuzz_loadbuffer (lua_State *L, const char *s, size_t n,
                            const char *name);
#undef luaL_loadbuffer
#define luaL_loadbuffer fuzz_loadbuffer

#define main tide_main
#include "../../runtime/main.c"
#undef main

#define MAXARGS 32

/* ---- The stand-ins, recording what runargs did ---------------------------- */

typedef struct Action {
  char what;               /* 'e' or 'l' */
  char *text;              /* the chunk, or the module name (malloc'ed) */
} Action;

static Action done[MAXARGS];
static int ndone, warnon;

static void record (char what, const char *text) {
  if (ndone < MAXARGS) {
    done[ndone].what = what;
    if ((done[ndone++].text = strdup(text)) == NULL) fail("memory");
  }
}

static void forget (void) {
  while (ndone > 0) free(done[--ndone].text);
}

/* A chunk whose text starts with 'X' fails (as a syntax error would). */
static int fuzz_loadbuffer (lua_State *L, const char *s, size_t n,
                            const char *name) {
  (void)n; (void)name;
  record('e', s);
  if (s[0] == 'X') {
    lua_pushliteral(L, "[string]:1: stand-in syntax error");
    return LUA_ERRSYNTAX;
  }
  return luaL_loadstring(L, "return");
}

/* require(name): "mod:" .. name; a name starting with 'X' is not found. */
static int fuzz_require (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  record('l', name);
  if (name[0] == 'X') return luaL_error(L, "module '%s' not found", name);
  lua_pushfstring(L, "mod:%s", name);
  return 1;
}

static void fuzz_warnf (void *ud, const char *msg, int tocont) {
  (void)ud;
  if (!tocont && strcmp(msg, "@on") == 0) warnon = 1;
  if (!tocont && strcmp(msg, "@off") == 0) warnon = 0;
}

/* ---- The model ----------------------------------------------------------
** lua5.4's command line: options up to the script (the first argument not
** starting with '-', or "-" for stdin, or what follows "--"); -e and -l
** take the rest of their argument or the next one, which must not start
** with '-'; -E -W -i -v take nothing; anything else is a bad option. */

static int model_collect (char **argv, int *first) {
  int args = 0, i;
  for (i = 1; argv[i] != NULL; i++) {
    const char *a = argv[i];
    *first = i;
    if (a[0] != '-' || strcmp(a, "-") == 0) return args;
    if (strcmp(a, "--") == 0) {
      *first = i + 1;
      return args;
    }
    if (strcmp(a, "--version") == 0) {
      args |= has_version;
      continue;
    }
    if (strchr("EWiv", a[1]) != NULL && a[1] != '\0') {
      if (a[2] != '\0') return has_error;
      args |= a[1] == 'E' ? has_E : a[1] == 'i' ? has_i | has_v
            : a[1] == 'v' ? has_v : 0;
      continue;
    }
    if (a[1] != 'e' && a[1] != 'l') return has_error;
    if (a[1] == 'e') args |= has_e;
    if (a[2] == '\0' && (argv[i + 1] == NULL || argv[i + 1][0] == '-'))
      return has_error;
    if (a[2] == '\0') i++;
  }
  *first = i;
  return args;
}

/* ---- The run -------------------------------------------------------------- */

static lua_State *L;

static int argc_of (char **argv) {
  int n = 0;
  while (argv[n] != NULL) n++;
  return n;
}

/* The global an -l argument sets, in g. */
static void globalname (const char *arg, char *g, size_t size) {
  size_t len = strcspn(arg, "=");
  if (len >= size) fail("global name too long for the harness");
  memcpy(g, arg, len);
  g[len] = '\0';
}

/* Check what runargs did for argv[1 .. script): the -e and -l options in
** order, up to the first that fails. The globals that -l sets are put
** back afterwards. */
static void check_runargs (char **argv, char **orig, int script) {
  int i, k = 0, ok, stopped = 0, wantwarn = 0, norequire = 0, saved;
  char g[4096];               /* as long as the whole input */
  forget();
  warnon = 0;
  errlen = 0;
  errout[0] = '\0';
  lua_newtable(L);                 /* saved[g] = { value before } */
  saved = lua_gettop(L);
  for (i = 1; i < script; i++) {
    if (orig[i][1] != 'e' && orig[i][1] != 'l') continue;
    if (orig[i][1] == 'l') {
      globalname(orig[i][2] != '\0' ? orig[i] + 2 : orig[i + 1], g, sizeof g);
      if (lua_getfield(L, saved, g) == LUA_TNIL) {
        lua_createtable(L, 1, 0);
        lua_getglobal(L, g);
        lua_rawseti(L, -2, 1);
        lua_setfield(L, saved, g);
      }
      lua_pop(L, 1);
    }
    if (orig[i][2] == '\0') i++;
  }
  ok = runargs(L, argv, script);
  for (i = 1; i < script && !stopped; i++) {
    const char *a = orig[i], *arg;
    if (a[1] == 'W') wantwarn = 1;
    if (a[1] != 'e' && a[1] != 'l') continue;
    arg = a[2] != '\0' ? a + 2 : orig[++i];
    if (a[1] == 'l' && norequire) {  /* an -l before set the global */
      stopped = 1;
      break;
    }
    if (k >= ndone || done[k].what != a[1])
      fail("option %d (%s): not run as -%c", i, a, a[1]);
    if (a[1] == 'e') {
      if (strcmp(done[k].text, arg) != 0)
        fail("-e ran '%s', expected '%s'", done[k].text, arg);
      stopped = arg[0] == 'X';
    }
    else {
      const char *eq = strchr(arg, '='), *mod = eq ? eq + 1 : arg;
      if (strcmp(done[k].text, mod) != 0)
        fail("-l required '%s', expected '%s'", done[k].text, mod);
      stopped = mod[0] == 'X';
      globalname(arg, g, sizeof g);
      if (!stopped) {              /* the global got the module */
        lua_getglobal(L, g);
        if (lua_type(L, -1) != LUA_TSTRING ||
            strncmp(lua_tostring(L, -1), "mod:", 4) != 0)
          fail("-l %s: global '%s' is not a module", arg, g);
        lua_pop(L, 1);
        norequire |= strcmp(g, "require") == 0;
      }
    }
    k++;
  }
  if (k != ndone) fail("runargs ran %d chunks, expected %d", ndone, k);
  if (ok != !stopped) fail("runargs returned %d, expected %d", ok, !stopped);
  if (warnon != wantwarn) fail("warnings %d, expected %d", warnon, wantwarn);
  if (stopped && strncmp(errout, "tide: ", 6) != 0)
    fail("the error was not reported as lua5.4 does: '%s'", errout);
  lua_warning(L, "@off", 0);
  lua_pushnil(L);                  /* put the globals back */
  while (lua_next(L, saved)) {
    lua_rawgeti(L, -1, 1);
    lua_setglobal(L, lua_tostring(L, -3));
    lua_pop(L, 1);
  }
  lua_settop(L, saved - 1);
}

/* The arg table of createargtable: argv[script] at 0, the rest around. */
static void check_argtable (char **argv, int argc, int script) {
  int i, base = script == argc ? 0 : script;
  createargtable(L, argv, argc, script);
  lua_getglobal(L, "arg");
  for (i = 0; i < argc; i++) {
    lua_rawgeti(L, -1, i - base);
    if (lua_tostring(L, -1) == NULL || strcmp(lua_tostring(L, -1), argv[i]))
      fail("arg[%d] is not argv[%d]", i - base, i);
    lua_pop(L, 1);
  }
  if (luaL_len(L, -1) != argc - base - 1) fail("#arg is off");
  lua_pop(L, 1);
}

int LLVMFuzzerInitialize (int *argc, char ***argv) {
  (void)argc; (void)argv;
  L = luaL_newstate();
  luaL_openlibs(L);
  runtime = tide_open(L, NULL);
  if (runtime == NULL) fail("cannot open a runtime");
  lua_setwarnf(L, fuzz_warnf, NULL);
  lua_pushcfunction(L, fuzz_require);
  lua_setglobal(L, "require");
  return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  static char buf[4096], copy[4096];
  char *argv[MAXARGS + 2], *orig[MAXARGS + 2];
  int argc = 1, i, args, margs, script = -1, mscript = -1;
  size_t n = size < sizeof buf - 1 ? size : sizeof buf - 1, start = 0;
  memcpy(buf, data, n);
  buf[n] = '\0';
  memcpy(copy, buf, n + 1);
  argv[0] = orig[0] = "tide";
  for (i = 0; (size_t)i <= n && argc <= MAXARGS; i++) {
    if (buf[i] != '\0') continue;
    if (n > 0) {                   /* an empty input: no arguments */
      argv[argc] = buf + start;
      orig[argc++] = copy + start;
    }
    start = (size_t)i + 1;
  }
  argv[argc] = orig[argc] = NULL;
  args = collectargs(argv, &script);
  margs = model_collect(orig, &mscript);
  if (args != margs) fail("collectargs gives %d, lua5.4 %d", args, margs);
  if (args != has_error && script != mscript)
    fail("the script is argument %d, for lua5.4 %d", script, mscript);
  if (args == has_error) {         /* lua5.4's message for the bad option */
    static char want[sizeof buf + 64];
    const char *bad = argv[script];
    if (script != mscript) fail("the bad option is %d, for lua5.4 %d",
                                script, mscript);
    errlen = 0;
    print_usage(bad);
    snprintf(want, sizeof want, bad[1] == 'e' || bad[1] == 'l'
             ? "tide: '%s' needs argument\n"
             : "tide: unrecognized option '%s'\n", bad);
    if (strncmp(errout, want, strlen(want)) != 0)
      fail("usage starts '%.*s', expected '%s'", (int)strcspn(errout, "\n"),
           errout, want);
    return 0;
  }
  if (script < 1 || script > argc) fail("script index %d of %d", script, argc);
  if (!(args & has_version)) check_runargs(argv, orig, script);
  check_argtable(orig, argc_of(orig), script);
  lua_settop(L, 0);
  forget();
  lua_gc(L, LUA_GCCOLLECT);        /* a run frees what it made (see LSan) */
  return 0;
}
