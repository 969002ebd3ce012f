/* Views (shared storage) and copies: reshape, transpose, narrow, expand, ... */
#include "core/ops.h"
#include "core/autograd.h"
#include "core/iter.h"
#include <stdlib.h>
#include <string.h>

/* a new header on t's storage with the given geometry */
static mt_tensor *make_view(mt_tensor *t, int ndim, const int64_t *shape, const int64_t *stride, int64_t offset) {
  mt_tensor *v = mt_alias(t);
  if (!v) return NULL;
  v->ndim = ndim;
  memcpy(v->shape, shape, sizeof(int64_t) * (size_t)ndim);
  memcpy(v->stride, stride, sizeof(int64_t) * (size_t)ndim);
  v->offset = offset;
  return v;
}

/* gradient of a view-like op whose input has the same number of elements: reshape back */
static int reshape_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  gin[0] = mt_view(g, n->in_ndim[0], n->in_shape[0]);
  return gin[0] ? 0 : -1;
}

static mt_tensor *record(mt_tensor *in, mt_tensor *out, const char *name, mt_backward_fn bw) {
  if (!out || !mt_needs_grad(1, &in)) return out;
  mt_node *n = mt_node_new(name, bw, 1, &in);
  if (!n) { mt_unref(out); return NULL; }
  mt_node_attach(n, out);
  return out;
}

mt_tensor *mt_contiguous(mt_tensor *t) {
  if (mt_is_contiguous(t)) return mt_ref(t);
  return mt_clone(t);
}

static int identity_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  gin[0] = mt_ref(g);
  return 0;
}

mt_tensor *mt_clone(mt_tensor *t) {
  mt_tensor *out = mt_empty(t->dtype, t->ndim, t->shape);
  if (!out) return NULL;
  int prev = mt_set_grad_enabled(0);
  int rc = mt_copy_(out, t);
  mt_set_grad_enabled(prev);
  if (rc) { mt_unref(out); return NULL; }
  out->storage->version = 0;
  return record(t, out, "clone", identity_backward);
}

mt_tensor *mt_cast(mt_tensor *t, mt_dtype dt) {
  if (t->dtype == dt) return mt_clone(t);
  mt_tensor *out = mt_empty(dt, t->ndim, t->shape);
  if (!out) return NULL;
  mt_tensor *c = mt_contiguous(t);
  if (!c) { mt_unref(out); return NULL; }
  int64_t n = mt_numel(t);
  if (dt == MT_F32) { const int32_t *s = mt_i32(c); float *d = mt_f32(out); for (int64_t i = 0; i < n; i++) d[i] = (float)s[i]; }
  else {
    const float *s = mt_f32(c);
    int32_t *d = mt_i32(out);
    for (int64_t i = 0; i < n; i++) {   /* truncation toward zero, saturating (as C would be undefined) */
      float v = s[i];
      d[i] = v != v ? 0 : v >= 2147483647.0f ? INT32_MAX : v <= -2147483648.0f ? INT32_MIN : (int32_t)v;
    }
  }
  mt_unref(c);
  return out;   /* casts cut the graph: int32 has no gradient */
}

/* Can the new shape be expressed with strides over t's memory? Old dims are
   grouped into chunks that are contiguous among themselves; each chunk must be
   covered exactly by a run of new dims. */
static int viewable(mt_tensor *t, int ndim, const int64_t *shape, int64_t *stride) {
  if (mt_is_contiguous(t) || mt_numel(t) == 0 || t->ndim == 0) {
    int64_t st = 1;
    for (int i = ndim - 1; i >= 0; i--) { stride[i] = st; st *= shape[i]; }
    return 1;
  }
  int vd = ndim - 1;
  int64_t base = t->stride[t->ndim - 1], tn = 1, vn = 1;
  for (int td = t->ndim - 1; td >= 0; td--) {
    tn *= t->shape[td];
    if (td == 0 || (t->shape[td - 1] != 1 && t->stride[td - 1] != tn * base)) {
      while (vd >= 0 && (vn < tn || shape[vd] == 1)) {
        stride[vd] = vn * base;
        vn *= shape[vd];
        vd--;
      }
      if (vn != tn) return 0;
      if (td > 0) { base = t->stride[td - 1]; tn = 1; vn = 1; }
    }
  }
  return vd == -1;
}

