/*
** stream.c: libFuzzer harness for tide.Stream's reads on a real loop. The
** input says what a writer task sends through a socketpair (chunks, with
** yields between them, then EOF) and what a reader task does with the
** other end (read, read_exactly, read_until, lines with their maxima,
** yields, close; a read may be under tide.timeout, or cut by another task
** closing the stream); every result is checked against a plain model of
** the byte sequence.
*/
#define _GNU_SOURCE              /* memmem */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lualib.h>

#include "tide_int.h"
#include "fuzz.h"

#define MAXDATA   (1 << 20)        /* bytes the writer sends at most */
#define MAXOPS    64
#define READ_ALL  LUA_MAXINTEGER   /* read() without a size: all there is */
#define LINE_LIMIT (64 * 1024)     /* stream.c's default */

static lua_State *L;
static tide_Runtime *rt;
static int scriptref;

/* (reader, writer, chunks, ops, closeonly) -> results: the writer sends
** the chunks (true: yield), then shuts down and closes (closeonly: just
** closes); the reader does the ops and closes. Each result is
** table.pack(pcall(...)), for lines a list of them; a read with op.t runs
** under tide.timeout(op.t, ...); with op.c another task closes the stream
** as soon as the read waits (or right after it). */
static const char script[] =
  "local r, w, chunks, ops, closeonly = ...\n"
  "local writer = tide.spawn(function ()\n"
  "  for _, c in ipairs(chunks) do\n"
  "    if c == true then tide.sleep(0)\n"
  "    elseif not w:write(c) then break end\n"
  "  end\n"
  "  if not closeonly then w:shutdown() end\n"
  "  w:close()\n"
  "end)\n"
  "local function call (op, f, ...)\n"
  "  if op.t then return table.pack(pcall(tide.timeout, op.t, f, ...)) end\n"
  "  return table.pack(pcall(f, ...))\n"
  "end\n"
  "local res = {}\n"
  "for i, op in ipairs(ops) do\n"
  "  local k, closer = op[1]\n"
  "  if op.c then closer = tide.spawn(function () r:close() end) end\n"
  "  if k == 'read' then res[i] = call(op, r.read, r, op[2])\n"
  "  elseif k == 'exact' then res[i] = call(op, r.read_exactly, r, op[2])\n"
  "  elseif k == 'until' then\n"
  "    res[i] = call(op, r.read_until, r, op[2], op[3])\n"
  "  elseif k == 'lines' then\n"
  "    local ok, it = pcall(r.lines, r)\n"
  "    if not ok then res[i] = { table.pack(false, it) }\n"
  "    else\n"
  "      local t = {}\n"
  "      for j = 1, op[2] do t[j] = call(op, it) end\n"
  "      res[i] = t\n"
  "    end\n"
  "  elseif k == 'yield' then tide.sleep(0) res[i] = true\n"
  "  else r:close() res[i] = true end\n"
  "  if closer then closer:await() end\n"
  "end\n"
  "r:close()\n"
  "writer:await()\n"
  "return res\n";

/* ---- The input ------------------------------------------------------------ */

enum { A_NIL, A_INT, A_FLT };

typedef struct Arg {
  int kind;
  lua_Integer i;
  double d;
} Arg;

enum { O_READ, O_EXACT, O_UNTIL, O_LINES, O_YIELD, O_CLOSE };

typedef struct Op {
  int kind;
  Arg arg;
  char sep[4];
  size_t seplen;
  int count;               /* O_LINES: calls of the iterator */
  int timed;               /* under tide.timeout: 1 for 0 s, 2 for 1 ms */
  int closing;             /* another task closes the stream meanwhile */
} Op;

typedef struct Plan {
  char *data;              /* everything the writer sends */
  size_t len;
  size_t cuts[256];        /* chunk ends; yields have the top bit */
  int ncuts;
  Op ops[MAXOPS];
  int nops;
  int closeonly;
} Plan;

#define YIELD ((size_t)1 << 63)

