/* The tensor userdata: creation, metamethods, printing, the module table. */
#include "milua.h"
#include "tensor_priv.h"
#include "core/ops.h"
#include "core/autograd.h"
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- userdata plumbing ---- */
mt_tensor *milua_totensor(lua_State *L, int idx) {
  mt_tensor **p = luaL_testudata(L, idx, MILUA_TENSOR_MT);
  return p ? *p : NULL;
}

mt_tensor *milua_checktensor(lua_State *L, int idx) {
  mt_tensor **p = luaL_testudata(L, idx, MILUA_TENSOR_MT);
  /* luaL_argerror names the function being called: "bad argument #2 to 'matmul' (...)" */
  if (!p) luaL_argerror(L, idx, lua_pushfstring(L, "expected a tensor, got %s", luaL_typename(L, idx)));
  if (!*p) luaL_argerror(L, idx, "the tensor was closed (released by <close>)");
  return *p;
}

int milua_coreerror(lua_State *L) { return luaL_error(L, "%s", mt_error()); }

#define GC_FLOOR ((size_t)8 << 20)

void milua_gcpace(lua_State *L) {
  /* The Lua collector paces itself by the Lua heap, where a tensor is an 8-byte
     userdata, so on its own it lets tens of megabytes of dead tensors pile up
     between cycles. A full collection whenever native memory has doubled since
     the last one (or grown by 8 MB if that is more), or whenever as many bytes
     have been allocated since the last one as were live after it: the first
     bounds the dead bytes by the working set; the second keeps a loop that drops
     a tensor per step (the logits of a training step) from growing its memory by
     that tensor every step until the first triggers, which a training loop, whose
     live bytes peak at the same point every step, would only reach after as many
     steps as fit the working set. A collection of a small Lua heap is cheap (tens
     of microseconds for a training loop's), and it comes once per working set's
     worth of allocation. After it, the heap's free pages go back to the system,
     so that the resident size follows what is in use.
     A full collection walks the whole Lua heap, so the second rule also waits for
     eight times the Lua heap's bytes of allocation: the addition experiment holds
     36 MB of Lua tables and trains a small model, and collecting every 73 MB of
     allocation (twice the heap) still left its training 1.5x slower than with the
     second rule off; at eight times it is within 11% of that (measured, 600 steps,
     one thread). The first rule still bounds the dead bytes by the working set. */
  static size_t threshold = GC_FLOOR, since = GC_FLOOR, total_then;
  size_t total = mt_total_allocated();
  if (mt_live_bytes() > threshold || total - total_then > since) {
    lua_gc(L, LUA_GCCOLLECT, 0);
    mt_trim_heap();
    size_t live = mt_live_bytes();
    size_t lua_heap = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
    threshold = live + (live > GC_FLOOR ? live : GC_FLOOR);
    since = live > GC_FLOOR ? live : GC_FLOOR;
    if (since < 8 * lua_heap) since = 8 * lua_heap;
    total_then = total;
  }
}

void milua_pushtensor(lua_State *L, mt_tensor *t) {
  if (!t) { milua_coreerror(L); return; }
  mt_tensor **p = lua_newuserdatauv(L, sizeof *p, 0);
  *p = NULL;
  luaL_setmetatable(L, MILUA_TENSOR_MT);
  *p = t;
  milua_gcpace(L);
}

mt_tensor *milua_checktensorish(lua_State *L, int idx, mt_dtype hint) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    mt_tensor *s = lua_isinteger(L, idx) && hint == MT_I32 ? mt_scalar(MT_I32, (double)lua_tointeger(L, idx))
                                                           : mt_scalar(MT_F32, lua_tonumber(L, idx));
    if (!s) milua_coreerror(L);
    return s;
  }
  if (lua_type(L, idx) == LUA_TBOOLEAN) {
    mt_tensor *s = mt_scalar(MT_F32, lua_toboolean(L, idx));
    if (!s) milua_coreerror(L);
    return s;
  }
  return mt_ref(milua_checktensor(L, idx));
}

