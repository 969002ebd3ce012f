/* Joining and indexing: cat, stack, index_select, gather, scatter_add, one_hot. */
#include "core/ops.h"
#include "core/autograd.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_index(const char *fn, mt_tensor *idx, int64_t size) {
  if (idx->dtype != MT_I32) {
    mt_seterr("%s: indices must be int32, got %s", fn, mt_dtype_name(idx->dtype));
    return -1;
  }
  mt_tensor *c = mt_contiguous(idx);
  if (!c) return -1;
  const int32_t *p = mt_i32(c);
  for (int64_t i = 0, n = mt_numel(c); i < n; i++)
    if (p[i] < 0 || p[i] >= size) {
      mt_seterr("%s: index %d is out of range 1..%lld", fn, p[i] + 1, (long long)size);
      mt_unref(c);
      return -1;
    }
  mt_unref(c);
  return 0;
}

/* ---- cat ---- */
static int cat_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  int dim = (int)n->iarg[0];
  int64_t start = 0;
  for (int i = 0; i < n->n_inputs; i++) {
    int64_t len = n->in_shape[i][dim];
    if (n->next[i]) {
      mt_tensor *v = mt_narrow(g, dim, start, len);
      gin[i] = v ? mt_contiguous(v) : NULL;
      mt_unref(v);
      if (!gin[i]) return -1;
    }
    start += len;
  }
  return 0;
}

static mt_tensor *cat_chunk(int n, mt_tensor *const *ts, int dim);

mt_tensor *mt_cat(int n, mt_tensor *const *ts, int dim) {
  if (n <= 0) { mt_seterr("cat: needs at least one tensor"); return NULL; }
  if (n > MT_MAX_INPUTS) {   /* the graph records at most MT_MAX_INPUTS inputs per node: join in chunks */
    int half = n / 2;
    mt_tensor *l = mt_cat(half, ts, dim), *r = l ? mt_cat(n - half, ts + half, dim) : NULL;
    mt_tensor *pair[2] = {l, r};
    mt_tensor *out = r ? cat_chunk(2, pair, dim) : NULL;
    mt_unref(l); mt_unref(r);
    return out;
  }
  return cat_chunk(n, ts, dim);
}

static mt_tensor *cat_chunk(int n, mt_tensor *const *ts, int dim) {
  mt_tensor *t0 = ts[0];
  if (t0->ndim == 0) { mt_seterr("cat: zero-dimensional tensors cannot be joined; use stack"); return NULL; }
  if ((dim = mt_wrap_dim("cat", dim, t0->ndim)) < 0) return NULL;
  int64_t shape[MT_MAXDIM];
  memcpy(shape, t0->shape, sizeof shape);
  shape[dim] = 0;
  for (int i = 0; i < n; i++) {
    mt_tensor *t = ts[i];
    int ok = t->ndim == t0->ndim && t->dtype == t0->dtype;
    for (int d = 0; ok && d < t->ndim; d++) if (d != dim && t->shape[d] != t0->shape[d]) ok = 0;
    if (!ok) {
      char a[64], b[64];
      mt_seterr("cat: tensor %d has shape %s %s, which does not match %s %s outside dim %d", i + 1,
                mt_shape_str(t, a, sizeof a), mt_dtype_name(t->dtype), mt_shape_str(t0, b, sizeof b),
                mt_dtype_name(t0->dtype), dim + 1);
      return NULL;
    }
    shape[dim] += t->shape[dim];
  }
  mt_tensor *out = mt_empty(t0->dtype, t0->ndim, shape);
  if (!out) return NULL;
  int prev = mt_set_grad_enabled(0);
  int64_t start = 0;
  for (int i = 0; i < n; i++) {
    mt_tensor *v = mt_narrow(out, dim, start, ts[i]->shape[dim]);
    int rc = v ? mt_copy_(v, ts[i]) : -1;
    mt_unref(v);
    if (rc) { mt_set_grad_enabled(prev); mt_unref(out); return NULL; }
    start += ts[i]->shape[dim];
  }
  mt_set_grad_enabled(prev);
  out->storage->version = 0;
  if (mt_needs_grad(n, ts)) {
    mt_node *nd = mt_node_new("cat", cat_backward, n, ts);
    if (!nd) { mt_unref(out); return NULL; }
    nd->iarg[0] = dim;
    mt_node_attach(nd, out);
  }
  return out;
}

