/* Reductions along one dim (or all), softmax family, sort/topk, cumsum.
   Every kernel sees a contiguous input as [outer, n, inner] with n the reduced dim. */
#include "core/ops.h"
#include "core/autograd.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int64_t outer, n, inner;
  int ndim;                   /* result */
  int64_t shape[MT_MAXDIM];
  int dim;                    /* 0-based, or MT_ALL */
} geom;

static int geometry(const char *fn, mt_tensor *t, int dim, int keepdim, geom *g) {
  g->dim = dim;
  if (dim == MT_ALL) {
    g->outer = 1; g->n = mt_numel(t); g->inner = 1;
    g->ndim = keepdim ? t->ndim : 0;
    for (int i = 0; i < g->ndim; i++) g->shape[i] = 1;
    return 0;
  }
  if (t->ndim == 0) { g->dim = dim = 0; g->outer = g->n = g->inner = 1; g->ndim = 0; return 0; }
  if ((dim = mt_wrap_dim(fn, dim, t->ndim)) < 0) return -1;
  g->dim = dim;
  g->outer = 1; g->inner = 1; g->n = t->shape[dim];
  for (int i = 0; i < dim; i++) g->outer *= t->shape[i];
  for (int i = dim + 1; i < t->ndim; i++) g->inner *= t->shape[i];
  int k = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (i == dim) { if (keepdim) g->shape[k++] = 1; }
    else g->shape[k++] = t->shape[i];
  }
  g->ndim = k;
  return 0;
}

static mt_tensor *as_f32c(mt_tensor *t) {
  if (t->dtype == MT_F32) return mt_contiguous(t);
  return mt_cast(t, MT_F32);
}

/* the input's gradient from an output-shaped one: unsqueeze the reduced dim, expand */
static mt_tensor *expand_back(mt_node *n, mt_tensor *g) {
  int dim = (int)n->iarg[0], keep = (int)n->iarg[1];
  mt_tensor *u;
  if (dim == MT_ALL || n->in_ndim[0] == 0) {
    int64_t ones[MT_MAXDIM];
    for (int i = 0; i < n->in_ndim[0]; i++) ones[i] = 1;
    u = mt_view(g, n->in_ndim[0], ones);
  } else u = keep ? mt_ref(g) : mt_unsqueeze(g, dim);
  if (!u) return NULL;
  mt_tensor *e = mt_expand(u, n->in_ndim[0], n->in_shape[0]);
  mt_unref(u);
  if (!e) return NULL;
  mt_tensor *c = mt_clone(e);
  mt_unref(e);
  return c;
}

static mt_node *reduce_node(const char *name, mt_backward_fn bw, mt_tensor *t, mt_tensor *out, int dim, int keep) {
  mt_node *n = mt_node_new(name, bw, 1, &t);
  if (!n) return NULL;
  n->iarg[0] = dim; n->iarg[1] = keep;
  mt_node_attach(n, out);
  return n;
}

/* ---- sum / mean ---- */
static void sum_kernel(const float *x, float *y, const geom *g, double scale) {
  int64_t O = g->outer, N = g->n, I = g->inner;
  if (I == 1) {
    for (int64_t o = 0; o < O; o++) {
      const float *r = x + o * N;
      double acc = 0;
      for (int64_t i = 0; i < N; i++) acc += r[i];
      y[o] = (float)(acc * scale);
    }
    return;
  }
  double *acc = calloc((size_t)I, sizeof *acc);
  for (int64_t o = 0; o < O; o++) {
    memset(acc, 0, sizeof *acc * (size_t)I);
    for (int64_t i = 0; i < N; i++) {
      const float *r = x + (o * N + i) * I;
      for (int64_t j = 0; j < I; j++) acc[j] += r[j];
    }
    for (int64_t j = 0; j < I; j++) y[o * I + j] = (float)(acc[j] * scale);
  }
  free(acc);
}

static int sum_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *e = expand_back(n, g);
  if (!e) return -1;
  if (n->darg[0] != 1.0) {
    mt_tensor *s = mt_scalar(MT_F32, n->darg[0]);
    mt_binary_(MT_MUL, e, s);
    mt_unref(s);
  }
  gin[0] = e;
  return 0;
}