mt_tensor *mt_view(mt_tensor *t, int ndim, const int64_t *shape_in) {
  if (ndim > MT_MAXDIM || ndim < 0) { mt_seterr("view: at most %d dims", MT_MAXDIM); return NULL; }
  int64_t shape[MT_MAXDIM], stride[MT_MAXDIM];
  int64_t known = 1, n = mt_numel(t), span = 1;
  int infer = -1;
  for (int i = 0; i < ndim; i++) {
    shape[i] = shape_in[i];
    int64_t m = shape[i] > 0 ? shape[i] : 1;
    if (span > ((int64_t)1 << 62) / m) {   /* the sizes' product would overflow: cannot match any tensor */
      char a[160], b[64];
      mt_seterr("view: shape %s is invalid for a tensor %s of %lld elements", mt_dims_str(shape_in, ndim, a, sizeof a),
                mt_shape_str(t, b, sizeof b), (long long)n);
      return NULL;
    }
    span *= m;
    if (shape[i] == -1) {
      if (infer >= 0) { mt_seterr("view: only one dimension can be -1"); return NULL; }
      infer = i;
    } else if (shape[i] < 0) { mt_seterr("view: invalid size %lld", (long long)shape[i]); return NULL; }
    else known *= shape[i];
  }
  if (infer >= 0) {
    if (known == 0 || n % known) {
      char a[64], b[64];
      mt_seterr("view: shape %s is invalid for a tensor %s of %lld elements", mt_dims_str(shape_in, ndim, a, sizeof a),
                mt_shape_str(t, b, sizeof b), (long long)n);
      return NULL;
    }
    shape[infer] = n / known;
    known *= shape[infer];
  }
  if (known != n) {
    char a[64], b[64];
    mt_seterr("view: shape %s is invalid for a tensor %s of %lld elements", mt_dims_str(shape_in, ndim, a, sizeof a),
              mt_shape_str(t, b, sizeof b), (long long)n);
    return NULL;
  }
  mt_tensor *out;
  if (viewable(t, ndim, shape, stride)) out = make_view(t, ndim, shape, stride, t->offset);
  else {   /* reshape semantics: copy when the memory layout does not allow a view */
    int prev = mt_set_grad_enabled(0);
    mt_tensor *c = mt_clone(t);
    mt_set_grad_enabled(prev);
    if (!c) return NULL;
    int64_t st = 1;
    for (int i = ndim - 1; i >= 0; i--) { stride[i] = st; st *= shape[i]; }
    out = make_view(c, ndim, shape, stride, 0);
    mt_unref(c);
  }
  return record(t, out, "view", reshape_backward);
}

static int transpose_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  gin[0] = mt_transpose(g, (int)n->iarg[0], (int)n->iarg[1]);
  return gin[0] ? 0 : -1;
}

mt_tensor *mt_transpose(mt_tensor *t, int d0, int d1) {
  if ((d0 = mt_wrap_dim("transpose", d0, t->ndim)) < 0 || (d1 = mt_wrap_dim("transpose", d1, t->ndim)) < 0) return NULL;
  if (t->ndim == 0) return record(t, mt_alias(t), "transpose", identity_backward);
  int64_t shape[MT_MAXDIM], stride[MT_MAXDIM];
  memcpy(shape, t->shape, sizeof shape);
  memcpy(stride, t->stride, sizeof stride);
  shape[d0] = t->shape[d1]; shape[d1] = t->shape[d0];
  stride[d0] = t->stride[d1]; stride[d1] = t->stride[d0];
  mt_tensor *out = record(t, make_view(t, t->ndim, shape, stride, t->offset), "transpose", transpose_backward);
  if (out && out->grad_fn) { out->grad_fn->iarg[0] = d0; out->grad_fn->iarg[1] = d1; }
  return out;
}

