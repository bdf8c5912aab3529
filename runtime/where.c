/*
** where.c: wrong-use errors as Lua's own library raises them, naming the
** function the user called and pointing at the user's line, also when the
** error is found deep inside tide: in the Lua-side library (runtime/lua,
** which gets these through the private table) or in a C function it calls.
*/
#include <stdarg.h>
#include <string.h>

#include "tide_int.h"

/* ---- Where: the level of the user's call --------------------------------- */

/* Whether ar (with "S") runs code of the Lua-side library. */
static int ownchunk (const lua_Debug *ar) {
  const tide_LuaSource *s;
  if (ar->source[0] != '=') return 0;
  for (s = tide__luasources; s->name != NULL; s++)
    if (strcmp(ar->source + 1, s->name) == 0) return 1;
  return 0;
}

static int lib_entered (lua_State *L);

/* Whether the function at level runs inside tide: library code, a C
** function that library code called (a binding, pcall), or an entry
** (lib_entry: the user called it, also in a tail call). */
static int inside (lua_State *L, int level) {
  lua_Debug ar;
  lua_CFunction f;
  if (!lua_getstack(L, level, &ar)) return 0;
  lua_getinfo(L, "Sf", &ar);
  f = lua_tocfunction(L, -1);
  lua_pop(L, 1);
  if (f == lib_entered) return 1;
  if (*ar.what != 'C') return ownchunk(&ar);
  if (!lua_getstack(L, level + 1, &ar)) return 0;
  lua_getinfo(L, "S", &ar);
  return *ar.what != 'C' && ownchunk(&ar);
}

/* The level of the function the user called: the outermost of the calls
** inside tide that lead to the running C function (level 0). Its caller,
** one level up, is the user's code. */
static int entrylevel (lua_State *L) {
  int level = 0;
  while (inside(L, level + 1)) level++;
  return level;
}

/* Where a traceback of L's error starts, base being the level of the
** function that raised it (0 in a coroutine it stopped, 1 in a message
** handler): for an error that a C function raised inside tide (wrong use,
** found deep in the Lua-side library), the function the user called, past
** tide's own frames above it, as for a function written in C; else base. */
int tide__tracelevel (lua_State *L, int base) {
  lua_Debug ar;
  int level;
  if (!lua_getstack(L, base, &ar)) return base;
  lua_getinfo(L, "S", &ar);
  if (*ar.what != 'C') return base;
  level = entrylevel(L);
  return level > base ? level : base;
}

/* luaL_error at the user's line. */
int tide__error (lua_State *L, const char *fmt, ...) {
  va_list ap;
  luaL_where(L, entrylevel(L) + 1);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

/* ---- Names --------------------------------------------------------------- */

/* If table t holds the function at fn under a string key k (not a
** metamethod's, with sep ":"), push prefix..sep..k and return 1. */
static int fieldof (lua_State *L, int t, int fn, const char *prefix,
                    const char *sep) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, fn) &&
        (*sep != ':' || strncmp(lua_tostring(L, -2), "__", 2) != 0)) {
      lua_pushfstring(L, "%s%s%s", prefix, sep, lua_tostring(L, -2));
      lua_replace(L, -3);
      lua_pop(L, 1);
      return 1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* The function at fn as a method of the type of metatable mt, named
** tname: in its __index (a table, or the first upvalue of a function), or
** in mt itself (Lua-side classes that are their own index); else as one of
** its metamethods ("Task.__gc", called by hand). */
static int methodof (lua_State *L, int fn, int mt, const char *tname) {
  lua_pushliteral(L, "__index");
  if (lua_rawget(L, mt) == LUA_TFUNCTION) {
    if (lua_getupvalue(L, -1, 1) == NULL) lua_pushnil(L);
    lua_remove(L, -2);
  }
  if (lua_istable(L, -1) && fieldof(L, lua_gettop(L), fn, tname, ":")) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 1);
  return fieldof(L, mt, fn, tname, ":") || fieldof(L, mt, fn, tname, ".");
}

/* As fieldof, in the metatable of the module table at t ("tide.__index"). */
static int metafieldof (lua_State *L, int t, int fn, const char *prefix) {
  if (!lua_getmetatable(L, t)) return 0;
  if (fieldof(L, lua_gettop(L), fn, prefix, ".")) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 1);
  return 0;
}