static mt_tensor *sum_mean(const char *fn, mt_tensor *t, int dim, int keepdim, int mean) {
  geom g;
  if (geometry(fn, t, dim, keepdim, &g)) return NULL;
  if (t->dtype == MT_I32 && !mean) {   /* integer sum stays integer (counts) */
    mt_tensor *c = mt_contiguous(t), *out = c ? mt_empty(MT_I32, g.ndim, g.shape) : NULL;
    if (out) {
      const int32_t *x = mt_i32(c);
      int32_t *y = mt_i32(out);
      for (int64_t o = 0; o < g.outer; o++)
        for (int64_t j = 0; j < g.inner; j++) {
          int64_t acc = 0;
          for (int64_t i = 0; i < g.n; i++) acc += x[(o * g.n + i) * g.inner + j];
          y[o * g.inner + j] = (int32_t)acc;
        }
    }
    mt_unref(c);
    return out;
  }
  mt_tensor *c = as_f32c(t);
  if (!c) return NULL;
  mt_tensor *out = mt_empty(MT_F32, g.ndim, g.shape);
  double scale = mean ? 1.0 / (double)g.n : 1.0;
  if (out) sum_kernel(mt_f32(c), mt_f32(out), &g, scale);
  mt_unref(c);
  if (out && mt_needs_grad(1, &t)) {
    mt_node *n = reduce_node(fn, sum_backward, t, out, g.dim, keepdim);
    if (!n) { mt_unref(out); return NULL; }
    n->darg[0] = scale;
  }
  return out;
}

mt_tensor *mt_sum(mt_tensor *t, int dim, int keepdim) { return sum_mean("sum", t, dim, keepdim, 0); }
mt_tensor *mt_mean(mt_tensor *t, int dim, int keepdim) {
  if (mt_numel(t) == 0) { mt_seterr("mean: empty tensor"); return NULL; }
  return sum_mean("mean", t, dim, keepdim, 1);
}

/* ---- var / std (composite: autograd comes from the pieces) ---- */
mt_tensor *mt_var(mt_tensor *t, int dim, int keepdim, int unbiased) {
  geom g;
  if (geometry("var", t, dim, keepdim, &g)) return NULL;
  if (g.n - (unbiased ? 1 : 0) <= 0) { mt_seterr("var: %lld element(s) along the dim are too few", (long long)g.n); return NULL; }
  mt_tensor *m = mt_mean(t, dim, 1);
  mt_tensor *d = m ? mt_binary(MT_SUB, t, m) : NULL;
  mt_tensor *sq = d ? mt_binary(MT_MUL, d, d) : NULL;
  mt_tensor *s = sq ? mt_sum(sq, dim, keepdim) : NULL;
  mt_tensor *k = mt_scalar(MT_F32, 1.0 / (double)(g.n - (unbiased ? 1 : 0)));
  mt_tensor *r = (s && k) ? mt_binary(MT_MUL, s, k) : NULL;
  mt_unref(m); mt_unref(d); mt_unref(sq); mt_unref(s); mt_unref(k);
  return r;
}

/* an error of a composite op names the op the user called, not its pieces */
static void rename_error(const char *fn) {
  char msg[1024];
  const char *e = mt_error(), *colon = strchr(e, ':');
  size_t n = strlen(fn);
  if (!strncmp(e, fn, n) && e[n] == ':') return;
  snprintf(msg, sizeof msg, "%s", colon && colon - e < 16 && colon[1] == ' ' ? colon + 2 : e);
  mt_seterr("%s: %s", fn, msg);
}

mt_tensor *mt_std(mt_tensor *t, int dim, int keepdim, int unbiased) {
  mt_tensor *v = mt_var(t, dim, keepdim, unbiased);
  if (!v) { rename_error("std"); return NULL; }
  mt_tensor *r = mt_unary(MT_SQRT, v);
  mt_unref(v);
  return r;
}

