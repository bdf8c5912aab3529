/*
** streambuf.c: libFuzzer harness for the read buffer of tide.Stream
** without a loop: bindings/stream_read.c is compiled in (the rest of the
** stream comes from the library), and the input plays libuv (alloc_cb and
** read_cb with the bytes, the end of the stream or an error) between the
** reads (read_try for read, read_exactly, read_until and a line, with any
** maximum) and the hand-over (tide__streamtake). Each outcome, waiting
** included, is checked against a plain model.
*/
#include "../../bindings/stream_read.c"

#include "fuzz.h"

#define MAXDATA (4 << 20)          /* bytes that arrive at most */

static lua_State *L;

typedef struct Model {
  char *d;                 /* what arrived; the reader took d[0 .. pos) */
  size_t len, pos;
  int end;                 /* 0, UV_EOF or an error */
} Model;

static void check_buffer (const Stream *s, const Model *m) {
  if (s->len != m->len - m->pos)
    fail("the buffer holds %zu bytes, expected %zu", s->len, m->len - m->pos);
  if (s->off + s->len > s->cap) fail("off %zu + len %zu > cap %zu",
                                     s->off, s->len, s->cap);
  if (s->len > 0 && memcmp(s->buf + s->off, m->d + m->pos, s->len) != 0)
    fail("the buffer does not hold the bytes not read yet");
  if (s->rerr != m->end) fail("rerr %d, expected %d", s->rerr, m->end);
}

/* n bytes arrive as libuv hands them over: into what alloc_cb gives. */
static void arrive (Stream *s, Model *m, const char *p, size_t n) {
  uv_handle_t *h = s->o.h;
  while (n > 0) {
    uv_buf_t b;
    size_t k;
    alloc_cb(h, READ_MIN, &b);
    if (b.base == NULL || b.len == 0) fail("alloc_cb gave no room");
    if (b.base < s->buf + s->off + s->len || b.base + b.len > s->buf + s->cap)
      fail("alloc_cb gave room outside the buffer's free end");
    k = n < b.len ? n : b.len;
    memcpy(b.base, p, k);
    memcpy(m->d + m->len, p, k);
    m->len += k;
    read_cb((uv_stream_t *)h, (ssize_t)k, &b);
    p += k;
    n -= k;
  }
}

/* The values on top (n of them) are these: a string (s non-NULL), else
** nil, and with 3 values the message and code. */
static void expect (int got, int n, const char *s, size_t len,
                    const char *msg, const char *code) {
  size_t l;
  const char *v;
  if (got != n) fail("%d results, expected %d", got, n);
  v = lua_tolstring(L, -n, &l);
  if (s != NULL && (v == NULL || l != len || memcmp(v, s, len) != 0))
    fail("got %s (%zu bytes), expected %zu bytes", luaL_typename(L, -n),
         v ? l : 0, len);
  if (s == NULL && !lua_isnil(L, -n))
    fail("got a %s, expected nil", luaL_typename(L, -n));
  if (n == 3 && (strcmp(lua_tostring(L, -2), msg) != 0 ||
                 strcmp(lua_tostring(L, -1), code) != 0))
    fail("got nil, %s, %s; expected nil, %s, %s", lua_tostring(L, -2),
         lua_tostring(L, -1), msg, code);
}

/* The read side ended with m->end: pushend's results. */
static void expect_end (int got, const Model *m, int eofmsg) {
  if (m->end != UV_EOF)
    expect(got, 3, NULL, 0, uv_strerror(m->end), uv_err_name(m->end));
  else if (eofmsg) expect(got, 3, NULL, 0, "unexpected end of stream", "EOF");
  else expect(got, 1, NULL, 0, NULL, NULL);
}

/* One read per a: what read_try gives, against the model. */
static void check_read (Stream *s, Model *m, const ReadArgs *a) {
  size_t avail = m->len - m->pos, k;
  const char *p;
  int got = read_try(L, s, a);
  if (got < 0) {                   /* it would wait */
    int wait;
    if (m->end) fail("waits after the end");
    switch (a->mode) {
      case R_SOME: wait = avail == 0; break;
      case R_EXACT: wait = avail < a->n; break;
      default:
        p = memmem(m->d + m->pos, avail, a->sep, a->seplen);
        wait = (p == NULL || (size_t)(p - m->d - m->pos) + a->seplen > a->n)
               && avail < a->n;
    }
    if (!wait) fail("waits with %zu bytes there (mode %d, n %zu)", avail,
                    a->mode, a->n);
    return;
  }
  switch (a->mode) {
    case R_SOME:
      if (avail > 0) {
        k = a->n < avail ? a->n : avail;
        expect(got, 1, m->d + m->pos, k, NULL, NULL);
        m->pos += k;
      }
      else expect_end(got, m, 0);
      break;
    case R_EXACT:
      if (avail >= a->n) {
        expect(got, 1, m->d + m->pos, a->n, NULL, NULL);
        m->pos += a->n;
      }
      else expect_end(got, m, 1);
      break;
    default:
      p = memmem(m->d + m->pos, avail, a->sep, a->seplen);
      k = p ? (size_t)(p - m->d - m->pos) : 0;
      if (p != NULL && k + a->seplen <= a->n) {
        expect(got, 1, m->d + m->pos, a->mode == R_LINE ? k : k + a->seplen,
               NULL, NULL);
        m->pos += k + a->seplen;
      }
      else if (avail >= a->n)
        expect(got, 3, NULL, 0, "line too long", "E2BIG");
      else if (a->mode == R_LINE && avail > 0 && m->end == UV_EOF) {
        expect(got, 1, m->d + m->pos, avail, NULL, NULL);
        m->pos = m->len;
      }
      else expect_end(got, m, a->mode == R_UNTIL && avail > 0);
  }
  lua_pop(L, got);
}