mt_tensor *mt_stack(int n, mt_tensor *const *ts, int dim) {
  if (n <= 0) { mt_seterr("stack: needs at least one tensor"); return NULL; }
  for (int i = 1; i < n; i++)
    if (!mt_same_shape(ts[i], ts[0])) {
      char a[64], b[64];
      mt_seterr("stack: tensor %d has shape %s but tensor 1 has %s", i + 1, mt_shape_str(ts[i], a, sizeof a),
                mt_shape_str(ts[0], b, sizeof b));
      return NULL;
    }
  if (dim < 0) dim += ts[0]->ndim + 1;
  if (dim < 0 || dim > ts[0]->ndim) { mt_seterr("stack: dim %d out of range", dim + 1); return NULL; }
  mt_tensor **u = calloc((size_t)n, sizeof *u);
  if (!u) { mt_seterr("out of memory"); return NULL; }
  mt_tensor *out = NULL;
  int i;
  for (i = 0; i < n; i++) if (!(u[i] = mt_unsqueeze(ts[i], dim))) break;
  if (i == n) out = mt_cat(n, u, dim);
  for (int j = 0; j < n; j++) mt_unref(u[j]);
  free(u);
  return out;
}

/* ---- index_select: out = t indexed along dim by a 1-d index ---- */
static int index_select_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *idx = mt_node_saved(n, 0);
  if (!idx) return -1;
  int dim = (int)n->iarg[0];
  mt_tensor *z = mt_zeros(MT_F32, n->in_ndim[0], n->in_shape[0]);
  if (!z) return -1;
  int64_t outer = 1, inner = 1, N = n->in_shape[0][dim], K = mt_numel(idx);
  for (int i = 0; i < dim; i++) outer *= n->in_shape[0][i];
  for (int i = dim + 1; i < n->in_ndim[0]; i++) inner *= n->in_shape[0][i];
  const int32_t *pi = mt_i32(idx);
  const float *pg = mt_f32(g);
  float *pz = mt_f32(z);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t k = 0; k < K; k++) {
      float *dst = pz + (o * N + pi[k]) * inner;
      const float *src = pg + (o * K + k) * inner;
      for (int64_t j = 0; j < inner; j++) dst[j] += src[j];
    }
  gin[0] = z;
  return 0;
}

mt_tensor *mt_index_select(mt_tensor *t, int dim, mt_tensor *index) {
  if (t->ndim == 0) { mt_seterr("index_select: cannot index a 0-d tensor"); return NULL; }
  if ((dim = mt_wrap_dim("index_select", dim, t->ndim)) < 0) return NULL;
  if (index->ndim > 1) { mt_seterr("index_select: the index must be 1-d, got %d-d", index->ndim); return NULL; }
  if (check_index("index_select", index, t->shape[dim])) return NULL;
  mt_tensor *c = mt_contiguous(t), *idx = mt_contiguous(index);
  int64_t shape[MT_MAXDIM];
  memcpy(shape, t->shape, sizeof shape);
  int64_t K = mt_numel(idx);
  shape[dim] = K;
  mt_tensor *out = (c && idx) ? mt_empty(t->dtype, t->ndim, shape) : NULL;
  if (out) {
    int64_t outer = 1, inner = 1, N = t->shape[dim];
    for (int i = 0; i < dim; i++) outer *= t->shape[i];
    for (int i = dim + 1; i < t->ndim; i++) inner *= t->shape[i];
    const int32_t *pi = mt_i32(idx);
    const int32_t *src = (const int32_t *)mt_f32(c);
    int32_t *dst = (int32_t *)mt_f32(out);
    for (int64_t o = 0; o < outer; o++)
      for (int64_t k = 0; k < K; k++)
        memcpy(dst + (o * K + k) * inner, src + (o * N + pi[k]) * inner, sizeof(float) * (size_t)inner);
    if (mt_needs_grad(1, &t)) {
      mt_node *n = mt_node_new("index_select", index_select_backward, 1, &t);
      if (!n) { mt_unref(out); out = NULL; }
      else { n->iarg[0] = dim; mt_node_save(n, idx); mt_node_attach(n, out); }
    }
  }
  mt_unref(c); mt_unref(idx);
  return out;
}

