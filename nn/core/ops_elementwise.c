/* Elementwise ops with broadcasting, their in-place forms and their backwards.
   Each op comes as: the row kernels, the forward, its backward, the in-place
   form; the shapes and the gradients are in the comment above each section.
   In every backward g = dL/dout has the broadcast shape; the autograd engine
   sums each input's gradient back to that input's shape (autograd.c sum_to). */
#include "core/ops.h"
#include "core/autograd.h"
#include "core/iter.h"
#include "core/fastmath.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *binop_names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                    "eq", "ne", "lt", "le", "gt", "ge"};
static const char *unop_names[] = {"neg", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu",
                                   "gelu", "floor", "sin", "cos", "rsqrt", "sign", "ceil", "round", "square"};
const char *mt_binop_name(mt_binop op) { return binop_names[op]; }
const char *mt_unop_name(mt_unop op) { return unop_names[op]; }

static int is_compare(mt_binop op) { return op >= MT_EQ; }

/* ---- binary ops ----
   forward:  out = a op b, a and b broadcast to one shape (NumPy rules). int32 op
             int32 stays int32 except div and pow (float32); comparisons (eq ne lt
             le gt ge) give float32 0/1 and have no gradient.
   backward: add  ga = g              gb = g
             sub  ga = g              gb = -g
             mul  ga = g b            gb = g a
             div  ga = g / b          gb = -g out / b            (out = a / b)
             pow  ga = g b a^(b-1)    gb = g out log(a), 0 where a <= 0
             maximum, minimum: the side that was taken gets g; a tie gives g/2 to each */

/* scalar and row kernels */
static inline float binf(mt_binop op, float a, float b) {
  switch (op) {
    case MT_ADD: return a + b;
    case MT_SUB: return a - b;
    case MT_MUL: return a * b;
    case MT_DIV: return a / b;
    case MT_POW: return powf(a, b);
    case MT_MAXIMUM: return (a > b || isnan(a)) ? a : b;
    case MT_MINIMUM: return (a < b || isnan(a)) ? a : b;
    case MT_EQ: return a == b;
    case MT_NE: return a != b;
    case MT_LT: return a < b;
    case MT_LE: return a <= b;
    case MT_GT: return a > b;
    case MT_GE: return a >= b;
  }
  return 0;
}

static inline int32_t bini(mt_binop op, int32_t a, int32_t b) {
  switch (op) {
    case MT_ADD: return (int32_t)((uint32_t)a + (uint32_t)b);
    case MT_SUB: return (int32_t)((uint32_t)a - (uint32_t)b);
    case MT_MUL: return (int32_t)((uint32_t)a * (uint32_t)b);
    case MT_MAXIMUM: return a > b ? a : b;
    case MT_MINIMUM: return a < b ? a : b;
    default: return 0;
  }
}

#define ROWLOOP(TYPE_O, TYPE_A, EXPR)                                              \
  do {                                                                             \
    TYPE_O *o = (TYPE_O *)p[0];                                                    \
    const TYPE_A *x = (const TYPE_A *)p[1], *y = (const TYPE_A *)p[2];             \
    if (st[0] == 1 && st[1] == 1 && st[2] == 1)                                    \
      for (int64_t i = 0; i < len; i++) o[i] = EXPR(x[i], y[i]);                   \
    else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {                             \
      TYPE_A yy = y[0];                                                            \
      for (int64_t i = 0; i < len; i++) o[i] = EXPR(x[i], yy);                     \
    } else                                                                         \
      for (int64_t i = 0; i < len; i++) o[i * st[0]] = EXPR(x[i * st[1]], y[i * st[2]]); \
  } while (0)

typedef struct { mt_binop op; } binud;