/* Search the tables of t (a module table or metatable) whose keys are
** "tide" or "tide.*" for the function at fn, as a field ("tide.fs.stat",
** also of the module's metatable) or, with methods, as a method
** ("Stream:read"); push its name. */
static int search (lua_State *L, int fn, int t, int methods) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    int v = lua_gettop(L);
    int tide = strncmp(k, "tide", 4) == 0 && (k[4] == '\0' || k[4] == '.');
    if (tide && lua_istable(L, v) &&
        (methods ? k[4] == '.' && methodof(L, fn, v, k + 5)
                 : fieldof(L, v, fn, k, ".") || metafieldof(L, v, fn, k))) {
      lua_replace(L, -3);
      lua_pop(L, 1);
      return 1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* Replace the function on top by the name tide gives it: a field of a
** module in package.loaded, or a method of a type in the registry (as
** luaL_newmetatable leaves them); 0 if it has none. */
static int fullname (lua_State *L) {
  int fn = lua_gettop(L), found;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  found = search(L, fn, fn + 1, 0) || search(L, fn, LUA_REGISTRYINDEX, 1);
  if (found) lua_replace(L, fn);
  lua_settop(L, fn);
  return found;
}

/* Push and return the name of the function of ar: the one the call site
** gives it (as luaL_argerror names functions; "?" for t[k]() is none) or
** tide's full name, the first known in that order or, with full, in the
** other; else "?". */
static const char *pushname (lua_State *L, lua_Debug *ar, int full) {
  lua_getinfo(L, "nf", ar);
  if (ar->name != NULL && strcmp(ar->name, "?") == 0) ar->name = NULL;
  if (!full && ar->name != NULL) {
    lua_pop(L, 1);
    return lua_pushstring(L, ar->name);
  }
  if (fullname(L)) return lua_tostring(L, -1);
  lua_pop(L, 1);
  return lua_pushstring(L, ar->name ? ar->name : "?");
}

/* The name of the function the user called, in full ("tide.sleep",
** "Queue:put"), pushed. */
const char *tide__fname (lua_State *L) {
  lua_Debug ar;
  lua_getstack(L, entrylevel(L), &ar);
  return pushname(L, &ar, 1);
}

/* ---- Argument errors ----------------------------------------------------- */

/* luaL_argerror for the function the user called, at the user's line. */
int tide__argerror (lua_State *L, int arg, const char *extramsg) {
  lua_Debug ar;
  const char *name;
  lua_getstack(L, entrylevel(L), &ar);
  name = pushname(L, &ar, 0);
  if (strcmp(ar.namewhat, "method") == 0 && --arg == 0)
    return tide__error(L, "calling '%s' on bad self (%s)", name, extramsg);
  return tide__error(L, "bad argument #%d to '%s' (%s)", arg, name, extramsg);
}

/* "tname expected, got <the type of the value at idx>", pushed. */
static const char *typemsg (lua_State *L, int idx, const char *tname) {
  const char *got;
  if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
    got = lua_tostring(L, -1);
  else if (lua_type(L, idx) == LUA_TLIGHTUSERDATA)
    got = "light userdata";
  else
    got = luaL_typename(L, idx);
  return lua_pushfstring(L, "%s expected, got %s", tname, got);
}

int tide__typeerror (lua_State *L, int arg, const char *tname) {
  return tide__argerror(L, arg, typemsg(L, arg, tname));
}

void *tide__checkudata (lua_State *L, int arg, const char *tname) {
  void *p = luaL_testudata(L, arg, tname);
  if (p == NULL) tide__typeerror(L, arg, tname);
  return p;
}

/* As tide__checkudata for a value of any type (tide.Cancelled is a table). */
void tide__checkclass (lua_State *L, int arg, const char *tname) {
  int ok = lua_getmetatable(L, arg);
  if (ok) {
    luaL_getmetatable(L, tname);
    ok = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (!ok) tide__typeerror(L, arg, tname);
}

lua_Integer tide__checkinteger (lua_State *L, int arg) {
  int isnum;
  lua_Integer n = lua_tointegerx(L, arg, &isnum);
  if (!isnum) {
    if (lua_isnumber(L, arg))
      tide__argerror(L, arg, "number has no integer representation");
    tide__typeerror(L, arg, "number");
  }
  return n;
}

lua_Integer tide__optinteger (lua_State *L, int arg, lua_Integer def) {
  return lua_isnoneornil(L, arg) ? def : tide__checkinteger(L, arg);
}

const char *tide__checklstring (lua_State *L, int arg, size_t *len) {
  const char *s = lua_tolstring(L, arg, len);
  if (s == NULL) tide__typeerror(L, arg, "string");
  return s;
}

const char *tide__optstring (lua_State *L, int arg, const char *def) {
  return lua_isnoneornil(L, arg) ? def : tide__checklstring(L, arg, NULL);
}

int tide__checkoption (lua_State *L, int arg, const char *def,
                       const char *const lst[]) {
  const char *name = def ? tide__optstring(L, arg, def)
                         : tide__checklstring(L, arg, NULL);
  int i;
  for (i = 0; lst[i]; i++)
    if (strcmp(lst[i], name) == 0) return i;
  return tide__argerror(L, arg,
                        lua_pushfstring(L, "invalid option '%s'", name));
}

void tide__checktype (lua_State *L, int arg, int t) {
  if (lua_type(L, arg) != t) tide__typeerror(L, arg, lua_typename(L, t));
}

/* ---- For the Lua-side library -------------------------------------------- */

/* argerror(i, msg): as luaL_argerror, for argument i of the function the
** user called (self is argument 1 of a method). */
static int lib_argerror (lua_State *L) {
  int arg = (int)luaL_checkinteger(L, 1);
  return tide__argerror(L, arg, luaL_checkstring(L, 2));
}

/* typeerror(i, tname, x): "tname expected, got <x's type>" for argument i. */
static int lib_typeerror (lua_State *L) {
  int arg = (int)luaL_checkinteger(L, 1);
  return tide__argerror(L, arg, typemsg(L, 3, luaL_checkstring(L, 2)));
}

/* checkself(x, class): raise unless x is an object of class, a metatable
** or the registry's name for one ("tide.UdpSocket"). */
static int lib_checkself (lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING) {
    lua_getfield(L, 2, "__name");
    lua_replace(L, 2);
  }
  tide__checkclass(L, 1, luaL_checkstring(L, 2));
  return 0;
}

/* error(msg): raise msg at the user's line; a "%s" in msg stands for the
** name of the function the user called. */
static int lib_error (lua_State *L) {
  const char *msg = luaL_checkstring(L, 1);
  if (strstr(msg, "%s") != NULL)
    msg = luaL_gsub(L, msg, "%s", tide__fname(L));
  return tide__error(L, "%s", msg);
}

/* newclass(name) -> the metatable of a Lua-side type, kept in the registry
** as luaL_newmetatable keeps those of C types, so that its methods are
** named in messages. */
static int lib_newclass (lua_State *L) {
  luaL_newmetatable(L, luaL_checkstring(L, 1));
  return 1;
}

/* The C function entry(f) makes: f called with its arguments. A C
** function called in a tail call keeps its caller's frame (a Lua one
** does not), so errors point at the user's line and name the function as
** the call site does. */
static int entered_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L);
}

static int lib_entered (lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, entered_k);
  return lua_gettop(L);
}

/* entry(f) -> a C function calling f: an entry point of a Lua-side
** library that the user calls. */
static int lib_entry (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_pushcclosure(L, lib_entered, 1);
  return 1;
}

static const luaL_Reg lib_funcs[] = {
  {"entry", lib_entry},
  {"argerror", lib_argerror},
  {"typeerror", lib_typeerror},
  {"checkself", lib_checkself},
  {"error", lib_error},
  {"newclass", lib_newclass},
  {NULL, NULL}
};

/* Stack: tide table, private table, runtime userdata. The functions above
** go in the private table; each module table of tide goes in
** package.loaded as "tide.<name>", where luaL_argerror finds names of
** functions called through pcall ("tide.process.spawn"). */
int tide__openwhere (lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  while (lua_next(L, -5)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (lua_istable(L, -1) && *k >= 'a' && *k <= 'z') {
      lua_pushfstring(L, "tide.%s", k);
      lua_pushvalue(L, -2);
      lua_rawset(L, -5);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, lib_funcs, 0);
  lua_pop(L, 1);
  return 0;
}
