/* Tensor methods and module functions: thin wrappers that convert 1-based
   Lua dims and indices to the core's 0-based ones. */
#include "milua.h"
#include "tensor_priv.h"
#include "core/ops.h"
#include "core/autograd.h"
#include <limits.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#define SELF milua_checktensor(L, 1)
#define PUSH(expr) do { milua_pushtensor(L, (expr)); return 1; } while (0)

static int optdim(lua_State *L, int idx, const char *fn, int ndim) {
  return lua_isnoneornil(L, idx) ? MT_ALL : milua_checkdim(L, idx, fn, ndim);
}

/* 1-based int32 indices from Lua -> 0-based (new reference) */
static mt_tensor *index0(lua_State *L, int idx, const char *fn) {
  mt_tensor *t = milua_totensor(L, idx);
  if (!t) {
    if (lua_istable(L, idx)) {   /* a plain Lua list of indices */
      lua_Integer n = luaL_len(L, idx);
      int64_t sh = n;
      mt_tensor *r = mt_empty(MT_I32, 1, &sh);
      if (!r) milua_coreerror(L);
      for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok) { mt_unref(r); luaL_error(L, "%s: index entry %I is not an integer", fn, i); }
        if (v > INT32_MAX || v <= INT32_MIN) { mt_unref(r); luaL_error(L, "%s: index %I is out of range", fn, v); }
        mt_i32(r)[i - 1] = (int32_t)(v - 1);
      }
      return r;
    }
    luaL_error(L, "%s: expected an int32 tensor (or a list) of 1-based indices, got %s", fn, luaL_typename(L, idx));
  }
  if (t->dtype != MT_I32) luaL_error(L, "%s: indices must be int32, got %s (use :int())", fn, mt_dtype_name(t->dtype));
  mt_tensor *one = mt_scalar(MT_I32, 1);
  mt_tensor *r = mt_binary(MT_SUB, t, one);
  mt_unref(one);
  if (!r) milua_coreerror(L);
  return r;
}

/* 0-based int32 result -> 1-based, pushed */
static void push_index1(lua_State *L, mt_tensor *t) {
  if (!t) { milua_coreerror(L); return; }
  mt_tensor *one = mt_scalar(MT_I32, 1);
  mt_tensor *r = mt_binary(MT_ADD, t, one);
  mt_unref(one);
  mt_unref(t);
  milua_pushtensor(L, r);
}

/* ---- inspection ---- */
static int m_shape(lua_State *L) {
  mt_tensor *t = SELF;
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) { lua_pushinteger(L, t->shape[i]); lua_rawseti(L, -2, i + 1); }
  return 1;
}
static int m_size(lua_State *L) {
  mt_tensor *t = SELF;
  if (lua_isnoneornil(L, 2)) return m_shape(L);
  lua_pushinteger(L, t->shape[milua_checkdim(L, 2, "size", t->ndim)]);
  return 1;
}
static int m_dim(lua_State *L) { lua_pushinteger(L, SELF->ndim); return 1; }
static int m_numel(lua_State *L) { lua_pushinteger(L, mt_numel(SELF)); return 1; }
static int m_dtype(lua_State *L) { lua_pushstring(L, mt_dtype_name(SELF->dtype)); return 1; }
static int m_is_contiguous(lua_State *L) { lua_pushboolean(L, mt_is_contiguous(SELF)); return 1; }
static int m_item(lua_State *L) {
  mt_tensor *t = SELF;
  if (mt_numel(t) != 1) {
    char s[64];
    return luaL_error(L, "item: the tensor has %I elements %s; item() needs exactly one", (lua_Integer)mt_numel(t),
                      mt_shape_str(t, s, sizeof s));
  }
  int64_t idx[MT_MAXDIM] = {0};
  if (t->dtype == MT_I32) lua_pushinteger(L, (lua_Integer)mt_get(t, idx));
  else lua_pushnumber(L, mt_get(t, idx));
  return 1;
}