#define ADDF(a, b) ((a) + (b))
#define SUBF(a, b) ((a) - (b))
#define MULF(a, b) ((a) * (b))
#define DIVF(a, b) ((a) / (b))
static void row_binf(int64_t len, char **p, const int64_t *st, void *ud) {
  mt_binop op = ((binud *)ud)->op;
  switch (op) {   /* the common ops get their own vectorisable loop */
    case MT_ADD: ROWLOOP(float, float, ADDF); break;
    case MT_SUB: ROWLOOP(float, float, SUBF); break;
    case MT_MUL: ROWLOOP(float, float, MULF); break;
    case MT_DIV: ROWLOOP(float, float, DIVF); break;
    default: {
#define GEN(a, b) binf(op, a, b)
      ROWLOOP(float, float, GEN);
#undef GEN
    }
  }
}
static void row_bini(int64_t len, char **p, const int64_t *st, void *ud) {
  mt_binop op = ((binud *)ud)->op;
#define GEN(a, b) bini(op, a, b)
  ROWLOOP(int32_t, int32_t, GEN);
#undef GEN
}
static void row_cmpi(int64_t len, char **p, const int64_t *st, void *ud) {
  mt_binop op = ((binud *)ud)->op;
  /* compared as integers: large ids must not round through float */
#define GEN(a, b) (op == MT_EQ ? (a) == (b) : op == MT_NE ? (a) != (b) : op == MT_LT ? (a) < (b) : \
                   op == MT_LE ? (a) <= (b) : op == MT_GT ? (a) > (b) : (a) >= (b))
  ROWLOOP(float, int32_t, GEN);
#undef GEN
}

/* result dtype of a binary op */
static mt_dtype bin_dtype(mt_binop op, mt_tensor *a, mt_tensor *b) {
  if (is_compare(op)) return MT_F32;
  if (a->dtype == MT_I32 && b->dtype == MT_I32 && op != MT_DIV && op != MT_POW) return MT_I32;
  return MT_F32;
}

static mt_tensor *as_f32(mt_tensor *t) { return t->dtype == MT_F32 ? mt_ref(t) : mt_cast(t, MT_F32); }

/* raw kernel: out (already allocated, broadcast shape) = a op b, no autograd */
static void binary_kernel(mt_binop op, mt_tensor *out, mt_tensor *a, mt_tensor *b) {
  mt_iter it;
  mt_tensor *ops[3] = {out, a, b};
  mt_iter_init(&it, out->ndim, out->shape, 3, ops);
  binud ud = {op};
  if (a->dtype == MT_F32) mt_iter_run(&it, row_binf, &ud);
  else if (is_compare(op)) mt_iter_run(&it, row_cmpi, &ud);
  else mt_iter_run(&it, row_bini, &ud);
}

static int bin_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_binary(mt_binop op, mt_tensor *a, mt_tensor *b) {
  int nd;
  int64_t shape[MT_MAXDIM];
  mt_tensor *in[2] = {a, b};
  if (mt_broadcast_shapes(binop_names[op], 2, in, &nd, shape)) return NULL;
  mt_dtype rt = bin_dtype(op, a, b);
  /* operands in the computation dtype */
  mt_dtype ct = (a->dtype == MT_I32 && b->dtype == MT_I32 && (rt == MT_I32 || is_compare(op))) ? MT_I32 : MT_F32;
  mt_tensor *x = ct == MT_F32 ? as_f32(a) : mt_ref(a), *y = ct == MT_F32 ? as_f32(b) : mt_ref(b);
  mt_tensor *out = (x && y) ? mt_empty(rt, nd, shape) : NULL;
  if (out) binary_kernel(op, out, x, y);
  if (out && !is_compare(op) && mt_needs_grad(2, in)) {
    mt_node *nd_ = mt_node_new(binop_names[op], bin_backward, 2, in);
    if (!nd_) { mt_unref(out); out = NULL; goto end; }
    nd_->iarg[0] = op;
    if (op == MT_MUL || op == MT_DIV || op == MT_POW || op == MT_MAXIMUM || op == MT_MINIMUM) {
      mt_node_save(nd_, x);
      mt_node_save(nd_, y);
      if (op == MT_POW || op == MT_DIV) mt_node_save(nd_, out);
    }
    mt_node_attach(nd_, out);
  }
end:
  mt_unref(x); mt_unref(y);
  return out;
}

static mt_tensor *scal(double v) { return mt_scalar(MT_F32, v); }