static size_t in_max (In *in) {
  switch (in_u8(in) % 6) {
    case 0: return in_u8(in);
    case 1: return in_u16(in);
    case 2: return (size_t)in_u16(in) * 64;
    case 3: return LINE_LIMIT;
    case 4: return (size_t)LUA_MAXINTEGER;
    default: return in_u8(in) + 1;
  }
}

int LLVMFuzzerInitialize (int *argc, char ***argv) {
  (void)argc; (void)argv;
  L = luaL_newstate();
  tide__open_stream(L);
  return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  static char *d, *fillbuf;
  static uv_pipe_t fake;           /* the handle libuv would pass */
  In in = { data, size };
  Model m = { NULL, 0, 0, 0 };
  Stream *s;
  int top = lua_gettop(L);
  if (d == NULL && ((d = malloc(MAXDATA)) == NULL ||
                    (fillbuf = malloc(1 << 18)) == NULL))
    fail("memory");
  m.d = d;
  s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->rsize = READ_MIN;             /* as tide__newstream starts it */
  luaL_setmetatable(L, TIDE_STREAM);
  memset(&fake, 0, sizeof fake);
  fake.data = s;
  s->o.h = (uv_handle_t *)&fake;   /* open, never reading: no libuv call */
  while (in.n > 0) {
    ReadArgs a = { R_SOME, 0, NULL, 0 };
    char sep[4];
    const char *p;
    size_t n, every, i;
    unsigned c = in_u8(&in) % 10;
    switch (c) {
      case 0: case 1:
        p = in_bytes(&in, in_u8(&in), &n);
        if (!m.end && n <= MAXDATA - m.len) arrive(s, &m, p, n);
        break;
      case 2:
        n = (size_t)in_u16(&in) * 4;
        memset(fillbuf, (int)in_u8(&in), n);
        every = in_u8(&in);
        for (i = every; every > 0 && i <= n; i += every) fillbuf[i - 1] = '\n';
        if (!m.end && n <= MAXDATA - m.len) arrive(s, &m, fillbuf, n);
        break;
      case 3:
        if (!m.end) {
          uv_buf_t b = uv_buf_init(NULL, 0);
          m.end = in_u8(&in) % 3 ? UV_EOF : UV_ECONNRESET;
          read_cb((uv_stream_t *)&fake, m.end, &b);
        }
        break;
      case 4:
        a.mode = R_SOME;
        a.n = in_max(&in);
        if (a.n == 0) a.n = 1;       /* read_args refuses 0 */
        check_read(s, &m, &a);
        break;
      case 5:
        a.mode = R_EXACT;
        a.n = in_max(&in);
        check_read(s, &m, &a);
        break;
      case 6: case 7:
        a.mode = c == 6 ? R_UNTIL : R_LINE;
        p = in_bytes(&in, in_u8(&in) % 4 + 1, &a.seplen);
        if (a.seplen == 0) break;
        memcpy(sep, p, a.seplen);
        a.sep = sep;
        a.n = in_max(&in);
        if (a.n == 0) a.n = 1;
        check_read(s, &m, &a);
        break;
      default: {                   /* hand the read side on */
        char *buf;
        size_t len;
        int ended, move = in_u8(&in) & 1;
        const char *why = tide__streamtake(L, -1, move ? &buf : NULL, &len,
                                           &ended);
        if (why != NULL) fail("streamtake: %s", why);
        if (len != m.len - m.pos || ended != (m.end != 0))
          fail("streamtake: %zu bytes, ended %d", len, ended);
        if (move) {
          if (len > 0 && memcmp(buf, m.d + m.pos, len) != 0)
            fail("streamtake moved other bytes");
          free(buf);
          m.pos = m.len;
        }
      }
    }
    if (lua_gettop(L) != top + 1) fail("the stack is off by %d",
                                       lua_gettop(L) - top - 1);
    check_buffer(s, &m);
  }
  s->o.h = NULL;                   /* the collector closes nothing */
  lua_settop(L, top);
  lua_gc(L, LUA_GCCOLLECT);        /* stream_gc frees the buffer */
  return 0;
}