static void totable_rec(lua_State *L, mt_tensor *t, int d, int64_t off) {
  if (d == t->ndim) {
    if (t->dtype == MT_I32) lua_pushinteger(L, ((int32_t *)t->storage->data)[off]);
    else lua_pushnumber(L, ((float *)t->storage->data)[off]);
    return;
  }
  luaL_checkstack(L, 4, "totable");
  lua_createtable(L, (int)t->shape[d], 0);   /* m_totable bounded every size by INT_MAX */
  for (int64_t i = 0; i < t->shape[d]; i++) {
    totable_rec(L, t, d + 1, off + i * t->stride[d]);
    lua_rawseti(L, -2, i + 1);
  }
}

/* a Lua 5.4 array slot: an 8-byte value and its tag, padded to 16 bytes (a lower bound:
   the inner tables' headers come on top) */
#define LUA_SLOT_BYTES 16

uint64_t milua_physical_bytes(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* The most numbers Lua tables built here may hold: INT_MAX (a table's array, and the length
   lua_createtable takes), and no more slots than the physical memory. Such tables grow one
   number at a time, so a size past this would run for minutes and gigabytes before failing;
   totable and the data generators refuse it before the first number. */
static lua_Integer max_table_numbers(void) {
  uint64_t slots = milua_physical_bytes() / LUA_SLOT_BYTES;
  return slots && slots < (uint64_t)INT_MAX ? (lua_Integer)slots : INT_MAX;
}
static int f_max_table_numbers(lua_State *L) { lua_pushinteger(L, max_table_numbers()); return 1; }

/* An expanded view costs no memory as a tensor (x:expand(2^40) is legal) but 16 bytes an
   element as Lua numbers. */
static int m_totable(lua_State *L) {
  mt_tensor *t = SELF;
  int64_t n = mt_numel(t);
  char s[128];
  if (n > INT_MAX)   /* also bounds each size, the array length lua_createtable takes */
    return luaL_error(L, "totable: a tensor %s of %I elements is too large for a Lua table (at most %d elements)",
                      mt_shape_str(t, s, sizeof s), (lua_Integer)n, INT_MAX);
  if (n > max_table_numbers())
    return luaL_error(L, "totable: out of memory: a tensor %s of %I elements needs at least %I bytes as Lua numbers, "
                      "more than the %I bytes of this machine", mt_shape_str(t, s, sizeof s), (lua_Integer)n,
                      (lua_Integer)(n * LUA_SLOT_BYTES), (lua_Integer)milua_physical_bytes());
  totable_rec(L, t, 0, t->offset);
  return 1;
}

/* ---- conversion, copies ---- */
static int m_float(lua_State *L) { mt_tensor *t = SELF; PUSH(t->dtype == MT_F32 ? mt_ref(t) : mt_cast(t, MT_F32)); }
static int m_int(lua_State *L) { mt_tensor *t = SELF; PUSH(t->dtype == MT_I32 ? mt_ref(t) : mt_cast(t, MT_I32)); }
static int m_clone(lua_State *L) { PUSH(mt_clone(SELF)); }
static int m_contiguous(lua_State *L) { PUSH(mt_contiguous(SELF)); }

/* ---- views ---- */
static int m_view(lua_State *L) {
  mt_tensor *t = SELF;
  int ndim;
  int64_t shape[MT_MAXDIM];
  mb_shape(L, 2, "view", &ndim, shape);
  PUSH(mt_view(t, ndim, shape));
}
static int m_reshape(lua_State *L) {   /* view's rules (copying when needed); errors say reshape */
  mt_tensor *t = SELF;
  int ndim;
  int64_t shape[MT_MAXDIM];
  mb_shape(L, 2, "reshape", &ndim, shape);
  mt_tensor *r = mt_view(t, ndim, shape);
  if (!r) {
    const char *e = mt_error();
    return luaL_error(L, "reshape: %s", strncmp(e, "view: ", 6) ? e : e + 6);
  }
  PUSH(r);
}
static int m_transpose(lua_State *L) {
  mt_tensor *t = SELF;
  PUSH(mt_transpose(t, milua_checkdim(L, 2, "transpose", t->ndim), milua_checkdim(L, 3, "transpose", t->ndim)));
}
static int m_t(lua_State *L) {
  mt_tensor *t = SELF;
  if (t->ndim < 2) { lua_settop(L, 1); return 1; } /* as in PyTorch: 0-d and 1-d tensors are their own transpose */
  if (t->ndim != 2) { char s[64]; return luaL_error(L, "t: expects at most 2 dimensions, got %s", mt_shape_str(t, s, sizeof s)); }
  PUSH(mt_transpose(t, 0, 1));
}
static int m_permute(lua_State *L) {
  mt_tensor *t = SELF;
  int perm[MT_MAXDIM], n = 0;
  if (lua_istable(L, 2)) {
    lua_Integer len = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= len && n < MT_MAXDIM; i++) {
      lua_geti(L, 2, i);
      perm[n++] = milua_checkdim(L, lua_gettop(L), "permute", t->ndim);
      lua_pop(L, 1);
    }
  } else
    for (int i = 2; i <= lua_gettop(L) && n < MT_MAXDIM; i++) perm[n++] = milua_checkdim(L, i, "permute", t->ndim);
  if (n != t->ndim) return luaL_error(L, "permute: got %d dims for a %d-d tensor", n, t->ndim);
  PUSH(mt_permute(t, perm));
}
static int m_narrow(lua_State *L) {
  mt_tensor *t = SELF;
  int d = milua_checkdim(L, 2, "narrow", t->ndim);
  lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
  if (start < 1) return luaL_error(L, "narrow: start %I must be >= 1 (1-based)", start);
  PUSH(mt_narrow(t, d, start - 1, len));
}
static int m_select(lua_State *L) {
  mt_tensor *t = SELF;
  int d = milua_checkdim(L, 2, "select", t->ndim);
  lua_Integer i = luaL_checkinteger(L, 3);
  int64_t n = t->ndim ? t->shape[d] : 0;
  if (i == 0 || i > n || i < -n) return luaL_error(L, "select: index %I is out of range for dim %d of size %I (1-based)", i, d + 1, (lua_Integer)n);
  PUSH(mt_select(t, d, i > 0 ? i - 1 : n + i));
}
static int m_unsqueeze(lua_State *L) {
  mt_tensor *t = SELF;
  lua_Integer d = luaL_checkinteger(L, 2);
  if (d == 0 || d > t->ndim + 1 || d < -(t->ndim + 1))
    return luaL_error(L, "unsqueeze: dim %I is out of range for a %d-d tensor (1..%d)", d, t->ndim, t->ndim + 1);
  PUSH(mt_unsqueeze(t, d > 0 ? (int)d - 1 : (int)d + t->ndim + 1));
}
static int m_squeeze(lua_State *L) { mt_tensor *t = SELF; PUSH(mt_squeeze(t, lua_isnoneornil(L, 2) ? MT_ALL : milua_checkdim(L, 2, "squeeze", t->ndim))); }
static int m_expand(lua_State *L) {
  mt_tensor *t = SELF;
  int ndim;
  int64_t shape[MT_MAXDIM];
  mb_shape(L, 2, "expand", &ndim, shape);
  PUSH(mt_expand(t, ndim, shape));
}
static int m_flatten(lua_State *L) {
  mt_tensor *t = SELF;
  if (t->ndim == 0) { int64_t one = 1; PUSH(mt_view(t, 1, &one)); }
  int s = lua_isnoneornil(L, 2) ? 0 : milua_checkdim(L, 2, "flatten", t->ndim);
  int e = lua_isnoneornil(L, 3) ? t->ndim - 1 : milua_checkdim(L, 3, "flatten", t->ndim);
  if (e < s) return luaL_error(L, "flatten: end dim %d is before start dim %d", e + 1, s + 1);
  int64_t shape[MT_MAXDIM];
  int k = 0;
  for (int i = 0; i < s; i++) shape[k++] = t->shape[i];
  int64_t m = 1;
  for (int i = s; i <= e; i++) m *= t->shape[i];
  shape[k++] = m;
  for (int i = e + 1; i < t->ndim; i++) shape[k++] = t->shape[i];
  PUSH(mt_view(t, k, shape));
}

