/*
** lazy.c: the tide table's parts made on first use: the files of the
** Lua-side library (runtime/lua) and the bindings that most programs do
** not touch (dns, tcp, pipe, udp, process, fs, http, tls, socket), while indexing,
** assigning and pairs see every name as if all had been made at
** tide_open. runtime.c's open_module calls tide__openlazy.
*/
#include <stdio.h>
#include <string.h>

#include "tide_int.h"

/* ---- The Lua-side library and the bindings, on first use ----------------- */

/* Each file of the Lua-side library (runtime/lua) runs on the first use of
** a name of the tide table that it defines (its names: see embed.lua), the
** first file (tide.lua, whose helpers in the private table the others
** take) before any other; the bindings below open on the first use of the
** name each sets. Indexing the tide table, assigning a new name in it and
** pairs(tide) (which runs them all) see every name as if all had run at
** tide_open. The metamethods share six upvalues: */
#define LZ_TIDE     lua_upvalueindex(1)   /* the tide table */
#define LZ_PRIVATE  lua_upvalueindex(2)   /* the private table */
#define LZ_RT       lua_upvalueindex(3)   /* the runtime userdata */
#define LZ_STATE    lua_upvalueindex(4)   /* [part] = false while it runs, */
                                          /* true once it has */
#define LZ_GLOBALS  lua_upvalueindex(5)   /* the globals a file takes */
#define LZ_TABLES   lua_upvalueindex(6)   /* [binding] = its table, and */
                                          /* [its table] = binding */

/* The bindings opened on first use; stack: tide, private, runtime. Each
** sets a table in the tide table that keeps no reference to itself: it is
** emptied into the table made for it at tide_open, package.loaded["tide.
** <name>"] from then on (as tide__openwhere has the others there: it
** names their functions in Lua's own messages, and require finds them),
** whose __index and __pairs open it until then. */
/* tide.http: the client (http_client.c) and the server's C side. */
static int open_http (lua_State *L) {
  tide__open_http(L);
  return tide__open_http_server(L);
}

/* tide.tcp, tide.pipe and tide.udp: with the callback layer's
** (transport_net.c, transport_udp.c). */
static int open_tcp (lua_State *L) {
  tide__open_tcp(L);
  return tide__open_transport_tcp(L);
}

static int open_pipe (lua_State *L) {
  tide__open_pipe(L);
  return tide__open_transport_pipe(L);
}

/* tide.process: with create_subprocess (transport_process.c). */
static int open_process (lua_State *L) {
  tide__open_process(L);
  return tide__open_transport_process(L);
}

static int open_udp (lua_State *L) {
  tide__open_udp(L);
  return tide__open_transport_udp(L);
}

static const struct Binding {
  const char *name, *modname;
  lua_CFunction open;
} bindings[] = {
  {"dns", "tide.dns", tide__open_dns}, {"tcp", "tide.tcp", open_tcp},
  {"pipe", "tide.pipe", open_pipe}, {"udp", "tide.udp", open_udp},
  {"process", "tide.process", open_process},
  {"fs", "tide.fs", tide__open_fs}, {"http", "tide.http", open_http},
  {"tls", "tide.tls", tide__open_tls},
  {"socket", "tide.socket", tide__open_socket},
  {NULL, NULL, NULL}
};

static int lz_state (lua_State *L, const void *part) {
  int t = lua_rawgetp(L, LZ_STATE, part);
  int done = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return t == LUA_TNIL ? -1 : done;      /* -1: never started */
}

/* Never allocates: the state table has room for every part. */
static void lz_setstate (lua_State *L, const void *part, int state) {
  if (state < 0) lua_pushnil(L);
  else lua_pushboolean(L, state);
  lua_rawsetp(L, LZ_STATE, part);
}

/* Whether k (len bytes) is one of the space-separated words of list. */
static int hasname (const char *list, const char *k, size_t len) {
  const char *p = list;
  if (len == 0 || memchr(k, ' ', len) != NULL || strlen(k) != len) return 0;
  while ((p = strstr(p, k)) != NULL) {
    if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
      return 1;
    p += len;
  }
  return 0;
}

static const struct Binding *findbinding (const char *k, size_t len) {
  const struct Binding *b;
  for (b = bindings; b->name != NULL; b++)
    if (strlen(b->name) == len && memcmp(b->name, k, len) == 0) return b;
  return NULL;
}

/* A part failed half-way: the names it set are taken back so that the
** next use starts it afresh (allocating nothing: setting an existing key
** to nil while traversing); its error, on top, is raised again. */
static int lz_fail (lua_State *L, const void *part, const char *names) {
  lz_setstate(L, part, -1);
  lua_pushnil(L);
  while (lua_next(L, LZ_TIDE)) {
    size_t n;
    const char *k;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) continue;
    k = lua_tolstring(L, -1, &n);
    if (hasname(names, k, n)) {
      const struct Binding *b = findbinding(k, n);
      if (b != NULL) lz_setstate(L, b, -1);
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, LZ_TIDE);
    }
  }
  return lua_error(L);
}