static int bin_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_binop op = (mt_binop)n->iarg[0];
  mt_tensor *a = NULL, *b = NULL, *out = NULL;
  if (n->n_saved) {
    if (!(a = mt_node_saved(n, 0)) || !(b = mt_node_saved(n, 1))) return -1;
    if (n->n_saved > 2 && !(out = mt_node_saved(n, 2))) return -1;
  }
  int need_a = n->next[0] != NULL, need_b = n->next[1] != NULL;
  switch (op) {
    case MT_ADD:
      if (need_a) gin[0] = mt_ref(g);
      if (need_b) gin[1] = mt_ref(g);
      break;
    case MT_SUB:
      if (need_a) gin[0] = mt_ref(g);
      if (need_b) gin[1] = mt_unary(MT_NEG, g);
      break;
    case MT_MUL:
      if (need_a) gin[0] = mt_binary(MT_MUL, g, b);
      if (need_b) gin[1] = mt_binary(MT_MUL, g, a);
      break;
    case MT_DIV:
      if (need_a) gin[0] = mt_binary(MT_DIV, g, b);
      if (need_b) {   /* -g * out / b */
        mt_tensor *t = mt_binary(MT_MUL, g, out), *u = t ? mt_binary(MT_DIV, t, b) : NULL;
        gin[1] = u ? mt_unary(MT_NEG, u) : NULL;
        mt_unref(t); mt_unref(u);
      }
      break;
    case MT_POW:
      if (need_a) {   /* g * b * a^(b-1) */
        mt_tensor *one = scal(1), *bm1 = mt_binary(MT_SUB, b, one), *p = mt_binary(MT_POW, a, bm1);
        mt_tensor *t = p ? mt_binary(MT_MUL, p, b) : NULL;
        gin[0] = t ? mt_binary(MT_MUL, g, t) : NULL;
        mt_unref(one); mt_unref(bm1); mt_unref(p); mt_unref(t);
      }
      if (need_b) {   /* g * out * log(a), 0 where a <= 0 */
        mt_tensor *la = mt_unary(MT_LOG, a), *zero = scal(0), *pos = mt_binary(MT_GT, a, zero);
        mt_tensor *lz = (la && pos) ? mt_where(pos, la, zero) : NULL;
        mt_tensor *t = lz ? mt_binary(MT_MUL, out, lz) : NULL;
        gin[1] = t ? mt_binary(MT_MUL, g, t) : NULL;
        mt_unref(la); mt_unref(zero); mt_unref(pos); mt_unref(lz); mt_unref(t);
      }
      break;
    case MT_MAXIMUM:
    case MT_MINIMUM: {   /* the larger (smaller) side gets the gradient; ties split it */
      mt_tensor *gt = mt_binary(op == MT_MAXIMUM ? MT_GT : MT_LT, a, b), *eq = mt_binary(MT_EQ, a, b);
      mt_tensor *half = scal(0.5), *he = eq ? mt_binary(MT_MUL, eq, half) : NULL;
      mt_tensor *wa = (gt && he) ? mt_binary(MT_ADD, gt, he) : NULL;
      if (need_a && wa) gin[0] = mt_binary(MT_MUL, g, wa);
      if (need_b && wa) {
        mt_tensor *one = scal(1), *wb = mt_binary(MT_SUB, one, wa);
        gin[1] = wb ? mt_binary(MT_MUL, g, wb) : NULL;
        mt_unref(one); mt_unref(wb);
      }
      mt_unref(gt); mt_unref(eq); mt_unref(half); mt_unref(he); mt_unref(wa);
      break;
    }
    default: break;
  }
  if ((need_a && !gin[0]) || (need_b && !gin[1])) return -1;
  return 0;
}