/* ---- arg-extrema (0-based int32 indices); NaN counts as the extreme, as in PyTorch ---- */
static mt_tensor *argext(const char *fn, mt_tensor *t, int dim, int keepdim, int want_max) {
  geom g;
  if (geometry(fn, t, dim, keepdim, &g)) return NULL;
  if (g.n == 0) { mt_seterr("%s: cannot reduce an empty dimension", fn); return NULL; }
  /* int32 is compared as int32: ids beyond 2^24 must not round through float */
  mt_tensor *c = t->dtype == MT_I32 ? mt_contiguous(t) : as_f32c(t);
  if (!c) return NULL;
  mt_tensor *out = mt_empty(MT_I32, g.ndim, g.shape);
  if (out && c->dtype == MT_I32) {
    const int32_t *x = mt_i32(c);
    int32_t *y = mt_i32(out);
    for (int64_t o = 0; o < g.outer; o++)
      for (int64_t j = 0; j < g.inner; j++) {
        const int32_t *r = x + o * g.n * g.inner + j;
        int64_t best = 0;
        for (int64_t i = 1; i < g.n; i++)
          if (want_max ? r[i * g.inner] > r[best * g.inner] : r[i * g.inner] < r[best * g.inner]) best = i;
        y[o * g.inner + j] = (int32_t)best;
      }
  } else if (out) {
    const float *x = mt_f32(c);
    int32_t *y = mt_i32(out);
    for (int64_t o = 0; o < g.outer; o++)
      for (int64_t j = 0; j < g.inner; j++) {
        const float *r = x + o * g.n * g.inner + j;
        int64_t best = 0;
        float bv = r[0];
        for (int64_t i = 1; i < g.n && bv == bv; i++) {
          float v = r[i * g.inner];
          if (v != v || (want_max ? v > bv : v < bv)) { bv = v; best = i; }
        }
        y[o * g.inner + j] = (int32_t)best;
      }
  }
  mt_unref(c);
  return out;
}

mt_tensor *mt_argmax(mt_tensor *t, int dim, int keepdim) { return argext("argmax", t, dim, keepdim, 1); }
mt_tensor *mt_argmin(mt_tensor *t, int dim, int keepdim) { return argext("argmin", t, dim, keepdim, 0); }

/* values through gather so that the gradient routes to the chosen elements */
static mt_tensor *ext(const char *fn, mt_tensor *t, int dim, int keepdim, mt_tensor **indices, int want_max) {
  if (dim == MT_ALL || t->ndim == 0) {
    int64_t n = mt_numel(t);
    mt_tensor *flat = mt_view(t, 1, &n);
    mt_tensor *idx = flat ? argext(fn, flat, 0, 1, want_max) : NULL;
    mt_tensor *v = idx ? mt_gather(flat, 0, idx) : NULL;
    int64_t ones[MT_MAXDIM];
    for (int i = 0; i < t->ndim; i++) ones[i] = 1;
    mt_tensor *r = v ? mt_view(v, keepdim ? t->ndim : 0, ones) : NULL;
    if (indices) *indices = idx ? mt_view(idx, keepdim ? t->ndim : 0, ones) : NULL;
    mt_unref(flat); mt_unref(idx); mt_unref(v);
    return r;
  }
  if ((dim = mt_wrap_dim(fn, dim, t->ndim)) < 0) return NULL;
  mt_tensor *idx = argext(fn, t, dim, 1, want_max);
  if (!idx) return NULL;
  mt_tensor *v = mt_gather(t, dim, idx);
  mt_tensor *r = v && !keepdim ? mt_squeeze(v, dim) : (v ? mt_ref(v) : NULL);
  if (indices) *indices = keepdim ? mt_ref(idx) : mt_squeeze(idx, dim);
  mt_unref(idx); mt_unref(v);
  return r;
}

mt_tensor *mt_max(mt_tensor *t, int dim, int keepdim, mt_tensor **indices) { return ext("max", t, dim, keepdim, indices, 1); }
mt_tensor *mt_min(mt_tensor *t, int dim, int keepdim, mt_tensor **indices) { return ext("min", t, dim, keepdim, indices, 0); }

/* ---- softmax family ---- */
/* mode 0 softmax, 1 log_softmax, 2 logsumexp (y has the reduced geometry) */
static void softmax_kernel(const float *x, float *y, const geom *g, int mode) {
  int64_t N = g->n, I = g->inner;
  for (int64_t o = 0; o < g->outer; o++)
    for (int64_t j = 0; j < I; j++) {
      const float *r = x + o * N * I + j;
      float m = -INFINITY;
      for (int64_t i = 0; i < N; i++) if (r[i * I] > m) m = r[i * I];
      if (m == -INFINITY) m = 0;   /* all -inf: avoid inf - inf */
      double s = 0;
      for (int64_t i = 0; i < N; i++) s += exp((double)(r[i * I] - m));
      if (mode == 2) { y[o * I + j] = (float)(m + log(s)); continue; }
      float *w = y + o * N * I + j;
      if (mode == 0) {
        float inv = (float)(1.0 / s);
        for (int64_t i = 0; i < N; i++) w[i * I] = expf(r[i * I] - m) * inv;
      } else {
        float ls = (float)log(s);
        for (int64_t i = 0; i < N; i++) w[i * I] = r[i * I] - m - ls;
      }
    }
}