static Arg in_arg (In *in) {
  Arg a = { A_INT, 0, 0 };
  switch (in_u8(in) % 11) {
    case 0: a.kind = A_NIL; break;
    case 1: a.i = in_u8(in); break;
    case 2: a.i = in_u8(in) + 1; break;
    case 3: a.i = in_u16(in); break;
    case 4: a.i = (lua_Integer)in_u16(in) * 16; break;
    case 5: a.i = 0; break;
    case 6: a.i = -(lua_Integer)in_u8(in) - 1; break;
    case 7: a.i = in_u8(in) & 1 ? LUA_MAXINTEGER : LUA_MININTEGER; break;
    case 8:
      a.kind = A_FLT;
      a.d = in_u8(in);
      if (in_u8(in) & 1) a.d += 0.5;
      break;
    case 9: a.i = LINE_LIMIT + (int)in_u8(in) - 128; break;
    default: {
      uint64_t v = in_u64(in);
      a.i = (lua_Integer)(v >> (in_u8(in) % 64));
    }
  }
  return a;
}

static void addchunk (Plan *p, const char *s, size_t n, int fillbyte,
                      unsigned every) {
  char *d = p->data + p->len;
  size_t i;
  if (p->ncuts >= 255) return;
  if (n > MAXDATA - p->len) n = MAXDATA - p->len;
  if (s != NULL) memcpy(d, s, n);
  else {
    memset(d, fillbyte, n);
    for (i = every; every > 0 && i <= n; i += every) d[i - 1] = '\n';
  }
  p->len += n;
  p->cuts[p->ncuts++] = p->len;
}

static void parse (In *in, Plan *p) {
  int timed = 0, closing = 0;
  p->len = 0;
  p->ncuts = p->nops = 0;
  p->closeonly = in_u8(in) & 1;
  while (in->n > 0 && p->nops < MAXOPS) {
    unsigned c = in_u8(in) % 12;
    Op *o = &p->ops[p->nops];
    size_t n;
    const char *s;
    memset(o, 0, sizeof *o);
    if (c >= 4 && c <= 8) {        /* the reads: as asked before */
      o->timed = timed;
      o->closing = closing;
      timed = closing = 0;
    }
    switch (c) {
      case 0: case 1:              /* a chunk from the input */
        s = in_bytes(in, in_u8(in), &n);
        addchunk(p, s, n, 0, 0);
        break;
      case 2: {                    /* a large chunk, with lines maybe */
        size_t len = (size_t)in_u16(in) * 8;
        int b = (int)in_u8(in);
        unsigned every = in_u8(in);
        addchunk(p, NULL, len, b, every * in_u8(in));
        break;
      }
      case 3:
        if (p->ncuts < 255) p->cuts[p->ncuts++] = p->len | YIELD;
        break;
      case 4: case 5:
        o->kind = c == 4 ? O_READ : O_EXACT;
        o->arg = in_arg(in);
        p->nops++;
        break;
      case 6: case 7:
        o->kind = O_UNTIL;
        s = in_bytes(in, in_u8(in) % 5, &o->seplen);
        memcpy(o->sep, s, o->seplen);
        o->arg = in_arg(in);
        p->nops++;
        break;
      case 8:
        o->kind = O_LINES;
        o->count = (int)(in_u8(in) % 8) + 1;
        p->nops++;
        break;
      case 9:
        o->kind = O_YIELD;
        p->nops++;
        break;
      case 10:
        o->kind = in_u8(in) % 4 == 0 ? O_CLOSE : O_YIELD;
        p->nops++;
        break;
      default:                     /* the next read is timed, or cut */
        c = in_u8(in) % 3;
        if (c < 2) timed = (int)c + 1;
        else closing = 1;
    }
  }
}

/* ---- The model ------------------------------------------------------------ */

typedef struct Model {
  const char *d;
  size_t len, pos;         /* the reader has taken d[0 .. pos) */
  int closed;
} Model;

/* Whether the argument gives an integer (in *v; def for nil, unless def
** is negative), else why not (*err). */
static int argint (const Arg *a, lua_Integer def, lua_Integer *v,
                   const char **err) {
  switch (a->kind) {
    case A_NIL:
      if (def < 0) { *err = "number expected, got nil"; return 0; }
      *v = def;
      return 1;
    case A_FLT:
      if (a->d != (double)(lua_Integer)a->d) {
        *err = "number has no integer representation";
        return 0;
      }
      *v = (lua_Integer)a->d;
      return 1;
    default:
      *v = a->i;
      return 1;
  }
}