/* ---- elementwise ---- */
static int binop(lua_State *L, mt_binop op) {
  mt_tensor *t = SELF;
  mt_tensor *o = milua_checktensorish(L, 2, t->dtype);
  mt_tensor *r = mt_binary(op, t, o);
  mt_unref(o);
  PUSH(r);
}
static int binop_(lua_State *L, mt_binop op) {
  mt_tensor *t = SELF;
  mt_tensor *o = milua_checktensorish(L, 2, t->dtype);
  int rc = mt_binary_(op, t, o);
  mt_unref(o);
  if (rc) return milua_coreerror(L);
  lua_settop(L, 1);
  return 1;
}
#define BIN(name, op) \
  static int m_##name(lua_State *L) { return binop(L, op); } \
  static int m_##name##_(lua_State *L) { return binop_(L, op); }
BIN(add, MT_ADD) BIN(sub, MT_SUB) BIN(mul, MT_MUL) BIN(div, MT_DIV) BIN(pow, MT_POW)
BIN(maximum, MT_MAXIMUM) BIN(minimum, MT_MINIMUM)
#define CMP(name, op) static int m_##name(lua_State *L) { return binop(L, op); }
CMP(eq, MT_EQ) CMP(ne, MT_NE) CMP(lt, MT_LT) CMP(le, MT_LE) CMP(gt, MT_GT) CMP(ge, MT_GE)