static int softmax_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *y = mt_node_saved(n, 0);
  if (!y) return -1;
  int mode = (int)n->iarg[2];
  geom gm;
  gm.dim = (int)n->iarg[0];
  gm.outer = n->iarg[3]; gm.n = n->iarg[4]; gm.inner = n->iarg[5];
  mt_tensor *r = mt_empty(MT_F32, g->ndim, g->shape);
  if (!r) return -1;
  const float *py = mt_f32(y), *pg = mt_f32(g);
  float *pr = mt_f32(r);
  int64_t N = gm.n, I = gm.inner;
  for (int64_t o = 0; o < gm.outer; o++)
    for (int64_t j = 0; j < I; j++) {
      int64_t b = o * N * I + j;
      double s = 0;
      if (mode == 0) {   /* dx = y * (g - sum(g*y)) */
        for (int64_t i = 0; i < N; i++) s += (double)pg[b + i * I] * py[b + i * I];
        for (int64_t i = 0; i < N; i++) pr[b + i * I] = py[b + i * I] * (pg[b + i * I] - (float)s);
      } else {           /* dx = g - exp(y) * sum(g) */
        for (int64_t i = 0; i < N; i++) s += pg[b + i * I];
        for (int64_t i = 0; i < N; i++) pr[b + i * I] = pg[b + i * I] - expf(py[b + i * I]) * (float)s;
      }
    }
  gin[0] = r;
  return 0;
}

static mt_tensor *softmax_like(const char *fn, mt_tensor *t, int dim, int mode) {
  geom g;
  if (t->ndim == 0) dim = 0;
  if (geometry(fn, t, dim, 1, &g)) return NULL;
  mt_tensor *c = as_f32c(t);
  if (!c) return NULL;
  mt_tensor *out = mt_empty(MT_F32, c->ndim, c->shape);
  if (out) softmax_kernel(mt_f32(c), mt_f32(out), &g, mode);
  mt_unref(c);
  if (out && mt_needs_grad(1, &t)) {
    mt_node *n = reduce_node(fn, softmax_backward, t, out, g.dim, 1);
    if (!n) { mt_unref(out); return NULL; }
    n->iarg[2] = mode; n->iarg[3] = g.outer; n->iarg[4] = g.n; n->iarg[5] = g.inner;
    mt_node_save(n, out);
  }
  return out;
}

mt_tensor *mt_softmax(mt_tensor *t, int dim) { return softmax_like("softmax", t, dim, 0); }
mt_tensor *mt_log_softmax(mt_tensor *t, int dim) { return softmax_like("log_softmax", t, dim, 1); }

static int lse_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *x = mt_node_saved(n, 0), *y = mt_node_saved(n, 1);
  if (!x || !y) return -1;
  /* g * exp(x - lse), with lse and g expanded over the reduced dim */
  mt_tensor *ge = expand_back(n, g), *ye = expand_back(n, y);
  mt_tensor *d = (ge && ye) ? mt_binary(MT_SUB, x, ye) : NULL;
  mt_tensor *e = d ? mt_unary(MT_EXP, d) : NULL;
  gin[0] = e ? mt_binary(MT_MUL, ge, e) : NULL;
  mt_unref(ge); mt_unref(ye); mt_unref(d); mt_unref(e);
  return gin[0] ? 0 : -1;
}

mt_tensor *mt_logsumexp(mt_tensor *t, int dim, int keepdim) {
  geom g;
  if (geometry("logsumexp", t, dim, keepdim, &g)) return NULL;
  mt_tensor *c = as_f32c(t);
  if (!c) return NULL;
  mt_tensor *out = mt_empty(MT_F32, g.ndim, g.shape);
  if (out) softmax_kernel(mt_f32(c), mt_f32(out), &g, 2);
  if (out && mt_needs_grad(1, &t)) {
    mt_node *n = reduce_node("logsumexp", lse_backward, t, out, g.dim, keepdim);
    if (!n) { mt_unref(out); mt_unref(c); return NULL; }
    mt_node_save(n, c);
    mt_node_save(n, out);
  }
  mt_unref(c);
  return out;
}