int mt_binary_(mt_binop op, mt_tensor *a, mt_tensor *b) {
  if (mt_check_inplace(binop_names[op], a)) return -1;
  if (mt_grad_enabled() && b->requires_grad) {   /* the write could not carry b's gradient */
    mt_seterr("%s_: the other operand requires grad, and an in-place result is not recorded; use the "
              "out-of-place form, or T.no_grad", binop_names[op]);
    return -1;
  }
  int nd;
  int64_t shape[MT_MAXDIM];
  mt_tensor *in[2] = {a, b};
  if (mt_broadcast_shapes(binop_names[op], 2, in, &nd, shape)) return -1;
  for (int d = 0; d < nd; d++) {
    int sd = d - (nd - a->ndim);
    if (sd < 0 || a->shape[sd] != shape[d]) {
      char x[64], y[64];
      mt_seterr("%s_: the result shape %s does not fit the in-place tensor %s", binop_names[op],
                mt_dims_str(shape, nd, x, sizeof x), mt_shape_str(a, y, sizeof y));
      return -1;
    }
  }
  mt_dtype rt = bin_dtype(op, a, b);
  if (rt != a->dtype) {
    mt_seterr("%s_: the result would be %s but the tensor is %s", binop_names[op], mt_dtype_name(rt),
              mt_dtype_name(a->dtype));
    return -1;
  }
  mt_tensor *y = (a->dtype == MT_F32) ? as_f32(b) : mt_ref(b);
  if (!y) return -1;
  /* b may alias a's storage: compute into a temporary when it overlaps */
  if (y->storage == a->storage && !(y->offset == a->offset && mt_same_shape(y, a) &&
                                    !memcmp(y->stride, a->stride, sizeof(int64_t) * (size_t)a->ndim))) {
    mt_tensor *c = mt_clone(y);
    mt_unref(y);
    if (!c) return -1;
    y = c;
  }
  binary_kernel(op, a, a, y);
  mt_unref(y);
  mt_bump_version(a);
  return 0;
}

/* ---- unary ops ----
   forward:  y = f(x), same shape; int32 stays int32 for neg abs sign floor ceil
             round square, everything else computes in float32.
   backward: gx = g f'(x), f' written from x and y where that is cheaper:
             neg -1   exp y   log 1/x   sqrt 0.5/y   abs sign(x)   tanh 1-y^2
             sigmoid y(1-y)   relu [x > 0]   gelu Phi(x) + x phi(x)   sin cos(x)
             cos -sin(x)   rsqrt -0.5 y^3   square 2x
             floor ceil round sign: 0 (piecewise constant) */

static inline float unf(mt_unop op, float x) {
  switch (op) {
    case MT_NEG: return -x;
    case MT_EXP: return expf(x);
    case MT_LOG: return logf(x);
    case MT_SQRT: return sqrtf(x);
    case MT_ABS: return fabsf(x);
    case MT_TANH: return tanhf(x);
    case MT_SIGMOID: return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
    case MT_RELU: return !(x <= 0) ? x : 0.0f;   /* NaN passes through, as in PyTorch */
    case MT_GELU: return mt_gelu(x);
    case MT_FLOOR: return floorf(x);
    case MT_SIN: return sinf(x);
    case MT_COS: return cosf(x);
    case MT_RSQRT: return 1.0f / sqrtf(x);
    case MT_SIGN: return (float)((x > 0) - (x < 0));
    case MT_CEIL: return ceilf(x);
    case MT_ROUND: return nearbyintf(x);
    case MT_SQUARE: return x * x;
  }
  return 0;
}

typedef struct { mt_unop op; } unud;
static void row_unf(int64_t len, char **p, const int64_t *st, void *ud) {
  mt_unop op = ((unud *)ud)->op;
  float *o = (float *)p[0];
  const float *x = (const float *)p[1];
  if (st[0] == 1 && st[1] == 1) {
    if (op == MT_RELU) { for (int64_t i = 0; i < len; i++) o[i] = !(x[i] <= 0) ? x[i] : 0.0f; return; }
    if (op == MT_GELU) { mt_map(MT_MAP_GELU, len, x, NULL, o); return; }
    for (int64_t i = 0; i < len; i++) o[i] = unf(op, x[i]);
  } else
    for (int64_t i = 0; i < len; i++) o[i * st[0]] = unf(op, x[i * st[1]]);
}
static void row_uni(int64_t len, char **p, const int64_t *st, void *ud) {
  mt_unop op = ((unud *)ud)->op;
  int32_t *o = (int32_t *)p[0];
  const int32_t *x = (const int32_t *)p[1];
  for (int64_t i = 0; i < len; i++) {
    int32_t v = x[i * st[1]];
    o[i * st[0]] = op == MT_NEG ? (int32_t)(0u - (uint32_t)v) : op == MT_ABS ? (v < 0 ? (int32_t)(0u - (uint32_t)v) : v)
                 : op == MT_SIGN ? (v > 0) - (v < 0) : op == MT_SQUARE ? (int32_t)((uint32_t)v * (uint32_t)v) : v;
  }
}