#define UN(name, op) \
  static int m_##name(lua_State *L) { PUSH(mt_unary(op, SELF)); } \
  static int m_##name##_(lua_State *L) { if (mt_unary_(op, SELF)) return milua_coreerror(L); lua_settop(L, 1); return 1; }
UN(neg, MT_NEG) UN(exp, MT_EXP) UN(log, MT_LOG) UN(sqrt, MT_SQRT) UN(abs, MT_ABS) UN(tanh, MT_TANH)
UN(sigmoid, MT_SIGMOID) UN(relu, MT_RELU) UN(gelu, MT_GELU) UN(floor, MT_FLOOR) UN(ceil, MT_CEIL)
UN(round, MT_ROUND) UN(sin, MT_SIN) UN(cos, MT_COS) UN(rsqrt, MT_RSQRT) UN(sign, MT_SIGN) UN(square, MT_SQUARE)

static int m_where(lua_State *L) {   /* x:where(cond, y) as PyTorch: cond ? x : y */
  mt_tensor *t = SELF, *c = milua_checktensor(L, 2);
  mt_tensor *o = milua_checktensorish(L, 3, t->dtype);
  mt_tensor *r = mt_where(c, t, o);
  mt_unref(o);
  PUSH(r);
}
static int m_masked_fill(lua_State *L) { PUSH(mt_masked_fill(SELF, milua_checktensor(L, 2), luaL_checknumber(L, 3))); }
static int m_masked_fill_(lua_State *L) {
  if (mt_masked_fill_(SELF, milua_checktensor(L, 2), luaL_checknumber(L, 3))) return milua_coreerror(L);
  lua_settop(L, 1);
  return 1;
}
static int m_clamp(lua_State *L) {
  double lo = luaL_optnumber(L, 2, -INFINITY), hi = luaL_optnumber(L, 3, INFINITY);
  PUSH(mt_clamp(SELF, lo, hi));
}
static int m_clamp_(lua_State *L) {
  mt_tensor *t = SELF;
  double lo = luaL_optnumber(L, 2, -INFINITY), hi = luaL_optnumber(L, 3, INFINITY);
  if (mt_check_inplace("clamp_", t)) return milua_coreerror(L);
  mt_tensor *r = mt_clamp(t, lo, hi);
  int rc = r ? mt_copy_(t, r) : -1;
  mt_unref(r);
  if (rc) return milua_coreerror(L);
  lua_settop(L, 1);
  return 1;
}
static int m_fill_(lua_State *L) { if (mt_fill_(SELF, luaL_checknumber(L, 2))) return milua_coreerror(L); lua_settop(L, 1); return 1; }
static int m_zero_(lua_State *L) {
  mt_tensor *t = SELF;
  if (mt_check_inplace("zero_", t) || mt_fill_(t, 0)) return milua_coreerror(L);
  lua_settop(L, 1);
  return 1;
}
static int m_copy_(lua_State *L) {
  mt_tensor *t = SELF;
  mt_tensor *s = milua_checktensorish(L, 2, t->dtype);
  int rc = mt_check_inplace("copy_", t);
  if (!rc && mt_grad_enabled() && s->requires_grad) {
    mt_seterr("copy_: the source requires grad, and an in-place copy is not recorded; use clone(), or T.no_grad");
    rc = -1;
  }
  if (!rc) rc = mt_copy_(t, s);
  mt_unref(s);
  if (rc) return milua_coreerror(L);
  lua_settop(L, 1);
  return 1;
}