/* Where sep first occurs in d[0 .. n), or -1. */
static long findsep (const char *d, size_t n, const char *sep, size_t seplen) {
  const char *p = memmem(d, n, sep, seplen);
  return p ? (long)(p - d) : -1;
}

/* ---- Checking the results -------------------------------------------------- */

static int opi, linei;     /* what is checked, for messages */

/* The pack on top: n and whether the call succeeded. */
static lua_Integer packn (int t) {
  lua_Integer n;
  lua_getfield(L, t, "n");
  n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n;
}

static int packok (int t) {
  int ok;
  lua_rawgeti(L, t, 1);
  ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return ok;
}

static int expect_error (int t, const char *sub) {
  const char *msg;
  if (packok(t)) fail("op %d (call %d): expected an error '%s'", opi + 1,
                      linei, sub);
  lua_rawgeti(L, t, 2);
  msg = lua_tostring(L, -1);
  if (msg == NULL || strstr(msg, sub) == NULL)
    fail("op %d (call %d): error '%s', expected '%s'", opi + 1, linei,
         msg ? msg : "(not a string)", sub);
  lua_pop(L, 1);
  return 0;
}

/* Success with these values: nil when s is NULL (n values in all). */
static int expect_values (int t, int n, const char *s, size_t len,
                          const char *msg, const char *code) {
  size_t l;
  const char *v;
  if (!packok(t)) {
    lua_rawgeti(L, t, 2);
    fail("op %d (call %d): raised %s", opi + 1, linei, lua_tostring(L, -1));
  }
  if (packn(t) != n + 1)
    fail("op %d (call %d): %d values, expected %d", opi + 1, linei,
         (int)packn(t) - 1, n);
  lua_rawgeti(L, t, 2);
  v = lua_tolstring(L, -1, &l);
  if (s == NULL ? !lua_isnil(L, -1)
                : v == NULL || l != len || memcmp(v, s, len) != 0)
    fail("op %d (call %d): got %s of %zu bytes, expected %s%zu bytes",
         opi + 1, linei, luaL_typename(L, -1), v ? l : 0,
         s ? "" : "nil, not ", len);
  lua_pop(L, 1);
  if (n == 3) {
    lua_rawgeti(L, t, 3);
    lua_rawgeti(L, t, 4);
    if (lua_tostring(L, -2) == NULL || strcmp(lua_tostring(L, -2), msg) != 0 ||
        lua_tostring(L, -1) == NULL || strcmp(lua_tostring(L, -1), code) != 0)
      fail("op %d (call %d): got nil, %s, %s; expected nil, %s, %s", opi + 1,
           linei, lua_tostring(L, -2), lua_tostring(L, -1), msg, code);
    lua_pop(L, 2);
  }
  return 0;
}

/* Whether the pack at t is (true, nil, s2 [, s3]) or, for a line, an
** error s2: a read that timed out or found the stream closed took nothing. */
static int gave (int t, int line, const char *s2, const char *s3) {
  int yes;
  if (line) {
    if (packok(t)) return 0;
    lua_rawgeti(L, t, 2);
    yes = lua_type(L, -1) == LUA_TSTRING && strstr(lua_tostring(L, -1), s2);
    lua_pop(L, 1);
    return yes;
  }
  if (!packok(t) || packn(t) != (s3 ? 4 : 3)) return 0;
  lua_rawgeti(L, t, 2);
  lua_rawgeti(L, t, 3);
  lua_rawgeti(L, t, 4);
  yes = lua_isnil(L, -3) && lua_type(L, -2) == LUA_TSTRING &&
        strcmp(lua_tostring(L, -2), s2) == 0 &&
        (s3 == NULL || (lua_type(L, -1) == LUA_TSTRING &&
                        strcmp(lua_tostring(L, -1), s3) == 0));
  lua_pop(L, 3);
  return yes;
}

static int timedout (int t) {
  return gave(t, 0, "timeout", NULL);
}

/* A read cut by the closing task: it waited, or (run by tide.timeout in
** a task of its own) started after the close. */
static int cut (int t, int line) {
  return gave(t, line, "stream closed", line ? NULL : "ECANCELED") ||
         (!line && gave(t, 1, "attempt to use a closed stream", NULL));
}