static int int_preserving(mt_unop op) {
  return op == MT_NEG || op == MT_ABS || op == MT_SIGN || op == MT_FLOOR || op == MT_CEIL || op == MT_ROUND ||
         op == MT_SQUARE;
}

static void unary_kernel(mt_unop op, mt_tensor *out, mt_tensor *x) {
  mt_iter it;
  mt_tensor *ops[2] = {out, x};
  mt_iter_init(&it, out->ndim, out->shape, 2, ops);
  unud ud = {op};
  mt_iter_run(&it, x->dtype == MT_F32 ? row_unf : row_uni, &ud);
}

static int un_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_unary(mt_unop op, mt_tensor *a) {
  mt_tensor *x = (a->dtype == MT_I32 && int_preserving(op)) ? mt_ref(a) : as_f32(a);
  if (!x) return NULL;
  mt_tensor *out = mt_empty(x->dtype, x->ndim, x->shape);
  if (out) unary_kernel(op, out, x);
  if (out && mt_needs_grad(1, &a)) {
    mt_node *n = mt_node_new(unop_names[op], un_backward, 1, &a);
    if (!n) { mt_unref(out); mt_unref(x); return NULL; }
    n->iarg[0] = op;
    mt_node_save(n, x);
    mt_node_save(n, out);
    mt_node_attach(n, out);
  }
  mt_unref(x);
  return out;
}

/* gin = g * f'(x), with f'(x) from x and the output y, in one pass */
static inline float dunf(mt_unop op, float x, float y) {
  switch (op) {
    case MT_NEG: return -1;
    case MT_EXP: return y;
    case MT_LOG: return 1.0f / x;
    case MT_SQRT: return 0.5f / y;
    case MT_ABS: return (float)((x > 0) - (x < 0));
    case MT_TANH: return 1 - y * y;
    case MT_SIGMOID: return y * (1 - y);
    case MT_RELU: return x > 0 ? 1.0f : 0.0f;
    case MT_GELU: return mt_dgelu(x);
    case MT_SIN: return cosf(x);
    case MT_COS: return -sinf(x);
    case MT_RSQRT: return -0.5f * y * y * y;
    case MT_SQUARE: return 2 * x;
    default: return 0;   /* floor, ceil, round, sign: piecewise constant */
  }
}

static int un_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *xs = mt_node_saved(n, 0), *ys = mt_node_saved(n, 1);
  if (!xs || !ys) return -1;
  mt_unop op = (mt_unop)n->iarg[0];
  mt_tensor *x = mt_contiguous(xs), *y = mt_contiguous(ys), *r = mt_empty(MT_F32, g->ndim, g->shape);
  if (!x || !y || !r) { mt_unref(x); mt_unref(y); mt_unref(r); return -1; }
  const float *px = mt_f32(x), *py = mt_f32(y), *pg = mt_f32(g);
  float *pr = mt_f32(r);
  int64_t len = mt_numel(r);
  if (op == MT_RELU) for (int64_t i = 0; i < len; i++) pr[i] = px[i] > 0 ? pg[i] : 0.0f;
  else if (op == MT_GELU) mt_map(MT_MAP_DGELU, len, px, pg, pr);
  else for (int64_t i = 0; i < len; i++) pr[i] = pg[i] * dunf(op, px[i], py[i]);
  mt_unref(x); mt_unref(y);
  gin[0] = r;
  return 0;
}

int mt_unary_(mt_unop op, mt_tensor *a) {
  if (mt_check_inplace(unop_names[op], a)) return -1;
  if (a->dtype == MT_I32 && !int_preserving(op)) {
    mt_seterr("%s_: needs a float32 tensor, got int32 (use :float() first)", unop_names[op]);
    return -1;
  }
  unary_kernel(op, a, a);
  mt_bump_version(a);
  return 0;
}

/* ---- where and masked_fill ----
   forward:  out = cond != 0 ? a : b, the three broadcast to one shape; int32 when
             a and b are both int32.
   backward: ga = g where cond else 0, gb = g where not cond; cond gets none */