/* ---- reductions ---- */
static int m_sum(lua_State *L) { mt_tensor *t = SELF; PUSH(mt_sum(t, optdim(L, 2, "sum", t->ndim), lua_toboolean(L, 3))); }
static int m_mean(lua_State *L) { mt_tensor *t = SELF; PUSH(mt_mean(t, optdim(L, 2, "mean", t->ndim), lua_toboolean(L, 3))); }
static int unbiased(lua_State *L, int idx) { return lua_isnoneornil(L, idx) ? 1 : lua_toboolean(L, idx); }
static int m_var(lua_State *L) { mt_tensor *t = SELF; PUSH(mt_var(t, optdim(L, 2, "var", t->ndim), lua_toboolean(L, 3), unbiased(L, 4))); }
static int m_std(lua_State *L) { mt_tensor *t = SELF; PUSH(mt_std(t, optdim(L, 2, "std", t->ndim), lua_toboolean(L, 3), unbiased(L, 4))); }
static int extremum(lua_State *L, int want_max) {
  mt_tensor *t = SELF;
  const char *fn = want_max ? "max" : "min";
  if (lua_isnoneornil(L, 2)) PUSH(want_max ? mt_max(t, MT_ALL, 0, NULL) : mt_min(t, MT_ALL, 0, NULL));
  int d = milua_checkdim(L, 2, fn, t->ndim);
  mt_tensor *idx = NULL;
  mt_tensor *v = want_max ? mt_max(t, d, lua_toboolean(L, 3), &idx) : mt_min(t, d, lua_toboolean(L, 3), &idx);
  if (!v) { mt_unref(idx); return milua_coreerror(L); }
  milua_pushtensor(L, v);
  push_index1(L, idx);
  return 2;
}
static int m_max(lua_State *L) { return extremum(L, 1); }
static int m_min(lua_State *L) { return extremum(L, 0); }
static int m_argmax(lua_State *L) { mt_tensor *t = SELF; push_index1(L, mt_argmax(t, optdim(L, 2, "argmax", t->ndim), lua_toboolean(L, 3))); return 1; }
static int m_argmin(lua_State *L) { mt_tensor *t = SELF; push_index1(L, mt_argmin(t, optdim(L, 2, "argmin", t->ndim), lua_toboolean(L, 3))); return 1; }
static int lastdim(lua_State *L, int idx, const char *fn, int ndim) {
  return lua_isnoneornil(L, idx) ? (ndim ? ndim - 1 : 0) : milua_checkdim(L, idx, fn, ndim);
}
static int m_logsumexp(lua_State *L) { mt_tensor *t = SELF; PUSH(mt_logsumexp(t, lastdim(L, 2, "logsumexp", t->ndim), lua_toboolean(L, 3))); }
static int m_softmax(lua_State *L) { mt_tensor *t = SELF; PUSH(mt_softmax(t, lastdim(L, 2, "softmax", t->ndim))); }
static int m_log_softmax(lua_State *L) { mt_tensor *t = SELF; PUSH(mt_log_softmax(t, lastdim(L, 2, "log_softmax", t->ndim))); }
static int m_norm(lua_State *L) {
  mt_tensor *t = SELF;
  double p = luaL_optnumber(L, 2, 2);
  PUSH(mt_norm(t, p, optdim(L, 3, "norm", t->ndim), lua_toboolean(L, 4)));
}
static int m_topk(lua_State *L) {
  mt_tensor *t = SELF;
  lua_Integer k = luaL_checkinteger(L, 2);
  int d = lastdim(L, 3, "topk", t->ndim);
  int largest = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
  mt_tensor *idx = NULL, *v = mt_topk(t, k, d, largest, &idx);
  if (!v) return milua_coreerror(L);
  milua_pushtensor(L, v);
  push_index1(L, idx);
  return 2;
}
static int m_sort(lua_State *L) {
  mt_tensor *t = SELF;
  int d = lastdim(L, 2, "sort", t->ndim);
  mt_tensor *idx = NULL, *v = mt_sort(t, d, lua_toboolean(L, 3), &idx);
  if (!v) return milua_coreerror(L);
  milua_pushtensor(L, v);
  push_index1(L, idx);
  return 2;
}
static int m_cumsum(lua_State *L) { mt_tensor *t = SELF; PUSH(mt_cumsum(t, lastdim(L, 2, "cumsum", t->ndim))); }