int milua_checkdim(lua_State *L, int idx, const char *fn, int ndim) {
  lua_Integer d = luaL_checkinteger(L, idx);
  int n = ndim ? ndim : 1;
  if (d == 0 || d > n || d < -n)
    return luaL_error(L, "%s: dim %I is out of range for a %d-d tensor (dims are 1..%d, or negative from the end)",
                      fn, d, ndim, n);
  return d > 0 ? (int)d - 1 : (int)d + n;
}

/* shape from a table {2,3} or from integers at idx, idx+1, ...; returns the next index */
int mb_shape(lua_State *L, int idx, const char *fn, int *ndim, int64_t *shape) {
  int n = 0;
  if (lua_istable(L, idx)) {
    lua_Integer len = luaL_len(L, idx);
    if (len > MT_MAXDIM) luaL_error(L, "%s: at most %d dims, got %d", fn, MT_MAXDIM, (int)len);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_geti(L, idx, i);
      int isnum;
      lua_Integer v = lua_tointegerx(L, -1, &isnum);
      lua_pop(L, 1);
      if (!isnum || v < -1) luaL_error(L, "%s: shape entries must be non-negative integers (entry %d)", fn, (int)i);
      shape[n++] = v;
    }
    *ndim = n;
    return idx + 1;
  }
  while (lua_type(L, idx) == LUA_TNUMBER) {
    if (n == MT_MAXDIM) luaL_error(L, "%s: at most %d dims", fn, MT_MAXDIM);
    int isnum;
    lua_Integer v = lua_tointegerx(L, idx, &isnum);
    if (!isnum || v < -1) luaL_error(L, "%s: sizes must be non-negative integers, got %s", fn, lua_tostring(L, idx));
    shape[n++] = v;
    idx++;
  }
  *ndim = n;
  return idx;
}

mt_dtype mb_dtype(lua_State *L, int idx, mt_dtype def) {
  if (lua_isnoneornil(L, idx)) return def;
  const char *s = luaL_checkstring(L, idx);
  if (!strcmp(s, "float32") || !strcmp(s, "float")) return MT_F32;
  if (!strcmp(s, "int32") || !strcmp(s, "int")) return MT_I32;
  luaL_argerror(L, idx, lua_pushfstring(L, "unknown dtype '%s' (expected \"float32\" or \"int32\")", s));
  return def;
}

/* push a newly created tensor; a core error is raised with the creating function's name */
static void push_created(lua_State *L, const char *fn, mt_tensor *t) {
  if (!t) {
    size_t n = strlen(fn);
    const char *e = mt_error();
    if (!strncmp(e, fn, n) && e[n] == ':') luaL_error(L, "%s", e);
    luaL_error(L, "%s: %s", fn, e);
  }
  milua_pushtensor(L, t);
}

/* ---- T.tensor(nested tables) ---- */
static void infer_shape(lua_State *L, int idx, int depth, int *ndim, int64_t *shape) {
  if (!lua_istable(L, idx)) return;
  if (depth >= MT_MAXDIM) luaL_error(L, "tensor: nesting deeper than %d", MT_MAXDIM);
  lua_Integer n = luaL_len(L, idx);
  shape[depth] = n;
  *ndim = depth + 1;
  if (n > 0) {
    lua_geti(L, idx, 1);
    infer_shape(L, lua_gettop(L), depth + 1, ndim, shape);
    lua_pop(L, 1);
  }
}

static void fill_from(lua_State *L, int idx, int depth, int ndim, const int64_t *shape, mt_tensor *t, int64_t *pos,
                      char *path, size_t plen) {
  if (depth == ndim) {
    int isnum;
    lua_Number v = lua_tonumberx(L, idx, &isnum);
    if (!isnum) {
      if (lua_isboolean(L, idx)) v = lua_toboolean(L, idx);
      else luaL_error(L, "tensor: element %s is a %s, expected a number", path, luaL_typename(L, idx));
    }
    if (t->dtype == MT_F32) mt_f32(t)[*pos] = (float)v;
    else mt_i32(t)[*pos] = v != v ? 0 : v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN : (int32_t)v;
    (*pos)++;
    return;
  }
  if (!lua_istable(L, idx))
    luaL_error(L, "tensor: ragged nested table: element %s is a %s where a table of %I was expected", path,
               luaL_typename(L, idx), (lua_Integer)shape[depth]);
  lua_Integer n = luaL_len(L, idx);
  if (n != shape[depth])
    luaL_error(L, "tensor: ragged nested table: %s has %I entries, expected %I", path[0] ? path : "the table",
               (lua_Integer)n, (lua_Integer)shape[depth]);
  size_t l = strlen(path);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    snprintf(path + l, plen - l, "[%lld]", (long long)i);
    fill_from(L, lua_gettop(L), depth + 1, ndim, shape, t, pos, path, plen);
    lua_pop(L, 1);
  }
  path[l] = 0;
}