/* ---- norm: p = 1 and inf are composite; other p get their own node so that a
   zero vector has gradient 0 (as PyTorch) instead of 0 * inf = NaN ---- */
static int norm_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *x = mt_node_saved(n, 0), *y = mt_node_saved(n, 1);
  if (!x || !y) return -1;
  /* dx = g / y^(p-1) * sign(x) |x|^(p-1), with g / y^(p-1) taken as 0 where y == 0 */
  mt_tensor *pm1 = mt_scalar(MT_F32, n->darg[0] - 1), *zero = mt_scalar(MT_F32, 0);
  mt_tensor *ge = expand_back(n, g), *ye = expand_back(n, y);
  mt_tensor *yp = (ye && pm1) ? mt_binary(MT_POW, ye, pm1) : NULL, *q = (ge && yp) ? mt_binary(MT_DIV, ge, yp) : NULL;
  mt_tensor *z = (ye && zero) ? mt_binary(MT_EQ, ye, zero) : NULL, *scale = (q && z) ? mt_where(z, zero, q) : NULL;
  mt_tensor *ax = mt_unary(MT_ABS, x), *sx = mt_unary(MT_SIGN, x);
  mt_tensor *axp = (ax && pm1) ? mt_binary(MT_POW, ax, pm1) : NULL, *d = (axp && sx) ? mt_binary(MT_MUL, sx, axp) : NULL;
  gin[0] = (d && scale) ? mt_binary(MT_MUL, d, scale) : NULL;
  mt_tensor *tmp[] = {pm1, zero, ge, ye, yp, q, z, scale, ax, sx, axp, d};
  for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++) mt_unref(tmp[i]);
  return gin[0] ? 0 : -1;
}

mt_tensor *mt_norm(mt_tensor *t, double p, int dim, int keepdim) {
  if (!(p > 0)) { mt_seterr("norm: p must be positive (or inf), got %g", p); return NULL; }
  if (dim != MT_ALL && t->ndim > 0 && (dim = mt_wrap_dim("norm", dim, t->ndim)) < 0) return NULL;
  int composite = isinf(p) || p == 1;
  int prev = composite ? mt_grad_enabled() : mt_set_grad_enabled(0);
  mt_tensor *a = mt_unary(MT_ABS, t);
  mt_tensor *r = NULL;
  if (a && isinf(p)) r = mt_max(a, dim, keepdim, NULL);
  else if (a && p == 1) r = mt_sum(a, dim, keepdim);
  else if (a) {
    mt_tensor *pe = mt_scalar(MT_F32, p), *ip = mt_scalar(MT_F32, 1.0 / p);
    mt_tensor *pw = p == 2 ? mt_binary(MT_MUL, a, a) : mt_binary(MT_POW, a, pe), *s = pw ? mt_sum(pw, dim, keepdim) : NULL;
    r = s ? (p == 2 ? mt_unary(MT_SQRT, s) : mt_binary(MT_POW, s, ip)) : NULL;
    mt_unref(pe); mt_unref(ip); mt_unref(pw); mt_unref(s);
  }
  mt_unref(a);
  mt_set_grad_enabled(prev);
  if (!r) { rename_error("norm"); return NULL; }
  if (!composite && mt_needs_grad(1, &t)) {
    mt_node *n = reduce_node("norm", norm_backward, t, r, dim, keepdim);
    if (!n) { mt_unref(r); return NULL; }
    n->darg[0] = p;
    mt_node_save(n, t);
    mt_node_save(n, r);
  }
  return r;
}

/* ---- sort / topk: indices by a stable sort, values by gather ---- */
typedef struct { double v; int32_t i; } keyed; /* double holds every float32 and int32 exactly */
static int cmp_asc(const void *x, const void *y) {
  const keyed *a = x, *b = y;
  int an = a->v != a->v, bn = b->v != b->v;
  if (an || bn) { if (an != bn) return an - bn; return a->i - b->i; }  /* NaN last */
  if (a->v < b->v) return -1;
  if (a->v > b->v) return 1;
  return a->i - b->i;
}
static int cmp_desc(const void *x, const void *y) {
  const keyed *a = x, *b = y;
  int an = a->v != a->v, bn = b->v != b->v;
  if (an || bn) { if (an != bn) return bn - an; return a->i - b->i; }  /* NaN first, as the largest */
  if (a->v > b->v) return -1;
  if (a->v < b->v) return 1;
  return a->i - b->i;
}