/* ---- gather / scatter_add share the index walk ---- */
typedef struct { int64_t outer, inner, n_src, n_idx; } gs_geom;

static int gs_check(const char *fn, mt_tensor *t, int dim, mt_tensor *index, gs_geom *g) {
  if (index->ndim != t->ndim) {
    char a[64], b[64];
    mt_seterr("%s: index %s must have as many dims as the tensor %s", fn, mt_shape_str(index, a, sizeof a),
              mt_shape_str(t, b, sizeof b));
    return -1;
  }
  for (int d = 0; d < t->ndim; d++)
    if (d != dim && index->shape[d] != t->shape[d]) {
      char a[64], b[64];
      mt_seterr("%s: index %s and tensor %s differ at dim %d", fn, mt_shape_str(index, a, sizeof a),
                mt_shape_str(t, b, sizeof b), d + 1);
      return -1;
    }
  if (check_index(fn, index, t->shape[dim])) return -1;
  g->outer = 1; g->inner = 1;
  for (int i = 0; i < dim; i++) g->outer *= t->shape[i];
  for (int i = dim + 1; i < t->ndim; i++) g->inner *= t->shape[i];
  g->n_src = t->shape[dim];
  g->n_idx = index->shape[dim];
  return 0;
}

/* dst[o, idx[o,k,j], j] += src[o,k,j] */
static void scatter_add_kernel(float *dst, const int32_t *idx, const float *src, const gs_geom *g) {
  for (int64_t o = 0; o < g->outer; o++)
    for (int64_t k = 0; k < g->n_idx; k++)
      for (int64_t j = 0; j < g->inner; j++) {
        int64_t q = (o * g->n_idx + k) * g->inner + j;
        dst[(o * g->n_src + idx[q]) * g->inner + j] += src[q];
      }
}

static int gather_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *idx = mt_node_saved(n, 0);
  if (!idx) return -1;
  mt_tensor *z = mt_zeros(MT_F32, n->in_ndim[0], n->in_shape[0]);
  if (!z) return -1;
  gs_geom gm = {n->iarg[1], n->iarg[2], n->iarg[3], n->iarg[4]};
  scatter_add_kernel(mt_f32(z), mt_i32(idx), mt_f32(g), &gm);
  gin[0] = z;
  return 0;
}

mt_tensor *mt_gather(mt_tensor *t, int dim, mt_tensor *index) {
  if (t->ndim == 0) { mt_seterr("gather: cannot index a 0-d tensor"); return NULL; }
  if ((dim = mt_wrap_dim("gather", dim, t->ndim)) < 0) return NULL;
  gs_geom g;
  if (gs_check("gather", t, dim, index, &g)) return NULL;
  mt_tensor *c = mt_contiguous(t), *idx = mt_contiguous(index);
  mt_tensor *out = (c && idx) ? mt_empty(t->dtype, index->ndim, index->shape) : NULL;
  if (out) {
    const int32_t *pi = mt_i32(idx), *src = (const int32_t *)mt_f32(c);
    int32_t *dst = (int32_t *)mt_f32(out);
    for (int64_t o = 0; o < g.outer; o++)
      for (int64_t k = 0; k < g.n_idx; k++)
        for (int64_t j = 0; j < g.inner; j++) {
          int64_t q = (o * g.n_idx + k) * g.inner + j;
          dst[q] = src[(o * g.n_src + pi[q]) * g.inner + j];
        }
    if (mt_needs_grad(1, &t)) {
      mt_node *n = mt_node_new("gather", gather_backward, 1, &t);
      if (!n) { mt_unref(out); out = NULL; }
      else {
        n->iarg[1] = g.outer; n->iarg[2] = g.inner; n->iarg[3] = g.n_src; n->iarg[4] = g.n_idx;
        mt_node_save(n, idx);
        mt_node_attach(n, out);
      }
    }
  }
  mt_unref(c); mt_unref(idx);
  return out;
}