/* ---- products, indexing ---- */
static int m_matmul(lua_State *L) { PUSH(mt_matmul(SELF, milua_checktensor(L, 2))); }
static int m_index_select(lua_State *L) {
  mt_tensor *t = SELF;
  int d = milua_checkdim(L, 2, "index_select", t->ndim);
  mt_tensor *idx = index0(L, 3, "index_select");
  mt_tensor *r = mt_index_select(t, d, idx);
  mt_unref(idx);
  PUSH(r);
}
static int m_gather(lua_State *L) {
  mt_tensor *t = SELF;
  int d = milua_checkdim(L, 2, "gather", t->ndim);
  mt_tensor *idx = index0(L, 3, "gather");
  mt_tensor *r = mt_gather(t, d, idx);
  mt_unref(idx);
  PUSH(r);
}
static int m_scatter_add(lua_State *L) {
  mt_tensor *t = SELF;
  int d = milua_checkdim(L, 2, "scatter_add", t->ndim);
  mt_tensor *src = milua_checktensor(L, 4);
  mt_tensor *idx = index0(L, 3, "scatter_add");
  mt_tensor *r = mt_scatter_add(t, d, idx, src);
  mt_unref(idx);
  PUSH(r);
}
static int m_one_hot(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 2);   /* before index0 allocates: an error here must not leak it */
  mt_tensor *idx = index0(L, 1, "one_hot");
  mt_tensor *r = mt_one_hot(idx, n);
  mt_unref(idx);
  PUSH(r);
}