/* read(n): what was there, at least one byte and at most n. */
static int check_read (Model *m, int t, const Arg *a) {
  lua_Integer n;
  const char *err;
  size_t l, rem = m->len - m->pos;
  const char *v;
  if (m->closed) return expect_error(t, "attempt to use a closed stream");
  if (!argint(a, READ_ALL, &n, &err)) return expect_error(t, err);
  if (n <= 0) return expect_error(t, "positive size expected");
  if (rem == 0) return expect_values(t, 1, NULL, 0, NULL, NULL);
  if (!packok(t) || packn(t) != 2) {
    lua_rawgeti(L, t, 2);
    fail("op %d: read failed: %s", opi + 1, lua_tostring(L, -1));
  }
  lua_rawgeti(L, t, 2);
  v = lua_tolstring(L, -1, &l);
  if (v == NULL || l == 0 || l > rem || (lua_Integer)l > n ||
      memcmp(v, m->d + m->pos, l) != 0)
    fail("op %d: read(%lld) gave %zu bytes of %zu left, or not the next ones",
         opi + 1, (long long)n, v ? l : 0, rem);
  lua_pop(L, 1);
  m->pos += l;
  return 0;
}

static int check_exact (Model *m, int t, const Arg *a) {
  lua_Integer n;
  const char *err;
  size_t rem = m->len - m->pos;
  if (m->closed) return expect_error(t, "attempt to use a closed stream");
  if (!argint(a, -1, &n, &err)) return expect_error(t, err);
  if (n < 0) return expect_error(t, "non-negative size expected");
  if ((lua_Unsigned)n > rem)
    return expect_values(t, 3, NULL, 0, "unexpected end of stream", "EOF");
  expect_values(t, 1, m->d + m->pos, (size_t)n, NULL, NULL);
  m->pos += (size_t)n;
  return 0;
}

/* read_until and a line: data up to the separator if it ends within max;
** "line too long" if max bytes came without; else what the end gives. */
static int check_until (Model *m, int t, const char *sep, size_t seplen,
                        lua_Unsigned max, int line) {
  size_t rem = m->len - m->pos;
  long p = findsep(m->d + m->pos, rem, sep, seplen);
  if (p >= 0 && (lua_Unsigned)p + seplen <= max) {
    expect_values(t, 1, m->d + m->pos, (size_t)p + (line ? 0 : seplen),
                  NULL, NULL);
    m->pos += (size_t)p + seplen;
    return 0;
  }
  if (rem >= max)
    return line ? expect_error(t, "line too long")
                : expect_values(t, 3, NULL, 0, "line too long", "E2BIG");
  if (rem == 0) return expect_values(t, 1, NULL, 0, NULL, NULL);
  if (!line)
    return expect_values(t, 3, NULL, 0, "unexpected end of stream", "EOF");
  expect_values(t, 1, m->d + m->pos, rem, NULL, NULL);  /* the last line */
  m->pos = m->len;
  return 0;
}

static int check_read_op (Model *m, const Op *o, int t) {
  lua_Integer n;
  const char *err;
  if (o->timed && timedout(t)) return 0;
  if (o->closing && cut(t, 0)) return 0;
  switch (o->kind) {
    case O_READ: return check_read(m, t, &o->arg);
    case O_EXACT: return check_exact(m, t, &o->arg);
    default:
      if (m->closed) return expect_error(t, "attempt to use a closed stream");
      if (o->seplen == 0) return expect_error(t, "empty separator");
      if (!argint(&o->arg, LINE_LIMIT, &n, &err)) return expect_error(t, err);
      if (n <= 0) return expect_error(t, "positive limit expected");
      return check_until(m, t, o->sep, o->seplen, (lua_Unsigned)n, 0);
  }
}

/* The calls of a lines iterator; once the stream was closed under it,
** every call raises. */
static int check_lines (Model *m, const Op *o, int t) {
  int j, closed = 0;
  if (m->closed) {
    lua_rawgeti(L, t, 1);
    expect_error(lua_gettop(L), "attempt to use a closed stream");
    lua_pop(L, 1);
    return 0;
  }
  for (j = 1; j <= o->count; j++) {
    int c;
    linei = j;
    lua_rawgeti(L, t, j);
    c = lua_gettop(L);
    if (closed || (o->closing && cut(c, 1))) {
      expect_error(c, "stream closed");
      closed = 1;
    }
    else if (!o->timed || !timedout(c))
      check_until(m, c, "\n", 1, LINE_LIMIT, 1);
    lua_pop(L, 1);
  }
  return 0;
}