static int scatter_add_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *idx = mt_node_saved(n, 0);
  if (!idx) return -1;
  if (n->next[0]) gin[0] = mt_ref(g);
  if (n->next[2]) {
    int prev = mt_set_grad_enabled(0);
    gin[2] = mt_gather(g, (int)n->iarg[0], idx);
    mt_set_grad_enabled(prev);
    if (!gin[2]) return -1;
  }
  return 0;
}

mt_tensor *mt_scatter_add(mt_tensor *t, int dim, mt_tensor *index, mt_tensor *src) {
  if (t->ndim == 0) { mt_seterr("scatter_add: cannot index a 0-d tensor"); return NULL; }
  if ((dim = mt_wrap_dim("scatter_add", dim, t->ndim)) < 0) return NULL;
  if (t->dtype != MT_F32 || src->dtype != MT_F32) { mt_seterr("scatter_add: needs float32 tensors"); return NULL; }
  if (!mt_same_shape(src, index)) {
    char a[64], b[64];
    mt_seterr("scatter_add: src %s must have the index's shape %s", mt_shape_str(src, a, sizeof a),
              mt_shape_str(index, b, sizeof b));
    return NULL;
  }
  gs_geom g;
  if (gs_check("scatter_add", t, dim, index, &g)) return NULL;
  int prev = mt_set_grad_enabled(0);
  mt_tensor *out = mt_clone(t);
  mt_set_grad_enabled(prev);
  mt_tensor *idx = mt_contiguous(index), *s = mt_contiguous(src);
  if (out && idx && s) {
    scatter_add_kernel(mt_f32(out), mt_i32(idx), mt_f32(s), &g);
    mt_tensor *in[3] = {t, NULL, src};
    if (mt_needs_grad(3, in)) {
      mt_node *n = mt_node_new("scatter_add", scatter_add_backward, 3, in);
      if (!n) { mt_unref(out); out = NULL; }
      else { n->iarg[0] = dim; mt_node_save(n, idx); mt_node_attach(n, out); }
    }
  } else { mt_unref(out); out = NULL; }
  mt_unref(idx); mt_unref(s);
  return out;
}

mt_tensor *mt_one_hot(mt_tensor *index, int64_t n) {
  if (n <= 0) { mt_seterr("one_hot: number of classes must be positive, got %lld", (long long)n); return NULL; }
  if (index->ndim >= MT_MAXDIM) { mt_seterr("one_hot: too many dims"); return NULL; }
  if (check_index("one_hot", index, n)) return NULL;
  int64_t shape[MT_MAXDIM];
  memcpy(shape, index->shape, sizeof(int64_t) * (size_t)index->ndim);
  shape[index->ndim] = n;
  mt_tensor *out = mt_zeros(MT_F32, index->ndim + 1, shape), *c = out ? mt_contiguous(index) : NULL;
  if (!out) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", mt_error());
    mt_seterr("one_hot: %s", msg);
  }
  if (out && c) {
    const int32_t *p = mt_i32(c);
    float *o = mt_f32(out);
    for (int64_t i = 0, m = mt_numel(c); i < m; i++) o[i * n + p[i]] = 1.0f;
  }
  mt_unref(c);
  return out;
}