/* ---- autograd ---- */
static int m_requires_grad(lua_State *L) {
  mt_tensor *t = SELF;
  if (lua_isnone(L, 2)) { lua_pushboolean(L, t->requires_grad); return 1; }
  if (mt_set_requires_grad(t, lua_toboolean(L, 2))) return milua_coreerror(L);
  lua_settop(L, 1);
  return 1;
}
static int m_backward(lua_State *L) {
  mt_tensor *t = SELF, *g = lua_isnoneornil(L, 2) ? NULL : milua_checktensor(L, 2);
  if (mt_backward(t, g)) return milua_coreerror(L);
  return 0;
}
static int m_retain_grad(lua_State *L) { if (mt_retain_grad(SELF)) return milua_coreerror(L); lua_settop(L, 1); return 1; }
static int m_detach(lua_State *L) { PUSH(mt_detach(SELF)); }
static int m_is_leaf(lua_State *L) { lua_pushboolean(L, mt_is_leaf(SELF)); return 1; }
static int m_zero_grad(lua_State *L) { mt_zero_grad(SELF); return 0; }
static int m_grad_fn(lua_State *L) { mt_tensor *t = SELF; if (t->grad_fn) lua_pushstring(L, t->grad_fn->name); else lua_pushnil(L); return 1; }
static int m_data_ptr(lua_State *L) {  /* identity of the underlying memory: tests check views share it */
  mt_tensor *t = SELF;
  lua_pushinteger(L, (lua_Integer)(intptr_t)t->storage->data);
  return 1;
}
static int m_stride(lua_State *L) {
  mt_tensor *t = SELF;
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) { lua_pushinteger(L, t->stride[i]); lua_rawseti(L, -2, i + 1); }
  return 1;
}

/* ---- module functions ---- */
static int list_of_tensors(lua_State *L, int idx, const char *fn, mt_tensor ***out) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)luaL_len(L, idx);
  if (n == 0) luaL_error(L, "%s: expected a non-empty list of tensors", fn);
  mt_tensor **ts = lua_newuserdatauv(L, sizeof *ts * (size_t)n, 0);   /* freed by the collector */
  for (int i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    mt_tensor *t = milua_totensor(L, -1);
    if (!t) luaL_error(L, "%s: element %d of the list is a %s, expected a tensor", fn, i, luaL_typename(L, -1));
    ts[i - 1] = t;
    lua_pop(L, 1);   /* still referenced by the list */
  }
  *out = ts;
  return n;
}
static int f_cat(lua_State *L) {
  mt_tensor **ts;
  lua_settop(L, 2);   /* the list's scratch userdata goes above the optional dim */
  int n = list_of_tensors(L, 1, "cat", &ts);
  int d = lua_isnoneornil(L, 2) ? 0 : milua_checkdim(L, 2, "cat", ts[0]->ndim);
  PUSH(mt_cat(n, ts, d));
}
static int f_stack(lua_State *L) {
  mt_tensor **ts;
  lua_settop(L, 2);
  int n = list_of_tensors(L, 1, "stack", &ts);
  int d = 0;
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer k = luaL_checkinteger(L, 2);
    int nd = ts[0]->ndim + 1;
    if (k == 0 || k > nd || k < -nd) return luaL_error(L, "stack: dim %I is out of range (1..%d)", k, nd);
    d = k > 0 ? (int)k - 1 : (int)k + nd;
  }
  PUSH(mt_stack(n, ts, d));
}
static int f_where(lua_State *L) {
  mt_tensor *c = milua_checktensor(L, 1);
  for (int i = 2; i <= 3; i++)   /* check both branches before taking references: an error must not leak */
    if (lua_type(L, i) != LUA_TNUMBER && lua_type(L, i) != LUA_TBOOLEAN) milua_checktensor(L, i);
  mt_tensor *ta = milua_totensor(L, 2), *tb = milua_totensor(L, 3);
  mt_dtype hint = (ta && ta->dtype == MT_I32) || (tb && tb->dtype == MT_I32) ? MT_I32 : MT_F32;
  mt_tensor *a = milua_checktensorish(L, 2, hint), *b = milua_checktensorish(L, 3, hint);
  mt_tensor *r = mt_where(c, a, b);
  mt_unref(a); mt_unref(b);
  PUSH(r);
}