static int permute_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  int inv[MT_MAXDIM];
  for (int i = 0; i < g->ndim; i++) inv[n->iarg[i]] = i;
  gin[0] = mt_permute(g, inv);
  return gin[0] ? 0 : -1;
}

mt_tensor *mt_permute(mt_tensor *t, const int *perm) {
  int seen[MT_MAXDIM] = {0};
  int p[MT_MAXDIM];
  for (int i = 0; i < t->ndim; i++) {
    int d = mt_wrap_dim("permute", perm[i], t->ndim);
    if (d < 0) return NULL;
    if (seen[d]++) { mt_seterr("permute: dim %d appears twice", d + 1); return NULL; }
    p[i] = d;
  }
  int64_t shape[MT_MAXDIM], stride[MT_MAXDIM];
  for (int i = 0; i < t->ndim; i++) { shape[i] = t->shape[p[i]]; stride[i] = t->stride[p[i]]; }
  mt_tensor *out = record(t, make_view(t, t->ndim, shape, stride, t->offset), "permute", permute_backward);
  if (out && out->grad_fn) for (int i = 0; i < t->ndim; i++) out->grad_fn->iarg[i] = p[i];
  return out;
}

/* narrow/select: scatter the gradient into zeros of the input's shape */
static int slice_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *z = mt_zeros(MT_F32, n->in_ndim[0], n->in_shape[0]);
  if (!z) return -1;
  int dim = (int)n->iarg[0];
  mt_tensor *v = mt_narrow(z, dim, n->iarg[1], n->iarg[2]);
  if (v && n->iarg[3]) {   /* select: the slice has the dim squeezed away */
    mt_tensor *s = mt_select(z, dim, n->iarg[1]);
    mt_unref(v);
    v = s;
  }
  if (!v || mt_copy_(v, g)) { mt_unref(v); mt_unref(z); return -1; }
  mt_unref(v);
  gin[0] = z;
  return 0;
}

mt_tensor *mt_narrow(mt_tensor *t, int dim, int64_t start, int64_t len) {
  if ((dim = mt_wrap_dim("narrow", dim, t->ndim)) < 0) return NULL;
  if (t->ndim == 0) { mt_seterr("narrow: cannot narrow a 0-d tensor"); return NULL; }
  if (start < 0 || len < 0 || start + len > t->shape[dim]) {
    mt_seterr("narrow: range %lld..%lld is outside dim %d of size %lld", (long long)start + 1,
              (long long)(start + len), dim + 1, (long long)t->shape[dim]);
    return NULL;
  }
  int64_t shape[MT_MAXDIM];
  memcpy(shape, t->shape, sizeof shape);
  shape[dim] = len;
  mt_tensor *out = record(t, make_view(t, t->ndim, shape, t->stride, t->offset + start * t->stride[dim]), "narrow",
                          slice_backward);
  if (out && out->grad_fn) { out->grad_fn->iarg[0] = dim; out->grad_fn->iarg[1] = start; out->grad_fn->iarg[2] = len; }
  return out;
}

mt_tensor *mt_select(mt_tensor *t, int dim, int64_t index) {
  if (t->ndim == 0) { mt_seterr("select: cannot index a 0-d tensor"); return NULL; }
  if ((dim = mt_wrap_dim("select", dim, t->ndim)) < 0) return NULL;
  if (index < 0 || index >= t->shape[dim]) {
    mt_seterr("select: index %lld is out of range for dim %d of size %lld", (long long)index + 1, dim + 1,
              (long long)t->shape[dim]);
    return NULL;
  }
  int64_t shape[MT_MAXDIM], stride[MT_MAXDIM];
  int k = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != dim) { shape[k] = t->shape[i]; stride[k] = t->stride[i]; k++; }
  mt_tensor *out = record(t, make_view(t, k, shape, stride, t->offset + index * t->stride[dim]), "select",
                          slice_backward);
  if (out && out->grad_fn) {
    out->grad_fn->iarg[0] = dim; out->grad_fn->iarg[1] = index; out->grad_fn->iarg[2] = 1; out->grad_fn->iarg[3] = 1;
  }
  return out;
}