static void row_where(int64_t len, char **p, const int64_t *st, void *ud) {
  /* p[0]=out (also holds a), p[1]=cond, p[2]=b */
  float *o = (float *)p[0];
  const float *c = (const float *)p[1], *b = (const float *)p[2];
  for (int64_t i = 0; i < len; i++) if (c[i * st[1]] == 0) o[i * st[0]] = b[i * st[2]];
}
static void row_where_i(int64_t len, char **p, const int64_t *st, void *ud) {
  int32_t *o = (int32_t *)p[0];
  const float *c = (const float *)p[1];
  const int32_t *b = (const int32_t *)p[2];
  for (int64_t i = 0; i < len; i++) if (c[i * st[1]] == 0) o[i * st[0]] = b[i * st[2]];
}

static int where_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_where(mt_tensor *cond, mt_tensor *a, mt_tensor *b) {
  int nd;
  int64_t shape[MT_MAXDIM];
  mt_tensor *in[3] = {cond, a, b};
  if (mt_broadcast_shapes("where", 3, in, &nd, shape)) return NULL;
  mt_dtype dt = (a->dtype == MT_I32 && b->dtype == MT_I32) ? MT_I32 : MT_F32;
  mt_tensor *c = as_f32(cond), *x = dt == MT_F32 ? as_f32(a) : mt_ref(a), *y = dt == MT_F32 ? as_f32(b) : mt_ref(b);
  mt_tensor *out = (c && x && y) ? mt_empty(dt, nd, shape) : NULL;
  if (out) {
    if (mt_copy_(out, x)) { mt_unref(out); out = NULL; }
  }
  if (out) {
    mt_iter it;
    mt_tensor *ops[3] = {out, c, y};
    mt_iter_init(&it, nd, shape, 3, ops);
    mt_iter_run(&it, dt == MT_F32 ? row_where : row_where_i, NULL);
    mt_tensor *gi[3] = {NULL, a, b};
    if (mt_needs_grad(3, gi)) {
      mt_node *n = mt_node_new("where", where_backward, 3, gi);
      if (!n) { mt_unref(out); out = NULL; }
      else { mt_node_save(n, c); mt_node_attach(n, out); }
    }
  }
  mt_unref(c); mt_unref(x); mt_unref(y);
  return out;
}

static int where_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *c = mt_node_saved(n, 0);
  if (!c) return -1;
  mt_tensor *zero = scal(0);
  if (n->next[1]) gin[1] = mt_where(c, g, zero);
  if (n->next[2]) gin[2] = mt_where(c, zero, g);
  mt_unref(zero);
  if ((n->next[1] && !gin[1]) || (n->next[2] && !gin[2])) return -1;
  return 0;
}

/* masked_fill(t, mask, v) = where(mask, v, t): its gradient is where's */
mt_tensor *mt_masked_fill(mt_tensor *t, mt_tensor *mask, double v) {
  /* where(mask, v, t), keeping t's dtype; the mask must broadcast to t's shape */
  char a[64], b[64];
  if (mask->ndim > t->ndim) {
    mt_seterr("masked_fill: mask %s has more dimensions than the tensor %s",
              mt_shape_str(mask, a, sizeof a), mt_shape_str(t, b, sizeof b));
    return NULL;
  }
  for (int d = 0; d < mask->ndim; d++) {
    int64_t m = mask->shape[d], s = t->shape[t->ndim - mask->ndim + d];
    if (m != s && m != 1) {
      mt_seterr("masked_fill: mask %s does not broadcast to the tensor's shape %s",
                mt_shape_str(mask, a, sizeof a), mt_shape_str(t, b, sizeof b));
      return NULL;
    }
  }
  mt_tensor *val = mt_scalar(t->dtype, v);
  if (!val) return NULL;
  mt_tensor *r = mt_where(mask, val, t);
  mt_unref(val);
  return r;
}

int mt_masked_fill_(mt_tensor *t, mt_tensor *mask, double v) {
  if (mt_check_inplace("masked_fill_", t)) return -1;
  mt_tensor *r = mt_masked_fill(t, mask, v);
  if (!r) return -1;
  int rc = mt_copy_(t, r);
  mt_unref(r);
  return rc;
}