static const luaL_Reg methods[] = {
  {"shape", m_shape}, {"size", m_size}, {"dim", m_dim}, {"numel", m_numel}, {"dtype", m_dtype},
  {"is_contiguous", m_is_contiguous}, {"item", m_item}, {"totable", m_totable}, {"float", m_float},
  {"int", m_int}, {"clone", m_clone}, {"contiguous", m_contiguous}, {"view", m_view}, {"reshape", m_reshape},
  {"transpose", m_transpose}, {"t", m_t}, {"permute", m_permute}, {"narrow", m_narrow}, {"select", m_select},
  {"unsqueeze", m_unsqueeze}, {"squeeze", m_squeeze}, {"expand", m_expand}, {"flatten", m_flatten},
  {"add", m_add}, {"sub", m_sub}, {"mul", m_mul}, {"div", m_div}, {"pow", m_pow}, {"maximum", m_maximum},
  {"minimum", m_minimum}, {"add_", m_add_}, {"sub_", m_sub_}, {"mul_", m_mul_}, {"div_", m_div_},
  {"pow_", m_pow_}, {"maximum_", m_maximum_}, {"minimum_", m_minimum_},
  {"eq", m_eq}, {"ne", m_ne}, {"lt", m_lt}, {"le", m_le}, {"gt", m_gt}, {"ge", m_ge},
  {"neg", m_neg}, {"exp", m_exp}, {"log", m_log}, {"sqrt", m_sqrt}, {"abs", m_abs}, {"tanh", m_tanh},
  {"sigmoid", m_sigmoid}, {"relu", m_relu}, {"gelu", m_gelu}, {"floor", m_floor}, {"ceil", m_ceil},
  {"round", m_round}, {"sin", m_sin}, {"cos", m_cos}, {"rsqrt", m_rsqrt}, {"sign", m_sign}, {"square", m_square},
  {"neg_", m_neg_}, {"exp_", m_exp_}, {"log_", m_log_}, {"sqrt_", m_sqrt_}, {"abs_", m_abs_}, {"tanh_", m_tanh_},
  {"sigmoid_", m_sigmoid_}, {"relu_", m_relu_}, {"gelu_", m_gelu_}, {"floor_", m_floor_}, {"ceil_", m_ceil_},
  {"round_", m_round_}, {"sin_", m_sin_}, {"cos_", m_cos_}, {"rsqrt_", m_rsqrt_}, {"sign_", m_sign_},
  {"square_", m_square_},
  {"where", m_where}, {"masked_fill", m_masked_fill}, {"masked_fill_", m_masked_fill_}, {"clamp", m_clamp},
  {"clamp_", m_clamp_}, {"fill_", m_fill_}, {"zero_", m_zero_}, {"copy_", m_copy_},
  {"sum", m_sum}, {"mean", m_mean}, {"var", m_var}, {"std", m_std}, {"max", m_max}, {"min", m_min},
  {"argmax", m_argmax}, {"argmin", m_argmin}, {"logsumexp", m_logsumexp}, {"softmax", m_softmax},
  {"log_softmax", m_log_softmax}, {"norm", m_norm}, {"topk", m_topk}, {"sort", m_sort}, {"cumsum", m_cumsum},
  {"matmul", m_matmul}, {"index_select", m_index_select}, {"gather", m_gather}, {"scatter_add", m_scatter_add},
  {"requires_grad", m_requires_grad}, {"backward", m_backward}, {"retain_grad", m_retain_grad},
  {"detach", m_detach}, {"is_leaf", m_is_leaf}, {"zero_grad", m_zero_grad}, {"grad_fn", m_grad_fn},
  {"data_ptr", m_data_ptr}, {"stride", m_stride}, {NULL, NULL}};

void mb_register_methods(lua_State *L) { luaL_setfuncs(L, methods, 0); }

void mb_register_functions(lua_State *L) {
  /* functional forms: T.exp(x) == x:exp(), T.matmul(a, b) == a:matmul(b), ... */
  luaL_setfuncs(L, methods, 0);
  lua_pushcfunction(L, f_cat); lua_setfield(L, -2, "cat");
  lua_pushcfunction(L, f_stack); lua_setfield(L, -2, "stack");
  lua_pushcfunction(L, f_where); lua_setfield(L, -2, "where");
  lua_pushcfunction(L, m_one_hot); lua_setfield(L, -2, "one_hot");
  lua_pushcfunction(L, f_max_table_numbers); lua_setfield(L, -2, "max_table_numbers");
}
