/*
** work.c: libFuzzer harness for the value copier of tide.work. The input
** builds a list of values (strings with zero bytes, integers and floats
** of any bits, NaN, -0, nested and shared tables, cycles, deep nesting,
** functions, userdata, coroutines); bindings/work.c is compiled in, and
** the list goes through its encoder and decoder, and with the input's
** first bit through tide.work itself (to the pool thread and back, or as
** the error value). What can be copied must come back equal; what cannot
** must be refused with the message that names the argument and why.
*/
#include <math.h>
#include <float.h>

#include "../../bindings/work.c"

#include "fuzz.h"

#define MAXVALUES 64               /* on the builder's stack */
#define MAXNODES  20000            /* values a copy may expand to */

static lua_State *L;
static tide_Runtime *rt;
static int callref;

/* (how, args...) -> table.pack(pcall(tide.work, fn, args...)), where fn
** returns its arguments (how 0), raises the first as its error value (1),
** returns them and a function (2), or raises a table that holds them and
** a function and has a __tostring (3). */
static const char caller[] =
  "local fns = {\n"
  "  [0] = function (...) return ... end,\n"
  "  function (...) error((...), 0) end,\n"
  "  function (...)\n"
  "    local t = table.pack(...)\n"
  "    t[t.n + 1] = print\n"
  "    return table.unpack(t, 1, t.n + 1)\n"
  "  end,\n"
  "  function (...)\n"
  "    local n = select('#', ...)\n"
  "    error(setmetatable({ print, ... },\n"
  "      { __tostring = function () return 'E' .. n end }))\n"
  "  end,\n"
  "}\n"
  "local how = ...\n"
  "return table.pack(pcall(tide.work, fns[how], select(2, ...)))\n";

/* ---- Building the values --------------------------------------------------- */

static int dummy (lua_State *L_) { (void)L_; return 0; }

static void pushspecial (unsigned k) {
  switch (k % 14) {
    case 0: lua_pushnumber(L, NAN); break;
    case 1: lua_pushnumber(L, -NAN); break;
    case 2: lua_pushnumber(L, -0.0); break;
    case 3: lua_pushnumber(L, 0.0); break;
    case 4: lua_pushnumber(L, HUGE_VAL); break;
    case 5: lua_pushnumber(L, -HUGE_VAL); break;
    case 6: lua_pushinteger(L, LUA_MAXINTEGER); break;
    case 7: lua_pushinteger(L, LUA_MININTEGER); break;
    case 8: lua_pushnumber(L, 9007199254740993.0); break;
    case 9: lua_pushnumber(L, 9223372036854775808.0); break;
    case 10: lua_pushnumber(L, 0.1); break;
    case 11: lua_pushnumber(L, DBL_MIN / 4); break;  /* subnormal */
    case 12: lua_pushinteger(L, 0); break;
    default: lua_pushnumber(L, 2.0); break;          /* a float key -> 2 */
  }
}

/* The stack index of the i-th table from the top among base+1 .. top. */
static int nthtable (int base, unsigned i) {
  int k, n = 0, top = lua_gettop(L);
  for (k = top; k > base; k--)
    if (lua_istable(L, k)) n++;
  if (n == 0) return 0;
  i %= (unsigned)n;
  for (k = top; k > base; k--)
    if (lua_istable(L, k) && i-- == 0) return k;
  return 0;
}

static int validkey (int i) {
  if (lua_isnil(L, i)) return 0;
  if (lua_type(L, i) == LUA_TNUMBER && !lua_isinteger(L, i)) {
    lua_Number v = lua_tonumber(L, i);
    if (v != v) return 0;          /* NaN */
  }
  return 1;
}