/* a 32-bit element copy (float32 or int32), for clamp and copy_ */
static void row_copy(int64_t len, char **p, const int64_t *st, void *ud) {
  int32_t *o = (int32_t *)p[0];
  const int32_t *x = (const int32_t *)p[1];
  if (st[0] == 1 && st[1] == 1) memcpy(o, x, (size_t)len * 4);
  else for (int64_t i = 0; i < len; i++) o[i * st[0]] = x[i * st[1]];
}

/* ---- clamp ----
   forward:  out = min(max(x, lo), hi), same shape and dtype (int32 bounds rounded inward)
   backward: gx = g where lo <= x <= hi, else 0 */

static int clamp_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_clamp(mt_tensor *t, double lo, double hi) {
  if (lo > hi) { mt_seterr("clamp: min %g is greater than max %g", lo, hi); return NULL; }
  mt_tensor *out = mt_empty(t->dtype, t->ndim, t->shape);
  if (!out) return NULL;
  mt_iter it;
  mt_tensor *ops[2] = {out, t};
  mt_iter_init(&it, t->ndim, t->shape, 2, ops);
  mt_iter_run(&it, row_copy, NULL);
  int64_t len = mt_numel(out);
  if (out->dtype == MT_F32) {
    float *p = mt_f32(out);
    for (int64_t i = 0; i < len; i++) p[i] = p[i] < lo ? (float)lo : p[i] > hi ? (float)hi : p[i];
  } else {
    int32_t *p = mt_i32(out);
    for (int64_t i = 0; i < len; i++) p[i] = p[i] < lo ? (int32_t)ceil(lo) : p[i] > hi ? (int32_t)floor(hi) : p[i];
  }
  if (mt_needs_grad(1, &t)) {
    mt_node *n = mt_node_new("clamp", clamp_backward, 1, &t);
    if (!n) { mt_unref(out); return NULL; }
    n->darg[0] = lo; n->darg[1] = hi;
    mt_node_save(n, t);
    mt_node_attach(n, out);
  }
  return out;
}

static int clamp_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *x = mt_node_saved(n, 0);
  if (!x) return -1;
  mt_tensor *c = mt_contiguous(x), *r = mt_empty(MT_F32, g->ndim, g->shape);
  if (!c || !r) { mt_unref(c); mt_unref(r); return -1; }
  const float *px = mt_f32(c), *pg = mt_f32(g);
  float *pr = mt_f32(r);
  float lo = (float)n->darg[0], hi = (float)n->darg[1];
  for (int64_t i = 0, len = mt_numel(r); i < len; i++) pr[i] = (px[i] >= lo && px[i] <= hi) ? pg[i] : 0.0f;
  mt_unref(c);
  gin[0] = r;
  return 0;
}

/* ---- fill and copy: in place, not recorded ---- */

int mt_fill_(mt_tensor *t, double v) {
  if (mt_check_inplace("fill_", t)) return -1;
  mt_tensor *s = mt_scalar(t->dtype, v);
  if (!s) return -1;
  int rc = mt_copy_(t, s);
  mt_unref(s);
  return rc;
}

int mt_copy_(mt_tensor *dst, mt_tensor *src) {
  int nd;
  int64_t shape[MT_MAXDIM];
  mt_tensor *in[2] = {dst, src};
  if (mt_broadcast_shapes("copy_", 2, in, &nd, shape)) return -1;
  int bad = nd != dst->ndim;
  for (int d = 0; !bad && d < nd; d++) if (shape[d] != dst->shape[d]) bad = 1;
  if (bad) {
    char a[64], b[64];
    mt_seterr("copy_: source %s does not broadcast to destination %s", mt_shape_str(src, a, sizeof a),
              mt_shape_str(dst, b, sizeof b));
    return -1;
  }
  mt_tensor *s = src->dtype == dst->dtype ? mt_ref(src) : mt_cast(src, dst->dtype);
  if (!s) return -1;
  if (s->storage == dst->storage) { mt_tensor *c = mt_clone(s); mt_unref(s); if (!c) return -1; s = c; }
  mt_iter it;
  mt_tensor *ops[2] = {dst, s};
  mt_iter_init(&it, dst->ndim, dst->shape, 2, ops);
  mt_iter_run(&it, row_copy, NULL);
  mt_unref(s);
  mt_bump_version(dst);
  return 0;
}