static int t_tensor(lua_State *L) {
  int ndim = 0;
  int64_t shape[MT_MAXDIM];
  mt_dtype dt = mb_dtype(L, 2, MT_F32);
  if (lua_type(L, 1) == LUA_TNUMBER) {
    push_created(L, "tensor", mt_scalar(dt, lua_tonumber(L, 1)));
    return 1;
  }
  if (milua_totensor(L, 1)) {
    mt_tensor *t = milua_totensor(L, 1);
    int prev = mt_set_grad_enabled(0);   /* a copy of the data: a new leaf, as torch.tensor(t) */
    mt_tensor *c = t->dtype == dt ? mt_clone(t) : mt_cast(t, dt);
    mt_set_grad_enabled(prev);
    push_created(L, "tensor", c);
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  infer_shape(L, 1, 0, &ndim, shape);
  mt_tensor *t = mt_empty(dt, ndim, shape);
  push_created(L, "tensor", t);   /* owned by Lua before any error below */
  int64_t pos = 0;
  char path[256] = "";
  fill_from(L, 1, 0, ndim, shape, t, &pos, path, sizeof path);
  return 1;
}

static int make_filled(lua_State *L, const char *fn, double v) {
  int ndim;
  int64_t shape[MT_MAXDIM];
  int next = mb_shape(L, 1, fn, &ndim, shape);
  mt_dtype dt = mb_dtype(L, next, MT_F32);
  for (int i = 0; i < ndim; i++) if (shape[i] < 0) luaL_error(L, "%s: sizes must be non-negative", fn);
  push_created(L, fn, mt_full(dt, ndim, shape, v));
  return 1;
}
static int t_zeros(lua_State *L) { return make_filled(L, "zeros", 0); }
static int t_ones(lua_State *L) { return make_filled(L, "ones", 1); }

static int t_full(lua_State *L) {
  int ndim;
  int64_t shape[MT_MAXDIM];
  if (!lua_istable(L, 1)) luaL_error(L, "full: expected a shape table and a value, e.g. T.full({2, 3}, 7)");
  mb_shape(L, 1, "full", &ndim, shape);
  lua_Number v = luaL_checknumber(L, 2);
  mt_dtype dt = mb_dtype(L, 3, lua_isinteger(L, 2) && !lua_isnoneornil(L, 3) ? MT_I32 : MT_F32);
  push_created(L, "full", mt_full(dt, ndim, shape, v));
  return 1;
}

static int t_arange(lua_State *L) {
  int n = lua_gettop(L);
  const char *dts = NULL;
  if (n > 0 && lua_type(L, n) == LUA_TSTRING) { dts = lua_tostring(L, n); n--; }
  double a[3];
  int allint = 1;
  for (int i = 0; i < n && i < 3; i++) { a[i] = luaL_checknumber(L, i + 1); if (!lua_isinteger(L, i + 1)) allint = 0; }
  double start = 0, end, step = 1;
  if (n == 1) end = a[0];
  else if (n == 2) { start = a[0]; end = a[1]; }
  else if (n == 3) { start = a[0]; end = a[1]; step = a[2]; }
  else return luaL_error(L, "arange: expected (end), (start, end) or (start, end, step)");
  mt_dtype dt = allint ? MT_I32 : MT_F32;
  if (dts) { lua_pushstring(L, dts); dt = mb_dtype(L, lua_gettop(L), dt); }
  push_created(L, "arange", mt_arange(start, end, step, dt));
  return 1;
}

static int t_rand(lua_State *L) {
  int ndim;
  int64_t shape[MT_MAXDIM];
  mb_shape(L, 1, "rand", &ndim, shape);
  push_created(L, "rand", mt_rand(ndim, shape));
  return 1;
}
static int t_randn(lua_State *L) {
  int ndim;
  int64_t shape[MT_MAXDIM];
  mb_shape(L, 1, "randn", &ndim, shape);
  push_created(L, "randn", mt_randn(ndim, shape));
  return 1;
}
/* T.randint(low, high, shape...): integers in [low, high), as PyTorch */
static int t_randint(lua_State *L) {
  lua_Integer lo = luaL_checkinteger(L, 1), hi = luaL_checkinteger(L, 2);
  int ndim;
  int64_t shape[MT_MAXDIM];
  mb_shape(L, 3, "randint", &ndim, shape);
  if (hi <= lo) return luaL_error(L, "randint: high (%I) must be greater than low (%I)", hi, lo);
  push_created(L, "randint", mt_randint(lo, hi - 1, ndim, shape));
  return 1;
}

static int t_seed(lua_State *L) {
  lua_Integer s = luaL_checkinteger(L, 1);
  mt_seed((uint64_t)s);
  return 0;
}

/* T.random(): [0,1); T.random(n): 1..n; T.random(m, n): m..n -- math.random's contract */
static int t_random(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) { lua_pushnumber(L, mt_rand_double()); return 1; }
  if (n > 2) return luaL_error(L, "random: wrong number of arguments (%d; expected 0, 1 or 2)", n);
  lua_Integer lo = 1, hi;
  if (n == 1) {
    hi = luaL_checkinteger(L, 1);
    if (hi == 0) { lua_pushinteger(L, (lua_Integer)mt_rand_u64()); return 1; }   /* random(0): all bits, as math.random */
  } else { lo = luaL_checkinteger(L, 1); hi = luaL_checkinteger(L, 2); }
  if (lo > hi) return luaL_error(L, "random: interval is empty (%I..%I)", lo, hi);
  uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;   /* unsigned: m..n may span the whole integer range */
  lua_pushinteger(L, (lua_Integer)((uint64_t)lo + (span ? mt_rand_u64() % span : mt_rand_u64())));
  return 1;
}