/* Build values above base from the input; returns how many. */
static int build (In *in, int base) {
  size_t n;
  const char *s;
  int t;
  lua_Integer iv;
  lua_Number dv;
  while (in->n > 0) {
    int top = lua_gettop(L) - base;
    unsigned c = in_u8(in) % 17;
    if (top >= MAXVALUES && (c <= 7 || (c >= 11 && c <= 13))) continue;
    switch (c) {
      case 0: lua_pushnil(L); break;
      case 1: lua_pushboolean(L, in_u8(in) & 1); break;
      case 2:
        iv = (lua_Integer)in_u64(in);
        lua_pushinteger(L, iv);
        break;
      case 3: pushspecial(in_u8(in)); break;
      case 4: {
        uint64_t bits = in_u64(in);
        memcpy(&dv, &bits, sizeof dv);
        lua_pushnumber(L, dv);
        break;
      }
      case 5:
        s = in_bytes(in, in_u8(in), &n);
        lua_pushlstring(L, s, n);
        break;
      case 6: {
        luaL_Buffer b;
        size_t len = (size_t)in_u16(in) * 4;
        int ch = (int)in_u8(in);
        memset(luaL_buffinitsize(L, &b, len), ch, len);
        luaL_pushresultsize(&b, len);
        break;
      }
      case 7: lua_createtable(L, 0, 0); break;
      case 8:                      /* t[k] = v */
        if (top >= 3 && lua_istable(L, -3) && validkey(-2)) lua_rawset(L, -3);
        else if (top >= 1) lua_pop(L, 1);
        break;
      case 9:                      /* t[#t + 1] = v */
        if (top >= 2 && lua_istable(L, -2))
          lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        break;
      case 10:                     /* t[key] = a table on the stack */
        if (top >= 1 && lua_istable(L, -1) && (t = nthtable(base, in_u8(in)))) {
          pushspecial(in_u8(in) | 1);   /* an odd special: a valid key */
          if (!validkey(-1)) {
            lua_pop(L, 1);
            lua_pushliteral(L, "ref");
          }
          lua_pushvalue(L, t);
          lua_rawset(L, -3);
        }
        break;
      case 11:
        switch (in_u8(in) % 3) {
          case 0: lua_pushcfunction(L, dummy); break;
          case 1: luaL_loadstring(L, "return 1"); break;
          default: lua_getglobal(L, "print");
        }
        break;
      case 12:
        if (in_u8(in) & 1) lua_pushlightuserdata(L, L);
        else lua_newuserdatauv(L, 1, 0);
        break;
      case 13: lua_newthread(L); break;
      case 14: {                   /* wrap the top value in n tables */
        unsigned k, depth = in_u8(in);
        if (top < 1) break;
        for (k = 0; k < depth; k++) {
          lua_createtable(L, 1, 0);
          lua_insert(L, -2);
          lua_rawseti(L, -2, 1);
        }
        break;
      }
      case 15:
        if (top >= 1 && top < MAXVALUES)
          lua_pushvalue(L, base + 1 + (int)(in_u8(in) % (unsigned)top));
        break;
      default:
        if (top >= 1) lua_pop(L, 1);
    }
  }
  return lua_gettop(L) - base;
}

/* ---- The model --------------------------------------------------------------
** Why the value at i cannot be copied: a bit per reason, as enc would meet
** them in some order; the count of values its copy expands to. */

enum { E_FUNCTION = 1, E_USERDATA = 2, E_THREAD = 4, E_CYCLE = 8, E_DEPTH = 16 };