/* (tide, private, runtime, binding, its table): open it, into its table. */
static int open_binding (lua_State *L) {
  const struct Binding *b = lua_touserdata(L, 4);
  lua_insert(L, 1);                      /* table, tide, private, runtime */
  lua_settop(L, 4);
  b->open(L);
  if (lua_getfield(L, 2, b->name) == LUA_TTABLE && !lua_rawequal(L, -1, 1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_setfield(L, 2, b->name);
  }
  lua_pushnil(L);
  lua_setmetatable(L, 1);
  return 0;
}

static void lz_open (lua_State *L, const struct Binding *b) {
  lz_setstate(L, b, 1);
  lua_pushcfunction(L, open_binding);
  lua_pushvalue(L, LZ_TIDE);
  lua_pushvalue(L, LZ_PRIVATE);
  lua_pushvalue(L, LZ_RT);
  lua_pushlightuserdata(L, (void *)b);
  lua_rawgetp(L, LZ_TABLES, b);
  if (lua_pcall(L, 5, 0, 0) != LUA_OK) lz_fail(L, b, b->name);
}

/* Run a file of the library with the tide and private tables, its globals
** those of tide_open while it runs (the standard functions it keeps in
** locals), the live ones afterwards. */
static void lz_run (lua_State *L, const tide_LuaSource *s) {
  char chunkname[64];
  int status, fn;
  if (s != tide__luasources && lz_state(L, tide__luasources) < 0)
    lz_run(L, tide__luasources);
  lz_setstate(L, s, 0);
  snprintf(chunkname, sizeof chunkname, "=%s", s->name);
  status = luaL_loadbufferx(L, s->source, s->size, chunkname, "b");
  if (status != LUA_OK) lz_fail(L, s, s->names);
  fn = lua_gettop(L);
  lua_pushvalue(L, LZ_GLOBALS);
  lua_setupvalue(L, fn, 1);
  lua_pushvalue(L, fn);
  lua_pushvalue(L, LZ_TIDE);
  lua_pushvalue(L, LZ_PRIVATE);
  status = lua_pcall(L, 2, 0, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_setupvalue(L, fn, 1);
  if (status != LUA_OK) lz_fail(L, s, s->names);   /* the error on top */
  lua_pop(L, 1);
  lz_setstate(L, s, 1);
}

/* Run or open what defines the name at idx (a string) and has not
** started; 0 if none. A file that extends a binding's table opens it as
** it takes it (through lz_index): then, if the file fails, the binding
** is opened again with it on the next use. */
static int lz_load (lua_State *L, int idx) {
  const tide_LuaSource *s;
  size_t len;
  const char *k = lua_tolstring(L, idx, &len);
  const struct Binding *b = findbinding(k, len);
  int found = 0;
  for (s = tide__luasources; s->name != NULL; s++) {
    if (hasname(s->names, k, len) && lz_state(L, s) < 0) {
      lz_run(L, s);
      found = 1;
    }
  }
  if (b != NULL && lz_state(L, b) < 0) {
    lz_open(L, b);
    found = 1;
  }
  return found;
}

static void lz_checkmodule (lua_State *L) {
  if (!lua_rawequal(L, 1, LZ_TIDE)) tide__typeerror(L, 1, "the tide module");
}

/* tide.__index(tide, k) */
static int lz_index (lua_State *L) {
  lz_checkmodule(L);
  lua_settop(L, 2);
  if (lua_type(L, 2) == LUA_TSTRING && lz_load(L, 2))
    lua_gettable(L, 1);                  /* through a file's own __index */
  else lua_rawget(L, 1);
  return 1;
}

/* tide.__newindex(tide, k, v): what defines k runs first, as it would
** have at tide_open (unless k is the name of a binding being opened,
** which sets it). */
static int lz_newindex (lua_State *L) {
  lz_checkmodule(L);
  lua_settop(L, 3);
  if (lua_type(L, 2) == LUA_TSTRING) {
    size_t len;
    const char *k = lua_tolstring(L, 2, &len);
    const struct Binding *b = findbinding(k, len);
    if (b == NULL || lz_state(L, b) < 0) lz_load(L, 2);
  }
  lua_rawset(L, 1);
  return 0;
}

static int lz_next (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

/* tide.__pairs(tide): everything runs first. */
static int lz_pairs (lua_State *L) {
  const struct Binding *b;
  const tide_LuaSource *s;
  lz_checkmodule(L);
  for (s = tide__luasources; s->name != NULL; s++)
    if (lz_state(L, s) < 0) lz_run(L, s);
  for (b = bindings; b->name != NULL; b++)
    if (lz_state(L, b) < 0) lz_open(L, b);
  lua_pushcfunction(L, lz_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

static const luaL_Reg lz_meta[] = {
  {"__index", lz_index},
  {"__newindex", lz_newindex},
  {"__pairs", lz_pairs},
  {NULL, NULL}
};

/* The table of a binding not opened yet (from package.loaded) at 1: open
** it (as tide.<name> does), which leaves it a plain table. */
static void lz_opentable (lua_State *L) {
  const struct Binding *b;
  lua_pushvalue(L, 1);
  b = lua_rawget(L, LZ_TABLES) == LUA_TLIGHTUSERDATA ? lua_touserdata(L, -1)
                                                     : NULL;
  if (b == NULL) tide__typeerror(L, 1, "a table of the tide module");
  lua_getfield(L, LZ_TIDE, b->name);
  lua_pop(L, 2);
}

/* tide.<name>.__index(t, k) */
static int lz_tableindex (lua_State *L) {
  lua_settop(L, 2);
  lz_opentable(L);
  lua_gettable(L, 1);
  return 1;
}

/* tide.<name>.__pairs(t) */
static int lz_tablepairs (lua_State *L) {
  lua_settop(L, 1);
  lz_opentable(L);
  lua_pushcfunction(L, lz_next);
  lua_insert(L, 1);
  lua_pushnil(L);
  return 3;
}

static const luaL_Reg lz_tablemeta[] = {
  {"__index", lz_tableindex},
  {"__pairs", lz_tablepairs},
  {NULL, NULL}
};

/* The globals the files use, as they are now; the others from _G. */
static void pushglobals (lua_State *L) {
  const char *p = tide__luasources_globals;
  int n = 1;
  while ((p = strchr(p, ' ')) != NULL) p++, n++;
  p = tide__luasources_globals;
  lua_createtable(L, 0, n);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  while (*p) {
    size_t len = strcspn(p, " ");
    lua_pushlstring(L, p, len);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    lua_rawset(L, -4);
    p += len + (p[len] == ' ');
  }
  lua_createtable(L, 0, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
}

/* The bindings' tables, each also package.loaded["tide.<name>"], with
** the metatable at mt; pushes [binding] = table and [table] = binding. */
static void pushtables (lua_State *L, int mt) {
  const struct Binding *b;
  int n = 0;
  for (b = bindings; b->name != NULL; b++) n++;
  lua_createtable(L, 0, 2 * n);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  for (b = bindings; b->name != NULL; b++) {
    lua_newtable(L);
    lua_pushvalue(L, mt);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -4, b);
    lua_pushvalue(L, -1);
    lua_pushlightuserdata(L, (void *)b);
    lua_rawset(L, -5);
    lua_setfield(L, -2, b->modname);
  }
  lua_pop(L, 1);
}

/* require "tide.<name>" of a Lua-side part that is no binding: tide.<name>
** (upvalue 2 of the tide table at upvalue 1); tide.luasocket installs
** itself (its install()). */
static int lz_preload (lua_State *L) {
  lua_getfield(L, lua_upvalueindex(1), lua_tostring(L, lua_upvalueindex(2)));
  if (lua_type(L, -1) == LUA_TTABLE) {
    if (lua_getfield(L, -1, "install") == LUA_TFUNCTION) lua_call(L, 0, 1);
    else lua_pop(L, 1);
  }
  return 1;
}

static const char *const preloads[] = {"ssl", "luasocket", NULL};

/* Stack: tide. package.preload["tide.<name>"] for each of preloads. */
static void setpreloads (lua_State *L) {
  const char *const *p;
  char name[32];
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (p = preloads; *p != NULL; p++) {
    lua_pushvalue(L, -2);
    lua_pushstring(L, *p);
    lua_pushcclosure(L, lz_preload, 2);
    snprintf(name, sizeof name, "tide.%s", *p);
    lua_setfield(L, -2, name);
  }
  lua_pop(L, 1);
}

/* Stack: tide, private, runtime. The metatables of the tide table and of
** the bindings' tables, their functions sharing the LZ_ upvalues. */
void tide__openlazy (lua_State *L) {
  int n = 0, i, tm, m, base = lua_gettop(L) - 2;
  const struct Binding *b;
  const tide_LuaSource *s;
  luaL_checkstack(L, 24, NULL);
  for (b = bindings; b->name != NULL; b++) n++;
  for (s = tide__luasources; s->name != NULL; s++) n++;
  lua_createtable(L, 0, 2);
  tm = lua_gettop(L);
  lua_createtable(L, 0, 3);
  m = lua_gettop(L);
  lua_pushvalue(L, base);                      /* LZ_TIDE */
  lua_pushvalue(L, base + 1);                  /* LZ_PRIVATE */
  lua_pushvalue(L, base + 2);                  /* LZ_RT */
  lua_createtable(L, 0, n);                    /* LZ_STATE */
  pushglobals(L);                              /* LZ_GLOBALS */
  pushtables(L, tm);                           /* LZ_TABLES */
  lua_pushvalue(L, tm);
  for (i = 1; i <= 6; i++) lua_pushvalue(L, m + i);
  luaL_setfuncs(L, lz_tablemeta, 6);
  lua_pop(L, 1);
  lua_pushvalue(L, m);
  for (i = 1; i <= 6; i++) lua_pushvalue(L, m + i);
  luaL_setfuncs(L, lz_meta, 6);
  lua_setmetatable(L, base);
  lua_settop(L, base + 2);
  lua_pushvalue(L, base);
  setpreloads(L);
  lua_pop(L, 1);
}