mt_tensor *mt_unsqueeze(mt_tensor *t, int dim) {
  if (t->ndim >= MT_MAXDIM) { mt_seterr("unsqueeze: at most %d dims", MT_MAXDIM); return NULL; }
  if (dim < 0) dim += t->ndim + 1;
  if (dim < 0 || dim > t->ndim) { mt_seterr("unsqueeze: dim %d out of range for a %d-d tensor", dim + 1, t->ndim); return NULL; }
  int64_t shape[MT_MAXDIM], stride[MT_MAXDIM];
  for (int i = 0, k = 0; i <= t->ndim; i++) {
    if (i == dim) {
      shape[i] = 1;
      stride[i] = dim < t->ndim ? t->stride[dim] * t->shape[dim] : 1;
    } else { shape[i] = t->shape[k]; stride[i] = t->stride[k]; k++; }
  }
  return record(t, make_view(t, t->ndim + 1, shape, stride, t->offset), "unsqueeze", reshape_backward);
}

mt_tensor *mt_squeeze(mt_tensor *t, int dim) {
  int64_t shape[MT_MAXDIM], stride[MT_MAXDIM];
  int k = 0;
  if (dim != MT_ALL) {
    if ((dim = mt_wrap_dim("squeeze", dim, t->ndim)) < 0) return NULL;
    if (t->ndim == 0) return record(t, mt_alias(t), "squeeze", reshape_backward);
  }
  for (int i = 0; i < t->ndim; i++) {
    int drop = t->shape[i] == 1 && (dim == MT_ALL || dim == i);
    if (!drop) { shape[k] = t->shape[i]; stride[k] = t->stride[i]; k++; }
  }
  return record(t, make_view(t, k, shape, stride, t->offset), "squeeze", reshape_backward);
}

mt_tensor *mt_expand(mt_tensor *t, int ndim, const int64_t *shape_in) {
  if (ndim < t->ndim || ndim > MT_MAXDIM) {
    char a[64], b[64];
    mt_seterr("expand: cannot expand %s to %s (fewer dimensions)", mt_shape_str(t, a, sizeof a),
              mt_dims_str(shape_in, ndim, b, sizeof b));
    return NULL;
  }
  int64_t shape[MT_MAXDIM], stride[MT_MAXDIM], span = 1;
  int off = ndim - t->ndim;
  for (int i = 0; i < ndim; i++) {
    int s = i - off;
    int64_t want = shape_in[i];
    int64_t m = want > 0 ? want : 1;
    if (span > ((int64_t)1 << 62) / m) {   /* element counts must stay representable */
      char b[160];
      mt_seterr("expand: shape %s is too large", mt_dims_str(shape_in, ndim, b, sizeof b));
      return NULL;
    }
    span *= m;
    if (s < 0) {
      if (want < 0) { mt_seterr("expand: -1 is not allowed for a new leading dimension"); return NULL; }
      shape[i] = want; stride[i] = 0;
    } else if (want == -1 || want == t->shape[s]) {
      shape[i] = t->shape[s]; stride[i] = t->stride[s];
    } else if (t->shape[s] == 1 && want >= 0) {
      shape[i] = want; stride[i] = 0;
    } else {
      char a[64], b[64];
      mt_seterr("expand: cannot expand %s to %s: size %lld at dim %d is not 1", mt_shape_str(t, a, sizeof a),
                mt_dims_str(shape_in, ndim, b, sizeof b), (long long)t->shape[s], i + 1);
      return NULL;
    }
  }
  /* backward: the engine sums the broadcast gradient back to the input's shape */
  return record(t, make_view(t, ndim, shape, stride, t->offset), "expand", identity_backward);
}