static void check_op (Model *m, const Op *o, int t) {
  linei = 0;
  switch (o->kind) {
    case O_LINES: check_lines(m, o, t); break;
    case O_YIELD: break;
    case O_CLOSE: m->closed = 1; break;
    default: check_read_op(m, o, t);
  }
  if (o->closing) m->closed = 1;
}

/* ---- Running ------------------------------------------------------------- */

static void pusharg (const Arg *a) {
  if (a->kind == A_NIL) lua_pushnil(L);
  else if (a->kind == A_FLT) lua_pushnumber(L, a->d);
  else lua_pushinteger(L, a->i);
}

/* A Stream on fd, pushed. */
static void pushstream (int fd) {
  uv_pipe_t *h = (uv_pipe_t *)tide__newstream(L, rt, sizeof(uv_pipe_t));
  if (uv_pipe_init(tide_loop(rt), h, 0) < 0 || uv_pipe_open(h, fd) < 0)
    fail("cannot open a pipe on fd %d", fd);
}

static void pushplan (const Plan *p) {
  size_t from = 0;
  int i, k = 0;
  lua_createtable(L, p->ncuts, 0);
  for (i = 0; i < p->ncuts; i++) {
    if (p->cuts[i] & YIELD) lua_pushboolean(L, 1);
    else {
      lua_pushlstring(L, p->data + from, p->cuts[i] - from);
      from = p->cuts[i];
    }
    lua_rawseti(L, -2, ++k);
  }
  lua_createtable(L, p->nops, 0);
  for (i = 0; i < p->nops; i++) {
    const Op *o = &p->ops[i];
    static const char *const kinds[] = {
      "read", "exact", "until", "lines", "yield", "close"
    };
    lua_createtable(L, 3, 2);
    lua_pushstring(L, kinds[o->kind]);
    lua_rawseti(L, -2, 1);
    if (o->timed) {
      lua_pushnumber(L, o->timed == 1 ? 0 : 0.001);
      lua_setfield(L, -2, "t");
    }
    if (o->closing) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "c");
    }
    if (o->kind == O_UNTIL) {
      lua_pushlstring(L, o->sep, o->seplen);
      lua_rawseti(L, -2, 2);
      pusharg(&o->arg);
      lua_rawseti(L, -2, 3);
    }
    else if (o->kind == O_LINES) {
      lua_pushinteger(L, o->count);
      lua_rawseti(L, -2, 2);
    }
    else {
      pusharg(&o->arg);
      lua_rawseti(L, -2, 2);
    }
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushboolean(L, p->closeonly);
}

int LLVMFuzzerInitialize (int *argc, char ***argv) {
  (void)argc; (void)argv;
  L = luaL_newstate();
  luaL_openlibs(L);
  rt = tide_open(L, NULL);
  if (rt == NULL) fail("cannot open a runtime");
  if (luaL_loadbuffer(L, script, sizeof script - 1, "=stream") != LUA_OK)
    fail("%s", lua_tostring(L, -1));
  scriptref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  static Plan p;
  In in = { data, size };
  Model m;
  int fds[2], i, top = lua_gettop(L), res;
  if (p.data == NULL && (p.data = malloc(MAXDATA)) == NULL) fail("memory");
  parse(&in, &p);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
    fail("socketpair");
  lua_rawgeti(L, LUA_REGISTRYINDEX, scriptref);
  pushstream(fds[0]);
  pushstream(fds[1]);
  pushplan(&p);
  if (tide_call(rt, 5, 1) != LUA_OK) fail("%s", lua_tostring(L, -1));
  if (tide_run(rt, UV_RUN_DEFAULT) != LUA_OK) fail("the loop did not end");
  if (tide_ntasks(rt) != 0) fail("%zu tasks left", tide_ntasks(rt));
  if (rt->handles != NULL) fail("a handle was left open");
  res = lua_gettop(L);
  m.d = p.data;
  m.len = p.len;
  m.pos = 0;
  m.closed = 0;
  for (i = 0; i < p.nops; i++) {
    opi = i;
    lua_rawgeti(L, res, i + 1);
    check_op(&m, &p.ops[i], lua_gettop(L));
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  lua_gc(L, LUA_GCCOLLECT);       /* what the run made is freed in it */
  return 0;
}