static mt_tensor *sorted(const char *fn, mt_tensor *t, int64_t k, int dim, int desc, mt_tensor **indices) {
  if (t->ndim == 0) { mt_seterr("%s: needs at least a 1-d tensor", fn); return NULL; }
  geom g;
  if (geometry(fn, t, dim, 1, &g)) return NULL;
  if (k < 0 || k > g.n) { mt_seterr("%s: k = %lld is out of range for a dim of size %lld", fn, (long long)k, (long long)g.n); return NULL; }
  mt_tensor *c = mt_contiguous(t);  /* in its own dtype: int32 ids beyond 2^24 must not round through float */
  if (!c) return NULL;
  int64_t shape[MT_MAXDIM];
  memcpy(shape, t->shape, sizeof shape);
  shape[g.dim] = k;
  mt_tensor *idx = mt_empty(MT_I32, t->ndim, shape);
  keyed *buf = malloc(sizeof *buf * (size_t)(g.n ? g.n : 1));
  if (!idx || !buf) { mt_unref(c); mt_unref(idx); free(buf); mt_seterr("out of memory"); return NULL; }
  const float *xf = c->dtype == MT_F32 ? mt_f32(c) : NULL;
  const int32_t *xi = c->dtype == MT_I32 ? mt_i32(c) : NULL;
  int32_t *pi = mt_i32(idx);
  for (int64_t o = 0; o < g.outer; o++)
    for (int64_t j = 0; j < g.inner; j++) {
      for (int64_t i = 0; i < g.n; i++) {
        int64_t at = (o * g.n + i) * g.inner + j;
        buf[i].v = xf ? (double)xf[at] : (double)xi[at];
        buf[i].i = (int32_t)i;
      }
      qsort(buf, (size_t)g.n, sizeof *buf, desc ? cmp_desc : cmp_asc);
      for (int64_t i = 0; i < k; i++) pi[(o * k + i) * g.inner + j] = buf[i].i;
    }
  free(buf);
  mt_unref(c);
  mt_tensor *v = mt_gather(t, g.dim, idx);
  if (indices) *indices = idx; else mt_unref(idx);
  return v;
}

mt_tensor *mt_topk(mt_tensor *t, int64_t k, int dim, int largest, mt_tensor **indices) {
  return sorted("topk", t, k, dim, largest, indices);
}
mt_tensor *mt_sort(mt_tensor *t, int dim, int descending, mt_tensor **indices) {
  if (t->ndim == 0) { mt_seterr("sort: needs at least a 1-d tensor"); return NULL; }
  int d = mt_wrap_dim("sort", dim, t->ndim);
  if (d < 0) return NULL;
  return sorted("sort", t, t->shape[d], d, descending, indices);
}

/* ---- cumsum ---- */
static void cumsum_kernel(const float *x, float *y, const geom *g, int reverse) {
  int64_t N = g->n, I = g->inner;
  for (int64_t o = 0; o < g->outer; o++)
    for (int64_t j = 0; j < I; j++) {
      double acc = 0;
      for (int64_t s = 0; s < N; s++) {
        int64_t i = reverse ? N - 1 - s : s;
        acc += x[(o * N + i) * I + j];
        y[(o * N + i) * I + j] = (float)acc;
      }
    }
}

static int cumsum_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  geom gm;
  gm.outer = n->iarg[3]; gm.n = n->iarg[4]; gm.inner = n->iarg[5];
  mt_tensor *r = mt_empty(MT_F32, g->ndim, g->shape);
  if (!r) return -1;
  cumsum_kernel(mt_f32(g), mt_f32(r), &gm, 1);
  gin[0] = r;
  return 0;
}

mt_tensor *mt_cumsum(mt_tensor *t, int dim) {
  geom g;
  if (geometry("cumsum", t, dim, 1, &g)) return NULL;
  mt_tensor *c = as_f32c(t);
  if (!c) return NULL;
  mt_tensor *out = mt_empty(MT_F32, c->ndim, c->shape);
  if (out) cumsum_kernel(mt_f32(c), mt_f32(out), &g, 0);
  mt_unref(c);
  if (out && mt_needs_grad(1, &t)) {
    mt_node *n = reduce_node("cumsum", cumsum_backward, t, out, g.dim, 1);
    if (!n) { mt_unref(out); return NULL; }
    n->iarg[3] = g.outer; n->iarg[4] = g.n; n->iarg[5] = g.inner;
  }
  return out;
}