static int classify (int i, int depth, int path, size_t *nodes) {
  int why = 0;
  i = lua_absindex(L, i);
  if (++*nodes > MAXNODES) return 0;
  switch (lua_type(L, i)) {
    case LUA_TFUNCTION: return E_FUNCTION;
    case LUA_TUSERDATA: case LUA_TLIGHTUSERDATA: return E_USERDATA;
    case LUA_TTHREAD: return E_THREAD;
    case LUA_TTABLE: break;
    default: return 0;
  }
  if (depth >= DEPTH_MAX) return E_DEPTH;
  if (lua_rawgetp(L, path, lua_topointer(L, i)) != LUA_TNIL) {
    lua_pop(L, 1);
    return E_CYCLE;
  }
  lua_pop(L, 1);
  lua_pushboolean(L, 1);
  lua_rawsetp(L, path, lua_topointer(L, i));
  lua_pushnil(L);
  while (lua_next(L, i)) {
    why |= classify(-2, depth + 1, path, nodes);
    why |= classify(-1, depth + 1, path, nodes);
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  lua_rawsetp(L, path, lua_topointer(L, i));
  return why;
}

/* Whether the values at a and b are equal as copies: the same types and
** number subtypes, the same bits, the same keys with equal values. */
static int same (int a, int b, int depth) {
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (lua_type(L, a) != lua_type(L, b)) return 0;
  switch (lua_type(L, a)) {
    case LUA_TNIL: return 1;
    case LUA_TBOOLEAN: return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TNUMBER: {
      lua_Number x, y;
      if (lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
      if (lua_isinteger(L, a)) return lua_tointeger(L, a) == lua_tointeger(L, b);
      x = lua_tonumber(L, a);
      y = lua_tonumber(L, b);
      return memcmp(&x, &y, sizeof x) == 0;
    }
    case LUA_TSTRING: {
      size_t la, lb;
      const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
      return la == lb && memcmp(sa, sb, la) == 0;
    }
    case LUA_TTABLE: {
      size_t na = 0, nb = 0;
      int ok = 1;
      if (depth > DEPTH_MAX + 2) return 0;
      lua_pushnil(L);
      while (lua_next(L, b)) { nb++; lua_pop(L, 1); }
      lua_pushnil(L);
      while (ok && lua_next(L, a)) {
        na++;
        if (!lua_istable(L, -2)) {
          lua_pushvalue(L, -2);
          lua_rawget(L, b);
          ok = same(-2, -1, depth + 1);
          lua_pop(L, 1);
        }
        else {                     /* a table key: any equal pair in b */
          int ka = lua_gettop(L) - 1, found = 0;
          lua_pushnil(L);
          while (!found && lua_next(L, b)) {
            found = same(ka, -2, depth + 1) && same(ka + 1, -1, depth + 1);
            lua_pop(L, 1);
          }
          if (found) lua_pop(L, 1);
          ok = found;
        }
        lua_pop(L, 1);
      }
      if (!ok) lua_pop(L, 1);
      return ok && na == nb;
    }
    default: return lua_rawequal(L, a, b);
  }
}

/* The error of a refused copy: the reason and the argument it names. */
static void check_refusal (const char *msg, const int *why, int n, int num) {
  int arg, k, i;
  const char *p = msg ? strstr(msg, "(argument #") : NULL;
  if (p == NULL) p = msg ? strstr(msg, "(result #") : NULL;
  if (p == NULL || sscanf(strchr(p, '#') + 1, "%d", &arg) != 1)
    fail("refused with '%s', which names no argument", msg ? msg : "?");
  i = arg - num;
  if (i < 0 || i >= n || why[i] == 0)
    fail("'%s' names argument #%d, which can be copied", msg, arg);
  for (k = 0; k < i; k++)
    if (why[k]) fail("'%s': argument #%d before it cannot be copied either",
                     msg, k + num);
  if (strncmp(msg, "tide.work: ", 11) != 0) fail("'%s': not tide.work's", msg);
  if (strstr(msg, "cannot copy a function") ? !(why[i] & E_FUNCTION)
      : strstr(msg, "cannot copy a userdata") ? !(why[i] & E_USERDATA)
      : strstr(msg, "cannot copy a thread") ? !(why[i] & E_THREAD)
      : strstr(msg, "contains itself") ? !(why[i] & E_CYCLE)
      : strstr(msg, "nested too deeply") ? !(why[i] & E_DEPTH) : 1)
    fail("'%s': not why argument #%d cannot be copied (%d)", msg, arg, why[i]);
}

/* ---- The two ways through ---------------------------------------------------- */

/* Protected: (n values) -> the buffer enclist made, then the decoded copies. */
static int roundtrip (lua_State *L_) {
  int n = lua_gettop(L_);
  Buf *b = newbuf(L_);
  Rd rd;
  uint32_t k, count;
  luaL_checkstack(L_, n + 3 * DEPTH_MAX + 10, "fuzz");
  enclist(L_, b, 1, n, "argument", 1);
  rd.p = b->p;
  rd.end = b->p + b->n;
  count = declen(&rd);
  if ((int)count != n) fail("%u values encoded, expected %d", count, n);
  for (k = 0; k < count; k++) dec(L_, &rd);
  if (rd.p != rd.end) fail("the decoder stopped %td bytes early", rd.end - rd.p);
  return n;
}

int LLVMFuzzerInitialize (int *argc, char ***argv) {
  (void)argc; (void)argv;
  L = luaL_newstate();
  luaL_openlibs(L);
  rt = tide_open(L, NULL);
  if (rt == NULL) fail("cannot open a runtime");
  if (luaL_loadbuffer(L, caller, sizeof caller - 1, "=caller") != LUA_OK)
    fail("%s", lua_tostring(L, -1));
  callref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  In in = { data, size };
  unsigned mode = in_u8(&in);
  int top = lua_gettop(L), n, i, path, failed = 0;
  int why[MAXVALUES];
  size_t nodes = 0;
  luaL_checkstack(L, 2 * MAXVALUES + 300, "fuzz");
  n = build(&in, top);
  lua_newtable(L);
  path = lua_gettop(L);
  for (i = 0; i < n; i++) {
    why[i] = classify(top + 1 + i, 0, path, &nodes);
    failed |= why[i];
  }
  lua_pop(L, 1);
  if (nodes > MAXNODES) {          /* shared tables: copies too large */
    lua_settop(L, top);
    return 0;
  }
  if (mode % 4 != 0) {             /* the encoder and decoder */
    lua_pushcfunction(L, roundtrip);
    for (i = 1; i <= n; i++) lua_pushvalue(L, top + i);
    if (lua_pcall(L, n, n, 0) != LUA_OK) {
      if (!failed) fail("refused a copyable list: %s", lua_tostring(L, -1));
      check_refusal(lua_tostring(L, -1), why, n, 1);
    }
    else {
      if (failed) fail("copied a list that cannot be copied (%d)", failed);
      for (i = 0; i < n; i++)
        if (!same(top + 1 + i, top + n + 1 + i, 0))
          fail("value %d came back different", i + 1);
    }
  }
  else {                           /* tide.work: there and back */
    int how = (mode >> 2) & 3, res, ok;
    lua_rawgeti(L, LUA_REGISTRYINDEX, callref);
    lua_pushinteger(L, how);
    for (i = 1; i <= n; i++) lua_pushvalue(L, top + i);
    if (tide_call(rt, n + 1, 1) != LUA_OK) fail("%s", lua_tostring(L, -1));
    res = lua_gettop(L);
    lua_rawgeti(L, res, 1);
    ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, res, 2);        /* the error value, or the first result */
    if (failed) {
      if (ok) fail("tide.work took a list that cannot be copied (%d)", failed);
      check_refusal(lua_tostring(L, -1), why, n, 2);
    }
    else if (how == 1) {           /* the first argument as error value */
      if (ok) fail("tide.work did not raise");
      if (n > 0 ? !same(top + 1, -1, 0) : !lua_isnil(L, -1))
        fail("the error value came back different: %s",
             luaL_tolstring(L, -1, NULL));
    }
    else if (how == 2) {           /* a function among the results */
      char want[64];
      snprintf(want, sizeof want, "tide.work: cannot copy a function "
               "(result #%d)", n + 1);
      if (ok || lua_tostring(L, -1) == NULL ||
          strncmp(lua_tostring(L, -1), want, strlen(want)) != 0)
        fail("a function result gave '%s'", luaL_tolstring(L, -1, NULL));
    }
    else if (how == 3) {           /* an error value that cannot go */
      char want[16];
      snprintf(want, sizeof want, "E%d", n);
      if (ok || lua_tostring(L, -1) == NULL ||
          strcmp(lua_tostring(L, -1), want) != 0)
        fail("the error value is '%s', not its __tostring '%s'",
             luaL_tolstring(L, -1, NULL), want);
    }
    else {
      if (!ok) fail("tide.work failed: %s", luaL_tolstring(L, -1, NULL));
      lua_getfield(L, res, "n");
      if (lua_tointeger(L, -1) != n + 1)
        fail("%d results for %d arguments", (int)lua_tointeger(L, -1) - 1, n);
      for (i = 0; i < n; i++) {
        lua_rawgeti(L, res, i + 2);
        if (!same(top + 1 + i, -1, 0)) fail("result %d came back different",
                                             i + 1);
        lua_pop(L, 1);
      }
    }
  }
  lua_settop(L, top);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