static int t_no_grad(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int prev = mt_set_grad_enabled(0);
  int n = lua_gettop(L);
  int rc = lua_pcall(L, n - 1, LUA_MULTRET, 0);
  mt_set_grad_enabled(prev);
  if (rc != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

static int t_is_grad_enabled(lua_State *L) { lua_pushboolean(L, mt_grad_enabled()); return 1; }
static int t_set_grad_enabled(lua_State *L) {
  lua_pushboolean(L, mt_set_grad_enabled(lua_toboolean(L, 1)));
  return 1;
}

static int t_is_tensor(lua_State *L) {   /* a closed tensor is still a tensor (it errors when used) */
  lua_pushboolean(L, luaL_testudata(L, 1, MILUA_TENSOR_MT) != NULL);
  return 1;
}
static int t_live_bytes(lua_State *L) { lua_pushinteger(L, (lua_Integer)mt_live_bytes()); return 1; }
static int t_memory(lua_State *L) {   /* T.memory([reset_peaks]) -> {live, cached, peak_live, peak_held, total, heap_used, heap_free} */
  mt_memory m;
  mt_memory_stats(&m, lua_toboolean(L, 1));
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, (lua_Integer)m.live); lua_setfield(L, -2, "live");
  lua_pushinteger(L, (lua_Integer)m.cached); lua_setfield(L, -2, "cached");
  lua_pushinteger(L, (lua_Integer)m.peak_live); lua_setfield(L, -2, "peak_live");
  lua_pushinteger(L, (lua_Integer)m.peak_held); lua_setfield(L, -2, "peak_held");
  lua_pushinteger(L, (lua_Integer)m.total); lua_setfield(L, -2, "total");
  lua_pushinteger(L, (lua_Integer)m.heap_used); lua_setfield(L, -2, "heap_used");
  lua_pushinteger(L, (lua_Integer)m.heap_free); lua_setfield(L, -2, "heap_free");
  return 1;
}

/* ---- printing, PyTorch style ---- */
typedef struct { luaL_Buffer *b; const char *fmt; int width; int64_t edge; } pctx;

static void fmt_value(const mt_tensor *t, int64_t off, const pctx *c, char *out, size_t n) {
  if (t->dtype == MT_I32) snprintf(out, n, "%d", ((int32_t *)t->storage->data)[off]);
  else {
    float v = ((float *)t->storage->data)[off];
    if (isnan(v)) snprintf(out, n, "nan");
    else if (isinf(v)) snprintf(out, n, v > 0 ? "inf" : "-inf");
    else snprintf(out, n, c->fmt, (double)v);
  }
}

static void print_rec(const mt_tensor *t, int d, int64_t off, pctx *c, int indent) {
  char buf[64];
  if (d == t->ndim) {
    fmt_value(t, off, c, buf, sizeof buf);
    for (int k = (int)strlen(buf); k < c->width; k++) luaL_addchar(c->b, ' ');
    luaL_addstring(c->b, buf);
    return;
  }
  luaL_addchar(c->b, '[');
  int64_t n = t->shape[d];
  int elide = c->edge > 0 && n > 2 * c->edge;
  for (int64_t i = 0; i < n; i++) {
    if (elide && i == c->edge) {
      if (d == t->ndim - 1) luaL_addstring(c->b, " ...,");
      else {
        luaL_addstring(c->b, "\n");
        for (int k = 0; k < indent + 1; k++) luaL_addchar(c->b, ' ');
        luaL_addstring(c->b, "...,");
      }
      i = n - c->edge;
    }
    if (i > 0 && !(elide && i == n - c->edge)) {
      if (d == t->ndim - 1) luaL_addstring(c->b, ", ");
      else {
        luaL_addchar(c->b, ',');
        for (int k = d; k < t->ndim - 1; k++) luaL_addchar(c->b, '\n');
        for (int k = 0; k < indent + 1; k++) luaL_addchar(c->b, ' ');
      }
    } else if (elide && i == n - c->edge) {
      if (d == t->ndim - 1) luaL_addchar(c->b, ' ');
      else {
        luaL_addstring(c->b, "\n");
        for (int k = 0; k < indent + 1; k++) luaL_addchar(c->b, ' ');
      }
    }
    print_rec(t, d + 1, off + i * t->stride[d], c, indent + 1);
  }
  luaL_addchar(c->b, ']');
}

/* the next index, in row-major order, of an element that is printed: with elision, each
   dim longer than 2 * edge shows only its first and last edge indices. 0 after the last. */
static int next_shown(const mt_tensor *t, const pctx *c, int64_t *idx) {
  for (int d = t->ndim - 1; d >= 0; d--) {
    int64_t n = t->shape[d];
    if (++idx[d] == c->edge && c->edge > 0 && n > 2 * c->edge) idx[d] = n - c->edge;
    if (idx[d] < n) return 1;
    idx[d] = 0;
  }
  return 0;
}

/* choose one number format for the printed elements, as PyTorch does (it formats a
   summarized tensor by its summary): the elided middle of a large tensor, or of an
   expanded view of 2^40 elements, is never read */
static void choose_format(const mt_tensor *t, pctx *c) {
  if (t->dtype == MT_I32) c->fmt = "%d";
  double mx = 0, mn = INFINITY;
  int allint = 1;
  int any = mt_numel(t) > 0;
  int64_t idx[MT_MAXDIM] = {0};
  for (int more = any; more; more = next_shown(t, c, idx)) {
    double v = mt_get(t, idx);
    if (isfinite(v)) {
      double a = fabs(v);
      if (a > mx) mx = a;
      if (a > 0 && a < mn) mn = a;
      if (v != floor(v)) allint = 0;
    }
  }
  if (t->dtype == MT_F32) {
    if (allint && mx < 1e8) c->fmt = "%.0f.";
    else if (mx >= 1e8 || (mn < 1e-4 && mn > 0) || (mx > 0 && mx / mn > 1e6 && mx >= 1e3)) c->fmt = "%.4e";
    else c->fmt = "%.4f";
  }
  /* width over the printed values */
  c->width = 1;
  char buf[64];
  memset(idx, 0, sizeof idx);
  for (int more = any; more; more = next_shown(t, c, idx)) {
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    fmt_value(t, off, c, buf, sizeof buf);
    if ((int)strlen(buf) > c->width) c->width = (int)strlen(buf);
  }
}

static int t_tostring(lua_State *L) {
  mt_tensor **p = luaL_checkudata(L, 1, MILUA_TENSOR_MT);
  if (!*p) { lua_pushliteral(L, "tensor(<closed>)"); return 1; }
  mt_tensor *t = *p;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  pctx c = {&b, "%g", 1, mt_numel(t) > 1000 ? 3 : 0};
  choose_format(t, &c);
  luaL_addstring(&b, "tensor(");
  if (t->ndim == 0) {
    char buf[64];
    fmt_value(t, t->offset, &c, buf, sizeof buf);
    luaL_addstring(&b, buf);
  } else print_rec(t, 0, t->offset, &c, 7);
  char sh[128];
  luaL_addstring(&b, ", shape=");
  luaL_addstring(&b, mt_shape_str(t, sh, sizeof sh));
  luaL_addstring(&b, ", dtype=");
  luaL_addstring(&b, mt_dtype_name(t->dtype));
  if (t->grad_fn) { luaL_addstring(&b, ", grad_fn="); luaL_addstring(&b, t->grad_fn->name); }
  else if (t->requires_grad) luaL_addstring(&b, ", requires_grad=true");
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return 1;
}

static int t_gc(lua_State *L) {
  mt_tensor **p = luaL_checkudata(L, 1, MILUA_TENSOR_MT);
  mt_unref(*p);
  *p = NULL;
  return 0;
}

/* ---- indexing: t[i] selects along dim 1; t.grad ---- */
static int64_t index_arg(lua_State *L, mt_tensor *t, lua_Integer i) {
  if (t->ndim == 0) luaL_error(L, "index: cannot index a 0-d tensor (use :item())");
  int64_t n = t->shape[0];
  if (i == 0 || i > n || i < -n) luaL_error(L, "index: %I is out of range for dim 1 of size %I (1-based)", i, (lua_Integer)n);
  return i > 0 ? i - 1 : n + i;
}

static int t_index(lua_State *L) {
  mt_tensor **p = luaL_checkudata(L, 1, MILUA_TENSOR_MT);
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *k = lua_tostring(L, 2);
    /* methods resolve even on a closed tensor, so that the method reports it by name */
    luaL_getmetatable(L, MILUA_TENSOR_MT);
    lua_getfield(L, -1, "__methods");
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL) return 1;
    if (!*p) return luaL_error(L, "%s: the tensor was closed (released by <close>)", k);
    if (!strcmp(k, "grad")) {
      mt_tensor *g = mt_grad_of(*p);
      if (g) milua_pushtensor(L, mt_ref(g)); else lua_pushnil(L);
      return 1;
    }
    if (!strcmp(k, "requires_grad_flag")) { lua_pushboolean(L, (*p)->requires_grad); return 1; }
    return luaL_error(L, "tensor has no method or field '%s'", k);
  }
  mt_tensor *t = milua_checktensor(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    if (!lua_isinteger(L, 2)) return luaL_error(L, "index: expected an integer index, got %s", lua_tostring(L, 2));
    milua_pushtensor(L, mt_select(t, 0, index_arg(L, t, lua_tointeger(L, 2))));
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

static int t_newindex(lua_State *L) {
  mt_tensor *t = milua_checktensor(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    if (!lua_isinteger(L, 2)) return luaL_error(L, "index: expected an integer index");
    mt_tensor *v = mt_select(t, 0, index_arg(L, t, lua_tointeger(L, 2)));
    if (!v) return milua_coreerror(L);
    mt_tensor *src = NULL;
    if (lua_type(L, 3) == LUA_TNUMBER) src = mt_scalar(t->dtype, lua_tonumber(L, 3));
    else if (milua_totensor(L, 3)) src = mt_ref(milua_totensor(L, 3));
    if (!src) { mt_unref(v); return luaL_error(L, "index assignment: expected a number or a tensor"); }
    int rc = mt_check_inplace("index assignment", t) ? -1 : mt_copy_(v, src);
    mt_unref(v);
    mt_unref(src);
    if (rc) return milua_coreerror(L);
    mt_bump_version(t);
    return 0;
  }
  const char *k = lua_tostring(L, 2);
  if (k && !strcmp(k, "grad")) {
    if (lua_isnil(L, 3)) { mt_zero_grad(t); return 0; }
    mt_tensor *g = milua_checktensor(L, 3);
    if (!mt_same_shape(g, t) || g->dtype != MT_F32) return luaL_error(L, "grad: must be a float32 tensor of the tensor's shape");
    if (g == t) return luaL_error(L, "grad: a tensor cannot be its own gradient (use clone())");   /* a cycle: never freed */
    mt_zero_grad(t);
    if (t->grad_fn) t->grad_fn->retained = mt_ref(g);   /* where a non-leaf's .grad is read from */
    else t->grad = mt_ref(g);
    return 0;
  }
  return luaL_error(L, "tensors have no assignable field '%s' (only t[i] = v and t.grad = nil)", k ? k : "?");
}

static int t_len(lua_State *L) {
  mt_tensor *t = milua_checktensor(L, 1);
  if (t->ndim == 0) return luaL_error(L, "#: a 0-d tensor has no length");
  lua_pushinteger(L, t->shape[0]);
  return 1;
}

/* ---- arithmetic metamethods ---- */
static int arith(lua_State *L, mt_binop op) {
  for (int i = 1; i <= 2; i++) {   /* check both operands before allocating: an error must not leak */
    if (lua_type(L, i) == LUA_TNUMBER) continue;
    if (!luaL_testudata(L, i, MILUA_TENSOR_MT))
      return luaL_error(L, "%s: cannot combine a tensor with a %s", mt_binop_name(op), luaL_typename(L, i));
    milua_checktensor(L, i);       /* raises for a closed tensor */
  }
  mt_tensor *ta = milua_totensor(L, 1), *tb = milua_totensor(L, 2);
  mt_dtype hint = (ta && ta->dtype == MT_I32) || (tb && tb->dtype == MT_I32) ? MT_I32 : MT_F32;
  mt_tensor *a = milua_checktensorish(L, 1, hint), *b = milua_checktensorish(L, 2, hint);
  mt_tensor *r = mt_binary(op, a, b);
  mt_unref(a); mt_unref(b);
  milua_pushtensor(L, r);
  return 1;
}
static int m_add(lua_State *L) { return arith(L, MT_ADD); }
static int m_sub(lua_State *L) { return arith(L, MT_SUB); }
static int m_mul(lua_State *L) { return arith(L, MT_MUL); }
static int m_div(lua_State *L) { return arith(L, MT_DIV); }
static int m_pow(lua_State *L) { return arith(L, MT_POW); }
static int m_unm(lua_State *L) { milua_pushtensor(L, mt_unary(MT_NEG, milua_checktensor(L, 1))); return 1; }

static const luaL_Reg meta[] = {
  {"__gc", t_gc}, {"__close", t_gc}, {"__tostring", t_tostring}, {"__index", t_index},
  {"__newindex", t_newindex}, {"__len", t_len}, {"__add", m_add}, {"__sub", m_sub},
  {"__mul", m_mul}, {"__div", m_div}, {"__pow", m_pow}, {"__unm", m_unm}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
  {"tensor", t_tensor}, {"zeros", t_zeros}, {"ones", t_ones}, {"full", t_full}, {"arange", t_arange},
  {"rand", t_rand}, {"randn", t_randn}, {"randint", t_randint}, {"seed", t_seed}, {"random", t_random},
  {"no_grad", t_no_grad}, {"is_grad_enabled", t_is_grad_enabled}, {"set_grad_enabled", t_set_grad_enabled},
  {"is_tensor", t_is_tensor}, {"live_bytes", t_live_bytes}, {"memory", t_memory}, {NULL, NULL}};

int luaopen_milua_tensor(lua_State *L) {
  if (luaL_newmetatable(L, MILUA_TENSOR_MT)) {
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    mb_register_methods(L);          /* fills the methods table on the stack */
    lua_setfield(L, -2, "__methods");
    lua_pushliteral(L, "tensor");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  mb_register_functions(L);          /* T.cat, T.matmul, ... added to the module */
  mb_register_linalg(L);
  mb_register_io(L);
  luaL_getmetatable(L, MILUA_TENSOR_MT);
  lua_getfield(L, -1, "__methods");
  lua_setfield(L, -3, "_methods");   /* lets stdlib add methods written in Lua */
  lua_pop(L, 1);
  return 1;
}
